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
use prost::encoding::{encode_key, encode_varint, WireType};
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
            nested(3, &mut bytes, |buf| {
                string(1, key, buf);
                nested(2, buf, |buf| write_result(key, &outcome, buf));
            });
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

/// A length-delimited field `tag` whose content `write` appends. Lengths are not
/// known before writing (computing them first walked every value twice): one byte
/// is set aside, which is all a length under 128 needs, and a longer one's varint
/// takes its place with the content moved up.
fn nested(tag: u32, buf: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    encode_key(tag, WireType::LengthDelimited, buf);
    let start = buf.len() + 1;
    buf.push(0);
    write(buf);
    let len = buf.len() - start;
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => buf[start - 1] = short,
        _ => {
            let mut varint = [0_u8; 10];
            let mut unused = &mut varint[..];
            encode_varint(len as u64, &mut unused);
            let used = 10 - unused.len();
            buf.splice(start - 1..start, varint[..used].iter().copied());
        }
    }
}

/// A `Result` message: `{1: flag_key, 2: value, 3: variant, 4: reason, 5: rule_id,
/// 6: flag_version, 7: error_code}`.
fn write_result(key: &str, outcome: &Outcome<'_>, buf: &mut Vec<u8>) {
    string(1, key, buf);
    if let Some(value) = outcome.value {
        nested(2, buf, |buf| write_value(value, buf));
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

/// A `google.protobuf.Value` message: its one `kind` field (`null_value` 1,
/// `number_value` 2, `string_value` 3, `bool_value` 4, `struct_value` 5,
/// `list_value` 6). A `Struct` is `{map<string, Value> fields = 1}` (one entry
/// `{1: key, 2: value}` each), a `ListValue` `{repeated Value values = 1}`.
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
        Value::Array(items) => nested(6, buf, |buf| {
            for item in items {
                nested(1, buf, |buf| write_value(item, buf));
            }
        }),
        Value::Object(fields) => nested(5, buf, |buf| {
            for (name, value) in fields {
                nested(1, buf, |buf| {
                    string(1, name, buf);
                    nested(2, buf, |buf| write_value(value, buf));
                });
            }
        }),
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
            // Lengths of 128 and more take two varint bytes, 16 384 and more three.
            flag("long", json!("x".repeat(300)), json!({})),
            flag("longer", json!("z".repeat(200)), json!({})),
            flag("huge", json!({"k": ["y".repeat(20_000)]}), json!({})),
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
