//! Input fuzzing (issue 25, part 4): every JSON document the core reads, starting
//! from valid ones and mutated near their shape — a field dropped, a value replaced
//! by one of another type (null, booleans, huge, negative and fractional numbers,
//! empty, unicode and very long strings, arrays, objects), unknown fields added,
//! keys written twice in the raw text, values nested deeply, subtrees grafted into
//! the wrong place, raw number literals serde cannot hold.
//!
//! Documents: flags (`json_body::parse` + `validate_flag`), segments
//! (`validate_segment`), evaluation contexts (`Context` and `unleash::context`),
//! Unleash client-API states (`unleash::import`), and whole SDK snapshot documents
//! (`Snapshot::compile`, then evaluation). One mutation strategy serves them all.
//!
//! Properties, each over [`CASES`] (256) cases per document kind:
//! 1. nothing panics;
//! 2. every refusal says where: a field path that leads to a place in the document,
//!    the key written twice, or a line and column; every `ValidationError` path does
//!    too, and every error of a set or an import names its flag, segment or feature;
//! 3. every accepted document re-encodes to JSON text and reads back equal, and
//!    every flag of it evaluates to one
//!    of its own variants, never reason `ERROR`; imported flags also pass
//!    `validate_flag`.
//!
//! Where a property is narrowed for a known problem the comment says `KNOWN`.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use switchyard_core::json_body::{self, JsonBodyError};
use switchyard_core::sync::SnapshotDocument;
use switchyard_core::unleash::{self, ImportError, UnleashState};
use switchyard_core::validation::Problem;
use switchyard_core::{
    evaluate, evaluate_all, validate_flag, validate_segment, Context, ErrorCode, Flag, Reason,
    Segment, Snapshot, ValidationError, ValidationErrors,
};
use switchyard_testkit::fuzz::{self, Mutant, Vocabulary};

/// Cases per property: together they run in seconds in a debug build.
const CASES: u32 = 256;

// ---------------------------------------------------------------------------------
// Valid documents the mutations start from.

fn fixture(name: &str) -> Value {
    let path = format!("{}/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn flag_seeds() -> Vec<Value> {
    let complex = fixture("testdata/complex-flag.json");
    let sync = fixture("tests/fixtures/sync/snapshot.json");
    let mut seeds = vec![complex["flags"][0].clone()];
    seeds.extend(sync["flags"].as_array().cloned().unwrap_or_default());
    let split = json!([{"variant": "low", "weight": 3}, {"variant": "high", "weight": 7}]);
    let constraints = json!([
        {"attribute": "n", "op": "lt", "values": [10, 2.5]},
        {"attribute": "v", "op": "semver_lt", "values": ["2.0.0-rc.1"], "negate": true},
        {"attribute": "t", "op": "after", "values": ["2024-01-01T00:00:00+02:00"]},
        {"attribute": "e", "op": "eq", "values": ["X"], "case_insensitive": true},
        {"attribute": "f", "op": "neq", "values": [true]},
    ]);
    seeds.push(json!({
        "key": "price", "kind": "number", "enabled": false, "description": "ü ✓",
        "variants": {"low": 9.5, "high": 1e6, "neg": -3},
        "off_variant": null, "expires": "2027-01-31", "tags": ["team:pricing"],
        "prerequisites": [{"flag": "new-checkout", "variants": ["on", "off"]}],
        "rules": [
            {"id": "pct", "when": {"segments": ["beta-testers"], "percentage": {
                "by": ["userId", "sessionId"], "salt": "s", "weight": 30000, "hashing": "unleash"}},
             "serve": {"rollout": {"by": "orgId", "hashing": "unleash", "split": split}}},
            {"id": "ops", "when": {"constraints": constraints}, "serve": {"variant": "neg"}},
        ],
        "default": {"rollout": {"hashing": "flagd", "split": [
            {"variant": "low", "weight": 50000.0}, {"variant": "high", "weight": 50000}]}},
        "version": 7
    }));
    let constraints = json!([
        {"attribute": "path", "op": "matches", "values": ["^/a(b|c)$"]},
        {"attribute": "ip", "op": "in_cidr", "values": ["10.0.0.0/8", "::1"]},
    ]);
    seeds.push(json!({
        "key": "banner", "kind": "json", "off_variant": "plain",
        "variants": {"rich": {"title": "Hi", "items": [1, {"a": null}]}, "plain": "text"},
        "rules": [{"id": "r", "serve": {"variant": "rich"},
            "when": {"users": ["u-1"], "groups": ["staff"], "constraints": constraints}}],
        "default": {"variant": "plain"}
    }));
    seeds
}

fn segment_seeds() -> Vec<Value> {
    let sync = fixture("tests/fixtures/sync/snapshot.json");
    let mut seeds = sync["segments"].as_array().cloned().unwrap_or_default();
    seeds.push(json!({
        "key": "paying", "description": "Paying customers", "version": 3,
        "when": {"users": ["u-9"], "groups": ["pro"], "percentage": {"weight": 100000},
            "constraints": [{"attribute": "plan", "op": "in", "values": ["pro", 1]},
                            {"attribute": "age", "op": "gte", "values": ["18"]},
                            {"attribute": "beta", "op": "exists"}]}
    }));
    seeds
}

fn context_seeds() -> Vec<Value> {
    vec![
        fixture("testdata/complex-flag.json")["context"].clone(),
        json!({}),
        json!({"targetingKey": "u-1", "groups": ["staff", "pro"], "n": 12.5, "f": false,
               "v": "1.2.3-beta.1", "t": "2025-05-01T00:00:00Z", "e": "x", "orgId": "o-7"}),
    ]
}

fn unleash_context_seeds() -> Vec<Value> {
    vec![
        json!({"userId": "u-17", "sessionId": "s-1", "remoteAddress": "10.1.2.3",
               "environment": "production", "appName": "web", "properties":
               {"plan": "pro", "country": "IT", "n": 12, "v": "1.10.0", "org": "o"}}),
        json!({"currentTime": "2030-01-01T00:00:00Z", "properties": {"hostname": "Web-1"}}),
        json!({}),
    ]
}

fn unleash_seeds() -> Vec<Value> {
    fn constraint(name: &str, op: &str, value: &str) -> Value {
        json!({"contextName": name, "operator": op, "values": [value], "value": value})
    }
    let constraints = json!([
        constraint("country", "NOT_IN", "DE"),
        constraint("n", "NUM_EQ", "12"),
        constraint("v", "SEMVER_GT", "1.2.3"),
        constraint("userId", "REGEX", "^u-"),
        constraint("remoteAddress", "IN_CIDR", "10.0.0.0/8"),
        constraint("currentTime", "DATE_AFTER", "2024-01-01T00:00:00Z"),
    ]);
    let strategies = json!([
        {"name": "flexibleRollout", "constraints": constraints, "segments": [1],
         "parameters": {"rollout": "50", "stickiness": "default", "groupId": "g"}},
        {"name": "userWithId", "parameters": {"userIds": "a, b"}},
        {"name": "gradualRolloutSessionId", "parameters": {"percentage": 30, "groupId": "x"}},
        {"name": "remoteAddress", "parameters": {"IPs": "10.0.0.1, 192.168.0.0/16"}},
        {"name": "applicationHostname", "parameters": {"hostNames": "web-1"}},
        {"name": "__internal-strategy-group", "operator": "OR", "group": [
            {"name": "default"},
            {"name": "gradualRolloutRandom", "parameters": {"percentage": "5"}}]},
    ]);
    let variants = json!([
        {"name": "a", "weight": 500, "stickiness": "userId",
         "payload": {"type": "json", "value": "{\"x\":1}"},
         "overrides": [{"contextName": "userId", "values": ["vip"]}]},
        {"name": "on", "weight": 500},
    ]);
    vec![json!({
        "version": 2,
        "segments": [{"id": 1, "name": "pro", "constraints": [constraint("plan", "IN", "pro")]}],
        "features": [
            {"name": "parent", "enabled": true, "project": "p", "type": "release",
             "strategies": strategies, "variants": variants},
            {"name": "child", "enabled": true, "description": "depends",
             "dependencies": [{"feature": "parent", "variants": ["a"]},
                              {"feature": "gone", "enabled": false}],
             "strategies": [{"name": "default",
                             "variants": [{"name": "s", "weight": 1, "stickiness": "org"}]}]}
        ]
    })]
}

fn snapshot_seeds() -> Vec<Value> {
    let mut combined = json!({"environment": "production", "revision": 9,
        "flags": flag_seeds(), "segments": segment_seeds()});
    // The complex fixture's flag names no segment; the others' segments are all here.
    combined["flags"][0]["rules"][0]["when"]["segments"] = json!(["paying"]);
    vec![fixture("tests/fixtures/sync/snapshot.json"), combined]
}

// ---------------------------------------------------------------------------------
// The vocabulary of the mutations (switchyard_testkit::fuzz).

/// Field names of every document kind, `|`-separated.
const FIELDS: &str =
    "key|kind|variants|off_variant|rules|default|prerequisites|tags|expires|version|\
    description|enabled|id|when|serve|variant|rollout|split|weight|by|salt|hashing|\
    users|groups|segments|constraints|percentage|attribute|op|values|negate|\
    case_insensitive|flag|name|strategies|parameters|contextName|operator|value|\
    inverted|caseInsensitive|payload|type|stickiness|overrides|dependencies|features|\
    group|targetingKey|properties|userId|flags|on|off";

/// Strings that mean something somewhere: names, kinds, operators, operands good
/// and bad (an out-of-range CIDR, an impossible date, a lookaround, a huge regex).
const WORDS: &str =
    "on|off|low|v2|boolean|string|number|json|in|not_in|eq|matches|semver_gte|in_cidr|\
    before|exists|lt|switchyard|unleash|flagd|targetingKey|groups|userId|default|\
    flexibleRollout|userWithId|gradualRolloutUserId|remoteAddress|\
    __internal-strategy-group|AND|OR|IN|NOT_IN|NUM_EQ|SEMVER_GT|REGEX|IN_CIDR|\
    DATE_BEFORE|STR_CONTAINS|1.2.3|v1.2.3|10.0.0.0/33|::1/128|2026-01-01T00:00:00Z|\
    2027-02-30|(unclosed|(?=a)|a{1000}{1000}|50|100.5|-5|beta-testers|paying|parent|..|\
    a b|\u{202e}|\0|new-checkout";

/// Both, for [`mutants`].
const VOCABULARY: Vocabulary = Vocabulary {
    fields: FIELDS,
    words: WORDS,
};

fn mutants(seeds: Vec<Value>) -> impl Strategy<Value = Mutant> {
    fuzz::mutants(seeds, VOCABULARY)
}

// ---------------------------------------------------------------------------------
// What every document must do.

/// Parses a mutant as the HTTP APIs do. A refusal must say where: a field path, the
/// key written twice (one the mutation wrote twice), or a line and column.
fn parse<T: DeserializeOwned>(mutant: &Mutant) -> Result<Option<T>, TestCaseError> {
    let error = match json_body::parse::<T>(mutant.text.as_bytes()) {
        Ok(value) => {
            // Found by this test and fixed: an unknown field serde_json cannot read
            // (`1e400`, nesting past its limit) used to stop the duplicate-key pass,
            // so a document that ignores unknown fields kept a duplicate's last value.
            prop_assert!(
                mutant.duplicated.is_empty(),
                "a key written twice was accepted"
            );
            return Ok(Some(value));
        }
        Err(error) => error,
    };
    match &error {
        JsonBodyError::DuplicateKey(duplicate) => prop_assert!(
            mutant.duplicated.contains(&duplicate.key),
            "{error}: not a key written twice ({:?})",
            mutant.duplicated
        ),
        JsonBodyError::ShapeAt { path, .. } => {
            prop_assert!(!path.is_empty() && path != ".", "{error}: no path");
            if let Ok(document) = serde_json::from_str::<Value>(&mutant.text) {
                prop_assert!(located(&document, path), "{error}: no such place");
            }
        }
        JsonBodyError::Shape(inner) => {
            // At the top level there is no path: the document is not an object, or
            // the message names the field (`missing field `key``).
            let object = serde_json::from_str::<Value>(&mutant.text).is_ok_and(|v| v.is_object());
            prop_assert!(
                !object || inner.to_string().contains('`'),
                "{error}: names no field"
            );
        }
        JsonBodyError::Syntax(inner) => prop_assert!(inner.line() >= 1, "{error}: no line"),
        JsonBodyError::TooDeep { line, column } => {
            prop_assert!(*line >= 1 && *column >= 1, "{error}: no position");
        }
        other => prop_assert!(false, "an error this test does not know: {other}"),
    }
    // A key written twice is the error in a document that is otherwise JSON. In one
    // that is not (broken or too deep), the duplicate pass stops where the text
    // breaks (`duplicate_keys::find`) and the parser may report a shape error first.
    let json = serde_json::from_str::<Value>(&mutant.text).is_ok();
    if json && !mutant.duplicated.is_empty() {
        prop_assert!(
            matches!(error, JsonBodyError::DuplicateKey(_)),
            "{error}: the key written twice ({:?}) was not reported",
            mutant.duplicated
        );
    }
    Ok(None)
}

/// Every validation error's path leads to a place in the document.
fn check_paths(errors: &ValidationErrors, document: &Value) -> Result<(), TestCaseError> {
    prop_assert!(!errors.errors().is_empty(), "a rejection without errors");
    for error in errors.errors() {
        prop_assert!(
            !error.path.is_empty() && located(document, &error.path),
            "`{error}` names no place in {document}"
        );
    }
    Ok(())
}

/// Whether `path` (`rules[0].when.users`, `variants.on`) leads to a value of the
/// document or names a field missing from an object that is there (`values` left
/// out of a constraint that needs some). A list written as its one item (`"by":
/// "userId"`) is reported as the list it stands for (`by[0]`). A key with `.` or `[`
/// in it makes paths ambiguous; in such a document any path is taken as located.
fn located(document: &Value, path: &str) -> bool {
    fn ambiguous(value: &Value) -> bool {
        match value {
            Value::Object(fields) => fields
                .iter()
                .any(|(k, v)| k.contains(['.', '[', ']']) || ambiguous(v)),
            Value::Array(items) => items.iter().any(ambiguous),
            _ => false,
        }
    }
    let mut at = document;
    let mut steps = path.split('.').peekable();
    while let Some(step) = steps.next() {
        let (field, indices) = step.split_at(step.find('[').unwrap_or(step.len()));
        let last = steps.peek().is_none() && indices.is_empty();
        match at.get(field) {
            Some(value) => at = value,
            None if field.is_empty() => {}
            // KNOWN, reported: serde's derived structs also read an array, field by
            // field in declaration order (`["s", "", {}]` is a segment), so a path
            // may name a field of an object that was written as an array.
            None if at.is_array() => return true,
            None => return (last && at.is_object()) || ambiguous(document),
        }
        for index in indices.split('[').filter(|i| !i.is_empty()) {
            let index = index.trim_end_matches(']').parse::<usize>().ok();
            match index.and_then(|i| at.get(i)) {
                Some(value) => at = value,
                None if index == Some(0) && at.is_string() => {}
                None => return ambiguous(document),
            }
        }
    }
    true
}

/// Every error of a set names a flag or segment of the set: `flags[key]…`.
fn check_set_paths(
    errors: &ValidationErrors,
    flags: &[Flag],
    segments: &[Segment],
) -> Result<(), TestCaseError> {
    prop_assert!(!errors.errors().is_empty(), "a rejection without errors");
    for error in errors.errors() {
        let named = flags
            .iter()
            .any(|f| error.path.starts_with(&format!("flags[{}]", f.key)))
            || segments
                .iter()
                .any(|s| error.path.starts_with(&format!("segments[{}]", s.key)));
        prop_assert!(named, "`{error}` names no flag or segment of the set");
    }
    Ok(())
}

/// An accepted value re-encodes to JSON text that reads back equal.
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
) -> Result<(), TestCaseError> {
    let text = serde_json::to_string(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back = json_body::parse::<T>(text.as_bytes())
        .map_err(|e| TestCaseError::fail(format!("{e} reading back {text}")))?;
    // Exactly: floats too (serde_json's `float_roundtrip`, enabled after this test
    // found a last digit that changed).
    prop_assert_eq!(&back, value, "re-encoded as {}", text);
    Ok(())
}

/// Every flag of an accepted snapshot evaluates, serving one of its own variants.
fn check_evaluations(snapshot: &Snapshot, ctx: &Context) -> Result<(), TestCaseError> {
    for (key, evaluation) in evaluate_all(snapshot, ctx) {
        prop_assert_ne!(evaluation.reason, Reason::Error, "{} for {:?}", key, ctx);
        let flag = snapshot
            .flag(key)
            .expect("evaluate_all names snapshot flags");
        if let Some(variant) = evaluation.variant {
            prop_assert_eq!(flag.variants.get(variant), evaluation.value, "{}", key);
        }
        prop_assert_eq!(evaluate(snapshot, key, ctx), evaluation);
    }
    let missing = evaluate(snapshot, "\u{1}missing", ctx);
    prop_assert_eq!(missing.error, Some(ErrorCode::FlagNotFound));
    Ok(())
}

fn contexts() -> &'static [Context] {
    static CONTEXTS: OnceLock<Vec<Context>> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let mut contexts: Vec<Context> = context_seeds()
            .into_iter()
            .map(|c| serde_json::from_value(c).expect("seed contexts parse"))
            .collect();
        contexts.extend(
            unleash_context_seeds()
                .iter()
                .map(|c| unleash::context(c, now())),
        );
        contexts
    })
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_714_564_800, 0).expect("a valid instant")
}

/// The segments the flag seeds name.
fn segments() -> Vec<Segment> {
    segment_seeds()
        .into_iter()
        .map(|s| serde_json::from_value(s).expect("seed segments parse"))
        .collect()
}

/// Every flag seed and the Unleash seed's flags, for evaluating mutated contexts.
fn reference_snapshots() -> &'static [Snapshot] {
    static SNAPSHOTS: OnceLock<Vec<Snapshot>> = OnceLock::new();
    SNAPSHOTS.get_or_init(|| {
        let flags = flag_seeds()
            .into_iter()
            .map(|f| serde_json::from_value(f).expect("seed flags parse"));
        let native = Snapshot::compile(flags, segments()).expect("seed flags compile");
        let state = serde_json::from_value(unleash_seeds()[0].clone()).expect("seed state parses");
        let (flags, segments) = unleash::import(&state).expect("seed state imports");
        let imported = Snapshot::compile(flags, segments).expect("imported flags compile");
        vec![native, imported]
    })
}

// ---------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        // Minimal failing inputs are printed; nothing is written next to the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn flag_documents(mutant in mutants(flag_seeds())) {
        let Some(flag) = parse::<Flag>(&mutant)? else { return Ok(()) };
        let document: Value = serde_json::from_str(&mutant.text).expect("parsed once");
        if let Err(errors) = validate_flag(&flag) {
            return check_paths(&errors, &document);
        }
        round_trips(&flag)?;
        match Snapshot::compile(vec![flag.clone()], segments()) {
            Ok(snapshot) => {
                contexts().iter().try_for_each(|ctx| check_evaluations(&snapshot, ctx))?;
            }
            // A valid flag may name a segment that is not in the set.
            Err(errors) => {
                check_set_paths(&errors, &[flag], &segments())?;
                let unknown = |e: &ValidationError| matches!(e.problem, Problem::UnknownSegment(_));
                prop_assert!(errors.errors().iter().all(unknown), "{}", errors);
            }
        }
    }

    #[test]
    fn segment_documents(mutant in mutants(segment_seeds())) {
        let Some(segment) = parse::<Segment>(&mutant)? else { return Ok(()) };
        let document: Value = serde_json::from_str(&mutant.text).expect("parsed once");
        if let Err(errors) = validate_segment(&segment) {
            return check_paths(&errors, &document);
        }
        round_trips(&segment)?;
        let probe: Flag = serde_json::from_value(json!({
            "key": "probe", "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": "off"},
            "rules": [{"id": "r", "when": {"segments": [segment.key]}, "serve": {"variant": "on"}}]
        })).expect("the probe parses");
        let snapshot = Snapshot::compile(vec![probe], vec![segment])
            .map_err(|e| TestCaseError::fail(format!("a valid segment does not compile: {e}")))?;
        contexts().iter().try_for_each(|ctx| check_evaluations(&snapshot, ctx))?;
    }

    #[test]
    fn context_documents(mutant in mutants(context_seeds())) {
        // The same text, read as an Unleash context too: that reading is total.
        if let Ok(value) = serde_json::from_str::<Value>(&mutant.text) {
            let ctx = unleash::context(&value, now());
            for snapshot in reference_snapshots() {
                check_evaluations(snapshot, &ctx)?;
                for (key, _) in evaluate_all(snapshot, &ctx) {
                    let _ = unleash::verdict(&evaluate(snapshot, key, &ctx));
                }
            }
        }
        let Some(ctx) = parse::<Context>(&mutant)? else { return Ok(()) };
        round_trips(&ctx)?;
        reference_snapshots().iter().try_for_each(|snapshot| check_evaluations(snapshot, &ctx))?;
    }

    #[test]
    fn unleash_documents(mutant in mutants(unleash_seeds())) {
        let Some(state) = parse::<UnleashState>(&mutant)? else { return Ok(()) };
        round_trips(&state)?;
        let (flags, segments) = match unleash::import(&state) {
            Ok(imported) => imported,
            Err(error) => return check_import_error(&error, &state),
        };
        for flag in &flags {
            round_trips(flag)?;
            // What is imported is what the admin API accepts as a new write (as the
            // conformance suite checks on Unleash's own states).
            validate_flag(flag).map_err(|e| TestCaseError::fail(format!("{}: {e}", flag.key)))?;
        }
        let snapshot = Snapshot::compile(flags, segments)
            .map_err(|e| TestCaseError::fail(format!("imported flags do not compile: {e}")))?;
        for ctx in unleash_context_seeds() {
            let ctx = unleash::context(&ctx, now());
            check_evaluations(&snapshot, &ctx)?;
            for (key, evaluation) in evaluate_all(&snapshot, &ctx) {
                let verdict = unleash::verdict(&evaluation);
                prop_assert!(!verdict.variant.enabled || verdict.enabled, "{}: variant, off", key);
            }
        }
    }

    #[test]
    fn snapshot_documents(mutant in mutants(snapshot_seeds())) {
        let Some(document) = parse::<SnapshotDocument>(&mutant)? else { return Ok(()) };
        round_trips(&document)?;
        let SnapshotDocument { flags, segments, .. } = document;
        match Snapshot::compile(flags.clone(), segments.clone()) {
            Ok(snapshot) => {
                prop_assert!(snapshot.flags().eq(flags.iter()));
                contexts().iter().try_for_each(|ctx| check_evaluations(&snapshot, ctx))?;
            }
            Err(errors) => check_set_paths(&errors, &flags, &segments)?,
        }
    }
}

/// Every import error names the feature, segment or flag path it is about.
fn check_import_error(error: &ImportError, state: &UnleashState) -> Result<(), TestCaseError> {
    let feature = |name: &str| state.features.iter().any(|f| f.name == name);
    match error {
        ImportError::DuplicateFeature(name)
        | ImportError::Unsupported { feature: name, .. }
        | ImportError::InvalidName { feature: name, .. } => {
            prop_assert!(feature(name), "{error}: names no feature of the state");
        }
        ImportError::DuplicateSegment(id) => {
            prop_assert!(
                state.segments.iter().filter(|s| s.id == *id).count() > 1,
                "{error}"
            );
        }
        ImportError::Rejected(errors) => {
            for e in errors.errors() {
                let named = state
                    .features
                    .iter()
                    .any(|f| e.path.starts_with(&format!("flags[{}]", f.name)));
                prop_assert!(named, "`{e}` names no feature of the state");
            }
        }
        other => prop_assert!(false, "an import error this test does not know: {other}"),
    }
    Ok(())
}

/// The fuzzing starts from valid documents: every seed is accepted as it is.
#[test]
fn every_seed_is_accepted() {
    for flag in flag_seeds() {
        let flag: Flag = serde_json::from_value(flag).expect("parses");
        validate_flag(&flag).unwrap_or_else(|e| panic!("{}: {e}", flag.key));
    }
    for segment in segments() {
        validate_segment(&segment).unwrap_or_else(|e| panic!("{}: {e}", segment.key));
    }
    for document in snapshot_seeds() {
        let document: SnapshotDocument = serde_json::from_value(document).expect("parses");
        Snapshot::compile(document.flags, document.segments).expect("compiles");
    }
    assert_eq!(contexts().len(), 6);
    assert_eq!(reference_snapshots().len(), 2);
}
