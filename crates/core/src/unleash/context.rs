//! Both ends of evaluating an imported flag: an Unleash context in, an Unleash
//! result out.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::context::{AttributeValue, Context};
use crate::evaluation::{Evaluation, Reason};

/// The Unleash context fields that are not properties.
const TOP_LEVEL_FIELDS: [&str; 6] = [
    "userId",
    "sessionId",
    "remoteAddress",
    "environment",
    "appName",
    "currentTime",
];

/// The field date constraints read.
pub(crate) const CURRENT_TIME: &str = "currentTime";

/// Maps an Unleash context (`{userId, sessionId, remoteAddress, environment,
/// appName, currentTime, properties: {...}}`) to a native one:
///
/// - every property becomes an attribute of the same name;
/// - then the top-level fields become attributes of the same name, overriding a
///   property so named (Unleash reads a top-level field before a property);
/// - `targetingKey` is `userId` when there is one;
/// - `currentTime` is `now` in RFC 3339 when the context has none, as Unleash clients
///   use their clock (the engine has none: time is a parameter).
///
/// Values are kept as strings, as Unleash compares them: numbers and booleans in
/// their JSON text, `null`s, arrays and objects are left out (an absent field).
/// Other top-level fields are ignored, and so is anything that is not an object.
pub fn context(unleash_ctx: &Value, now: DateTime<Utc>) -> Context {
    let empty = Map::new();
    let fields = unleash_ctx.as_object().unwrap_or(&empty);
    let properties = match fields.get("properties") {
        Some(Value::Object(properties)) => Some(properties),
        _ => None,
    };
    let mut ctx = Context::with_capacity(properties.map_or(0, Map::len) + TOP_LEVEL_FIELDS.len());
    for (name, value) in properties.into_iter().flatten() {
        if let Some(text) = text(value) {
            ctx.set(name.clone(), AttributeValue::String(text));
        }
    }
    // One pass over the top-level fields (a lookup per known name would hash each).
    for (name, value) in fields {
        if !TOP_LEVEL_FIELDS.contains(&name.as_str()) {
            continue;
        }
        if let Some(text) = text(value) {
            if name == "userId" {
                ctx.set(
                    crate::model::TARGETING_KEY.to_owned(),
                    AttributeValue::String(text.clone()),
                );
            }
            ctx.set(name.clone(), AttributeValue::String(text));
        }
    }
    if ctx.get(CURRENT_TIME).is_none() {
        ctx.set(
            CURRENT_TIME.to_owned(),
            AttributeValue::String(now.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
    }
    ctx
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// An imported flag's evaluation in Unleash's terms: `isEnabled` and `getVariant`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UnleashResult<'a> {
    /// What `isEnabled` returns.
    pub enabled: bool,
    /// What `getVariant` returns.
    pub variant: UnleashVariantResult<'a>,
}

/// What Unleash's `getVariant` returns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UnleashVariantResult<'a> {
    /// The variant's name; `disabled` when there is none.
    pub name: &'a str,
    /// The variant's payload (`{type, value}`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a Value>,
    /// Whether a real variant was chosen.
    pub enabled: bool,
    /// Whether the toggle is on.
    pub feature_enabled: bool,
}

/// The name Unleash gives the absence of a variant.
pub const DISABLED_VARIANT: &str = "disabled";

/// Reads an imported flag's evaluation as Unleash would report it. A flag that is
/// missing (or not imported from Unleash) reads as off with the `disabled` variant,
/// as Unleash reports an unknown toggle. Does not allocate.
pub fn verdict<'a>(evaluation: &Evaluation<'a>) -> UnleashResult<'a> {
    let mut variant = UnleashVariantResult {
        name: DISABLED_VARIANT,
        payload: None,
        enabled: false,
        feature_enabled: false,
    };
    // A killed toggle is off with no variant in Unleash, whatever it serves.
    if evaluation.reason == Reason::Disabled {
        return UnleashResult {
            enabled: false,
            variant,
        };
    }
    // The value has at most four fields: one pass over them costs a fraction of
    // four hashed lookups.
    if let Some(object) = evaluation.value.and_then(Value::as_object) {
        for (field, value) in object {
            match (field.as_str(), value) {
                ("name", Value::String(name)) => variant.name = name,
                ("payload", payload) => variant.payload = Some(payload),
                ("enabled", Value::Bool(enabled)) => variant.enabled = *enabled,
                ("feature_enabled", Value::Bool(on)) => variant.feature_enabled = *on,
                _ => {}
            }
        }
    }
    UnleashResult {
        enabled: variant.feature_enabled,
        variant,
    }
}

/// The variant value the import stores for a result: `verdict` reads it back.
pub(crate) fn variant_value(
    name: &str,
    payload: Option<Value>,
    enabled: bool,
    feature_enabled: bool,
) -> Value {
    let mut object = Map::new();
    object.insert("name".to_owned(), Value::String(name.to_owned()));
    if let Some(payload) = payload {
        object.insert("payload".to_owned(), payload);
    }
    object.insert("enabled".to_owned(), Value::Bool(enabled));
    object.insert("feature_enabled".to_owned(), Value::Bool(feature_enabled));
    Value::Object(object)
}
