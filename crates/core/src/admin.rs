//! Types of the admin API (`/v1/admin`) that both its server and its client (the
//! SDK's `AdminClient`) name, declared once so the two cannot drift.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Everything.
    Admin,
    /// One environment: snapshot, stream, evaluation, metrics.
    Sdk,
    /// One environment: evaluation only.
    Eval,
}

/// Counts per variant of one flag over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VariantCounts {
    /// Exposures.
    pub exposures: u64,
    /// Tracked events by name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub events: BTreeMap<String, u64>,
}

/// The distinct units of one flag's variants in the counts that began at or after a
/// time (`GET /v1/admin/envs/{env}/flags/{key}/units?since=…`): what the guarded
/// rollout's test reads (`docs/guard.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagUnits {
    /// The `since` asked for (RFC 3339): only counts an SDK began after it are included.
    pub since: String,
    /// The relative standard error of the unit counts (the sketch's, 0.0081).
    pub relative_error: f64,
    /// Per variant served.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub variants: BTreeMap<String, VariantUnits>,
}

/// One variant's distinct units.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VariantUnits {
    /// Distinct units (targeting keys) served the variant.
    pub units: u64,
    /// Per tracked event: the units served the variant that had it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub events: BTreeMap<String, EventUnits>,
}

/// The units that had one event, and the values tracked with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventUnits {
    /// Distinct units that had the event.
    pub units: u64,
    /// The numeric values tracked with the event (`track` with a value), if any.
    #[serde(default)]
    pub values: crate::guard::ValueSummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_kinds_are_snake_case_words() {
        for (kind, text) in [
            (TokenKind::Admin, "\"admin\""),
            (TokenKind::Sdk, "\"sdk\""),
            (TokenKind::Eval, "\"eval\""),
        ] {
            assert_eq!(serde_json::to_string(&kind).expect("serialises"), text);
            assert_eq!(
                serde_json::from_str::<TokenKind>(text).expect("parses"),
                kind
            );
        }
    }

    #[test]
    fn variant_counts_without_events_have_none() {
        let counts: VariantCounts = serde_json::from_str(r#"{"exposures":3}"#).expect("parses");
        assert_eq!(
            counts,
            VariantCounts {
                exposures: 3,
                events: BTreeMap::new()
            }
        );
    }
}

/// `POST /v1/admin/envs/{env}/apply`: what to write and delete in one atomic commit
/// (flags as code: what `switchyard apply` sends).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// Flags created or replaced (a `version` given is ignored).
    #[serde(default)]
    pub flags: Vec<crate::Flag>,
    /// Segments created or replaced.
    #[serde(default)]
    pub segments: Vec<crate::Segment>,
    /// Flags deleted (absent ones are ignored).
    #[serde(default)]
    pub delete_flags: Vec<crate::model::FlagKey>,
    /// Segments deleted (absent ones are ignored).
    #[serde(default)]
    pub delete_segments: Vec<crate::model::SegmentKey>,
    /// Why, for the audit log (each entry also names the batch).
    #[serde(default)]
    pub reason: Option<String>,
}

/// What an [`ApplyBody`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApplyAnswer {
    /// The batch's id, named by each of its audit entries.
    pub batch: String,
    /// The environment's revision after the write (unchanged when nothing changed).
    pub revision: u64,
    /// `flag:KEY` or `segment:KEY` created.
    pub created: Vec<String>,
    /// Changed.
    pub changed: Vec<String>,
    /// Deleted.
    pub deleted: Vec<String>,
}

/// A change scheduled for a flag: what the server does at the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduledChange {
    /// The kill switch: everyone gets the off variant.
    Kill,
    /// Undo a kill.
    Revive,
    /// The first variant at `percent` % (up or down) of the default serve, or of rule
    /// `rule`'s.
    Ramp {
        /// 0 to 100.
        #[serde(deserialize_with = "crate::model::whole_number")]
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
        percent: u32,
        /// The rule whose serve is ramped; the default serve when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
    },
    /// The flag replaced by this one (any edit).
    Put {
        /// The flag as it will be (its `version` is ignored).
        flag: Box<crate::Flag>,
    },
}

/// `POST /v1/admin/envs/{env}/schedules`: a change to a flag at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// The flag.
    pub flag: crate::model::FlagKey,
    /// When, in milliseconds since the Unix epoch (a time past is done at once).
    #[serde(deserialize_with = "crate::model::whole_number")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub at_ms: u64,
    /// What.
    pub change: ScheduledChange,
    /// Why, for the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a scheduled change is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ScheduleState {
    /// Waiting for its time.
    Pending,
    /// Done, at this time, making this revision.
    Done {
        /// When it was settled (ms since the epoch).
        settled_ms: u64,
        /// The environment's revision it made.
        revision: u64,
    },
    /// Could not be done (the flag was deleted, the change no longer validates).
    Failed {
        /// When it was settled (ms since the epoch).
        settled_ms: u64,
        /// Why.
        error: String,
    },
    /// Cancelled by a person before its time.
    Cancelled {
        /// When it was settled (ms since the epoch).
        settled_ms: u64,
        /// Who.
        by: String,
    },
}

/// A scheduled change as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    /// Its id.
    pub id: String,
    /// The environment.
    pub env: crate::model::EnvName,
    /// The flag.
    pub flag: crate::model::FlagKey,
    /// When it is due (ms since the epoch).
    pub at_ms: u64,
    /// What.
    pub change: ScheduledChange,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The token that scheduled it.
    pub created_by: String,
    /// When it was scheduled (ms since the epoch).
    pub created_ms: u64,
    /// Where it is.
    #[serde(flatten)]
    pub state: ScheduleState,
}

/// `GET /v1/admin/envs/{env}/lifecycle`: which flags are stale or expired, and the
/// keys evaluated that the environment does not have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lifecycle {
    /// The environment.
    pub env: crate::model::EnvName,
    /// How long a flag is unused or fully rolled out before it counts as stale (ms).
    pub stale_after_ms: u64,
    /// Every flag, by key.
    pub flags: Vec<FlagLifecycle>,
    /// Keys evaluated in the environment that it does not have, by key.
    pub unknown: Vec<UnknownFlag>,
}

/// One flag of a [`Lifecycle`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagLifecycle {
    /// The flag.
    pub key: crate::model::FlagKey,
    /// When it was last evaluated (by the server or, from their counts, by SDKs), ms
    /// since the epoch; absent when never.
    pub last_evaluated_ms: Option<u64>,
    /// When it last changed, from the audit log (its newest 10 000 entries); absent
    /// when longer ago.
    pub last_changed_ms: Option<u64>,
    /// The variant every evaluation serves (killed, or one variant by default and in
    /// every rule); absent when it depends on the context.
    pub serves_everyone: Option<String>,
    /// Its `expires` date.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub expires: Option<crate::model::Expiry>,
    /// Whether that date is past.
    pub expired: bool,
    /// Why it is stale: `unused` (not evaluated for `stale_after`), `fully rolled out`
    /// (one variant for everyone, unchanged for `stale_after`); empty when it is not.
    pub stale: Vec<String>,
}

/// A key evaluated in an environment that does not have it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnknownFlag {
    /// The key asked for.
    pub key: String,
    /// When it was last asked for (ms since the epoch).
    pub last_evaluated_ms: u64,
}

#[cfg(test)]
mod schedule_tests {
    use super::*;

    #[test]
    fn a_schedule_reads_back_what_it_wrote_in_every_state() {
        let pending = Schedule {
            id: "s1".into(),
            env: crate::model::EnvName::new("production"),
            flag: crate::model::FlagKey::new("checkout"),
            at_ms: 1_000,
            change: ScheduledChange::Ramp {
                percent: 25,
                rule: None,
            },
            reason: None,
            created_by: "ana".into(),
            created_ms: 500,
            state: ScheduleState::Pending,
        };
        for state in [
            ScheduleState::Pending,
            ScheduleState::Done {
                settled_ms: 1_001,
                revision: 7,
            },
            ScheduleState::Failed {
                settled_ms: 1_001,
                error: "gone".into(),
            },
            ScheduleState::Cancelled {
                settled_ms: 900,
                by: "bo".into(),
            },
        ] {
            let schedule = Schedule {
                state,
                ..pending.clone()
            };
            let json = serde_json::to_string(&schedule).unwrap();
            assert_eq!(
                serde_json::from_str::<Schedule>(&json).unwrap(),
                schedule,
                "{json}"
            );
        }
    }
}
