//! The JSON an Unleash server sends to client SDKs (`GET /api/client/features`):
//! `{ "version", "features": [...], "segments": [...] }`.
//!
//! The types are lenient the way Unleash clients are: unknown fields (`type`,
//! `project`, `stale`, `impressionData`, …) are ignored, `null` lists read as empty,
//! and strategy parameters and constraint operands may be strings or numbers (both
//! are kept as strings, as Unleash compares them). Operators are kept as written so
//! that an operator this version does not know still parses (and evaluates false).

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A whole client-API response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnleashState {
    /// The schema version (1 or 2); informational.
    #[serde(default)]
    pub version: u64,
    /// The feature toggles.
    #[serde(default, deserialize_with = "null_as_default")]
    pub features: Vec<UnleashFeature>,
    /// Segments that strategies refer to by id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub segments: Vec<UnleashSegment>,
}

/// One feature toggle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashFeature {
    /// The toggle's name; any UTF-8.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The toggle's switch in this environment.
    pub enabled: bool,
    /// Activation strategies; the toggle is on when any is (or when there are none).
    #[serde(default, deserialize_with = "null_as_default")]
    pub strategies: Vec<UnleashStrategy>,
    /// Feature-level variants, used when the deciding strategy has none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub variants: Vec<UnleashVariant>,
    /// Parent toggles this one depends on.
    #[serde(default, deserialize_with = "null_as_default")]
    pub dependencies: Vec<UnleashDependency>,
}

/// One activation strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashStrategy {
    /// `default`, `userWithId`, `flexibleRollout`, … or a custom name.
    pub name: String,
    /// Parameters; numbers and booleans are kept in their string form.
    #[serde(default, deserialize_with = "scalar_map")]
    pub parameters: IndexMap<String, String>,
    /// All must hold.
    #[serde(default, deserialize_with = "null_as_default")]
    pub constraints: Vec<UnleashConstraint>,
    /// Ids of segments whose constraints must all hold too.
    #[serde(default, deserialize_with = "null_as_default")]
    pub segments: Vec<i64>,
    /// Strategy variants. `None` (the field is absent) and `Some([])` differ: a
    /// strategy that has the field takes part in choosing the variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<UnleashVariant>>,
    /// `AND` or `OR`, only for the `__internal-strategy-group` pseudo-strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The grouped strategies of `__internal-strategy-group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Vec<UnleashStrategy>>,
}

/// A constraint on one context field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashConstraint {
    /// The context field: `userId`, `sessionId`, `remoteAddress`, `environment`,
    /// `appName`, `currentTime` or a property name.
    #[serde(rename = "contextName")]
    pub context_name: String,
    /// `IN`, `NOT_IN`, `STR_CONTAINS`, `NUM_EQ`, `SEMVER_GT`, `REGEX`, `IN_CIDR`, …
    pub operator: String,
    /// Operands of the list operators (`IN`, `NOT_IN`, `STR_*`, `IN_CIDR`).
    #[serde(default, deserialize_with = "scalar_list")]
    pub values: Vec<String>,
    /// The operand of the single-value operators (`NUM_*`, `DATE_*`, `SEMVER_*`, `REGEX`).
    #[serde(
        default,
        deserialize_with = "scalar",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<String>,
    /// Negates the result.
    #[serde(default)]
    pub inverted: bool,
    /// Compare strings ignoring case.
    #[serde(default, rename = "caseInsensitive")]
    pub case_insensitive: bool,
}

/// A variant of a feature or a strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashVariant {
    /// The name reported to the application.
    pub name: String,
    /// The share, relative to the other variants' weights.
    #[serde(default)]
    pub weight: u32,
    /// Data handed to the application with the variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<UnleashPayload>,
    /// The context field hashed to pick a variant (`default` when absent). Only the
    /// first feature variant's stickiness counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<String>,
    /// Context values that always get this variant (feature variants only).
    #[serde(default, deserialize_with = "null_as_default")]
    pub overrides: Vec<UnleashOverride>,
}

/// A variant's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashPayload {
    /// `string`, `json`, `csv` or `number`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The data, normally a string whatever the type.
    pub value: Value,
}

/// Pins contexts whose field has one of `values` to a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashOverride {
    /// The context field.
    #[serde(rename = "contextName")]
    pub context_name: String,
    /// The values that select the variant.
    #[serde(default, deserialize_with = "scalar_list")]
    pub values: Vec<String>,
}

/// A dependency on a parent toggle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashDependency {
    /// The parent toggle's name.
    pub feature: String,
    /// Whether the parent must be on (the default) or off.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// When non-empty, the parent must be on with one of these variants.
    #[serde(default, deserialize_with = "scalar_list")]
    pub variants: Vec<String>,
}

/// A named, shared list of constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnleashSegment {
    /// What strategies refer to.
    pub id: i64,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// All must hold.
    #[serde(default, deserialize_with = "null_as_default")]
    pub constraints: Vec<UnleashConstraint>,
}

fn default_true() -> bool {
    true
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The string Unleash compares for a scalar; `None` for null, arrays and objects.
fn scalar_text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn scalar<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.and_then(scalar_text))
}

fn scalar_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let values = Option::<Vec<Value>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(values.into_iter().filter_map(scalar_text).collect())
}

fn scalar_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<IndexMap<String, String>, D::Error> {
    let values = Option::<IndexMap<String, Value>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(values
        .into_iter()
        .filter_map(|(k, v)| scalar_text(v).map(|v| (k, v)))
        .collect())
}
