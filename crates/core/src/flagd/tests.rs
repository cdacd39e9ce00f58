use serde_json::{json, Map, Value};

use super::*;

fn flag(value: Value) -> Flag {
    serde_json::from_value(value).expect("a flag")
}

fn ramp(hashing: &str) -> Flag {
    flag(json!({
        "key": "ramp", "kind": "string", "variants": {"old": "o", "new": "n"},
        "off_variant": "old",
        "rules": [{"id": "staff", "when": {"users": ["u-1", "u-2"]}, "serve": {"variant": "new"}}],
        "default": {"rollout": {"split": [{"variant": "new", "weight": 25000}, {"variant": "old", "weight": 75000}],
                                "hashing": hashing}},
        "version": 3
    }))
}

#[test]
fn rules_and_a_flagd_hashed_rollout_become_targeting() {
    let definition = definition_of(&ramp("flagd")).expect("exportable");
    assert_eq!(
        definition,
        json!({
            "state": "ENABLED", "variants": {"old": "o", "new": "n"}, "defaultVariant": "old",
            "metadata": {"flag_version": 3},
            "targeting": {"if": [
                {"in": [{"var": "targetingKey"}, ["u-1", "u-2"]]}, "new",
                {"if": [{"var": "targetingKey"},
                        {"fractional": [["new", 25000], ["old", 75000]]},
                        "old"]}
            ]}
        })
    );
}

#[test]
fn a_fixed_default_falls_through_to_flagds_default_variant() {
    let f = flag(json!({
        "key": "f", "kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
        "rules": [{"id": "all", "when": {}, "serve": {"variant": "on"}}],
        "default": {"variant": "off"}
    }));
    let definition = definition_of(&f).expect("exportable");
    assert_eq!(definition["defaultVariant"], "off");
    assert_eq!(definition["targeting"], json!({"if": [true, "on", null]}));
    // No rules: no targeting (flagd's STATIC, as ours).
    let f = flag(json!({
        "key": "g", "kind": "string", "variants": {"a": "A"}, "off_variant": "a",
        "default": {"variant": "a"}
    }));
    assert!(definition_has_no_targeting(&f));
}

fn definition_has_no_targeting(f: &Flag) -> bool {
    definition_of(f)
        .expect("exportable")
        .get("targeting")
        .is_none()
}

fn definition_of(f: &Flag) -> Result<Value, String> {
    definition(f, &[])
}

#[test]
fn killed_flags_serve_their_off_variant_or_flagds_disabled() {
    let mut f = ramp("switchyard");
    f.enabled = false;
    let killed = definition_of(&f).expect("a killed flag needs no rollout");
    assert_eq!(
        (
            &killed["state"],
            &killed["defaultVariant"],
            killed.get("targeting")
        ),
        (&json!("ENABLED"), &json!("old"), None)
    );
    f.off_variant = None;
    assert_eq!(definition_of(&f).expect("exportable")["state"], "DISABLED");
}

#[test]
fn what_flagd_cannot_evaluate_exactly_is_left_out_with_the_reason() {
    let reason = |f: &Flag| definition_of(f).expect_err("left out");
    assert!(reason(&ramp("switchyard")).contains("Switchyard's hashing"));
    assert!(reason(&ramp("unleash")).contains("Unleash's hashing"));
    let with = |when: Value| {
        flag(json!({
            "key": "w", "kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
            "rules": [{"id": "r", "when": when, "serve": {"variant": "on"}}], "default": {"variant": "off"}
        }))
    };
    assert!(reason(&with(json!({"segments": ["s"]}))).contains("segment `s`, which does not exist"));
    assert!(reason(&with(json!({"percentage": {"weight": 5000}})))
        .contains("percentage buckets with Switchyard's"));
    for (constraint, why) in [
        (
            json!({"attribute": "age", "op": "in", "values": ["42"]}),
            "value `42` is read as a number",
        ),
        (
            json!({"attribute": "beta", "op": "not_in", "values": ["true"]}),
            "value `true`",
        ),
        (
            json!({"attribute": "a", "op": "starts_with", "values": ["tr"]}),
            "value `tr` matches a boolean",
        ),
        (
            json!({"attribute": "a", "op": "ends_with", "values": ["se"]}),
            "value `se` matches a boolean",
        ),
        (
            json!({"attribute": "a", "op": "in", "values": ["x"], "case_insensitive": true}),
            "case-insensitive",
        ),
        (
            json!({"attribute": "groups", "op": "exists"}),
            "empty `groups`",
        ),
        (
            json!({"attribute": "v", "op": "semver_gt", "values": ["1.0.0"]}),
            "operator `semver_gt`",
        ),
    ] {
        let why_not = reason(&with(json!({"constraints": [constraint]})));
        assert!(why_not.contains(why), "{why_not}");
        assert!(why_not.starts_with("rule `r`, constraint 0"), "{why_not}");
    }
    let mut gated = with(json!({}));
    gated.prerequisites =
        serde_json::from_value(json!([{"flag": "x", "variants": ["on"]}])).expect("prerequisite");
    assert!(reason(&gated).contains("prerequisites"));
    let list = flag(json!({
        "key": "l", "kind": "json", "variants": {"a": [1, 2], "b": {}}, "off_variant": "b",
        "default": {"variant": "b"}
    }));
    assert!(reason(&list).contains("variant `a` is an array"));
    let mut salted = ramp("flagd");
    if let Serve::Rollout(r) = &mut salted.default {
        r.salt = Some("other".into());
    }
    assert!(reason(&salted).contains("own salt"));
}

#[test]
fn the_export_lists_flags_and_exclusions() {
    let flags = [ramp("flagd"), {
        let mut f = ramp("switchyard");
        f.key = serde_json::from_value(json!("legacy")).expect("key");
        f
    }];
    let mut metadata = Map::new();
    metadata.insert("environment".into(), json!("prod"));
    let export = export(&flags, &[], metadata);
    assert_eq!(
        export.configuration["flags"]
            .as_object()
            .map(|f| f.keys().map(String::as_str).collect::<Vec<_>>()),
        Some(vec!["ramp"])
    );
    assert_eq!(
        export.configuration["metadata"],
        json!({"environment": "prod"})
    );
    assert_eq!(export.excluded.keys().collect::<Vec<_>>(), ["legacy"]);
}

#[test]
fn conditions_test_every_item_and_negations_need_the_attribute() {
    let f = flag(json!({
        "key": "c", "kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
        "rules": [{"id": "r", "when": {
            "groups": ["beta"], "segments": ["eu"],
            "constraints": [{"attribute": "plan", "op": "not_in", "values": ["free"]},
                            {"attribute": "email", "op": "ends_with", "values": ["@corp.io"], "negate": true}],
            "percentage": {"weight": 25000, "hashing": "flagd"}},
            "serve": {"variant": "on"}}],
        "default": {"variant": "off"}
    }));
    let eu: Segment = serde_json::from_value(json!({
        "key": "eu", "when": {"constraints": [{"attribute": "country", "op": "in", "values": ["IT", "DE"]}]}
    }))
    .expect("segment");
    let definition = definition(&f, &[&eu]).expect("exportable");
    let items =
        |attribute: &str, test: Value| json!({"some": [{"merge": [{"var": attribute}]}, test]});
    assert_eq!(
        definition["targeting"]["if"][0],
        json!({"and": [
            items("groups", json!({"in": [{"var": ""}, ["beta"]]})),
            {"or": [items("country", json!({"in": [{"var": ""}, ["IT", "DE"]]}))]},
            {"and": [{"!==": [{"var": "plan"}, null]}, {"!": items("plan", json!({"in": [{"var": ""}, ["free"]]}))}]},
            {"!": items("email", json!({"or": [{"ends_with": [{"var": ""}, "@corp.io"]}]}))},
            {"if": [{"var": "targetingKey"},
                    {"==": [{"fractional": [["in", 25000], ["out", 75000]]}, "in"]},
                    false]}
        ]})
    );
}
