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
