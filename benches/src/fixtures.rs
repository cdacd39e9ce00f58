//! The fixtures the benchmarks share. The core one (`benches/evaluation.rs` and the
//! instruction counter, `benches/instructions.rs`): the 3-rule, 10-constraint flag of
//! `crates/core/testdata/complex-flag.json` with its context, next to a static flag, a
//! 25/75 rollout and a killed flag. The Unleash one (`benches/versus_unleash.rs` and
//! the instruction counter): `benches/fixtures/unleash-features.json` imported, and its
//! bench user.

use serde_json::json;
use switchyard_core::unleash::{self, UnleashState};
use switchyard_core::{Context, Flag, Segment, Snapshot};

/// A compiled snapshot and the context the cases evaluate for.
pub struct Core {
    /// `checkout-v3` (the complex flag), `simple`, `rollout` and `disabled`.
    pub snapshot: Snapshot,
    /// The fixture's context: 12 attributes, all of which the complex flag reads.
    pub context: Context,
}

/// A flag from its JSON form.
pub fn flag(value: serde_json::Value) -> Flag {
    serde_json::from_value(value).expect("bench flag parses")
}

/// A boolean flag serving `default`.
pub fn boolean(key: &str, default: serde_json::Value) -> Flag {
    flag(json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "default": default
    }))
}

/// The fixture.
pub fn core() -> Core {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/core/testdata/complex-flag.json"
    )))
    .expect("fixture parses");
    let mut flags: Vec<Flag> = serde_json::from_value(fixture["flags"].clone()).expect("flags");
    let context: Context = serde_json::from_value(fixture["context"].clone()).expect("context");
    flags.push(boolean("simple", json!({"variant": "on"})));
    flags.push(boolean(
        "rollout",
        json!({"rollout": {"split": [{"variant": "on", "weight": 25000}, {"variant": "off", "weight": 75000}]}}),
    ));
    let mut disabled = boolean("disabled", json!({"variant": "on"}));
    disabled.enabled = false;
    flags.push(disabled);
    Core {
        snapshot: Snapshot::compile(flags, vec![]).expect("compiles"),
        context,
    }
}

/// `versus_unleash`'s flag set: an Unleash client-API state of 20 toggles.
pub const UNLEASH_FEATURES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/unleash-features.json"
));

/// When the engines were "started"; the context's own `currentTime` is what the date
/// constraints compare.
pub const UNLEASH_STARTED: &str = "2026-11-22T12:00:00Z";

/// [`UNLEASH_FEATURES`] as ours reads it, and the bench user.
pub struct Unleash {
    /// The parsed state.
    pub state: UnleashState,
    /// The state imported as native flags and segments.
    pub flags: Vec<Flag>,
    /// The imported segments.
    pub segments: Vec<Segment>,
    /// `flags` and `segments` compiled.
    pub snapshot: Snapshot,
    /// The bench user in Unleash's context format: everything the constraints read.
    pub json_context: serde_json::Value,
    /// `json_context` as a native context, at [`UNLEASH_STARTED`].
    pub context: Context,
}

/// The Unleash fixture, imported and compiled (`versus_unleash`, and the
/// `unleash-complex` case of `instructions`).
pub fn unleash() -> Unleash {
    let state: UnleashState = serde_json::from_str(UNLEASH_FEATURES).expect("fixture parses");
    let (flags, segments) = unleash::import(&state).expect("fixture imports");
    let snapshot = Snapshot::compile(flags.clone(), segments.clone()).expect("compiles");
    let json_context: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/unleash-context.json"
    )))
    .expect("the bench context parses");
    let started = UNLEASH_STARTED.parse().expect("valid instant");
    let context = unleash::context(&json_context, started);
    Unleash {
        state,
        flags,
        segments,
        snapshot,
        json_context,
        context,
    }
}
