//! Evaluation, table-driven: each case is a flag set, a flag key, a context and the
//! expected `(variant, reason, rule_id)`.

use serde_json::{json, Value};
use switchyard_core::{evaluate, Context, ErrorCode, Flag, Reason, Segment, Snapshot};

fn snapshot(flags: Value, segments: Value) -> Snapshot {
    let flags: Vec<Flag> = serde_json::from_value(flags).expect("flags parse");
    let segments: Vec<Segment> = serde_json::from_value(segments).expect("segments parse");
    Snapshot::compile(flags, segments).unwrap_or_else(|e| panic!("compiles: {e}"))
}

fn ctx(value: Value) -> Context {
    serde_json::from_value(value).expect("context parses")
}

/// Evaluates `key` for each context and compares variant, reason and rule id.
fn check(snapshot: &Snapshot, key: &str, cases: &[(Value, Option<&str>, Reason, Option<&str>)]) {
    for (context, variant, reason, rule) in cases {
        let got = evaluate(snapshot, key, &ctx(context.clone()));
        assert_eq!(
            (got.variant, got.reason, got.rule_id),
            (*variant, *reason, *rule),
            "flag {key}, context {context}"
        );
    }
}

fn boolean(key: &str, rules: Value, default: Value) -> Value {
    json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "rules": rules, "default": default, "version": 3
    })
}

fn constraint_flag(constraint: Value) -> Snapshot {
    snapshot(
        json!([boolean(
            "f",
            json!([{"id": "c", "when": {"constraints": [constraint]}, "serve": {"variant": "on"}}]),
            json!({"variant": "off"})
        )]),
        json!([]),
    )
}

#[test]
fn rules_are_tried_in_order_and_every_part_of_when_must_match() {
    let s = snapshot(
        json!([boolean(
            "new-payment-flow",
            json!([
                {"id": "staff", "when": {"groups": ["staff"]}, "serve": {"variant": "on"}},
                {"id": "beta", "when": {"users": ["u-17", "u-42"]}, "serve": {"variant": "on"}},
                {"id": "eu", "when": {"segments": ["paying"], "constraints": [
                    {"attribute": "country", "op": "in", "values": ["IT", "DE"]}]},
                 "serve": {"variant": "on"}},
                {"id": "everyone-else", "when": {}, "serve": {"variant": "off"}}
            ]),
            json!({"variant": "on"})
        )]),
        json!([{"key": "paying", "when": {"constraints": [{"attribute": "plan", "op": "in", "values": ["pro"]}]}}]),
    );
    check(
        &s,
        "new-payment-flow",
        &[
            (
                json!({"targetingKey": "x", "groups": ["a", "staff"]}),
                Some("on"),
                Reason::TargetingMatch,
                Some("staff"),
            ),
            (
                json!({"targetingKey": "u-42"}),
                Some("on"),
                Reason::TargetingMatch,
                Some("beta"),
            ),
            (
                json!({"targetingKey": "x", "country": "IT", "plan": "pro"}),
                Some("on"),
                Reason::TargetingMatch,
                Some("eu"),
            ),
            (
                json!({"targetingKey": "x", "country": "IT", "plan": "free"}),
                Some("off"),
                Reason::TargetingMatch,
                Some("everyone-else"),
            ),
            (
                json!({"targetingKey": "x", "country": "FR", "plan": "pro"}),
                Some("off"),
                Reason::TargetingMatch,
                Some("everyone-else"),
            ),
            (
                json!({}),
                Some("off"),
                Reason::TargetingMatch,
                Some("everyone-else"),
            ),
        ],
    );
}

#[test]
fn reasons_static_default_split_disabled_and_not_found() {
    let s = snapshot(
        json!([
            boolean("static", json!([]), json!({"variant": "on"})),
            boolean("defaulted", json!([{"id": "r", "when": {"users": ["a"]}, "serve": {"variant": "on"}}]), json!({"variant": "off"})),
            boolean("split", json!([]), json!({"rollout": {"split": [{"variant": "on", "weight": 100000}, {"variant": "off", "weight": 0}]}})),
            {"key": "killed", "kind": "boolean", "enabled": false, "variants": {"on": true, "off": false},
             "off_variant": "off", "rules": [{"id": "all", "serve": {"variant": "on"}}], "default": {"variant": "on"}}
        ]),
        json!([]),
    );
    let anyone = json!({"targetingKey": "b"});
    check(
        &s,
        "static",
        &[(anyone.clone(), Some("on"), Reason::Static, None)],
    );
    check(
        &s,
        "defaulted",
        &[(anyone.clone(), Some("off"), Reason::Default, None)],
    );
    check(
        &s,
        "split",
        &[(anyone.clone(), Some("on"), Reason::Split, None)],
    );
    check(
        &s,
        "killed",
        &[(anyone.clone(), Some("off"), Reason::Disabled, None)],
    );
    let missing = evaluate(&s, "missing", &ctx(anyone));
    assert_eq!(
        (missing.reason, missing.error, missing.value),
        (Reason::Error, Some(ErrorCode::FlagNotFound), None)
    );
    let found = evaluate(&s, "static", &Context::new("x"));
    assert_eq!((found.flag_version, found.as_bool()), (3, Some(true)));
}

#[test]
fn rollout_without_the_bucketing_property_serves_first_only_at_full_weight() {
    let s = snapshot(
        json!([
            boolean(
                "full",
                json!([]),
                json!({"rollout": {"by": "org", "split": [{"variant": "on", "weight": 100000}, {"variant": "off", "weight": 0}]}})
            ),
            boolean(
                "part",
                json!([]),
                json!({"rollout": {"by": "org", "split": [{"variant": "on", "weight": 99999}, {"variant": "off", "weight": 1}]}})
            )
        ]),
        json!([]),
    );
    check(
        &s,
        "full",
        &[(
            json!({"targetingKey": "a"}),
            Some("on"),
            Reason::Split,
            None,
        )],
    );
    check(
        &s,
        "part",
        &[(
            json!({"targetingKey": "a"}),
            Some("off"),
            Reason::Split,
            None,
        )],
    );
    check(
        &s,
        "part",
        &[(json!({"org": "acme"}), Some("on"), Reason::Split, None)],
    );
}

#[test]
fn rollout_follows_the_documented_buckets() {
    // Same as docs/bucketing.md: the bucket of "user-1" under salt "new-payment-flow".
    let bucket = switchyard_core::bucketing::bucket("new-payment-flow", "user-1");
    let s = snapshot(
        json!([
            boolean(
                "new-payment-flow",
                json!([]),
                json!({"rollout": {"split": [
            {"variant": "on", "weight": bucket + 1}, {"variant": "off", "weight": 100000 - bucket - 1}]}})
            ),
            boolean(
                "just-below",
                json!([]),
                json!({"rollout": {"salt": "new-payment-flow", "split": [
            {"variant": "on", "weight": bucket}, {"variant": "off", "weight": 100000 - bucket}]}})
            )
        ]),
        json!([]),
    );
    check(
        &s,
        "new-payment-flow",
        &[(
            json!({"targetingKey": "user-1"}),
            Some("on"),
            Reason::Split,
            None,
        )],
    );
    check(
        &s,
        "just-below",
        &[(
            json!({"targetingKey": "user-1"}),
            Some("off"),
            Reason::Split,
            None,
        )],
    );
}

#[test]
fn prerequisites_gate_the_flag() {
    let mut child = boolean("child", json!([]), json!({"variant": "on"}));
    child["prerequisites"] = json!([{"flag": "parent", "variant": "on"}]);
    let mut orphan = boolean("orphan", json!([]), json!({"variant": "on"}));
    orphan["prerequisites"] = json!([{"flag": "nobody", "variant": "on"}]);
    let s = snapshot(
        json!([
            child,
            orphan,
            boolean(
                "parent",
                json!([{"id": "vip", "when": {"groups": ["vip"]}, "serve": {"variant": "on"}}]),
                json!({"variant": "off"})
            )
        ]),
        json!([]),
    );
    check(
        &s,
        "child",
        &[
            (
                json!({"targetingKey": "a", "groups": ["vip"]}),
                Some("on"),
                Reason::Default,
                None,
            ),
            (
                json!({"targetingKey": "a"}),
                Some("off"),
                Reason::PrerequisiteFailed,
                None,
            ),
        ],
    );
    check(
        &s,
        "orphan",
        &[(
            json!({"targetingKey": "a"}),
            Some("off"),
            Reason::PrerequisiteFailed,
            None,
        )],
    );
}

#[test]
fn every_operator_with_negate_and_case_insensitive() {
    type Case = (Value, Vec<(Value, bool)>);
    let cases: Vec<Case> = vec![
        (
            json!({"attribute": "country", "op": "in", "values": ["IT", "DE"]}),
            vec![
                (json!({"country": "IT"}), true),
                (json!({"country": "it"}), false),
                (json!({}), false),
                (json!({"country": ["FR", "DE"]}), true),
            ],
        ),
        (
            json!({"attribute": "country", "op": "in", "values": ["IT"], "case_insensitive": true}),
            vec![
                (json!({"country": "it"}), true),
                (json!({"country": "iT"}), true),
            ],
        ),
        (
            json!({"attribute": "country", "op": "not_in", "values": ["IT"]}),
            vec![
                (json!({"country": "FR"}), true),
                (json!({"country": "IT"}), false),
                (json!({}), false),
            ],
        ),
        (
            json!({"attribute": "country", "op": "in", "values": ["IT"], "negate": true}),
            vec![
                (json!({"country": "FR"}), true),
                (json!({}), true),
                (json!({"country": "IT"}), false),
            ],
        ),
        (
            json!({"attribute": "plan", "op": "eq", "values": ["pro"]}),
            vec![
                (json!({"plan": "pro"}), true),
                (json!({"plan": "pro+"}), false),
            ],
        ),
        (
            json!({"attribute": "plan", "op": "neq", "values": ["pro"]}),
            vec![
                (json!({"plan": "free"}), true),
                (json!({"plan": "pro"}), false),
                (json!({}), false),
            ],
        ),
        (
            json!({"attribute": "n", "op": "eq", "values": [5]}),
            vec![
                (json!({"n": 5}), true),
                (json!({"n": 5.0}), true),
                (json!({"n": "5"}), true),
                (json!({"n": 6}), false),
            ],
        ),
        (
            json!({"attribute": "admin", "op": "eq", "values": [true]}),
            vec![
                (json!({"admin": true}), true),
                (json!({"admin": false}), false),
            ],
        ),
        (
            json!({"attribute": "email", "op": "contains", "values": ["@corp"]}),
            vec![
                (json!({"email": "a@corp.io"}), true),
                (json!({"email": "a@CORP.io"}), false),
            ],
        ),
        (
            json!({"attribute": "email", "op": "ends_with", "values": ["@CORP.io"], "case_insensitive": true}),
            vec![
                (json!({"email": "a@corp.io"}), true),
                (json!({"email": "a@corp.com"}), false),
            ],
        ),
        (
            json!({"attribute": "email", "op": "starts_with", "values": ["adm", "ops"]}),
            vec![
                (json!({"email": "ops@x"}), true),
                (json!({"email": "dev@x"}), false),
                (json!({"email": 5}), false),
            ],
        ),
        (
            json!({"attribute": "path", "op": "matches", "values": ["^/api/v[0-9]+/"]}),
            vec![
                (json!({"path": "/api/v2/x"}), true),
                (json!({"path": "/web"}), false),
            ],
        ),
        (
            json!({"attribute": "path", "op": "matches", "values": ["^/API"], "case_insensitive": true}),
            vec![(json!({"path": "/api/v2/x"}), true)],
        ),
        (
            json!({"attribute": "age", "op": "lt", "values": ["18"]}),
            vec![
                (json!({"age": 17}), true),
                (json!({"age": 18}), false),
                (json!({"age": "12"}), true),
                (json!({"age": "old"}), false),
            ],
        ),
        (
            json!({"attribute": "age", "op": "lte", "values": [18]}),
            vec![(json!({"age": 18}), true), (json!({"age": 18.5}), false)],
        ),
        (
            json!({"attribute": "age", "op": "gt", "values": [18]}),
            vec![(json!({"age": 18.5}), true), (json!({"age": 18}), false)],
        ),
        (
            json!({"attribute": "age", "op": "gte", "values": [18]}),
            vec![(json!({"age": 18}), true), (json!({"age": 17}), false)],
        ),
        (
            json!({"attribute": "app", "op": "semver_eq", "values": ["1.2.3"]}),
            vec![
                (json!({"app": "1.2.3+b7"}), true),
                (json!({"app": "1.2.3-rc.1"}), false),
                (json!({"app": "junk"}), false),
            ],
        ),
        (
            json!({"attribute": "app", "op": "semver_lt", "values": ["2.0.0"]}),
            vec![
                (json!({"app": "2.0.0-rc.1"}), true),
                (json!({"app": "2.0.0"}), false),
            ],
        ),
        (
            json!({"attribute": "app", "op": "semver_lte", "values": ["2.0.0"]}),
            vec![(json!({"app": "2.0.0"}), true)],
        ),
        (
            json!({"attribute": "app", "op": "semver_gt", "values": ["1.9.9"]}),
            vec![
                (json!({"app": "1.10.0"}), true),
                (json!({"app": "1.9.9"}), false),
            ],
        ),
        (
            json!({"attribute": "app", "op": "semver_gte", "values": ["1.9.9"]}),
            vec![(json!({"app": "1.9.9"}), true)],
        ),
        (
            json!({"attribute": "now", "op": "before", "values": ["2026-01-01T00:00:00Z"]}),
            vec![
                (json!({"now": "2025-12-31T23:59:59Z"}), true),
                (json!({"now": "2026-01-01T01:00:00+02:00"}), true),
                (json!({"now": "2026-01-01T00:00:00Z"}), false),
                (json!({"now": "yesterday"}), false),
            ],
        ),
        (
            json!({"attribute": "now", "op": "after", "values": ["2026-01-01T00:00:00Z"]}),
            vec![
                (json!({"now": "2026-01-01T00:00:01Z"}), true),
                (json!({"now": "2025-01-01T00:00:00Z"}), false),
            ],
        ),
        (
            json!({"attribute": "ip", "op": "in_cidr", "values": ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"]}),
            vec![
                (json!({"ip": "10.1.2.3"}), true),
                (json!({"ip": "2001:db8::1"}), true),
                (json!({"ip": "192.168.1.7"}), true),
                (json!({"ip": "192.168.1.8"}), false),
                (json!({"ip": "not-an-ip"}), false),
            ],
        ),
        (
            json!({"attribute": "beta", "op": "exists"}),
            vec![(json!({"beta": false}), true), (json!({}), false)],
        ),
        (
            json!({"attribute": "beta", "op": "exists", "negate": true}),
            vec![(json!({}), true), (json!({"beta": 1}), false)],
        ),
        (
            json!({"attribute": "targetingKey", "op": "starts_with", "values": ["u-"]}),
            vec![(json!({"targetingKey": "u-1"}), true)],
        ),
        (
            json!({"attribute": "groups", "op": "in", "values": ["beta"]}),
            vec![(json!({"groups": ["a", "beta"]}), true), (json!({}), false)],
        ),
    ];
    for (constraint, contexts) in &cases {
        let s = constraint_flag(constraint.clone());
        for (context, expected) in contexts {
            let got = evaluate(&s, "f", &ctx(context.clone()));
            assert_eq!(
                got.variant == Some("on"),
                *expected,
                "{constraint} with {context}"
            );
        }
    }
}

/// OFREP and flagd have no `PREREQUISITE_FAILED`: the flag serves its off variant, so
/// they say `DISABLED` and keep the precise reason for metadata.
#[test]
fn prerequisite_failures_are_disabled_with_the_precise_reason_in_metadata() {
    assert_eq!(
        Reason::PrerequisiteFailed.openfeature(),
        ("DISABLED", Some("PREREQUISITE_FAILED"))
    );
    for reason in [
        Reason::Static,
        Reason::TargetingMatch,
        Reason::Split,
        Reason::Default,
        Reason::Disabled,
    ] {
        assert_eq!(reason.openfeature(), (reason.as_str(), None));
    }
}

#[test]
fn a_disabled_flag_without_an_off_variant_defers_to_the_callers_default() {
    let deferring = |key: &str, enabled: bool, prerequisites: Value| {
        json!({
            "key": key, "kind": "string", "variants": {"a": "A", "b": "B"},
            "off_variant": null, "enabled": enabled, "default": {"variant": "b"},
            "prerequisites": prerequisites, "version": 4
        })
    };
    let s = snapshot(
        json!([
            deferring("killed", false, json!([])),
            deferring("gated", true, json!([{"flag": "gate", "variants": ["on"]}])),
            deferring("live", true, json!([])),
            boolean("gate", json!([]), json!({"variant": "off"})),
        ]),
        json!([]),
    );
    let user = ctx(json!({"targetingKey": "u-1"}));
    for (key, reason) in [
        ("killed", Reason::Disabled),
        ("gated", Reason::PrerequisiteFailed),
    ] {
        let got = evaluate(&s, key, &user);
        assert_eq!(
            (got.value, got.variant, got.error),
            (None, None, None),
            "{key}"
        );
        assert_eq!(got.reason, reason, "{key}");
        assert_eq!(got.flag_version, 4, "{key}");
        assert!(got.defers(), "{key}");
    }
    // Enabled, it serves as usual; an error never defers.
    let live = evaluate(&s, "live", &user);
    assert_eq!(live.as_str(), Some("B"));
    assert!(!live.defers());
    assert!(!evaluate(&s, "missing", &user).defers());
}

#[test]
fn off_variant_must_be_given_even_when_it_is_null() {
    let flag = json!({
        "key": "f", "kind": "boolean", "variants": {"on": true, "off": false},
        "default": {"variant": "on"}
    });
    let error = serde_json::from_value::<Flag>(flag).expect_err("no off_variant");
    assert!(
        error.to_string().contains("missing field `off_variant`"),
        "{error}"
    );
    // An off variant that is not a variant is still refused.
    let flag: Flag = serde_json::from_value(json!({
        "key": "f", "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "gone", "default": {"variant": "on"}
    }))
    .expect("parses");
    let problems = Snapshot::compile(vec![flag], vec![]).expect_err("unknown off variant");
    assert!(problems.to_string().contains("off_variant"), "{problems}");
}
