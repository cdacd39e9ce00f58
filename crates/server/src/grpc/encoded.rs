//! `EvaluateAll`'s answer written straight to protobuf bytes.
//!
//! The generated `EvaluateAllResponse` is a map of owned strings and
//! `google.protobuf.Value` trees: building one cost about five allocations per flag
//! and most of a bulk call's time. [`EvaluateAllAnswer`] writes the same message — the
//! same fields, tags and wire types as `proto/switchyard/v1/evaluation.proto` says,
//! default fields left out as prost leaves them out — from the evaluations, into one
//! buffer. The server's `Evaluation` service answers `EvaluateAll` with it (`build.rs`
//! generates that service a second time with this type in place of the response);
//! every client, ours included, reads it as `EvaluateAllResponse`.

use std::sync::atomic::{AtomicUsize, Ordering};

use prost::bytes::{Buf, BufMut};
use prost::encoding::DecodeContext;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::DecodeError;
use serde_json::Value;
use switchyard_core::Evaluation as Outcome;

/// An `EvaluateAllResponse`, already encoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvaluateAllAnswer {
    bytes: Vec<u8>,
}

impl EvaluateAllAnswer {
    /// `{environment, revision, results}` for `outcomes` (flag key, evaluation), in
    /// their order, written into a buffer sized from the previous answer (`last`,
    /// which this one then records).
    pub fn new<'a>(
        environment: &str,
        revision: u64,
        outcomes: impl IntoIterator<Item = (&'a str, Outcome<'a>)>,
        last: &AtomicUsize,
    ) -> Self {
        const MAX_HINT: usize = 16 << 20;
        let hint = last.load(Ordering::Relaxed).min(MAX_HINT);
        let mut bytes = Vec::with_capacity(hint + hint / 8 + 64);
        string(1, environment, &mut bytes);
        if revision != 0 {
            encode_key(2, WireType::Varint, &mut bytes);
            encode_varint(revision, &mut bytes);
        }
        for (key, outcome) in outcomes {
            // A map entry: {1: key, 2: Result}.
            let result = result_len(key, &outcome);
            let key_field = string_len(1, key);
            let entry = key_field + key_len(2) + encoded_len_varint(result as u64) + result;
            encode_key(3, WireType::LengthDelimited, &mut bytes);
            encode_varint(entry as u64, &mut bytes);
            string(1, key, &mut bytes);
            encode_key(2, WireType::LengthDelimited, &mut bytes);
            encode_varint(result as u64, &mut bytes);
            write_result(key, &outcome, &mut bytes);
        }
        last.store(bytes.len(), Ordering::Relaxed);
        EvaluateAllAnswer { bytes }
    }
}

impl prost::Message for EvaluateAllAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    /// Never read by the server (it only sends one); fields are skipped.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
    }
}

/// A `Result` message's length: `{1: flag_key, 2: value, 3: variant, 4: reason,
/// 5: rule_id, 6: flag_version, 7: error_code}`.
fn result_len(key: &str, outcome: &Outcome<'_>) -> usize {
    let value = outcome.value.map_or(0, |value| {
        let len = value_len(value);
        key_len(2) + encoded_len_varint(len as u64) + len
    });
    let version = if outcome.flag_version == 0 {
        0
    } else {
        key_len(6) + encoded_len_varint(outcome.flag_version)
    };
    string_len(1, key)
        + value
        + string_len(3, outcome.variant.unwrap_or_default())
        + string_len(4, outcome.reason.as_str())
        + string_len(5, outcome.rule_id.unwrap_or_default())
        + version
        + string_len(7, outcome.error.map(|e| e.as_str()).unwrap_or_default())
}

fn write_result(key: &str, outcome: &Outcome<'_>, buf: &mut Vec<u8>) {
    string(1, key, buf);
    if let Some(value) = outcome.value {
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(value_len(value) as u64, buf);
        write_value(value, buf);
    }
    string(3, outcome.variant.unwrap_or_default(), buf);
    string(4, outcome.reason.as_str(), buf);
    string(5, outcome.rule_id.unwrap_or_default(), buf);
    if outcome.flag_version != 0 {
        encode_key(6, WireType::Varint, buf);
        encode_varint(outcome.flag_version, buf);
    }
    string(
        7,
        outcome.error.map(|e| e.as_str()).unwrap_or_default(),
        buf,
    );
}

/// A `google.protobuf.Value` message's length: its one `kind` field (`null_value` 1,
/// `number_value` 2, `string_value` 3, `bool_value` 4, `struct_value` 5,
/// `list_value` 6).
fn value_len(value: &Value) -> usize {
    match value {
        Value::Null => key_len(1) + 1,
        Value::Bool(_) => key_len(4) + 1,
        Value::Number(_) => key_len(2) + 8,
        Value::String(s) => key_len(3) + encoded_len_varint(s.len() as u64) + s.len(),
        Value::Array(items) => {
            let len = list_len(items);
            key_len(6) + encoded_len_varint(len as u64) + len
        }
        Value::Object(fields) => {
            let len = struct_len(fields);
            key_len(5) + encoded_len_varint(len as u64) + len
        }
    }
}

/// `ListValue {repeated Value values = 1}`.
fn list_len(items: &[Value]) -> usize {
    items
        .iter()
        .map(|item| {
            let len = value_len(item);
            key_len(1) + encoded_len_varint(len as u64) + len
        })
        .sum()
}

/// `Struct {map<string, Value> fields = 1}`: one entry `{1: key, 2: value}` each.
fn struct_len(fields: &serde_json::Map<String, Value>) -> usize {
    fields
        .iter()
        .map(|(name, value)| {
            let entry = entry_len(name, value);
            key_len(1) + encoded_len_varint(entry as u64) + entry
        })
        .sum()
}

fn entry_len(name: &str, value: &Value) -> usize {
    let len = value_len(value);
    string_len(1, name) + key_len(2) + encoded_len_varint(len as u64) + len
}

fn write_value(value: &Value, buf: &mut Vec<u8>) {
    match value {
        Value::Null => {
            encode_key(1, WireType::Varint, buf);
            encode_varint(0, buf);
        }
        Value::Bool(b) => {
            encode_key(4, WireType::Varint, buf);
            encode_varint(u64::from(*b), buf);
        }
        Value::Number(n) => {
            encode_key(2, WireType::SixtyFourBit, buf);
            buf.put_f64_le(n.as_f64().unwrap_or_default());
        }
        Value::String(s) => {
            encode_key(3, WireType::LengthDelimited, buf);
            encode_varint(s.len() as u64, buf);
            buf.put_slice(s.as_bytes());
        }
        Value::Array(items) => {
            encode_key(6, WireType::LengthDelimited, buf);
            encode_varint(list_len(items) as u64, buf);
            for item in items {
                encode_key(1, WireType::LengthDelimited, buf);
                encode_varint(value_len(item) as u64, buf);
                write_value(item, buf);
            }
        }
        Value::Object(fields) => {
            encode_key(5, WireType::LengthDelimited, buf);
            encode_varint(struct_len(fields) as u64, buf);
            for (name, value) in fields {
                encode_key(1, WireType::LengthDelimited, buf);
                encode_varint(entry_len(name, value) as u64, buf);
                string(1, name, buf);
                encode_key(2, WireType::LengthDelimited, buf);
                encode_varint(value_len(value) as u64, buf);
                write_value(value, buf);
            }
        }
    }
}

/// A string field's length; proto3 leaves an empty one out.
fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
    }
}

fn string(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.put_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::evaluation::result;
    use crate::grpc::proto::switchyard as pb;
    use prost::Message;
    use serde_json::json;
    use switchyard_core::{evaluate_all, Context, Flag, Snapshot};

    /// Flags serving every kind of value, a rule, a rollout, a killed flag with no
    /// off variant (no value), and nested objects and lists.
    fn snapshot() -> Snapshot {
        let flag = |key: &str, value: Value, extra: Value| -> Flag {
            let mut flag = json!({
                "key": key, "kind": "json", "version": 7,
                "variants": {"a": value, "b": {"nested": [1, "two", null, {"k": false}], "": 1.5}},
                "off_variant": "b",
                "rules": [{"id": "vip", "when": {"users": ["vip"]}, "serve": {"variant": "b"}}],
                "default": {"variant": "a"}
            });
            for (k, v) in extra.as_object().expect("object") {
                flag[k] = v.clone();
            }
            serde_json::from_value(flag).expect("flag")
        };
        let flags = vec![
            flag("null", Value::Null, json!({})),
            flag("bool", json!(true), json!({})),
            flag("number", json!(-2.25e10), json!({"version": 0})),
            flag("string", json!("ünïcode"), json!({})),
            flag("list", json!([]), json!({})),
            flag("object", json!({}), json!({"enabled": false})),
            flag(
                "split",
                json!(3),
                json!({"default": {"rollout": {"split": [
                    {"variant": "a", "weight": 50_000}, {"variant": "b", "weight": 50_000}]}}}),
            ),
        ];
        let defers: Flag = serde_json::from_value(json!({
            "key": "defers", "kind": "boolean", "enabled": false, "off_variant": null,
            "variants": {"on": true, "off": false}, "default": {"variant": "on"}
        }))
        .expect("flag");
        Snapshot::compile(flags.into_iter().chain([defers]), []).expect("compiles")
    }

    #[test]
    fn the_answer_reads_as_the_generated_response_built_from_the_same_evaluations() {
        let snapshot = snapshot();
        let last = AtomicUsize::new(0);
        for user in ["vip", "someone", "else"] {
            let ctx = Context::new(user);
            let answer = EvaluateAllAnswer::new("prod", 42, evaluate_all(&snapshot, &ctx), &last);
            let read = pb::EvaluateAllResponse::decode(answer.bytes.as_slice()).expect("decodes");
            let expected = pb::EvaluateAllResponse {
                environment: "prod".into(),
                revision: 42,
                results: evaluate_all(&snapshot, &ctx)
                    .map(|(key, outcome)| (key.to_owned(), result(key, &outcome)))
                    .collect(),
            };
            assert_eq!(read, expected);
            assert_eq!(answer.bytes.len(), expected.encoded_len());
            assert_eq!(last.load(Ordering::Relaxed), answer.bytes.len());
        }
        // Default fields are left out, as prost leaves them out.
        let empty = EvaluateAllAnswer::new("", 0, [], &last);
        assert_eq!(empty.encoded_len(), 0);
    }
}
