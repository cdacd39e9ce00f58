//! Switchyard's core engine against Unleash's (`unleash-yggdrasil`, the engine inside
//! Unleash Edge and the Unleash SDKs built on it), in one criterion binary, on one flag
//! set: `benches/fixtures/unleash-features.json`, an Unleash client-API state
//! (`GET /api/client/features`) of 20 toggles. Results go to docs/PERFORMANCE.md.
//!
//! Run: `cargo bench -p switchyard-benches --bench versus_unleash`
//!
//! Each case is a criterion group with the functions `switchyard` and `yggdrasil`, so
//! the report reads `case/switchyard` against `case/yggdrasil`. Before measuring, the
//! setup checks that both engines give the same `isEnabled`, variant name, variant
//! `enabled` and payload for every toggle and for a name that is not in the file, and
//! panics otherwise: a comparison of engines that disagree would mean nothing.
//!
//! # The calls compared
//!
//! - Ours: the file parsed as [`unleash::UnleashState`], [`unleash::import`]ed and
//!   [`Snapshot::compile`]d; the context built by [`unleash::context`]; then
//!   [`evaluate`] (pure, counts nothing) read through [`unleash::verdict`], which gives
//!   both `isEnabled` and the variant from the one evaluation.
//! - Peer: the same file parsed as yggdrasil's `ClientFeatures` and loaded with
//!   `EngineState::apply_client_features`; its `Context` deserialised from the same
//!   JSON; then `EngineState::is_enabled(name, &ctx, &None)` for the enabled cases and
//!   `EngineState::get_variant(name, &ctx, &None)` for the variant case. Neither
//!   counts metrics (yggdrasil counts only through the separate `count_toggle` /
//!   `count_variant`, which are not called); `is_enabled` is what yggdrasil's own
//!   benchmark measures, and is `check_enabled` plus building its `EnrichedContext`.
//!   `get_variant` returns an owned variant (name and payload cloned) by design.
//! - `bulk_20`: ours is [`evaluate_all`] with a verdict per flag (lazy, borrowed);
//!   the peer's own bulk call is `EngineState::resolve_all(&ctx, &None)`, which
//!   returns a `HashMap` of owned results (enabled and variant per toggle).
//! - `compile_20`: ours compiles the imported flags (cloned outside the timing);
//!   the peer builds a fresh `EngineState` and ingests the parsed `ClientFeatures`
//!   (cloned outside the timing). `import_and_compile_20` adds our import step
//!   (Unleash state → native flags); the peer's side is the same as in `compile_20`,
//!   since it has no separate import. Results are dropped outside the timing.
//! - `complex_fresh_context`: the complex toggle for a context seen once. Ours builds
//!   the context from the JSON each iteration (and so parses its typed views during
//!   the evaluation); the peer clones its context each iteration (it keeps no parsed
//!   state in the context: it parses every compared value on every call anyway).
//!
//! The context carries `currentTime`, so both engines compare the same instant and
//! neither reads the clock.
//!
//! The fixture is also loaded into our server and into Unleash Edge for the HTTP
//! comparison, so it uses only operators that Edge 20.1's engine (yggdrasil 0.18)
//! knows too: no `SEMVER_GTE`/`SEMVER_LTE`, `REGEX` or `IN_CIDR`, which it would
//! reject, serving the toggle as off.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BatchSize, Bencher, Criterion};
use serde_json::Value;
use switchyard_benches::fixtures::{self, UNLEASH_FEATURES, UNLEASH_STARTED};
use switchyard_core::unleash;
use switchyard_core::{evaluate, evaluate_all, Context, Snapshot};
use unleash_yggdrasil::{ClientFeatures, Context as UnleashContext, EngineState};

/// A name that is not in the fixture.
const UNKNOWN: &str = "no_such_flag";

/// (case, toggle) for the single-call `isEnabled` cases.
const ENABLED_CASES: [(&str, &str); 6] = [
    ("complex_3_rules_10_constraints", "complex"),
    ("rollout_50", "rollout_50"),
    (
        "rollout_behind_3_constraints",
        "rollout_behind_3_constraints",
    ),
    ("segment_rollout", "segment_rollout"),
    ("disabled", "disabled"),
    ("unknown", UNKNOWN),
];

/// What an engine answered for one toggle, in Unleash's terms.
#[derive(Debug, PartialEq)]
struct Answer {
    enabled: bool,
    variant: String,
    variant_enabled: bool,
    payload: Option<(String, String)>,
}

fn ours(snapshot: &Snapshot, name: &str, ctx: &Context) -> Answer {
    let verdict = unleash::verdict(&evaluate(snapshot, name, ctx));
    let payload = verdict.variant.payload.map(|p| {
        let field = |f: &str| p.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
        (field("type"), field("value"))
    });
    Answer {
        enabled: verdict.enabled,
        variant: verdict.variant.name.to_owned(),
        variant_enabled: verdict.variant.enabled,
        payload,
    }
}

fn peer(engine: &EngineState, name: &str, ctx: &UnleashContext) -> Answer {
    let variant = engine.get_variant(name, ctx, &None);
    let enabled = engine.is_enabled(name, ctx, &None);
    assert_eq!(
        enabled, variant.feature_enabled,
        "yggdrasil: is_enabled and get_variant disagree on `{name}`"
    );
    Answer {
        enabled,
        variant: variant.name,
        variant_enabled: variant.enabled,
        payload: variant.payload.map(|p| (p.payload_type, p.value)),
    }
}

/// Panics unless both engines answer the same for every toggle, the unknown name,
/// and in bulk.
fn assert_agreement(
    names: &[&str],
    snapshot: &Snapshot,
    ctx: &Context,
    engine: &EngineState,
    peer_ctx: &UnleashContext,
) {
    for &name in names.iter().chain(&[UNKNOWN]) {
        let (a, b) = (ours(snapshot, name, ctx), peer(engine, name, peer_ctx));
        assert_eq!(
            a, b,
            "the engines disagree on `{name}` (left: switchyard, right: yggdrasil); \
             the comparison is meaningless until they agree"
        );
        eprintln!(
            "versus_unleash: {name:<30} enabled={:<5} variant={}",
            a.enabled, a.variant
        );
    }
    let bulk = engine
        .resolve_all(peer_ctx, &None)
        .expect("yggdrasil has a state");
    assert_eq!(
        bulk.len(),
        names.len(),
        "yggdrasil resolve_all: toggle count"
    );
    let mut seen = 0;
    for (key, evaluation) in evaluate_all(snapshot, ctx) {
        let verdict = unleash::verdict(&evaluation);
        let theirs = &bulk[key];
        assert_eq!(
            (verdict.enabled, verdict.variant.name),
            (theirs.enabled, theirs.variant.name.as_str()),
            "bulk: the engines disagree on `{key}` (left: switchyard, right: yggdrasil)"
        );
        seen += 1;
    }
    assert_eq!(seen, names.len(), "switchyard evaluate_all: flag count");
}

/// One criterion group per case, `switchyard` then `yggdrasil`.
fn compare(
    c: &mut Criterion,
    case: &str,
    switchyard: impl FnMut(&mut Bencher<'_, WallTime>),
    yggdrasil: impl FnMut(&mut Bencher<'_, WallTime>),
) {
    let mut group = c.benchmark_group(case);
    group.bench_function("switchyard", switchyard);
    group.bench_function("yggdrasil", yggdrasil);
    group.finish();
}

fn bench(c: &mut Criterion) {
    let started = UNLEASH_STARTED.parse().expect("valid instant");

    // Ours.
    let fixtures::Unleash {
        state,
        flags,
        segments,
        snapshot,
        json_context: json_ctx,
        context: ctx,
    } = fixtures::unleash();
    let names: Vec<&str> = state.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names.len(), 20, "the fixture holds 20 toggles");

    // The peer.
    let features: ClientFeatures =
        serde_json::from_str(UNLEASH_FEATURES).expect("fixture parses (yggdrasil)");
    let engine = EngineState::initial_state(started);
    if let Some(warnings) = engine.apply_client_features(features.clone()) {
        panic!("yggdrasil could not compile the fixture: {warnings:?}");
    }
    let peer_ctx: UnleashContext =
        serde_json::from_value(json_ctx.clone()).expect("context parses (yggdrasil)");

    assert_agreement(&names, &snapshot, &ctx, &engine, &peer_ctx);

    for (case, name) in ENABLED_CASES {
        compare(
            c,
            case,
            |b| {
                b.iter(|| {
                    unleash::verdict(&evaluate(
                        black_box(&snapshot),
                        black_box(name),
                        black_box(&ctx),
                    ))
                    .enabled
                })
            },
            |b| b.iter(|| engine.is_enabled(black_box(name), black_box(&peer_ctx), &None)),
        );
    }

    compare(
        c,
        "variants_3",
        |b| {
            b.iter(|| {
                let verdict = unleash::verdict(&evaluate(
                    black_box(&snapshot),
                    black_box("variants_3"),
                    black_box(&ctx),
                ));
                black_box(verdict.variant);
                verdict.enabled
            })
        },
        |b| b.iter(|| engine.get_variant(black_box("variants_3"), black_box(&peer_ctx), &None)),
    );

    compare(
        c,
        "bulk_20",
        |b| {
            b.iter(|| {
                for (key, evaluation) in evaluate_all(black_box(&snapshot), black_box(&ctx)) {
                    black_box((key, unleash::verdict(&evaluation)));
                }
            })
        },
        |b| b.iter(|| engine.resolve_all(black_box(&peer_ctx), &None)),
    );

    let fresh_engine = |features: ClientFeatures| {
        let engine = EngineState::initial_state(started);
        engine.apply_client_features(features);
        engine
    };
    compare(
        c,
        "compile_20",
        |b| {
            b.iter_batched(
                || (flags.clone(), segments.clone()),
                |(flags, segments)| Snapshot::compile(flags, segments).expect("compiles"),
                BatchSize::SmallInput,
            )
        },
        |b| {
            b.iter_batched(
                || features.clone(),
                |features| fresh_engine(black_box(features)),
                BatchSize::SmallInput,
            )
        },
    );
    compare(
        c,
        "import_and_compile_20",
        |b| {
            b.iter_batched(
                || &state,
                |state| {
                    let (flags, segments) = unleash::import(black_box(state)).expect("imports");
                    Snapshot::compile(flags, segments).expect("compiles")
                },
                BatchSize::SmallInput,
            )
        },
        |b| {
            b.iter_batched(
                || features.clone(),
                |features| fresh_engine(black_box(features)),
                BatchSize::SmallInput,
            )
        },
    );

    compare(
        c,
        "complex_fresh_context",
        |b| {
            b.iter(|| {
                let fresh = unleash::context(black_box(&json_ctx), started);
                unleash::verdict(&evaluate(black_box(&snapshot), "complex", &fresh)).enabled
            })
        },
        |b| {
            b.iter(|| {
                let fresh = black_box(&peer_ctx).clone();
                engine.is_enabled("complex", &fresh, &None)
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
