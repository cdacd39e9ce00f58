//! Validation, table-driven: every malformed flag or segment is rejected with the
//! field path and the problem.

use serde_json::{json, Value};
use switchyard_core::{validate_flag, validate_segment, Flag, Segment, Snapshot};

fn good() -> Value {
    json!({
        "key": "f", "kind": "string",
        "variants": {"a": "A", "b": "B"}, "off_variant": "b",
        "rules": [{"id": "r1", "when": {"constraints": [{"attribute": "x", "op": "in", "values": ["1"]}]},
                   "serve": {"rollout": {"split": [{"variant": "a", "weight": 50000}, {"variant": "b", "weight": 50000}]}}}],
        "default": {"variant": "a"}
    })
}

/// Applies `edit` to a good flag and expects one error containing `expected`.
fn rejects(edit: impl Fn(&mut Value), expected: &str) {
    let mut value = good();
    edit(&mut value);
    let flag: Flag = serde_json::from_value(value.clone()).expect("parses");
    let err = validate_flag(&flag).expect_err(expected);
    let text = err.to_string();
    assert!(
        text.contains(expected),
        "expected `{expected}` in `{text}` for {value}"
    );
}

#[test]
fn a_good_flag_passes() {
    let flag: Flag = serde_json::from_value(good()).expect("parses");
    validate_flag(&flag).expect("valid");
}

#[test]
fn malformed_flags_name_the_field() {
    rejects(|f| f["key"] = json!(""), "key: must not be empty");
    rejects(
        |f| f["key"] = json!("a\nb"),
        "key: U+000A at byte 1 is not allowed in a name",
    );
    rejects(
        |f| f["key"] = json!("k".repeat(300)),
        "key: is 300 bytes long",
    );
    rejects(
        |f| f["off_variant"] = json!("zzz"),
        "off_variant: unknown variant `zzz`",
    );
    rejects(
        |f| f["default"] = json!({"variant": "nope"}),
        "default.variant: unknown variant `nope`",
    );
    rejects(
        |f| f["rules"][0]["serve"]["rollout"]["split"][1]["weight"] = json!(49000),
        "rules[0].serve.rollout.split: weights sum to 99000, expected 100000",
    );
    rejects(
        |f| f["rules"][0]["serve"]["rollout"]["split"][0]["variant"] = json!("c"),
        "rules[0].serve.rollout.split[0].variant: unknown variant `c`",
    );
    rejects(
        |f| f["rules"][0]["serve"]["rollout"]["by"] = json!([]),
        "rules[0].serve.rollout.by: must not be empty",
    );
    rejects(
        |f| f["variants"]["a"] = json!(5),
        "variants.a: a string flag cannot have a number value",
    );
    rejects(
        |f| {
            f["kind"] = json!("boolean");
        },
        "variants: a boolean flag has exactly the variants `on: true` and `off: false`",
    );
    rejects(
        |f| {
            let rule = f["rules"][0].clone();
            f["rules"] = json!([rule.clone(), rule]);
        },
        "rules[1].id: duplicate rule id `r1`",
    );
    rejects(
        |f| f["rules"][0]["id"] = json!(""),
        "rules[0].id: must not be empty",
    );
    let constraint =
        |c: Value| move |f: &mut Value| f["rules"][0]["when"]["constraints"][0] = c.clone();
    rejects(
        constraint(json!({"attribute": "x", "op": "matches", "values": ["(unclosed"]})),
        "rules[0].when.constraints[0].values[0]: invalid regular expression `(unclosed`",
    );
    rejects(
        constraint(json!({"attribute": "x", "op": "semver_gt", "values": ["1.2"]})),
        "rules[0].when.constraints[0].values[0]: `1.2` is not a semantic version",
    );
    rejects(
        constraint(json!({"attribute": "x", "op": "in_cidr", "values": ["10.0.0.0/33"]})),
        "rules[0].when.constraints[0].values[0]: `10.0.0.0/33` is not an IP address or CIDR block",
    );
    rejects(
        constraint(json!({"attribute": "x", "op": "before", "values": ["2026-13-01"]})),
        "rules[0].when.constraints[0].values[0]: `2026-13-01` is not an RFC 3339 instant",
    );
    rejects(
        constraint(json!({"attribute": "x", "op": "lt", "values": ["ten"]})),
        "rules[0].when.constraints[0].values[0]: `ten` is not a finite number",
    );
    rejects(
        constraint(json!({"attribute": "x", "op": "starts_with", "values": []})),
        "rules[0].when.constraints[0].values: `starts_with` needs at least one value",
    );
    rejects(
        constraint(json!({"attribute": "x", "op": "exists", "values": ["1"]})),
        "rules[0].when.constraints[0].values: `exists` takes no values",
    );
    rejects(
        constraint(json!({"attribute": "", "op": "exists"})),
        "rules[0].when.constraints[0].attribute: must not be empty",
    );
    rejects(
        |f| f["rules"][0]["when"]["percentage"] = json!({"weight": 100001}),
        "rules[0].when.percentage.weight: weight 100001 is above 100000",
    );
    rejects(
        |f| f["rules"][0]["when"]["percentage"] = json!({"weight": 1500, "hashing": "unleash"}),
        "rules[0].when.percentage.weight: weight 1500 is not a whole percent",
    );
    rejects(
        |f| f["prerequisites"] = json!([{"flag": "f", "variant": "a"}]),
        "prerequisites[0].flag: prerequisite cycle: f → f",
    );
    rejects(
        |f| f["prerequisites"] = json!([{"flag": "g", "variants": []}]),
        "prerequisites[0].variants: must not be empty",
    );
}

#[test]
fn names_are_checked_wherever_a_flag_or_segment_is_named() {
    let rule = "; names are 1 to 256 bytes of ASCII letters";
    rejects(
        |f| f["key"] = json!(".."),
        &format!("key: a name cannot start with `.` (U+002E){rule}"),
    );
    rejects(
        |f| f["key"] = json!("a\u{200b}b"),
        &format!("key: U+200B at byte 1 is not allowed in a name{rule}"),
    );
    rejects(
        |f| f["key"] = json!("a\u{202e}b"),
        "key: U+202E at byte 1 is not allowed in a name",
    );
    rejects(
        |f| f["rules"][0]["id"] = json!("eu ramp"),
        "rules[0].id: a space (U+0020) at byte 2 is not allowed in a name",
    );
    rejects(
        |f| f["rules"][0]["when"]["segments"] = json!(["ok", "a/b"]),
        "rules[0].when.segments[1]: `/` (U+002F) at byte 1 is not allowed in a name",
    );
    rejects(
        |f| f["prerequisites"] = json!([{"flag": "a?b", "variant": "on"}]),
        "prerequisites[0].flag: `?` (U+003F) at byte 1 is not allowed in a name",
    );
    let segment: Segment =
        serde_json::from_value(json!({"key": "a\\b", "when": {"users": ["u"]}})).expect("parses");
    let err = validate_segment(&segment).expect_err("bad key");
    assert!(
        err.to_string()
            .starts_with("key: `\\` (U+005C) at byte 1 is not allowed in a name"),
        "{err}"
    );
}

#[test]
fn a_split_names_each_variant_once_and_list_operators_need_values() {
    rejects(
        |f| {
            f["rules"][0]["serve"]["rollout"]["split"] = json!([
                {"variant": "a", "weight": 25000}, {"variant": "b", "weight": 50000},
                {"variant": "a", "weight": 25000}])
        },
        "rules[0].serve.rollout.split[2].variant: variant `a` is listed twice",
    );
    rejects(
        |f| {
            f["default"] = json!({"rollout": {"split": [
                {"variant": "b", "weight": 50000}, {"variant": "b", "weight": 50000}]}})
        },
        "default.rollout.split[1].variant: variant `b` is listed twice",
    );
    for op in ["in", "not_in"] {
        rejects(
            |f| {
                f["rules"][0]["when"]["constraints"][0] =
                    json!({"attribute": "x", "op": op, "values": []})
            },
            &format!("rules[0].when.constraints[0].values: `{op}` needs at least one value"),
        );
    }
}

#[test]
fn stored_flags_that_predate_the_write_rules_still_load() {
    // Written before names had a character set, before splits named a variant once
    // and before `in` needed values: loading them must not fail.
    let mut value = good();
    value["key"] = json!("old key");
    value["rules"][0]["id"] = json!("eu ramp");
    value["rules"][0]["when"]["constraints"][0] = json!({"attribute": "x", "op": "in"});
    value["default"] = json!({"rollout": {"split": [
        {"variant": "b", "weight": 50000}, {"variant": "b", "weight": 50000}]}});
    let flag: Flag = serde_json::from_value(value).expect("parses");
    let segment: Segment =
        serde_json::from_value(json!({"key": "old segment", "when": {"users": ["u"]}}))
            .expect("parses");
    assert!(validate_flag(&flag).is_err());
    assert!(validate_segment(&segment).is_err());
    let snapshot = Snapshot::compile(vec![flag], vec![segment]).expect("loads");
    assert!(snapshot.flag("old key").is_some());
}

#[test]
fn several_problems_are_all_reported() {
    let mut value = good();
    value["off_variant"] = json!("x");
    value["default"] = json!({"variant": "y"});
    let flag: Flag = serde_json::from_value(value).expect("parses");
    let err = validate_flag(&flag).expect_err("invalid");
    assert_eq!(err.errors().len(), 2, "{err}");
}

#[test]
fn flag_sets_reject_cycles_unknown_segments_and_duplicates() {
    let with_prereq = |key: &str, on: &str| {
        let mut f = good();
        f["key"] = json!(key);
        f["prerequisites"] = json!([{"flag": on, "variant": "a"}]);
        serde_json::from_value::<Flag>(f).expect("parses")
    };
    let err = Snapshot::compile(
        vec![
            with_prereq("a", "b"),
            with_prereq("b", "c"),
            with_prereq("c", "a"),
        ],
        vec![],
    )
    .expect_err("cycle");
    assert!(
        err.to_string()
            .contains("prerequisite cycle: a → b → c → a"),
        "{err}"
    );

    let err = Snapshot::compile(vec![with_prereq("a", "b"), with_prereq("a", "c")], vec![])
        .expect_err("dup");
    assert!(
        err.to_string().contains("flags[a]: duplicate key `a`"),
        "{err}"
    );

    let mut f = good();
    f["rules"][0]["when"]["segments"] = json!(["ghosts"]);
    let flag: Flag = serde_json::from_value(f).expect("parses");
    let err = Snapshot::compile(vec![flag], vec![]).expect_err("segment");
    assert!(
        err.to_string()
            .contains("flags[f].rules[0].when.segments[0]: unknown segment `ghosts`"),
        "{err}"
    );

    let mut f = good();
    f["prerequisites"] = json!([{"flag": "other", "variant": "nope"}]);
    let mut other = good();
    other["key"] = json!("other");
    let flags: Vec<Flag> = serde_json::from_value(json!([f, other])).expect("parses");
    let err = Snapshot::compile(flags, vec![]).expect_err("variant");
    assert!(
        err.to_string()
            .contains("flags[f].prerequisites[0].variants[0]: flag `other` has no variant `nope`"),
        "{err}"
    );
}

#[test]
fn segments_are_validated() {
    let nested: Segment =
        serde_json::from_value(json!({"key": "s", "when": {"segments": ["t"]}})).expect("parses");
    let err = validate_segment(&nested).expect_err("nested");
    assert!(
        err.to_string()
            .contains("when.segments: a segment's condition cannot name other segments"),
        "{err}"
    );
    let bad: Segment = serde_json::from_value(
        json!({"key": "s", "when": {"constraints": [{"attribute": "v", "op": "semver_eq", "values": ["x"]}]}}),
    )
    .expect("parses");
    let err = validate_segment(&bad).expect_err("semver");
    assert!(
        err.to_string()
            .contains("when.constraints[0].values[0]: `x` is not a semantic version"),
        "{err}"
    );
}

#[test]
fn unknown_fields_and_wrong_types_are_parse_errors() {
    for (input, expected) in [
        (
            json!({"key": "f", "kind": "boolean", "varaints": {}}),
            "unknown field `varaints`",
        ),
        (
            json!({"key": "f", "kind": "colour"}),
            "unknown variant `colour`",
        ),
        (json!({"key": 5}), "invalid type"),
    ] {
        let err = serde_json::from_value::<Flag>(input.clone()).expect_err("rejected");
        assert!(err.to_string().contains(expected), "{input}: {err}");
    }
}

/// `value` wrapped in `levels` objects: `{"a": {"a": … value …}}`.
fn nested(levels: usize, value: Value) -> Value {
    (0..levels).fold(value, |inner, _| json!({ "a": inner }))
}

#[test]
fn variant_values_are_limited_in_depth_and_size() {
    use switchyard_core::validation::{MAX_VALUE_BYTES, MAX_VALUE_DEPTH};
    let json_flag = |value: Value| {
        let mut f = good();
        f["kind"] = json!("json");
        f["variants"]["big"] = value;
        f
    };
    let accepts = |value: Value| {
        let flag: Flag = serde_json::from_value(json_flag(value)).expect("parses");
        validate_flag(&flag).expect("within the limits");
        Snapshot::compile(vec![flag], vec![]).expect("compiles");
    };
    accepts(nested(MAX_VALUE_DEPTH, json!(1)));
    accepts(nested(MAX_VALUE_DEPTH - 2, json!([[]])));
    // `"…"` is the string plus two quotes.
    accepts(json!("x".repeat(MAX_VALUE_BYTES - 2)));

    for (value, expected) in [
        (
            nested(MAX_VALUE_DEPTH + 1, json!(1)),
            format!("variants.big: nested 21 levels deep; at most {MAX_VALUE_DEPTH} are allowed"),
        ),
        (
            nested(39, json!([1, [2]])),
            format!("variants.big: nested 41 levels deep; at most {MAX_VALUE_DEPTH} are allowed"),
        ),
        (
            json!("x".repeat(MAX_VALUE_BYTES - 1)),
            format!("variants.big: is 65537 bytes as JSON; at most {MAX_VALUE_BYTES} are allowed"),
        ),
        (
            // Escapes count as written: a control character is `\u0001`.
            json!("\u{1}".repeat(MAX_VALUE_BYTES / 6 + 1)),
            format!("variants.big: is 65540 bytes as JSON; at most {MAX_VALUE_BYTES} are allowed"),
        ),
    ] {
        let flag: Flag = serde_json::from_value(json_flag(value)).expect("parses");
        let err = validate_flag(&flag).expect_err(&expected);
        assert_eq!(err.to_string(), expected);
        let err = Snapshot::compile(vec![flag], vec![]).expect_err(&expected);
        assert_eq!(err.to_string(), format!("flags[f].{expected}"));
    }

    // Every kind is bounded in size, not only `json`.
    rejects(
        |f| f["variants"]["a"] = json!("x".repeat(MAX_VALUE_BYTES)),
        "variants.a: is 65538 bytes as JSON",
    );
}
