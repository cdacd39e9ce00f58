//! The admin API's wire types: the request bodies and query parameters the handlers
//! read, the typed answers they serialise (one contract per message, described in
//! `/openapi.json` from the same types), and the schema of the token request, whose
//! valid forms depend on `kind`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_core::model::EnvName;
use switchyard_core::{Flag, FlagKey, Segment};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::http::openapi::{NAME_MAX, NAME_PATTERN};

use crate::domain::TokenSummary;
use crate::store::{AuditEntry, TokenKind, VariantCounts};

/// `GET /envs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvList {
    /// Every environment.
    pub environments: Vec<EnvSummary>,
}

/// One environment in [`EnvList`].
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvSummary {
    /// Its name.
    pub name: EnvName,
    /// Its revision (bumped by every write).
    pub revision: u64,
    /// How many flags it has.
    pub flags: usize,
}

/// `PUT /envs/{env}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvCreated {
    /// The environment.
    pub name: EnvName,
    /// Its revision.
    pub revision: u64,
}

/// `GET /envs/{env}/flags`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagList<'a> {
    /// The environment.
    #[schema(value_type = EnvName)]
    pub environment: &'a str,
    /// Its revision.
    pub revision: u64,
    /// Every flag, in order.
    #[schema(value_type = Vec<Flag>)]
    pub flags: Vec<&'a Flag>,
}

/// `GET /envs/{env}/segments`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentList<'a> {
    /// The environment.
    #[schema(value_type = EnvName)]
    pub environment: &'a str,
    /// Its revision.
    pub revision: u64,
    /// Every segment.
    #[schema(value_type = Vec<Segment>)]
    pub segments: Vec<&'a Segment>,
}

/// `POST /envs/{env}/kill`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagKilled {
    /// The tag.
    pub tag: String,
    /// Every flag with the tag that is now killed.
    pub killed: Vec<FlagKey>,
    /// The environment's revision.
    pub revision: u64,
}

/// `POST /promote`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Promoted {
    /// The source environment.
    pub from: String,
    /// The target environment.
    pub to: String,
    /// The flags copied (those already identical included).
    pub flags: Vec<String>,
    /// The target's revision.
    pub revision: u64,
}

/// `POST /tokens`: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenIssued {
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub kind: TokenKind,
    /// The environment it is bound to (`null` for admin tokens).
    pub env: Option<EnvName>,
    /// The token itself: `swy_<id>_<secret>`.
    pub token: String,
    /// When it stops being accepted, ms since the epoch (`null`: never).
    pub expires_ms: Option<u64>,
    /// After a rotation: until when the replaced secret is still accepted (`null`:
    /// not at all).
    pub previous_valid_until_ms: Option<u64>,
}

impl From<crate::domain::Issued> for TokenIssued {
    fn from(issued: crate::domain::Issued) -> Self {
        let record = issued.record;
        TokenIssued {
            name: record.name,
            kind: record.kind,
            env: record.env,
            token: issued.secret,
            expires_ms: record.expires_ms,
            previous_valid_until_ms: record.previous.map(|p| p.until_ms),
        }
    }
}

/// `POST /tokens/{name}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateToken {
    /// How long the replaced secret stays accepted, in seconds (default 86 400, one
    /// day; at most 2 592 000, 30 days; 0 ends it, and the streams it opened, at once).
    #[serde(
        default = "default_grace",
        deserialize_with = "switchyard_core::model::whole_number"
    )]
    #[schema(default = 86400, minimum = 0, maximum = 2592000)]
    pub grace_seconds: u64,
}

/// A whole number as JSON allows it (`4` or `4.0`), or `null`.
fn optional_whole<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "switchyard_core::model::whole_number")] u64);
    Ok(Option::<Whole>::deserialize(deserializer)?.map(|whole| whole.0))
}

fn default_grace() -> u64 {
    86_400
}

/// `GET /tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Every token, without secrets.
    pub tokens: Vec<TokenSummary>,
}

/// `GET /audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
}

/// `GET /envs/{env}/flags/{key}/metrics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagMetrics {
    /// The environment.
    pub environment: String,
    /// The flag.
    pub flag: String,
    /// The window as asked, e.g. `5m`.
    pub window: String,
    /// The window's start, ms since the epoch (whole minutes).
    pub from_ms: u64,
    /// Counts per variant.
    pub variants: BTreeMap<String, VariantCounts>,
}

impl PartialSchema for NewToken {
    /// `{"name", "kind": "admin"}` or `{"name", "kind": "sdk" | "eval", "env"}`.
    fn schema() -> RefOr<Schema> {
        let form = |kinds: &[&str]| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
                .property(
                    "name",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(NAME_MAX))
                        .pattern(Some(NAME_PATTERN)),
                )
                .property(
                    "kind",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(kinds.iter().copied())),
                )
                .property(
                    "expires_ms",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .maximum(Some(253_402_300_799_999_u64))
                        .description(Some(
                            "When the token stops being accepted, ms since the epoch (at most the end of year 9999); in the future. Omit for never.",
                        )),
                )
                .required("name")
                .required("kind")
        };
        OneOfBuilder::new()
            .item(form(&["admin"]))
            .item(
                form(&["sdk", "eval"])
                    .property("env", RefOr::Ref(Ref::from_schema_name(EnvName::name())))
                    .required("env"),
            )
            .description(Some(
                "An admin token (bound to no environment) or an sdk / eval token for `env`.",
            ))
            .into()
    }
}

impl ToSchema for NewToken {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((EnvName::name().into_owned(), EnvName::schema()));
    }
}

// Requests.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteEnvParams {
    #[serde(default)]
    pub force: bool,
}

/// The optional body of kill and revive.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why, for the audit log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Which earlier version to go back to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevertBody {
    /// A version the flag had, as its audit entries show (`24.0` is 24, as JSON Schema
    /// reads an integer).
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "switchyard_core::model::whole_number")]
    pub version: u64,
}

/// Kill every flag with `tag`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KillTag {
    /// The tag.
    #[schema(min_length = 1)]
    pub tag: String,
    /// Why, for the audit log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Copy flags from one environment to another.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The source environment.
    #[schema(value_type = EnvName)]
    pub from: String,
    /// The target environment (not `from`).
    #[schema(value_type = EnvName)]
    pub to: String,
    /// Flags to copy; all of `from`'s when empty.
    #[serde(default)]
    #[schema(value_type = Vec<FlagKey>)]
    pub flags: Vec<String>,
    /// Why, for the audit log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A token to issue (its schema is in `wire`: the valid forms depend on `kind`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub kind: TokenKind,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default, deserialize_with = "optional_whole")]
    pub expires_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub env: Option<String>,
    pub flag: Option<String>,
    pub since: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    pub window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitsParams {
    pub since: Option<String>,
    pub event: Option<String>,
}
