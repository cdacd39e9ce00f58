//! Property test of the limits on free-form variant values: a random JSON value is
//! accepted exactly when it is within `MAX_VALUE_DEPTH` and `MAX_VALUE_BYTES`, and an
//! accepted one still parses after the deepest wrapping a consumer adds.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use switchyard_core::validation::{MAX_VALUE_BYTES, MAX_VALUE_DEPTH};
use switchyard_core::{validate_flag, Flag, Snapshot};

/// Levels of arrays and objects, the obvious recursive way (values here are shallow
/// enough for the stack).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(Value::Null),
        4 => any::<bool>().prop_map(Value::from),
        4 => any::<i64>().prop_map(Value::from),
        4 => (-1e300_f64..1e300).prop_map(Value::from),
        8 => ".{0,16}".prop_map(Value::from),
        // Long strings, some with characters that JSON escapes, around the size limit.
        1 => (0_usize..MAX_VALUE_BYTES / 4, prop::sample::select(vec!['x', 'é', '"', '\n', '\u{1}']))
            .prop_map(|(n, c)| Value::from(std::iter::repeat_n(c, n).collect::<String>())),
        1 => (MAX_VALUE_BYTES - 64..MAX_VALUE_BYTES + 64).prop_map(|n| Value::from("y".repeat(n))),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A random tree at the bottom of a chain of up to `MAX_VALUE_DEPTH + 6` arrays and
/// objects, so depths on both sides of the limit come up often.
fn value() -> impl Strategy<Value = Value> {
    (
        tree(),
        prop::collection::vec(any::<bool>(), 0..MAX_VALUE_DEPTH + 6),
    )
        .prop_map(|(tree, wrappers)| {
            wrappers.into_iter().fold(tree, |inner, array| {
                if array {
                    json!([inner])
                } else {
                    json!({ "k": inner })
                }
            })
        })
}

fn flag(value: Value) -> Flag {
    serde_json::from_value(json!({
        "key": "f", "kind": "json", "variants": {"v": value, "off": null},
        "off_variant": "off", "default": {"variant": "v"}
    }))
    .expect("parses")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn values_are_accepted_iff_within_the_limits(value in value()) {
        let within = depth(&value) <= MAX_VALUE_DEPTH
            && serde_json::to_string(&value).expect("serialises").len() <= MAX_VALUE_BYTES;
        let flag = flag(value);
        match validate_flag(&flag) {
            Ok(()) => {
                prop_assert!(within, "accepted a value over the limits");
                let snapshot = Snapshot::compile(vec![flag.clone()], vec![]);
                prop_assert!(snapshot.is_ok());
                // Ten levels of wrapping (more than any consumer adds) still parse.
                let wrapped = (0..10).fold(json!(flag), |inner, _| json!({ "w": [inner] }));
                let text = serde_json::to_string(&wrapped).expect("serialises");
                prop_assert!(serde_json::from_str::<Value>(&text).is_ok());
            }
            Err(err) => {
                prop_assert!(!within, "rejected a value within the limits: {err}");
                prop_assert_eq!(err.errors().len(), 1, "{}", err);
                prop_assert_eq!(&err.errors()[0].path, "variants.v");
            }
        }
    }
}
