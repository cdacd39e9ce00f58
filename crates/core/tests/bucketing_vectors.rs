//! The bucketing test vectors of `docs/bucketing.md` hold for this implementation
//! (`scripts/check_bucketing_vectors.py` checks the same file against Python's
//! independent `mmh3`), and a rollout built from them serves what they predict.

use serde_json::{json, Value};
use switchyard_core::bucketing::{
    bucket, murmur3_joined, unleash_percentage, unleash_variant_target,
};
use switchyard_core::{evaluate, Context, Flag, Snapshot};

fn vectors() -> Value {
    serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/bucketing-vectors.json"
    )))
    .expect("vectors parse")
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().expect("string field")
}

fn number(v: &Value, field: &str) -> u32 {
    u32::try_from(v[field].as_u64().expect("number field")).expect("fits u32")
}

#[test]
fn switchyard_vectors_hold() {
    let data = vectors();
    let cases = data["switchyard"].as_array().expect("list");
    assert!(cases.len() >= 50, "at least 50 vectors");
    for v in cases {
        let (salt, value) = (text(v, "salt"), text(v, "value"));
        assert_eq!(
            murmur3_joined(salt, b'/', value, 0),
            number(v, "hash"),
            "{v}"
        );
        assert_eq!(bucket(salt, value), number(v, "bucket"), "{v}");
    }
}

#[test]
fn unleash_vectors_hold() {
    let data = vectors();
    for v in data["unleash_percentage"].as_array().expect("list") {
        assert_eq!(
            unleash_percentage(text(v, "group"), text(v, "value")),
            number(v, "percentage"),
            "{v}"
        );
    }
    for v in data["unleash_variant"].as_array().expect("list") {
        let target = unleash_variant_target(text(v, "group"), text(v, "value"), number(v, "total"));
        assert_eq!(target, number(v, "target"), "{v}");
    }
}

#[test]
fn rollouts_serve_what_the_vectors_predict() {
    let data = vectors();
    for v in data["switchyard"].as_array().expect("list") {
        let b = number(v, "bucket");
        // A 50/50 split under the vector's salt: "on" exactly when bucket < 50 000.
        let flag: Flag = serde_json::from_value(json!({
            "key": "f", "kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
            "default": {"rollout": {"salt": text(v, "salt"), "split": [
                {"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]}}
        }))
        .expect("parses");
        let s = Snapshot::compile(vec![flag], vec![]).expect("compiles");
        let got = evaluate(&s, "f", &Context::new(text(v, "value")));
        assert_eq!(
            got.variant,
            Some(if b < 50_000 { "on" } else { "off" }),
            "{v}"
        );
    }
}
