//! Both ends of evaluating an imported flag: an Unleash context in, an Unleash
//! result out.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::context::{AttributeValue, Context};
use crate::evaluation::Evaluation;

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
    let mut ctx = Context::anonymous();
    let empty = Map::new();
    let fields = unleash_ctx.as_object().unwrap_or(&empty);
    if let Some(Value::Object(properties)) = fields.get("properties") {
        for (name, value) in properties {
            if let Some(text) = text(value) {
                ctx.set(name.clone(), AttributeValue::String(text));
            }
        }
    }
    for name in TOP_LEVEL_FIELDS {
        if let Some(text) = fields.get(name).and_then(text) {
            ctx.set(name.to_owned(), AttributeValue::String(text));
        }
    }
    if let Some(user_id) = fields.get("userId").and_then(text) {
        ctx.set(
            crate::model::TARGETING_KEY.to_owned(),
            AttributeValue::String(user_id),
        );
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
    let object = evaluation.value.and_then(Value::as_object);
    let flag = |field: &str| {
        object
            .and_then(|o| o.get(field))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let feature_enabled = flag("feature_enabled");
    UnleashResult {
        enabled: feature_enabled,
        variant: UnleashVariantResult {
            name: object
                .and_then(|o| o.get("name"))
                .and_then(Value::as_str)
                .unwrap_or(DISABLED_VARIANT),
            payload: object.and_then(|o| o.get("payload")),
            enabled: flag("enabled"),
            feature_enabled,
        },
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
