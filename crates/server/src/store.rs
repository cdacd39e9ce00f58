//! Durable state behind one trait, so the embedded store and Redis are
//! interchangeable: environments with their revision, flags, segments, tokens, the
//! audit log and SDK metric counts.
//!
//! Writes to an environment are whole [`Commit`]s applied atomically with a
//! compare-and-set on the environment's revision: the flags and segments changed,
//! the new revision and the audit entries land together or not at all. The server
//! validates a commit against the state at `expected_revision` before sending it,
//! so a commit that lands is always valid.

pub mod embedded;
pub mod redis;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
pub use switchyard_core::admin::{Schedule, ScheduleState, TokenKind, VariantCounts};
use switchyard_core::guard::sketch::SketchWire;
use switchyard_core::guard::ValueSummary;
use switchyard_core::model::{EnvName, FlagKey, SegmentKey};
use switchyard_core::{Flag, Segment};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The environment moved on since the caller read it: reload and retry.
    #[error("environment `{env}` is at revision {actual}, not {expected}")]
    RevisionConflict {
        /// The environment.
        env: String,
        /// The revision the commit was based on.
        expected: u64,
        /// The revision found.
        actual: u64,
    },
    /// The environment does not exist.
    #[error("environment `{0}` does not exist")]
    NoSuchEnvironment(String),
    /// A token with that name exists already.
    #[error("a token named `{0}` already exists")]
    DuplicateToken(String),
    /// The scheduled change is no longer pending (done, failed or cancelled, here or
    /// by another replica): nothing was written.
    #[error("scheduled change `{0}` is no longer pending")]
    ScheduleSettled(String),
    /// This server is a relay: its upstream owns what was asked for (writes, tokens,
    /// the audit log, schedules, metric queries).
    #[error(
        "this server is a relay of {upstream}: changes, tokens, the audit log, schedules and \
         metrics are kept there; send this request to {upstream}"
    )]
    ReadOnly {
        /// The upstream's URL.
        upstream: String,
    },
    /// The backing database failed or is unreachable.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The disk under the embedded store is full; nothing was written.
    #[error("the disk under the store is full: {0}")]
    DiskFull(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data could not be decoded.
    #[error("corrupt record {what}: {source}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Decodes a stored JSON record, naming it when it is corrupt.
fn decode<T: serde::de::DeserializeOwned>(
    what: impl Into<String>,
    json: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
        what: what.into(),
        source,
    })
}

/// Decodes a stored audit entry. One that cannot be decoded (written by an older
/// version, say, with a value nested past serde_json's recursion limit) comes back
/// degraded rather than failing the whole query: its `id`, every field that can be
/// decoded on its own, and `error` saying why the record could not be read.
fn decode_audit(id: u64, json: &str) -> AuditEntry {
    let error = match serde_json::from_str::<AuditEntry>(json) {
        Ok(entry) => return entry,
        Err(error) => error,
    };
    tracing::warn!(id, %error, "audit entry cannot be decoded; answering it degraded");
    // Capturing a field's raw text has no recursion limit, so the fields beside the
    // undecodable one can still be read.
    let fields: HashMap<String, Box<RawValue>> = serde_json::from_str(json).unwrap_or_default();
    fn field<T: serde::de::DeserializeOwned>(
        fields: &HashMap<String, Box<RawValue>>,
        name: &str,
    ) -> Option<T> {
        serde_json::from_str(fields.get(name)?.get()).ok()
    }
    AuditEntry {
        id,
        at_ms: field(&fields, "at_ms").unwrap_or_default(),
        actor: field(&fields, "actor").unwrap_or_default(),
        env: field(&fields, "env"),
        action: field(&fields, "action").unwrap_or_default(),
        target: field(&fields, "target").unwrap_or_default(),
        before: field(&fields, "before"),
        after: field(&fields, "after"),
        reason: field(&fields, "reason"),
        revision: field(&fields, "revision"),
        error: Some(format!("the stored record cannot be decoded: {error}")),
    }
}

/// Encodes a record as JSON (our model types always serialise).
fn encode(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// One environment as stored.
#[derive(Debug, Clone)]
pub struct EnvRecord {
    /// Its name.
    pub name: EnvName,
    /// Bumped by every commit.
    pub revision: u64,
    /// Every flag.
    pub flags: Vec<Flag>,
    /// Every segment.
    pub segments: Vec<Segment>,
}

/// An atomic change to one environment.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The environment changed.
    pub env: EnvName,
    /// The revision the change was computed against.
    pub expected_revision: u64,
    /// Flags written (`Some`) or deleted (`None`).
    pub flags: Vec<(FlagKey, Option<Flag>)>,
    /// Segments written (`Some`) or deleted (`None`).
    pub segments: Vec<(SegmentKey, Option<Segment>)>,
    /// What to record in the audit log (ids and revision are filled in by the store).
    pub audit: Vec<AuditEntry>,
    /// The change as SDKs see it (the SSE `change` document for revision
    /// `expected_revision + 1`); a shared store announces it to the other replicas.
    pub event: bytes::Bytes,
    /// The scheduled change this commit carries out, as it is to be stored (done):
    /// the commit lands only if that schedule is still pending, so a scheduled change
    /// is done once however many replicas try.
    pub schedule: Option<Schedule>,
}

/// One audited write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the log, assigned by the store (strictly increasing).
    #[serde(default)]
    pub id: u64,
    /// When, in milliseconds since the Unix epoch (0 in a degraded entry whose time
    /// cannot be read).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub at_ms: u64,
    /// The name of the token that made the change.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// The environment, when the change is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvName>,
    /// What happened, e.g. `flag.put`, `flag.kill`, `segment.delete`, `token.create`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// The flag, segment or token concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// State before (absent for creations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// State after (absent for deletions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// Why, as the person said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The environment's revision after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Only in a degraded entry: why the stored record could not be decoded (the
    /// fields that could not be read are then absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AuditEntry {
    /// `actor` did `action` to `target` (in `env`) now; the store assigns the id and
    /// the revision, the caller adds `before`, `after` and `reason` where they apply.
    pub fn new(actor: &str, env: Option<&EnvName>, action: &str, target: &str) -> Self {
        AuditEntry {
            at_ms: crate::environments::now_ms(),
            actor: actor.to_owned(),
            env: env.cloned(),
            action: action.to_owned(),
            target: target.to_owned(),
            ..AuditEntry::default()
        }
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Filters for reading the audit log; all are optional.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this environment.
    pub env: Option<EnvName>,
    /// Only this flag, segment or token.
    pub target: Option<String>,
    /// Only entries at or after this time (ms since epoch).
    pub since_ms: Option<u64>,
    /// Only entries at or before this time (ms since epoch).
    pub until_ms: Option<u64>,
    /// Only entries made by the token with this name.
    pub actor: Option<String>,
    /// Only entries of this action, e.g. `flag.kill`.
    pub action: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `entry` passes every filter but the limit: the one test both stores
    /// apply to what they read.
    pub fn admits(&self, entry: &AuditEntry) -> bool {
        fn is<T: PartialEq + ?Sized>(wanted: Option<&T>, value: &T) -> bool {
            wanted.is_none_or(|w| w == value)
        }
        self.since_ms.is_none_or(|since| entry.at_ms >= since)
            && self.until_ms.is_none_or(|until| entry.at_ms <= until)
            && self
                .env
                .as_ref()
                .is_none_or(|env| entry.env.as_ref() == Some(env))
            && is(self.target.as_deref(), entry.target.as_str())
            && is(self.actor.as_deref(), entry.actor.as_str())
            && is(self.action.as_deref(), entry.action.as_str())
    }
}

/// A stored API token: only a hash of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public identifier embedded in the token.
    pub id: String,
    /// Unique human name.
    pub name: String,
    /// What it may do.
    pub kind: TokenKind,
    /// The environment it is limited to (`sdk` and `eval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvName>,
    /// SHA-256 of the whole token, hex.
    pub hash: String,
    /// Creation time, ms since epoch.
    pub created_ms: u64,
    /// When it stops being accepted, ms since the epoch; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// When its secret was last rotated, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_ms: Option<u64>,
    /// The secret the last rotation replaced, accepted until its grace period ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousSecret>,
}

/// A rotated token's old secret, still accepted for a grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    /// SHA-256 of the old token, hex.
    pub hash: String,
    /// When it stops being accepted, ms since the epoch.
    pub until_ms: u64,
}

/// Whose last-use times a usage record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageOf<'a> {
    /// The flags of an environment, by key (keys it does not have too: unknown flags).
    Flags(&'a EnvName),
    /// API tokens, by name.
    Tokens,
}

/// Exposure and tracked-event counts for one environment, from one SDK flush.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsBatch {
    /// (flag, variant) → exposures.
    #[serde(default)]
    pub exposures: Vec<ExposureCount>,
    /// (event, flag, variant) → count.
    #[serde(default)]
    pub events: Vec<EventCount>,
    /// The unit sketches of the batch, per flag (written with the counts, atomically).
    #[serde(skip)]
    pub units: Vec<(FlagKey, UnitsRecord)>,
}

/// How long unit records are kept.
pub const UNITS_RETENTION_MS: u64 = 8 * 86_400_000;

/// The unit sketches one SDK batch brought for one flag (docs/guard.md): what a
/// guard merges over every record that began after a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitsRecord {
    /// When the batch's counts began (server clock, ms since the epoch): when it was
    /// received, less the `window_ms` the SDK said they took.
    pub start_ms: u64,
    /// Random, so that two equal records are both kept (their values add up).
    pub id: u64,
    /// Per variant: the units served it.
    #[serde(default)]
    pub variants: BTreeMap<String, SketchWire>,
    /// Per variant and event: the units that had it and the values tracked with it.
    #[serde(default)]
    pub events: Vec<EventUnitsRecord>,
}

/// One event's units in a [`UnitsRecord`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventUnitsRecord {
    /// The variant served.
    pub variant: String,
    /// The event.
    pub event: String,
    /// The units that had it.
    #[serde(default)]
    pub units: SketchWire,
    /// The values tracked with it.
    #[serde(default)]
    pub values: ValueSummary,
}

/// Exposures of one variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExposureCount {
    /// The flag.
    pub flag: FlagKey,
    /// The variant served.
    #[schema(schema_with = crate::http::openapi::text_schema)]
    pub variant: String,
    /// How many times (0 only in an entry that carries units).
    #[serde(deserialize_with = "switchyard_core::model::whole_number")]
    #[schema(minimum = 0)]
    pub count: u64,
    /// The distinct units (targeting keys) served the variant, as a sketch
    /// (docs/guard.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<SketchWire>,
}

/// Tracked events attributed to the variant a context was served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCount {
    /// The event name, e.g. `checkout_error`.
    #[schema(schema_with = crate::http::openapi::text_schema)]
    pub event: String,
    /// The flag.
    pub flag: FlagKey,
    /// The variant the context was served.
    #[schema(schema_with = crate::http::openapi::text_schema)]
    pub variant: String,
    /// How many times (0 only in an entry that carries units).
    #[serde(deserialize_with = "switchyard_core::model::whole_number")]
    #[schema(minimum = 0)]
    pub count: u64,
    /// The distinct units that had the event, as a sketch (docs/guard.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<SketchWire>,
    /// The values tracked with the event (`track_value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<ValueSummary>,
}

/// The durable store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every environment with its flags and segments.
    async fn load(&self) -> Result<Vec<EnvRecord>, StoreError>;
    /// One environment, if it exists.
    async fn load_env(&self, env: &EnvName) -> Result<Option<EnvRecord>, StoreError>;
    /// Creates an environment at revision 0; `Ok(false)` when it existed.
    async fn create_env(&self, env: &EnvName, audit: AuditEntry) -> Result<bool, StoreError>;
    /// Applies a commit atomically; returns the new revision.
    async fn commit(&self, commit: Commit) -> Result<u64, StoreError>;
    /// Deletes an environment that is still at `expected_revision` with its flags and
    /// segments, appending `audit` to its audit log (which is kept).
    async fn delete_env(
        &self,
        env: &EnvName,
        expected_revision: u64,
        audit: AuditEntry,
    ) -> Result<(), StoreError>;

    /// Every token.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Stores a new token (its name must be unique).
    async fn create_token(&self, token: TokenRecord, audit: AuditEntry) -> Result<(), StoreError>;
    /// Deletes a token by name; `Ok(None)` when there was none.
    async fn delete_token(
        &self,
        name: &str,
        audit: AuditEntry,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Replaces the token named `token.name` by `token` if its stored secret hash is
    /// still `expected_hash` (a rotation); `Ok(false)`, nothing written, otherwise.
    async fn replace_token(
        &self,
        expected_hash: &str,
        token: TokenRecord,
        audit: AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Reads the audit log, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;

    /// Raises the last-use time of each `(name, ms)` of `of` to `ms`: when a flag was
    /// last evaluated (one the environment does not have too: an unknown flag), or
    /// a token last used.
    async fn record_usage(&self, of: UsageOf<'_>, seen: &[(String, u64)])
        -> Result<(), StoreError>;
    /// When each flag or token of `of` was last used, as recorded.
    async fn usage(&self, of: UsageOf<'_>) -> Result<Vec<(String, u64)>, StoreError>;

    /// Stores a new scheduled change (pending) in its environment, with `audit`.
    async fn put_schedule(&self, schedule: &Schedule, audit: AuditEntry) -> Result<(), StoreError>;
    /// The scheduled changes of `env` (of every environment when `None`).
    async fn schedules(&self, env: Option<&EnvName>) -> Result<Vec<Schedule>, StoreError>;
    /// Replaces a pending scheduled change by `schedule` (failed or cancelled), with
    /// `audit`; `Ok(false)` (nothing written) when it is not pending or not there.
    async fn settle_schedule(
        &self,
        schedule: &Schedule,
        audit: AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Adds SDK counts to the minute `minute` (minutes since the epoch).
    async fn record_metrics(
        &self,
        env: &EnvName,
        minute: u64,
        batch: &MetricsBatch,
    ) -> Result<(), StoreError>;
    /// Whether the store is reachable (the embedded one always is).
    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A flag's unit records that began at or after `since_ms`.
    async fn flag_units(
        &self,
        env: &EnvName,
        flag: &FlagKey,
        since_ms: u64,
    ) -> Result<Vec<UnitsRecord>, StoreError>;

    /// Sums a flag's counts per variant over minutes `from_minute..=to_minute`.
    async fn flag_metrics(
        &self,
        env: &EnvName,
        flag: &FlagKey,
        from_minute: u64,
        to_minute: u64,
    ) -> Result<BTreeMap<String, VariantCounts>, StoreError>;
}
