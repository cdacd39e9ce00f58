//! What a one-flag write costs at 10 000 flags (issue 26, "writes cost what
//! changed"): compiling the whole environment (what every write did before) against
//! compiling the change alone (`Snapshot::with_writes`, what a write does now), for a
//! rewrite and for a new flag, and writing the environment's document from the flags'
//! stored JSON.
//!
//! Run: `cargo bench -p switchyard-benches --bench writes`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use switchyard_core::model::{EnvName, FlagKey};
use switchyard_core::sync::SnapshotDocumentRef;
use switchyard_core::{Flag, Snapshot};

const FLAGS: usize = 10_000;

/// The propagation bench's template: a `groups` rule and an `in` constraint serving a
/// 25/75 rollout.
fn flag(key: &str, enabled: bool) -> Flag {
    serde_json::from_value(json!({
        "key": key, "kind": "boolean", "enabled": enabled,
        "variants": {"on": true, "off": false}, "off_variant": "off",
        "rules": [
            {"id": "staff", "when": {"groups": ["staff"]}, "serve": {"variant": "on"}},
            {"id": "eu", "when": {"constraints": [
                {"attribute": "country", "op": "in", "values": ["IT", "DE", "FR"]}]},
             "serve": {"rollout": {"split": [{"variant": "on", "weight": 25_000},
                                             {"variant": "off", "weight": 75_000}]}}}],
        "default": {"variant": "off"}
    }))
    .expect("flag")
}

fn writes(c: &mut Criterion) {
    let flags: Vec<Flag> = (0..FLAGS)
        .map(|n| flag(&format!("flag-{n:05}"), true))
        .collect();
    let snapshot = Snapshot::compile(flags.clone(), vec![]).expect("compiles");
    let killed = flag("flag-05000", false);
    let added = flag("flag-05000-new", true);
    let mut group = c.benchmark_group("write_at_10000_flags");
    group.sample_size(20);
    group.bench_function("whole_compile", |b| {
        b.iter(|| Snapshot::compile(black_box(flags.clone()), vec![]).expect("compiles"))
    });
    group.bench_function("with_writes_rewrite", |b| {
        b.iter(|| {
            snapshot
                .with_writes([(&killed.key, Some(black_box(&killed)))], [])
                .expect("compiles")
        })
    });
    group.bench_function("with_writes_create", |b| {
        b.iter(|| {
            snapshot
                .with_writes([(&added.key, Some(black_box(&added)))], [])
                .expect("compiles")
        })
    });
    let gone = FlagKey::new("flag-05000");
    group.bench_function("with_writes_delete", |b| {
        b.iter(|| {
            snapshot
                .with_writes([(black_box(&gone), None)], [])
                .expect("compiles")
        })
    });
    let env = EnvName::new("bench");
    group.bench_function("document", |b| {
        b.iter(|| serde_json::to_vec(&SnapshotDocumentRef::new(&env, 2, black_box(&snapshot))))
    });
    group.finish();
}

criterion_group!(benches, writes);
criterion_main!(benches);
