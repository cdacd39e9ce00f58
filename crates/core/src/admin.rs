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
