//! The flag model (docs/flags.md): one JSON shape shared by the admin API, the
//! store, SDK snapshots and files.
//!
//! These types are plain data. [`crate::validation`] says whether a value is
//! acceptable and [`crate::Snapshot::compile`] turns a set of them into something
//! evaluation can use without parsing anything.

use std::borrow::Borrow;
use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

#[cfg(feature = "openapi")]
pub mod schema;

macro_rules! key_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a key. Whether it is acceptable is decided by validation.
            pub fn new(key: impl Into<String>) -> Self {
                Self(key.into())
            }

            /// Wraps a key after checking that it is a name
            /// ([`crate::validation::check_name`]), as every new key must be.
            pub fn parse(key: impl Into<String>) -> Result<Self, crate::validation::Problem> {
                let key = key.into();
                crate::validation::check_name(&key)?;
                Ok(Self(key))
            }

            /// The key as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(key: &str) -> Self {
                Self(key.to_owned())
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                schema::key()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

key_newtype!(
    /// The key of a flag, unique within an environment.
    FlagKey
);
key_newtype!(
    /// The key of a segment, unique within an environment.
    SegmentKey
);
key_newtype!(
    /// The name of an environment (`development`, `production`, …).
    EnvName
);

/// Reads a unit enum from its name. Serde's own enum reading also takes a map, so a
/// number where a name belongs is reported as "expected value" (from JSON text) or
/// "expected string or map"; this says "expected a string", and an unknown name lists
/// the known ones.
fn by_name<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    let name = String::deserialize(deserializer)?;
    T::deserialize(serde::de::value::StringDeserializer::<D::Error>::new(name))
}

/// A feature flag in one environment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    /// Unique within the environment.
    pub key: FlagKey,
    /// The type every variant value has.
    #[serde(deserialize_with = "by_name")]
    pub kind: FlagKind,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `false` is the kill switch: every evaluation serves `off_variant` (or defers to
    /// the caller's code default when it is `null`).
    #[serde(default = "enabled_by_default")]
    #[cfg_attr(feature = "openapi", schema(default = true))]
    pub enabled: bool,
    /// Variant name → value, in the order written (the first variant is the one a
    /// ramp raises).
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::variants))]
    pub variants: IndexMap<String, Value>,
    /// Served when the flag is killed or a prerequisite fails. `null` serves nothing
    /// there: the evaluation has reason `DISABLED` and no value, and the caller's code
    /// default applies (OFREP and flagd v2 leave the value out). Required: a flag says
    /// which it does.
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, required))]
    pub off_variant: Option<String>,
    /// Tried in order; the first whose `when` matches serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Served when no rule matches.
    pub default: Serve,
    /// Flags that must evaluate to given variants for this one to be on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
    /// Labels; a tag can be killed as a whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::tags))]
    pub tags: Vec<String>,
    /// The day the flag should be gone by (`2027-01-31`): past it, the flag counts as
    /// expired in `/metrics` and lifecycle listings. Evaluation ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub expires: Option<Expiry>,
    /// Bumped by the store on every write; used for optimistic concurrency.
    #[serde(default, deserialize_with = "whole_number")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub version: u64,
}

/// A day, written `YYYY-MM-DD`: when a flag should be gone by ([`Flag::expires`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry(chrono::NaiveDate);

impl Expiry {
    /// The day.
    pub fn date(self) -> chrono::NaiveDate {
        self.0
    }

    /// Whether the day is over at `now_ms` (milliseconds since the epoch, UTC).
    pub fn is_past(self, now_ms: u64) -> bool {
        let end = self
            .0
            .succ_opt()
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis());
        end.is_some_and(|end| i64::try_from(now_ms).is_ok_and(|now| now >= end))
    }
}

impl Serialize for Expiry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.format("%Y-%m-%d"))
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(Expiry)
            .map_err(|_| {
                serde::de::Error::custom(format!("`{text}` is not a date like 2027-01-31"))
            })
    }
}

/// An `Option` that must be present but may be `null` (`deserialize_with` turns off
/// serde's "missing means `None`" for `Option` fields).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::deserialize(deserializer)
}

impl Flag {
    /// The variant everyone gets who is not ramped to another: the off variant, or,
    /// for a flag that defers when off (`off_variant: null`), its last variant. The
    /// console's rollout slider and the orchestrator's ramps split between a variant
    /// and this one.
    pub fn baseline(&self) -> Option<&str> {
        self.off_variant
            .as_deref()
            .or_else(|| self.variants.keys().last().map(String::as_str))
    }
}

fn enabled_by_default() -> bool {
    true
}

/// The type of a flag's variant values.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// Variants are exactly `on: true` and `off: false`.
    Boolean,
    /// Every variant value is a string.
    String,
    /// Every variant value is a number.
    Number,
    /// Variant values are any JSON.
    Json,
}

impl FlagKind {
    /// Whether `value` has this kind.
    pub fn admits(self, value: &Value) -> bool {
        match self {
            FlagKind::Boolean => value.is_boolean(),
            FlagKind::String => value.is_string(),
            FlagKind::Number => value.is_number(),
            FlagKind::Json => true,
        }
    }

    /// The kind's name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::Boolean => "boolean",
            FlagKind::String => "string",
            FlagKind::Number => "number",
            FlagKind::Json => "json",
        }
    }
}

/// One targeting rule: when the context matches `when`, `serve` decides the variant.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique within the flag; reported as `rule_id` when the rule serves.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub id: String,
    /// All parts must match; an empty `when` always matches.
    #[serde(default, skip_serializing_if = "When::is_empty")]
    pub when: When,
    /// What the rule serves.
    pub serve: Serve,
}

/// A targeting condition. Every part that is present must match.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// The context's targeting key is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// The context's groups intersect these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The context matches at least one of these segments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentKey>,
    /// Every constraint holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// The context falls in the first `weight` of the bucket space (a sampling
    /// condition: outside it, the rule does not match and the next rule is tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percentage>,
}

impl When {
    /// True when the condition has no parts, so it always matches.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.groups.is_empty()
            && self.segments.is_empty()
            && self.constraints.is_empty()
            && self.percentage.is_none()
    }
}

/// What a rule or the default serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "ServeRepr")]
pub enum Serve {
    /// Always this variant.
    Variant(String),
    /// A variant chosen by bucketing the context.
    Rollout(Rollout),
}

/// How `serve` is written: exactly one of its fields. Read through this so that a
/// serve with both or neither says so instead of serde's "expected value".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeRepr {
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    rollout: Option<Rollout>,
}

impl TryFrom<ServeRepr> for Serve {
    type Error = &'static str;

    fn try_from(repr: ServeRepr) -> Result<Self, Self::Error> {
        match (repr.variant, repr.rollout) {
            (Some(variant), None) => Ok(Serve::Variant(variant)),
            (None, Some(rollout)) => Ok(Serve::Rollout(rollout)),
            (Some(_), Some(_)) => Err("a serve sets `variant` or `rollout`, not both"),
            (None, None) => Err("a serve needs `variant` (a name) or `rollout` (a split)"),
        }
    }
}

/// A weighted split of the bucket space between variants.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// The context properties bucketed on, first present wins.
    #[serde(default, skip_serializing_if = "By::is_default")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::by))]
    pub by: By,
    /// Hash salt; defaults to the flag key. Equal salts bucket users identically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Variants with weights in units of 1/100 000 (Switchyard hashing), summing to
    /// 100 000. Under Unleash hashing the weights are Unleash's and may sum to any
    /// positive total.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub split: Vec<Split>,
    /// The hashing scheme; Unleash's is kept for flags imported from Unleash.
    #[serde(
        default,
        deserialize_with = "by_name",
        skip_serializing_if = "Hashing::is_default"
    )]
    pub hashing: Hashing,
}

/// One variant's share of a rollout.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// The variant served for this share.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub variant: String,
    /// The share's size.
    #[serde(deserialize_with = "whole_number")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100_000))]
    pub weight: u32,
}

/// A sampling condition inside `when`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percentage {
    /// The context properties bucketed on, first present wins.
    #[serde(default, skip_serializing_if = "By::is_default")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::by))]
    pub by: By,
    /// Hash salt; defaults to the flag key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// The sampled share in units of 1/100 000 (0..=100 000). Under Unleash hashing
    /// it must be a whole percent (a multiple of 1 000).
    #[serde(deserialize_with = "whole_number")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100_000))]
    pub weight: u32,
    /// The hashing scheme.
    #[serde(
        default,
        deserialize_with = "by_name",
        skip_serializing_if = "Hashing::is_default"
    )]
    pub hashing: Hashing,
}

/// How a context value is turned into a bucket (see `docs/bucketing.md`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hashing {
    /// murmur3 x86_32, seed 0, of `salt/value`, scaled to 0..100 000.
    #[default]
    Switchyard,
    /// Unleash's: murmur3 of `salt:value`, seed 0 modulo 100 for percentages and
    /// seed 86 028 157 modulo the total weight for variants.
    Unleash,
    /// flagd's `fractional`: murmur3 x86_32, seed 0, of the canonical CBOR array
    /// `[salt, value]`, scaled to 0..100 000; an empty value is nothing to bucket on.
    /// With the default salt (the flag key) and `by: targetingKey`, flagd's in-process
    /// providers bucket every user as Switchyard does, so the flag can be synced to
    /// them (docs/openfeature.md).
    Flagd,
}

impl Hashing {
    fn is_default(&self) -> bool {
        *self == Hashing::Switchyard
    }
}

/// The context properties a rollout buckets on: the first one present is used.
/// Written as a single name (`"targetingKey"`) or a list of fallbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct By(Vec<String>);

/// The default bucketing property.
pub const TARGETING_KEY: &str = "targetingKey";

impl By {
    /// Bucket on one property.
    pub fn one(property: impl Into<String>) -> Self {
        Self(vec![property.into()])
    }

    /// Bucket on the first present of these properties.
    pub fn first_of(properties: Vec<String>) -> Self {
        Self(properties)
    }

    /// The properties, in order of preference.
    pub fn properties(&self) -> &[String] {
        &self.0
    }

    fn is_default(&self) -> bool {
        self.0.len() == 1 && self.0[0] == TARGETING_KEY
    }
}

impl Default for By {
    fn default() -> Self {
        Self::one(TARGETING_KEY)
    }
}

impl Serialize for By {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for By {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::One(one) => By(vec![one]),
            Repr::Many(many) => By(many),
        })
    }
}

/// A condition on one context attribute.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// The context property tested (`targetingKey` and `groups` included).
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub attribute: String,
    /// The comparison.
    #[serde(deserialize_with = "by_name")]
    pub op: Operator,
    /// Operands; the constraint holds when the comparison holds for any of them.
    /// Numbers and booleans are accepted and kept in their string form.
    #[serde(
        default,
        deserialize_with = "scalar_strings",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::constraint_values))]
    pub values: Vec<String>,
    /// Inverts the result, including for an absent or mistyped attribute.
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
    /// Compare strings ignoring case.
    #[serde(default, skip_serializing_if = "is_false")]
    pub case_insensitive: bool,
}

/// A non-negative integer written as a JSON integer or as a whole float (`25000.0`):
/// JSON Schema counts both as integers, so clients generated from the OpenAPI
/// document may send either.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    });
    whole.and_then(|n| T::try_from(n).ok()).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected a non-negative whole number in range, found {number}"
        ))
    })
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn scalar_strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let values = Vec::<Value>::deserialize(deserializer)?;
    values
        .into_iter()
        .map(|value| match value {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(serde::de::Error::custom(format!(
                "constraint values must be strings, numbers or booleans, found {}",
                json_type_name(&other)
            ))),
        })
        .collect()
}

/// The JSON type of a value, as people call it.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Constraint operators (docs/flags.md, "Constraints").
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Operator {
    In,
    NotIn,
    Eq,
    Neq,
    Contains,
    StartsWith,
    EndsWith,
    /// Regular expression (Rust `regex` syntax), compiled when the flag is loaded.
    Matches,
    Lt,
    Lte,
    Gt,
    Gte,
    SemverEq,
    SemverLt,
    SemverLte,
    SemverGt,
    SemverGte,
    /// The attribute is an RFC 3339 instant before the value.
    Before,
    /// The attribute is an RFC 3339 instant after the value.
    After,
    /// The attribute is an IP address inside one of the CIDR blocks.
    InCidr,
    /// The attribute is present.
    Exists,
}

impl Operator {
    /// The operator's name as written in JSON.
    pub fn as_str(self) -> &'static str {
        use Operator::*;
        match self {
            In => "in",
            NotIn => "not_in",
            Eq => "eq",
            Neq => "neq",
            Contains => "contains",
            StartsWith => "starts_with",
            EndsWith => "ends_with",
            Matches => "matches",
            Lt => "lt",
            Lte => "lte",
            Gt => "gt",
            Gte => "gte",
            SemverEq => "semver_eq",
            SemverLt => "semver_lt",
            SemverLte => "semver_lte",
            SemverGt => "semver_gt",
            SemverGte => "semver_gte",
            Before => "before",
            After => "after",
            InCidr => "in_cidr",
            Exists => "exists",
        }
    }
}

/// A flag that must evaluate to one of `variants` for the same context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PrerequisiteRepr", into = "PrerequisiteRepr")]
pub struct Prerequisite {
    /// The flag evaluated.
    pub flag: FlagKey,
    /// Acceptable variants. Written as `"variant": "on"` or `"variants": [...]`.
    pub variants: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrerequisiteRepr {
    flag: FlagKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variants: Option<Vec<String>>,
}

impl TryFrom<PrerequisiteRepr> for Prerequisite {
    type Error = &'static str;

    fn try_from(repr: PrerequisiteRepr) -> Result<Self, Self::Error> {
        let variants = match (repr.variant, repr.variants) {
            (Some(one), None) => vec![one],
            (None, Some(many)) => many,
            (Some(_), Some(_)) => {
                return Err("a prerequisite sets `variant` or `variants`, not both")
            }
            (None, None) => return Err("a prerequisite needs `variant` or `variants`"),
        };
        Ok(Prerequisite {
            flag: repr.flag,
            variants,
        })
    }
}

impl From<Prerequisite> for PrerequisiteRepr {
    fn from(prerequisite: Prerequisite) -> Self {
        let mut variants = prerequisite.variants;
        let (variant, variants) = if variants.len() == 1 {
            (variants.pop(), None)
        } else {
            (None, Some(variants))
        };
        PrerequisiteRepr {
            flag: prerequisite.flag,
            variant,
            variants,
        }
    }
}

/// A named, reusable `when` block stored per environment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Unique within the environment.
    pub key: SegmentKey,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The condition; it may not itself name segments.
    pub when: When,
    /// Bumped by the store on every write.
    #[serde(default, deserialize_with = "whole_number")]
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_example_round_trips() {
        let json = serde_json::json!({
          "key": "new-payment-flow",
          "kind": "boolean",
          "description": "Route payments through the v3 processor",
          "enabled": true,
          "variants": { "on": true, "off": false },
          "off_variant": "off",
          "rules": [
            { "id": "staff",  "when": { "groups": ["staff"] },         "serve": { "variant": "on" } },
            { "id": "beta",   "when": { "users": ["u-17", "u-42"] },   "serve": { "variant": "on" } },
            { "id": "eu-ramp",
              "when": { "constraints": [ { "attribute": "country", "op": "in", "values": ["IT", "DE"] } ],
                        "segments": ["paying-customers"] },
              "serve": { "rollout": { "split": [ { "variant": "on", "weight": 25000 },
                                                 { "variant": "off", "weight": 75000 } ] } } }
          ],
          "default": { "variant": "off" },
          "prerequisites": [ { "flag": "payments-backend-v3", "variant": "on" } ],
          "tags": ["payments"],
          "version": 12
        });
        let flag: Flag = serde_json::from_value(json.clone()).expect("parses");
        assert_eq!(flag.variants.keys().next().map(String::as_str), Some("on"));
        assert_eq!(serde_json::to_value(&flag).expect("serialises"), json);
    }

    #[test]
    fn whole_floats_are_integers_and_other_numbers_are_not() {
        let split: Split =
            serde_json::from_str(r#"{"variant":"on","weight":25000.0}"#).expect("whole float");
        assert_eq!(split.weight, 25_000);
        for bad in ["25000.5", "-1", "4294967296", "1e300", "\"1\""] {
            let json = format!(r#"{{"variant":"on","weight":{bad}}}"#);
            assert!(serde_json::from_str::<Split>(&json).is_err(), "{bad}");
        }
        let segment: Segment =
            serde_json::from_str(r#"{"key":"s","when":{},"version":3.0}"#).expect("parses");
        assert_eq!(segment.version, 3);
    }

    #[test]
    fn constraint_values_accept_scalars_and_by_accepts_lists() {
        let c: Constraint =
            serde_json::from_str(r#"{"attribute":"age","op":"gte","values":[18, true, "x"]}"#)
                .expect("parses");
        assert_eq!(c.values, ["18", "true", "x"]);
        let r: Rollout = serde_json::from_str(
            r#"{"by":["userId","sessionId"],"split":[{"variant":"on","weight":100000}]}"#,
        )
        .expect("parses");
        assert_eq!(r.by.properties(), ["userId", "sessionId"]);
        let err =
            serde_json::from_str::<Constraint>(r#"{"attribute":"a","op":"in","values":[{}]}"#)
                .expect_err("objects are not values");
        assert!(err.to_string().contains("found object"), "{err}");
    }
}
