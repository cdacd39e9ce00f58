//! Core evaluation benchmarks (the performance goals in docs/concepts.md: the 3-rule,
//! 10-constraint flag must evaluate in a median of at most 100 ns). Results go to
//! docs/PERFORMANCE.md.
//!
//! Run: `cargo bench -p switchyard-benches --bench evaluation`; instruction counts of
//! the same cases: `benches/load/instructions.sh`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use switchyard_benches::fixtures::{self, boolean};
use switchyard_core::{evaluate, evaluate_all, Flag, Snapshot};

fn bench(c: &mut Criterion) {
    let fixtures::Core {
        snapshot,
        context: ctx,
    } = fixtures::core();

    let mut group = c.benchmark_group("evaluate");
    group.bench_function("simple", |b| {
        b.iter(|| evaluate(black_box(&snapshot), black_box("simple"), black_box(&ctx)).reason)
    });
    group.bench_function("rollout", |b| {
        b.iter(|| evaluate(black_box(&snapshot), black_box("rollout"), black_box(&ctx)).reason)
    });
    group.bench_function("complex_3_rules_10_constraints", |b| {
        b.iter(|| {
            evaluate(
                black_box(&snapshot),
                black_box("checkout-v3"),
                black_box(&ctx),
            )
            .reason
        })
    });
    // The same, for a context evaluated for the first time: its string attributes'
    // typed views (number, semver, IP, instant) are parsed during the evaluation.
    group.bench_function("complex_3_rules_10_constraints_fresh_context", |b| {
        b.iter_batched_ref(
            || ctx.clone(),
            |fresh| evaluate(black_box(&snapshot), black_box("checkout-v3"), fresh).reason,
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // Bulk: 100 flags of mixed shapes (a third each simple, rollout, complex).
    let template = snapshot.flag("checkout-v3").expect("fixture flag").clone();
    let bulk: Vec<Flag> = (0..100)
        .map(|i| match i % 3 {
            0 => boolean(&format!("simple-{i}"), json!({"variant": "on"})),
            1 => boolean(
                &format!("rollout-{i}"),
                json!({"rollout": {"split": [{"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]}}),
            ),
            _ => Flag {
                key: format!("complex-{i}").as_str().into(),
                ..template.clone()
            },
        })
        .collect();
    let bulk = Snapshot::compile(bulk, vec![]).expect("compiles");
    c.bench_function("evaluate_all/100_flags", |b| {
        b.iter(|| {
            evaluate_all(black_box(&bulk), black_box(&ctx))
                .filter(|(_, e)| e.variant.is_some())
                .count()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
