//! A change compiles only what it changed (`Snapshot::with_writes`), and must make
//! exactly what compiling the whole resulting set makes: the same flags, the same
//! JSON, the same answers, the same errors — over chains of changes that add, rewrite
//! and delete flags, reorder variants other flags' prerequisites accept, form and
//! break prerequisite cycles, name missing segments, and read new attributes.

use proptest::prelude::*;
use serde_json::{json, Value};
use switchyard_core::sync::apply_writes;
use switchyard_core::{evaluate_all, Context, Flag, FlagKey, Segment, SegmentKey, Snapshot};

const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];
const VARIANTS: [&str; 3] = ["x", "y", "z"];

/// A flag `key` with some of x/y/z in some order, rules on a small set of
/// attributes (and one of many, so changes grow the name table) and segments
/// (`missing` is never defined), and prerequisites on other keys (`f` never exists).
fn flag(key: &'static str) -> impl Strategy<Value = Flag> {
    let variants = Just(VARIANTS.to_vec()).prop_shuffle().prop_flat_map(|all| {
        (1..=all.len()).prop_map(move |n| all[..n].iter().map(|v| v.to_string()).collect())
    });
    (variants, any::<bool>()).prop_flat_map(move |(variants, enabled): (Vec<String>, bool)| {
        let serve = prop::sample::select(variants.clone());
        let rule = (
            prop::sample::select(vec!["country", "plan", "n0", "n1", "n2", "n3", "n4", "n5"]),
            prop::collection::vec(prop::sample::select(vec!["ch", "de", "free", "pro"]), 1..3),
            prop::collection::vec(prop::sample::select(vec!["beta", "missing"]), 0..2),
            serve.clone(),
        );
        let prerequisite = (
            prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]),
            prop::collection::vec(prop::sample::select(VARIANTS.to_vec()), 1..3),
        );
        (
            prop::collection::vec(rule, 0..3),
            prop::collection::vec(prerequisite, 0..2),
            serve,
            Just(variants),
        )
            .prop_map(move |(rules, prerequisites, default, variants)| {
                let rules: Vec<Value> = rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, (attribute, values, segments, serve))| {
                        json!({
                            "id": format!("r{i}"),
                            "when": {
                                "segments": segments,
                                "constraints": [{"attribute": attribute, "op": "in", "values": values}]
                            },
                            "serve": {"variant": serve}
                        })
                    })
                    .collect();
                let prerequisites: Vec<Value> = prerequisites
                    .into_iter()
                    .filter(|(target, _)| *target != key)
                    .map(|(target, variants)| json!({"flag": target, "variants": variants}))
                    .collect();
                let off = variants[variants.len() - 1].clone();
                let variants: serde_json::Map<String, Value> =
                    variants.iter().map(|v| (v.clone(), json!(v))).collect();
                serde_json::from_value(json!({
                    "key": key, "kind": "string", "enabled": enabled, "variants": variants,
                    "off_variant": off, "rules": rules, "default": {"variant": default},
                    "prerequisites": prerequisites,
                }))
                .expect("generated flag parses")
            })
    })
}

/// A write: a key and the flag written there, or `None` to delete it.
fn write() -> impl Strategy<Value = (FlagKey, Option<Flag>)> {
    prop::sample::select(KEYS.to_vec()).prop_flat_map(|key| {
        (
            Just(FlagKey::new(key)),
            prop::option::weighted(0.75, flag(key)),
        )
    })
}

fn segment(values: &[&str]) -> Segment {
    serde_json::from_value(json!({
        "key": "beta",
        "when": {"constraints": [{"attribute": "plan", "op": "in", "values": values}]}
    }))
    .expect("segment parses")
}

fn contexts() -> Vec<Context> {
    let ctx = |key: &str, attributes: Value| -> Context {
        let mut value = attributes;
        value["targetingKey"] = json!(key);
        serde_json::from_value(value).expect("context parses")
    };
    vec![
        ctx("u1", json!({})),
        ctx("u2", json!({"country": "ch", "plan": "pro"})),
        ctx(
            "u3",
            json!({"country": "de", "plan": "free", "n1": "ch", "n4": "de"}),
        ),
        ctx(
            "u4",
            json!({"n0": "pro", "n2": "free", "n3": "ch", "n5": "de"}),
        ),
    ]
}

/// Asserts that `incremental` is what compiling `expected` whole makes.
fn same(
    incremental: &Result<Snapshot, switchyard_core::ValidationErrors>,
    expected: &Result<Snapshot, switchyard_core::ValidationErrors>,
) -> Result<(), TestCaseError> {
    match (incremental, expected) {
        (Ok(got), Ok(want)) => {
            prop_assert_eq!(
                got.flags().collect::<Vec<_>>(),
                want.flags().collect::<Vec<_>>()
            );
            prop_assert_eq!(
                got.segments().collect::<Vec<_>>(),
                want.segments().collect::<Vec<_>>()
            );
            let json = |s: &Snapshot| {
                s.flags_json()
                    .map(|j| j.get().to_owned())
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(json(got), json(want));
            for ctx in contexts() {
                let got: Vec<_> = evaluate_all(got, &ctx).collect();
                let want: Vec<_> = evaluate_all(want, &ctx).collect();
                prop_assert_eq!(got, want);
            }
        }
        (Err(got), Err(want)) => prop_assert_eq!(got.to_string(), want.to_string()),
        (got, want) => prop_assert!(
            false,
            "incremental {:?} but whole {:?}",
            got.as_ref()
                .map(|_| "compiled")
                .map_err(ToString::to_string),
            want.as_ref()
                .map(|_| "compiled")
                .map_err(ToString::to_string)
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_change_compiles_to_what_the_whole_set_compiles_to(
        initial in prop::collection::vec(write(), 0..6),
        changes in prop::collection::vec(prop::collection::vec(write(), 1..4), 1..6),
        segment_change in 0_usize..8,
    ) {
        let beta = segment(&["pro"]);
        let empty = Snapshot::compile(Vec::new(), vec![beta.clone()]).expect("compiles");
        let initial: Vec<(FlagKey, Option<Flag>)> = initial;
        let start = Snapshot::compile(
            apply_writes(&empty, initial.iter().map(|(k, f)| (k, f.as_ref())), []).0,
            [beta],
        );
        let Ok(mut current) = start else {
            return Ok(());
        };
        for (round, writes) in changes.iter().enumerate() {
            // Now and then the change also rewrites the segment (a whole compile).
            let segments: Vec<(SegmentKey, Option<Segment>)> = if round == segment_change {
                vec![(SegmentKey::new("beta"), Some(segment(&["free"])))]
            } else {
                Vec::new()
            };
            let flags = || writes.iter().map(|(k, f)| (k, f.as_ref()));
            let segment_writes = || segments.iter().map(|(k, s)| (k, s.as_ref()));
            let incremental = current.with_writes(flags(), segment_writes());
            let (all_flags, all_segments) = apply_writes(&current, flags(), segment_writes());
            let whole = Snapshot::compile(all_flags, all_segments);
            same(&incremental, &whole)?;
            if let Ok(next) = incremental {
                current = next;
            }
        }
    }
}

/// Between a snapshot and the one a change makes from it, only the written flag
/// differs (the others are shared, not compared), and its JSON is the new one.
#[test]
fn a_change_lists_the_written_flag_and_its_json_follows() {
    let flag = |key: &str, default: &str| -> Flag {
        serde_json::from_value(json!({
            "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": default}
        }))
        .expect("flag parses")
    };
    let before =
        Snapshot::compile(vec![flag("a", "on"), flag("b", "on")], vec![]).expect("compiles");
    let rewritten = flag("b", "off");
    let after = before
        .with_writes([(&rewritten.key, Some(&rewritten))], [])
        .expect("compiles");
    let changed = switchyard_core::sync::changed_flags(&before, &after);
    assert_eq!(
        changed.keys().map(FlagKey::as_str).collect::<Vec<_>>(),
        ["b"]
    );
    let json: Vec<Value> = after
        .flags_json()
        .map(|j| serde_json::from_str(j.get()).expect("json"))
        .collect();
    assert_eq!(json[1]["default"], json!({"variant": "off"}));
    assert_eq!(json[0]["default"], json!({"variant": "on"}));
}
