//! The core evaluation fixture the criterion benchmark (`benches/evaluation.rs`) and
//! the instruction counter (`benches/instructions.rs`) share: the 3-rule,
//! 10-constraint flag of `crates/core/testdata/complex-flag.json` with its context,
//! next to a static flag, a 25/75 rollout and a killed flag.

use serde_json::json;
use switchyard_core::{Context, Flag, Snapshot};

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
