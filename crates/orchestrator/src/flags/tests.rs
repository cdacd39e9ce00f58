use super::*;
use switchyard_core::model::{Serve, Split};

fn flag(default: serde_json::Value) -> Flag {
    serde_json::from_value(serde_json::json!({
        "key": "new-checkout",
        "kind": "boolean",
        "variants": { "on": true, "off": false },
        "off_variant": "off",
        "rules": [
            { "id": "staff", "when": { "groups": ["staff"] }, "serve": { "variant": "on" } },
            { "id": "eu", "when": { "constraints": [{ "attribute": "region", "op": "in", "values": ["eu"] }] }, "serve": { "variant": "off" } }
        ],
        "default": default,
    }))
    .unwrap()
}

fn first_share(serve: &Serve) -> u32 {
    match serve {
        Serve::Variant(v) if v == "on" => 100,
        Serve::Variant(_) => 0,
        Serve::Rollout(r) => r.split[0].weight / PER_PERCENT,
    }
}

#[test]
fn ramps_the_default_monotonically_and_keeps_targeted_rules() {
    let mut f = flag(serde_json::json!({ "variant": "off" }));
    let rules = f.rules.clone();
    for (weight, changed, expected) in [
        (5, true, 5),
        (25, true, 25),
        (10, false, 25),
        (25, false, 25),
        (100, true, 100),
        (50, false, 100),
    ] {
        assert_eq!(
            ramp(&mut f, None, weight).unwrap(),
            changed,
            "weight {weight}"
        );
        assert_eq!(first_share(&f.default), expected, "weight {weight}");
    }
    assert_eq!(f.default, Serve::Variant("on".into()));
    assert_eq!(f.rules, rules);
}

#[test]
fn a_ramp_keeps_the_rollouts_salt_and_splits_against_the_off_variant() {
    let mut f = flag(
        serde_json::json!({ "rollout": { "by": "userId", "salt": "s1",
        "split": [ { "variant": "on", "weight": 10000 }, { "variant": "off", "weight": 90000 } ] } }),
    );
    assert!(ramp(&mut f, None, 30).unwrap());
    let Serve::Rollout(r) = &f.default else {
        panic!()
    };
    assert_eq!(r.salt.as_deref(), Some("s1"));
    assert_eq!(r.by.properties(), ["userId".to_owned()]);
    assert_eq!(
        r.split,
        vec![
            Split {
                variant: "on".into(),
                weight: 30_000
            },
            Split {
                variant: "off".into(),
                weight: 70_000
            }
        ]
    );
    // The result is a valid flag.
    switchyard_core::Snapshot::compile(vec![f], vec![]).unwrap();
}

#[test]
fn ramps_a_named_rule_only() {
    let mut f = flag(serde_json::json!({ "variant": "off" }));
    assert!(ramp(&mut f, Some("eu"), 20).unwrap());
    assert_eq!(first_share(&f.rules[1].serve), 20);
    assert_eq!(first_share(&f.default), 0);
    let err = ramp(&mut f, Some("nope"), 20).unwrap_err();
    assert_eq!(
        err.to_string(),
        "flag `new-checkout` cannot be ramped: it has no rule `nope`"
    );
}

#[test]
fn refuses_flags_that_cannot_be_ramped() {
    let mut f = flag(serde_json::json!({ "variant": "off" }));
    f.off_variant = Some("on".into());
    assert!(ramp(&mut f, None, 5)
        .unwrap_err()
        .to_string()
        .contains("first variant `on` is also what the rest get"));
}

#[test]
fn a_flag_that_defers_when_off_ramps_against_its_last_variant() {
    let mut f = ab_flag(&["new", "old"], serde_json::json!({ "variant": "old" }));
    f.off_variant = None;
    assert!(ramp(&mut f, None, 10).expect("rampable"));
    let Serve::Rollout(rollout) = &f.default else {
        panic!("a rollout: {:?}", f.default);
    };
    let split: Vec<(&str, u32)> = rollout
        .split
        .iter()
        .map(|s| (s.variant.as_str(), s.weight))
        .collect();
    assert_eq!(split, [("new", 10_000), ("old", 90_000)]);
}

fn ab_flag(variants: &[&str], default: serde_json::Value) -> Flag {
    let variants: serde_json::Map<String, serde_json::Value> = variants
        .iter()
        .map(|v| ((*v).to_owned(), serde_json::json!(v)))
        .collect();
    serde_json::from_value(serde_json::json!({
        "key": "x",
        "kind": "string",
        "variants": variants,
        "off_variant": "b",
        "default": default,
    }))
    .unwrap()
}

fn splits(pairs: &[(&str, u32)]) -> serde_json::Value {
    let split: Vec<_> = pairs
        .iter()
        .map(|(v, w)| serde_json::json!({ "variant": v, "weight": w }))
        .collect();
    serde_json::json!({ "rollout": { "split": split } })
}

#[test]
fn a_ramp_scales_the_other_variants_into_the_rest() {
    let three = ["new", "a", "b"];
    for (variants, before, weight, after) in [
        // A 50/50 A/B split keeps its ratio in what the first variant leaves.
        (
            &three[..],
            splits(&[("a", 50_000), ("b", 50_000)]),
            10,
            splits(&[("new", 10_000), ("a", 45_000), ("b", 45_000)]),
        ),
        (
            &three[..],
            splits(&[("new", 10_000), ("a", 45_000), ("b", 45_000)]),
            40,
            splits(&[("new", 40_000), ("a", 30_000), ("b", 30_000)]),
        ),
        // Uneven ratios; the rounding remainder goes to the last variant.
        (
            &["new", "a", "b", "c"][..],
            splits(&[("a", 20_000), ("b", 20_000), ("c", 60_000)]),
            10,
            splits(&[("new", 10_000), ("a", 18_000), ("b", 18_000), ("c", 54_000)]),
        ),
        (
            &["new", "a", "b", "c"][..],
            splits(&[("a", 33_333), ("b", 33_333), ("c", 33_334)]),
            1,
            splits(&[("new", 1_000), ("a", 32_999), ("b", 32_999), ("c", 33_002)]),
        ),
        // A single variant that is not the off variant stays the other one.
        (
            &three[..],
            serde_json::json!({ "variant": "a" }),
            25,
            splits(&[("new", 25_000), ("a", 75_000)]),
        ),
        // Promotion serves the first variant alone: the others end.
        (
            &three[..],
            splits(&[("new", 40_000), ("a", 30_000), ("b", 30_000)]),
            100,
            serde_json::json!({ "variant": "new" }),
        ),
    ] {
        let mut f = ab_flag(variants, before.clone());
        assert!(ramp(&mut f, None, weight).unwrap(), "{before} to {weight}");
        let expected: Serve = serde_json::from_value(after).unwrap();
        assert_eq!(f.default, expected, "{before} to {weight}");
        switchyard_core::Snapshot::compile(vec![f], vec![]).unwrap();
    }
}

#[test]
fn the_pre_check_refuses_a_first_variant_above_the_first_step() {
    let f = ab_flag(&["a", "b"], splits(&[("a", 50_000), ("b", 50_000)]));
    let err = check(&f, "production", None, 10).unwrap_err();
    assert_eq!(
        err.to_string(),
        "flag `x` already serves `a` to 50 %, above the first step's 10 %"
    );
    // At or below the first step it records the serve as it is.
    let prior = check(&f, "production", None, 50).unwrap();
    assert_eq!(prior.serve, f.default);
    assert!(prior.enabled);
    let f = ab_flag(&["a", "b"], splits(&[("a", 12_500), ("b", 87_500)]));
    assert_eq!(
        check(&f, "production", None, 10).unwrap_err().to_string(),
        "flag `x` already serves `a` to 12.5 %, above the first step's 10 %"
    );
}

#[test]
fn a_restore_kills_and_puts_the_pre_release_serve_back() {
    let mut f = flag(serde_json::json!({ "variant": "off" }));
    let default = check(&f, "production", None, 10).unwrap();
    let eu = check(&f, "production", Some("eu"), 10).unwrap();
    ramp(&mut f, None, 100).unwrap();
    ramp(&mut f, Some("eu"), 50).unwrap();
    assert!(restore(&mut f, &default));
    assert!(!f.enabled);
    assert_eq!(f.default, Serve::Variant("off".into()));
    assert_eq!(
        first_share(&f.rules[1].serve),
        50,
        "only the recorded serve"
    );
    assert!(restore(&mut f, &eu));
    assert_eq!(f.rules[1].serve, Serve::Variant("off".into()));
    assert!(!restore(&mut f, &eu), "nothing left to change");
}
