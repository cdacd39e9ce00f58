//! Conversions between protobuf well-known types and our JSON/model types, in one
//! place: `google.protobuf.Struct`/`Value` ↔ `serde_json::Value`, contexts, and
//! HTTP-style errors → gRPC statuses.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value as ProtoValue};
use serde_json::{Map, Number, Value};
use switchyard_core::context::GROUPS;
use switchyard_core::model::TARGETING_KEY;
use switchyard_core::{AttributeValue, Context};
use tonic::{Code, Status};

use crate::error::ApiError;
use crate::scope::check_context;

/// A protobuf `Value` as JSON. Numbers without a fraction become integers.
pub fn to_json(value: &ProtoValue) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(to_json).collect()),
        Some(Kind::StructValue(object)) => Value::Object(struct_to_json(object)),
    }
}

fn number(n: f64) -> Value {
    // Integral doubles within the exactly-representable range read back as integers.
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        #[allow(clippy::cast_possible_truncation)]
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// A protobuf `Struct` as a JSON object.
pub fn struct_to_json(object: &Struct) -> Map<String, Value> {
    object
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), to_json(v)))
        .collect()
}

/// JSON as a protobuf `Value`.
pub fn from_json(value: &Value) -> ProtoValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(from_json).collect(),
        }),
        Value::Object(object) => Kind::StructValue(json_to_struct(object)),
    };
    ProtoValue { kind: Some(kind) }
}

/// A JSON object as a protobuf `Struct`.
pub fn json_to_struct(object: &Map<String, Value>) -> Struct {
    Struct {
        fields: object
            .iter()
            .map(|(k, v)| (k.clone(), from_json(v)))
            .collect(),
    }
}

/// An evaluation context from a request's `Struct` (absent = anonymous), with the
/// same rules and limits as REST; nulls count as absent. The request's strings move
/// into the context (no copy).
pub fn context(object: Option<Struct>) -> Result<Context, Status> {
    let Some(object) = object else {
        return Ok(Context::anonymous());
    };
    let invalid = |message: String| Status::invalid_argument(format!("invalid context: {message}"));
    // Straight from the protobuf values (no JSON tree in between), with the JSON
    // decoder's rules and messages.
    let mut ctx = Context::with_capacity(object.fields.len());
    for (name, value) in object.fields {
        let Some(kind) = value.kind.filter(|k| !matches!(k, Kind::NullValue(_))) else {
            continue;
        };
        let value = match (name.as_str(), kind) {
            (TARGETING_KEY, Kind::StringValue(key)) => AttributeValue::String(key),
            (TARGETING_KEY, _) => return Err(invalid("`targetingKey` must be a string".into())),
            (GROUPS, Kind::ListValue(list)) => strings(list)
                .map(AttributeValue::List)
                .ok_or_else(|| invalid("`groups` must be an array of strings".into()))?,
            (GROUPS, _) => return Err(invalid("`groups` must be an array of strings".into())),
            (_, Kind::StringValue(s)) => AttributeValue::String(s),
            (_, Kind::NumberValue(n)) => AttributeValue::Number(n),
            (_, Kind::BoolValue(b)) => AttributeValue::Bool(b),
            (_, kind) => match kind {
                Kind::ListValue(list) => strings(list).map(AttributeValue::List),
                _ => None,
            }
            .ok_or_else(|| {
                invalid(format!(
                    "attribute `{name}`: expected a string, number, boolean or array of strings"
                ))
            })?,
        };
        ctx.set(name, value);
    }
    check_context(&ctx).map_err(invalid)?;
    Ok(ctx)
}

/// A list of strings, if every item is one.
fn strings(list: ListValue) -> Option<Vec<String>> {
    list.values
        .into_iter()
        .map(|v| match v.kind {
            Some(Kind::StringValue(s)) => Some(s),
            _ => None,
        })
        .collect()
}

/// The gRPC status for an HTTP-style error.
pub fn status(error: ApiError) -> Status {
    let code = match error.status.as_u16() {
        400 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        412 => Code::FailedPrecondition,
        413 | 429 | 507 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        _ => Code::Internal,
    };
    Status::new(code, error.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_protobuf() {
        let json = serde_json::json!({"a": 1, "b": 1.5, "c": [true, null, "x"], "d": {"e": "f"}});
        let back = to_json(&from_json(&json));
        assert_eq!(back, json);
    }

    #[test]
    fn contexts_follow_the_rest_rules() {
        let object = json_to_struct(
            serde_json::json!({"targetingKey": "u", "groups": ["beta"], "age": 42, "gone": null})
                .as_object()
                .expect("object"),
        );
        let ctx = context(Some(object)).expect("valid");
        assert_eq!(ctx.targeting_key(), Some("u"));
        assert_eq!(ctx.groups(), ["beta"]);
        // The same context as REST decodes from the same JSON.
        let rich = serde_json::json!({"targetingKey": "u", "groups": ["a", "b"], "n": 1.5,
            "flag": true, "tags": ["x", "y"], "s": "text"});
        let from_rest: Context = serde_json::from_value(rich.clone()).expect("REST decodes it");
        let mut object = json_to_struct(rich.as_object().expect("object"));
        object
            .fields
            .insert("skipped".into(), from_json(&Value::Null));
        let from_grpc = context(Some(object)).expect("gRPC decodes it");
        assert_eq!(from_grpc, from_rest, "a null is left out");

        for (bad, expected) in [
            (
                serde_json::json!({"targetingKey": 5}),
                "`targetingKey` must be a string",
            ),
            (
                serde_json::json!({"groups": "beta"}),
                "`groups` must be an array of strings",
            ),
            (
                serde_json::json!({"groups": ["a", 1]}),
                "`groups` must be an array of strings",
            ),
            (serde_json::json!({"tags": ["a", 1]}), "attribute `tags`"),
            // Nested objects are not attributes.
            (serde_json::json!({"a": {"b": 1}}), "attribute `a`"),
        ] {
            let object = json_to_struct(bad.as_object().expect("object"));
            let status = context(Some(object)).expect_err("refused");
            assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
            assert!(
                status.message().contains(expected),
                "{bad}: {}",
                status.message()
            );
        }
    }
}
