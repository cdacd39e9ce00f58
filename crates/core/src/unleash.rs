//! Unleash compatibility: import an Unleash client-API state
//! (`GET /api/client/features`) as native flags that evaluate exactly as Unleash
//! clients do (client specification 6.1.0), so teams migrate without users changing
//! buckets. The conformance suite (`tests/unleash_conformance.rs`) proves it.
//!
//! Three functions: [`import`] turns an [`UnleashState`] into native flags,
//! [`context()`] turns an Unleash context into a native [`crate::Context`], and
//! [`verdict`] reads an [`crate::Evaluation`] of an imported flag as Unleash's
//! `isEnabled` and `getVariant`. Evaluation itself is the native, pure engine.
//!
//! # The mapping
//!
//! - **Flag**: kind `json`, key = the toggle's name (which must be a name,
//!   [`crate::validation::NAME_PATTERN`]; any other is an import error), `enabled` = the
//!   toggle's switch. Every variant's *value* is the Unleash result it stands for:
//!   `off` = `{"name":"disabled","enabled":false,"feature_enabled":false}` (the off
//!   variant and the default when strategies exist), `on` =
//!   `{"name":"disabled","enabled":false,"feature_enabled":true}` (on without a
//!   variant), and each Unleash variant `{"name","payload"?,"enabled":true,
//!   "feature_enabled":true}` under its own name (suffixed `#2`, `#3`… when it is
//!   `on`, `off`, empty, used again with another payload, or listed twice in one
//!   variant list: a native split names each variant once).
//! - **Strategies → rules**, tried in order, first match wins. A toggle is on when
//!   any strategy is, and then the variant comes from the first matching strategy:
//!   its own variants when it has some, else the feature's (a missing `variants`
//!   field is an empty list, as in unleash-yggdrasil 0.21). No strategies at all:
//!   always on, the default serves the feature's variants.
//! - A strategy's condition is its constraints, the constraints of **all** its
//!   segments (inlined: native `when.segments` means *any*; a missing segment makes
//!   the strategy false), and its own part: `default` (nothing), `userWithId`
//!   (`userId in` the trimmed comma list), `gradualRolloutUserId`/`SessionId`
//!   (`exists` the id, plus a percentage on it with salt `groupId`, default `""`),
//!   `gradualRolloutRandom` and `flexibleRollout` (a percentage, salt `groupId`
//!   defaulting to the toggle's name), `remoteAddress` (`in_cidr` of the valid IPs
//!   and blocks), `applicationHostname` (`hostname in`, ignoring case: supply the
//!   host's name as the `hostname` attribute). Unknown (custom) strategies are false,
//!   as in a client that has not registered them. `__internal-strategy-group`
//!   (`AND`/`OR` of strategies) is supported; a condition with an `OR` in it becomes
//!   one rule per alternative.
//! - **Percentages** are native `when.percentage` with `hashing: unleash` (murmur3 of
//!   `groupId:value`, 1..=100, included when `<= p`): a rollout that misses falls
//!   through to the next rule. `p` is read as Unleash does (`Number(p)`), floored,
//!   clamped to 0..=100, and written in 1/100 000 (`p * 1000`). Stickiness `default`
//!   (or none, or `random`) buckets on the first of `userId`, `sessionId`; a custom
//!   stickiness buckets on that field and adds an `exists` constraint, since Unleash
//!   is false when it is missing.
//! - **Variants**: native `serve.rollout` with `hashing: unleash` (seed 86 028 157,
//!   `groupId:value` modulo the total weight), Unleash's weights. Feature variants
//!   use the first variant's stickiness and the toggle's name as group; strategy
//!   variants use the strategy's `stickiness` and `groupId`. `default` stickiness is
//!   the first of `userId`, `sessionId`, `remoteAddress`. Feature-variant
//!   **overrides** become rules (strategy condition and `field in values`) before
//!   the weighted one. A variant list weighing 0 serves `on` (no variant).
//! - **Constraints**: `IN` → `in`, `NOT_IN` → `in` negated (both then agree with
//!   Unleash on a missing field), `STR_CONTAINS`/`STARTS_WITH`/`ENDS_WITH` →
//!   `contains`/`starts_with`/`ends_with`, `NUM_GT`… → `gt`…, `NUM_EQ` → `gte` and
//!   `lte` (numeric: `12` equals `12.0`; inverted, two alternatives), `DATE_AFTER`/
//!   `BEFORE` → `after`/`before`, `SEMVER_*` → `semver_*`, `REGEX` → `matches`
//!   (Rust `regex`, a partial match as RE2's), `IN_CIDR` → `in_cidr` (invalid
//!   entries ignored). `inverted` → `negate`; `caseInsensitive` → `case_insensitive`
//!   on the string operators. List operators read `values`, the others `value`. An
//!   unknown operator or an operand the engine cannot parse (bad regex — lookaround
//!   and backreferences included —, bad semver such as `v1.2.3`, bad number or
//!   date, no valid block) does not reject the flag: the constraint is what Unleash
//!   computes, false (inverted: true), so the alternative of the strategy holding it
//!   is dropped (false) or the constraint is (true). So is a list operator with an
//!   empty `values`.
//! - **Dependencies** → prerequisites on the parent: enabled (the default) accepts
//!   every variant but `off`; `enabled: false` accepts `off`; `variants: [..]` the
//!   parent's variants of those names while on (`disabled` naming `on`). A missing
//!   parent makes the prerequisite fail. A parent that has dependencies of its own,
//!   or whose variants cannot satisfy the dependency, makes Unleash evaluate the
//!   child as off whatever the context: the child is imported with `enabled: false`
//!   and a note in its description.
//!
//! # Where this differs from Unleash, and why
//!
//! The engine has no random number generator. Where Unleash falls back to a random
//! value — stickiness `default` with neither `userId` nor `sessionId`, `random`
//! stickiness, `gradualRolloutRandom`, and variant stickiness whose field is missing
//! — the import is deterministic instead: a percentage with nothing to bucket on
//! includes the context only at 100 % (Unleash: with probability p), `random` and
//! `gradualRolloutRandom` bucket on `userId`/`sessionId` like `default`, and a
//! variant rollout with nothing to bucket on serves its first variant when that
//! holds the whole weight, else its last (Unleash: a random one). Regular
//! expressions use Rust's `regex`, whose `\d`, `\w` and `\b` are Unicode-aware where
//! RE2's are ASCII-only; they agree on ASCII input.

mod context;
mod import;
mod state;

pub use context::{context, verdict, UnleashResult, UnleashVariantResult, DISABLED_VARIANT};
pub use import::{import, OFF_VARIANT, ON_VARIANT};
pub use state::{
    UnleashConstraint, UnleashDependency, UnleashFeature, UnleashOverride, UnleashPayload,
    UnleashSegment, UnleashState, UnleashStrategy, UnleashVariant,
};

use crate::validation::{Problem, ValidationErrors};

/// Why an Unleash state could not be imported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Two features share a name.
    #[error("feature `{0}` appears more than once")]
    DuplicateFeature(String),
    /// Two segments share an id.
    #[error("segment {0} appears more than once")]
    DuplicateSegment(i64),
    /// A feature uses something native flags cannot express.
    #[error("feature `{feature}`: {reason}")]
    Unsupported {
        /// The feature's name.
        feature: String,
        /// What cannot be expressed.
        reason: &'static str,
    },
    /// A feature's name is not a name ([`crate::validation::check_name`]).
    #[error("feature `{}` cannot be a flag key: {problem}", .feature.escape_debug())]
    InvalidName {
        /// The feature's name.
        feature: String,
        /// What is wrong with it.
        #[source]
        problem: Problem,
    },
    /// The imported flags do not validate.
    #[error("the imported flags are not valid: {0}")]
    Rejected(#[source] ValidationErrors),
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::{json, Value};

    use super::*;
    use crate::{evaluate, Snapshot};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn snapshot(features: Value) -> Snapshot {
        let state: UnleashState =
            serde_json::from_value(json!({ "version": 2, "features": features, "segments": [
                { "id": 1, "constraints": [
                    { "contextName": "plan", "operator": "IN", "values": ["pro"] } ] },
                { "id": 2, "constraints": [
                    { "contextName": "country", "operator": "IN", "values": ["IT"] } ] }
            ] }))
            .expect("parses");
        let (flags, segments) = import(&state).expect("imports");
        Snapshot::compile(flags, segments).expect("compiles")
    }

    /// One flag per case, evaluated against contexts: (description, feature,
    /// [(context, expected enabled, expected variant name)]).
    #[test]
    fn mapping_table() {
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Value, Vec<(Value, bool, &str)>)> = vec![
            (
                "userWithId trims its list",
                json!({ "name": "f", "enabled": true, "strategies": [
                    { "name": "userWithId", "parameters": { "userIds": "a, b ,c" } } ] }),
                vec![
                    (json!({ "userId": "b" }), true, "disabled"),
                    (json!({ "userId": "d" }), false, "disabled"),
                    (json!({}), false, "disabled"),
                ],
            ),
            (
                "segments must all hold; a missing one makes the strategy false",
                json!({ "name": "f", "enabled": true, "strategies": [
                    { "name": "default", "segments": [1, 2] },
                    { "name": "userWithId", "parameters": { "userIds": "u" }, "segments": [404] } ] }),
                vec![
                    (
                        json!({ "properties": { "plan": "pro", "country": "IT" } }),
                        true,
                        "disabled",
                    ),
                    (
                        json!({ "properties": { "plan": "pro" } }),
                        false,
                        "disabled",
                    ),
                    (json!({ "userId": "u" }), false, "disabled"),
                ],
            ),
            (
                "NOT_IN holds for a missing field; NUM_EQ compares numbers",
                json!({ "name": "f", "enabled": true, "strategies": [ { "name": "default", "constraints": [
                    { "contextName": "env", "operator": "NOT_IN", "values": ["prod"] },
                    { "contextName": "n", "operator": "NUM_EQ", "value": 12 } ] } ] }),
                vec![
                    (json!({ "properties": { "n": "12.0" } }), true, "disabled"),
                    (
                        json!({ "properties": { "n": "12.0", "env": "prod" } }),
                        false,
                        "disabled",
                    ),
                    (json!({ "properties": { "n": "13" } }), false, "disabled"),
                ],
            ),
            (
                "inverted NUM_EQ holds for other numbers, text and a missing field",
                json!({ "name": "f", "enabled": true, "strategies": [ { "name": "default", "constraints": [
                    { "contextName": "n", "operator": "NUM_EQ", "value": "12", "inverted": true } ] } ] }),
                vec![
                    (json!({ "properties": { "n": "12" } }), false, "disabled"),
                    (json!({ "properties": { "n": "11" } }), true, "disabled"),
                    (json!({ "properties": { "n": "x" } }), true, "disabled"),
                    (json!({}), true, "disabled"),
                ],
            ),
            (
                "invalid operands are false, inverted true",
                json!({ "name": "f", "enabled": true, "strategies": [
                    { "name": "default", "constraints": [
                        { "contextName": "v", "operator": "SEMVER_EQ", "value": "v1.0.0" } ] },
                    { "name": "default", "constraints": [
                        { "contextName": "userId", "operator": "REGEX", "value": "(?=a)", "inverted": true },
                        { "contextName": "userId", "operator": "WHAT", "value": "x", "inverted": true } ] } ] }),
                vec![(json!({ "properties": { "v": "1.0.0" } }), true, "disabled")],
            ),
            (
                "custom stickiness needs the field; overrides beat weights",
                json!({ "name": "f", "enabled": true, "strategies": [
                    { "name": "flexibleRollout", "parameters": { "rollout": "100", "stickiness": "org" } } ],
                    "variants": [
                        { "name": "a", "weight": 0, "overrides": [ { "contextName": "userId", "values": ["vip"] } ] },
                        { "name": "on", "weight": 10, "payload": { "type": "string", "value": "x" } } ] }),
                vec![
                    (
                        json!({ "userId": "vip", "properties": { "org": "o" } }),
                        true,
                        "a",
                    ),
                    (
                        json!({ "userId": "u", "properties": { "org": "o" } }),
                        true,
                        "on",
                    ),
                    (json!({ "userId": "vip" }), false, "disabled"),
                ],
            ),
            (
                // As unleash-yggdrasil 0.21: a missing `variants` field is an empty
                // list, so the first matching strategy decides.
                "the first matching strategy decides the variant, with or without the field",
                json!({ "name": "f", "enabled": true, "strategies": [
                    { "name": "userWithId", "parameters": { "userIds": "a" } },
                    { "name": "default", "variants": [ { "name": "s", "weight": 1 } ] } ],
                    "variants": [ { "name": "feature", "weight": 1 } ] }),
                vec![
                    (json!({ "userId": "a" }), true, "feature"),
                    (json!({ "userId": "b" }), true, "s"),
                ],
            ),
            (
                "no strategies: always on, feature variants by default",
                json!({ "name": "f", "enabled": true, "variants": [ { "name": "only", "weight": 5 } ] }),
                vec![(json!({}), true, "only")],
            ),
        ];
        for (description, feature, checks) in cases {
            let snapshot = snapshot(json!([feature]));
            for (ctx, enabled, variant) in checks {
                let native = context(&ctx, now());
                let result = verdict(&evaluate(&snapshot, "f", &native));
                assert_eq!(
                    (result.enabled, result.variant.name),
                    (enabled, variant),
                    "{description}: {ctx}"
                );
            }
        }
    }

    #[test]
    fn mapping_shapes() {
        let state: UnleashState = serde_json::from_value(json!({ "features": [
            { "name": "f", "enabled": true, "strategies": [
                { "name": "flexibleRollout", "parameters": { "rollout": 25.7, "groupId": "g" },
                  "constraints": [ { "contextName": "x", "operator": "REGEX", "value": "(", "inverted": true } ] } ],
              "variants": [ { "name": "off", "weight": 1 }, { "name": "b", "weight": 1, "stickiness": "org" } ] }
        ] }))
        .expect("parses");
        let (flags, segments) = import(&state).expect("imports");
        assert!(segments.is_empty());
        let flag = serde_json::to_value(&flags[0]).expect("serialises");
        assert_eq!(
            flag["variants"],
            json!({
                "on": { "name": "disabled", "enabled": false, "feature_enabled": true },
                "off#2": { "name": "off", "enabled": true, "feature_enabled": true },
                "b": { "name": "b", "enabled": true, "feature_enabled": true },
                "off": { "name": "disabled", "enabled": false, "feature_enabled": false }
            })
        );
        assert_eq!(
            flag["rules"],
            json!([{ "id": "strategy0",
                // The unusable regex is what Unleash makes of it, false, then
                // inverted: always true, so the condition is the percentage alone.
                "when": {
                    "percentage": { "by": ["userId", "sessionId"], "salt": "g", "weight": 25000, "hashing": "unleash" } },
                "serve": { "rollout": { "by": ["userId", "sessionId", "remoteAddress"], "salt": "f",
                    "split": [ { "variant": "off#2", "weight": 1 }, { "variant": "b", "weight": 1 } ],
                    "hashing": "unleash" } } }])
        );
        assert_eq!(flag["default"], json!({ "variant": "off" }));
    }

    #[test]
    fn imported_flags_pass_the_checks_for_new_writes() {
        // A variant listed twice gets a second key (a split names a variant once),
        // and list operators without values become constants, not `in []`.
        let state: UnleashState = serde_json::from_value(json!({ "features": [
            { "name": "f", "enabled": true, "strategies": [
                { "name": "default", "constraints": [
                    { "contextName": "x", "operator": "IN", "values": [] },
                    { "contextName": "y", "operator": "NOT_IN", "values": [] } ] },
                { "name": "default", "constraints": [
                    { "contextName": "y", "operator": "NOT_IN", "values": [] } ] } ],
              "variants": [ { "name": "a", "weight": 1 }, { "name": "b", "weight": 1 },
                            { "name": "a", "weight": 1 } ] }
        ] }))
        .expect("parses");
        let (flags, _) = import(&state).expect("imports");
        crate::validate_flag(&flags[0]).expect("valid as a new write");
        let flag = serde_json::to_value(&flags[0]).expect("serialises");
        // `x in []` is false: the first strategy never holds and has no rule;
        // `y not_in []` is true: the second strategy always holds.
        assert_eq!(flag["rules"].as_array().map(Vec::len), Some(1), "{flag}");
        assert_eq!(flag["rules"][0]["id"], json!("strategy1"));
        assert_eq!(flag["rules"][0].get("when"), None, "{flag}");
        assert_eq!(
            flag["rules"][0]["serve"]["rollout"]["split"],
            json!([ { "variant": "a", "weight": 1 }, { "variant": "b", "weight": 1 },
                    { "variant": "a#2", "weight": 1 } ])
        );
        assert_eq!(flag["variants"]["a#2"], flag["variants"]["a"]);
    }

    #[test]
    fn dependencies_become_prerequisites() {
        let snapshot = snapshot(json!([
            { "name": "parent", "enabled": true, "strategies": [
                { "name": "default", "constraints": [ { "contextName": "env", "operator": "IN", "values": ["prod"] } ] } ] },
            { "name": "on-child", "enabled": true, "dependencies": [ { "feature": "parent" } ] },
            { "name": "off-child", "enabled": true, "dependencies": [ { "feature": "parent", "enabled": false } ] },
            { "name": "orphan", "enabled": true, "dependencies": [ { "feature": "nobody" } ] },
            { "name": "grandchild", "enabled": true, "dependencies": [ { "feature": "on-child" } ] }
        ]));
        let prod = context(
            &json!({ "environment": "x", "properties": { "env": "prod" } }),
            now(),
        );
        let dev = context(&json!({ "properties": { "env": "dev" } }), now());
        let enabled = |key: &str, ctx| verdict(&evaluate(&snapshot, key, ctx)).enabled;
        assert!(enabled("on-child", &prod));
        assert!(!enabled("on-child", &dev));
        assert!(!enabled("off-child", &prod));
        assert!(enabled("off-child", &dev));
        assert!(!enabled("orphan", &prod));
        assert!(!enabled("grandchild", &prod));
        let grandchild = snapshot.flag("grandchild").expect("imported");
        assert!(!grandchild.enabled);
        assert!(grandchild.description.contains("dependencies of its own"));
    }

    /// Found by fuzzing: each inverted NUM_EQ doubles the rules; 16 of them made
    /// 65 536 rules from 1.2 KB (24: 16 million). Past 1 000 the import refuses the
    /// feature with the reason, as it does other inexpressible ones.
    #[test]
    fn constraints_that_multiply_into_too_many_rules_are_refused_with_the_reason() {
        let constraints: Vec<_> = (0..24)
            .map(|n| json!({"contextName": format!("n{n}"), "operator": "NUM_EQ", "value": "1", "inverted": true}))
            .collect();
        let state: UnleashState = serde_json::from_value(json!({ "features": [ {
            "name": "wide", "enabled": true,
            "strategies": [ { "name": "default", "constraints": constraints } ]
        } ] }))
        .expect("state");
        let error = import(&state).expect_err("too many rules").to_string();
        assert!(
            error.contains("wide") && error.contains("more than 1 000 native rules"),
            "{error}"
        );
    }

    #[test]
    fn import_errors() {
        let cases = [
            (
                json!({ "features": [ { "name": "a", "enabled": true }, { "name": "a", "enabled": false } ] }),
                ImportError::DuplicateFeature("a".to_owned()).to_string(),
            ),
            (
                json!({ "features": [], "segments": [ { "id": 7 }, { "id": 7 } ] }),
                ImportError::DuplicateSegment(7).to_string(),
            ),
            (
                json!({ "features": [ { "name": "bad\u{7}name", "enabled": true } ] }),
                "feature `bad\\u{7}name` cannot be a flag key: U+0007 at byte 3 is not allowed in a name"
                    .to_owned(),
            ),
            (
                json!({ "features": [ { "name": "a\u{200b}b", "enabled": true } ] }),
                "feature `a\\u{200b}b` cannot be a flag key: U+200B at byte 1".to_owned(),
            ),
            (
                json!({ "features": [ { "name": "..", "enabled": true } ] }),
                "feature `..` cannot be a flag key: a name cannot start with `.`".to_owned(),
            ),
            (
                json!({ "features": [ { "name": "g", "enabled": true, "strategies": [
                    { "name": "__internal-strategy-group", "operator": "AND", "group": [
                        { "name": "flexibleRollout", "parameters": { "rollout": "50" } },
                        { "name": "gradualRolloutUserId", "parameters": { "percentage": "50" } } ] } ] } ] }),
                "two partial rollouts".to_owned(),
            ),
        ];
        for (input, expected) in cases {
            let state: UnleashState = serde_json::from_value(input).expect("parses");
            let err = import(&state).expect_err("rejected");
            assert!(err.to_string().contains(&expected), "{err} ∌ {expected}");
        }
    }

    #[test]
    fn context_mapping() {
        let ctx = context(
            &json!({ "userId": "u", "sessionId": 7, "properties": { "userId": "p", "tier": "gold", "n": null } }),
            now(),
        );
        assert_eq!(ctx.targeting_key(), Some("u"));
        let get = |name| match ctx.get(name) {
            Some(crate::context::Property::String(s)) => Some(s.to_owned()),
            _ => None,
        };
        assert_eq!(get("userId").as_deref(), Some("u"));
        assert_eq!(get("sessionId").as_deref(), Some("7"));
        assert_eq!(get("tier").as_deref(), Some("gold"));
        assert_eq!(get("n"), None);
        assert_eq!(
            get("currentTime").as_deref(),
            Some("2024-05-01T12:00:00.000Z")
        );
        let given = context(&json!({ "currentTime": "2020-01-01T00:00:00Z" }), now());
        assert_eq!(
            given.get("currentTime"),
            Some(crate::context::Property::String("2020-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn verdict_of_a_missing_flag_is_disabled() {
        let snapshot = Snapshot::default();
        let result = verdict(&evaluate(&snapshot, "nope", &crate::Context::anonymous()));
        assert_eq!(
            serde_json::to_value(result).expect("serialises"),
            json!({ "enabled": false, "variant": { "name": "disabled", "enabled": false, "feature_enabled": false } })
        );
    }
}
