//! The Unleash client specification, run against imported flags: every `tests` case
//! (`isEnabled`) and every `variantTests` case (`getVariant`) of every client-API
//! state in the spec directory must agree with Unleash.
//!
//! The directory is `$SWITCHYARD_UNLEASH_SPEC_DIR`, by default the repository's
//! `../shared/conformance/unleash-client-spec`. Files without a client-API `state`
//! (the index, package files, delta-API files) are skipped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;
use switchyard_core::unleash::{self, UnleashState};
use switchyard_core::{evaluate, validate_flag, Snapshot};

fn spec_dir() -> PathBuf {
    std::env::var_os("SWITCHYARD_UNLEASH_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/conformance/unleash-client-spec"
            ))
        })
}

/// A client-API state has a `features` list; delta-API files have `events` or
/// `deltas` instead.
fn client_api_state(file: &Value) -> Option<&Value> {
    let state = file.get("state")?;
    let is_delta = state.get("events").is_some() || state.get("deltas").is_some();
    (state.get("features").is_some_and(Value::is_array) && !is_delta).then_some(state)
}

#[derive(Default)]
struct Run {
    files: usize,
    tests: usize,
    variant_tests: usize,
    failures: Vec<String>,
}

impl Run {
    fn fail(
        &mut self,
        file: &str,
        description: &str,
        expected: &dyn std::fmt::Display,
        got: &dyn std::fmt::Display,
    ) {
        self.failures.push(format!(
            "{file}: {description}\n    expected: {expected}\n    got:      {got}"
        ));
    }

    fn file(&mut self, path: &Path, now: DateTime<Utc>) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return self.fail(&name, "reading the file", &"its text", &e),
        };
        let file: Value = match serde_json::from_str(&text) {
            Ok(file) => file,
            Err(e) => return self.fail(&name, "parsing the file", &"JSON", &e),
        };
        let Some(state) = client_api_state(&file) else {
            return;
        };
        self.files += 1;
        let state: UnleashState = match serde_json::from_value(state.clone()) {
            Ok(state) => state,
            Err(e) => return self.fail(&name, "parsing the state", &"an Unleash state", &e),
        };
        let (flags, segments) = match unleash::import(&state) {
            Ok(imported) => imported,
            Err(e) => return self.fail(&name, "importing the state", &"flags", &e),
        };
        // What is imported is what the admin API accepts as a new write.
        for flag in &flags {
            if let Err(e) = validate_flag(flag) {
                self.fail(
                    &name,
                    "validating an imported flag as a write",
                    &"valid",
                    &e,
                );
            }
        }
        let snapshot = match Snapshot::compile(flags, segments) {
            Ok(snapshot) => snapshot,
            Err(e) => return self.fail(&name, "compiling the imported flags", &"a snapshot", &e),
        };

        let cases = |key: &str| {
            file.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for case in cases("tests") {
            self.tests += 1;
            let (description, toggle, context) = parts(&case);
            let ctx = unleash::context(context, now);
            let got = unleash::verdict(&evaluate(&snapshot, toggle, &ctx)).enabled;
            let expected = &case["expectedResult"];
            if expected.as_bool() != Some(got) {
                self.fail(&name, description, expected, &got);
            }
        }
        for case in cases("variantTests") {
            self.variant_tests += 1;
            let (description, toggle, context) = parts(&case);
            let ctx = unleash::context(context, now);
            let got = unleash::verdict(&evaluate(&snapshot, toggle, &ctx)).variant;
            let expected = &case["expectedResult"];
            // Field by field, as the specification defines getVariant's result:
            // name, enabled, payload (absent when there is none) and, where the
            // case gives it, feature_enabled.
            let agrees = expected["name"].as_str() == Some(got.name)
                && expected["enabled"].as_bool() == Some(got.enabled)
                && expected.get("payload") == got.payload
                && expected
                    .get("feature_enabled")
                    .is_none_or(|f| f.as_bool() == Some(got.feature_enabled));
            if !agrees {
                let got = serde_json::to_string(&got).unwrap_or_default();
                self.fail(&name, description, expected, &got);
            }
        }
    }
}

fn parts(case: &Value) -> (&str, &str, &Value) {
    (
        case["description"].as_str().unwrap_or("(no description)"),
        case["toggleName"].as_str().unwrap_or_default(),
        &case["context"],
    )
}

#[test]
fn unleash_client_specification() {
    let dir = spec_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the Unleash client specification directory {} cannot be read ({e}); \
             set SWITCHYARD_UNLEASH_SPEC_DIR",
            dir.display()
        )
    });
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();

    // Unleash clients use their clock when the context has no currentTime.
    let now = DateTime::<Utc>::from(std::time::SystemTime::now());
    let mut run = Run::default();
    for path in &paths {
        run.file(path, now);
    }

    let cases = run.tests + run.variant_tests;
    assert!(
        cases > 0,
        "no Unleash specification cases found in {}",
        dir.display()
    );
    if !run.failures.is_empty() {
        let mut report = format!(
            "{} of {cases} Unleash specification cases failed:\n",
            run.failures.len()
        );
        for failure in &run.failures {
            let _ = writeln!(report, "- {failure}");
        }
        panic!("{report}");
    }
    println!(
        "unleash conformance: {cases} cases passed ({} tests, {} variant tests) from {} files",
        run.tests, run.variant_tests, run.files
    );
}
