//! `Evaluation::write_json` writes, byte for byte, what serde writes for the same
//! evaluation: every reason, every kind of value, names and rule ids that need
//! escaping (loaded flags may hold any character but control characters).

use serde_json::{json, Value};
use switchyard_core::{evaluate, evaluate_all, Context, Flag, Snapshot};

fn snapshot(flags: Value) -> Snapshot {
    let flags: Vec<Flag> = serde_json::from_value(flags).expect("flags parse");
    Snapshot::compile(flags, vec![]).unwrap_or_else(|e| panic!("compiles: {e}"))
}

fn same_as_serde(snapshot: &Snapshot, ctx: &Context) -> usize {
    let mut checked = 0;
    for (key, evaluation) in evaluate_all(snapshot, ctx) {
        let mut written = Vec::new();
        evaluation.write_json(&mut written);
        let serde = serde_json::to_string(&evaluation).expect("serialises");
        assert_eq!(
            String::from_utf8(written).expect("UTF-8"),
            serde,
            "flag {key}"
        );
        checked += 1;
    }
    checked
}

#[test]
fn every_reason_and_value_is_written_as_serde_writes_it() {
    let values = json!({
        "null": null, "yes": true, "int": -42, "big": 18446744073709551615_u64,
        "float": 0.1, "tiny": 1e-300, "text": "a \"quoted\" \\ line\nbreak é 🦀",
        "list": [1, "two", [3.5, null]], "object": {"b": {"c": [true]}, "a": "\u{1}"},
        "na\"me\\ é": "escaped variant name"
    });
    let s = snapshot(json!([
        {"key": "static", "kind": "json", "variants": values, "off_variant": null, "default": {"variant": "object"}},
        {"key": "targeted", "kind": "json", "variants": values, "off_variant": null, "version": 7,
         "rules": [{"id": "ru\"le\\ ü", "when": {"users": ["u-1"]}, "serve": {"variant": "na\"me\\ é"}}],
         "default": {"variant": "float"}},
        {"key": "split \"key\"", "kind": "json", "variants": values, "off_variant": null,
         "rules": [{"id": "half", "when": {}, "serve": {"rollout": {"split": [
             {"variant": "text", "weight": 50000}, {"variant": "list", "weight": 50000}]}}}],
         "default": {"variant": "null"}},
        {"key": "killed", "kind": "json", "variants": values, "enabled": false,
         "off_variant": "big", "default": {"variant": "int"}},
        {"key": "deferring", "kind": "json", "variants": values, "enabled": false, "off_variant": null,
         "default": {"variant": "tiny"}},
        {"key": "gated", "kind": "json", "variants": values, "version": 18446744073709551615_u64,
         "prerequisites": [{"flag": "killed", "variants": ["int"]}],
         "off_variant": "yes", "default": {"variant": "int"}},
        {"key": "gated-deferring", "kind": "json", "variants": values, "off_variant": null,
         "prerequisites": [{"flag": "killed", "variants": ["int"]}],
         "default": {"variant": "int"}}
    ]));
    for user in ["u-1", "u-2", "u-3", "u-4"] {
        assert_eq!(same_as_serde(&s, &Context::new(user)), 7);
    }
    assert_eq!(same_as_serde(&s, &Context::anonymous()), 7);

    // An error: no value, no variant, an error code.
    let missing = evaluate(&s, "missing", &Context::new("u-1"));
    let mut written = Vec::new();
    missing.write_json(&mut written);
    assert_eq!(
        String::from_utf8(written).expect("UTF-8"),
        r#"{"value":null,"variant":null,"reason":"ERROR","flag_version":0,"error":"FLAG_NOT_FOUND"}"#
    );
}

#[test]
fn strings_are_copied_unless_they_need_escaping() {
    for s in [
        "",
        "plain",
        "é 🦀",
        "quote\"",
        "back\\slash",
        "tab\t",
        "\u{7f}",
        "\u{1f}",
    ] {
        let mut written = Vec::new();
        switchyard_core::write_json_str(&mut written, s);
        assert_eq!(
            String::from_utf8(written).expect("UTF-8"),
            serde_json::to_string(s).expect("serialises"),
            "{s:?}"
        );
    }
}
