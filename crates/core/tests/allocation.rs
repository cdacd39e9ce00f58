//! Evaluating a compiled flag allocates nothing: a counting global allocator
//! watches this thread while the 3-rule, 10-constraint, rollout fixture (the same
//! one the benchmarks use) is evaluated, and for a missing flag and a killed one.

use switchyard_core::{evaluate, Context, Flag, Reason, Snapshot};
use switchyard_testkit::allocations::{allocations_during, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn evaluating_a_compiled_flag_allocates_nothing() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/complex-flag.json"
    )))
    .expect("fixture parses");
    let mut flags: Vec<Flag> = serde_json::from_value(fixture["flags"].clone()).expect("flags");
    let mut killed = flags[0].clone();
    killed.key = "killed".into();
    killed.enabled = false;
    flags.push(killed);
    let snapshot = Snapshot::compile(flags, vec![]).expect("compiles");
    let ctx: Context = serde_json::from_value(fixture["context"].clone()).expect("context");

    // Warm-up: the regex engine builds its per-thread cache on first use.
    let warm = evaluate(&snapshot, "checkout-v3", &ctx);
    assert_eq!(
        (warm.reason, warm.rule_id),
        (Reason::Split, Some("eu-ramp")),
        "the fixture reaches the rollout"
    );

    let mut reasons = Vec::with_capacity(3000);
    let n = allocations_during(|| {
        for i in 0..1000 {
            reasons.push(evaluate(&snapshot, "checkout-v3", &ctx).reason);
            reasons.push(evaluate(&snapshot, "killed", &ctx).reason);
            reasons.push(
                evaluate(&snapshot, if i % 2 == 0 { "missing" } else { "gone" }, &ctx).reason,
            );
        }
    });
    assert_eq!(n, 0, "allocations during 3000 evaluations");
    assert!(reasons.contains(&Reason::Disabled) && reasons.contains(&Reason::Error));

    // The counter works: a control allocation is seen.
    let control = allocations_during(|| drop(std::hint::black_box(vec![1_u8; 16])));
    assert_eq!(control, 1);
}
