//! SDK hot path: `Client::is_enabled` on the 3-rule / 10-constraint flag while a
//! second thread evaluates too and updates stream in from a real (in-process) server
//! over SSE (another flag is killed and revived continuously, so the client swaps
//! snapshots throughout). Criterion gives the median; a second pass times single
//! calls to report the p99 (timer overhead measured and subtracted). Two more cases
//! cycle through 65 536 contexts: copies of one (the same unit each call), and the same
//! context under 65 536 targeting keys, so each call records a unit the guard has not
//! seen since the last flush (docs/guard.md); the difference is the cost of recording
//! units on the hot path.
//!
//! Run: `cargo bench -p switchyard-benches --bench sdk`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use switchyard_benches::percentiles::nearest_rank;
use switchyard_sdk::admin::{AdminClient, TokenKind};
use switchyard_sdk::{Client, Context};
use switchyard_testkit::in_process::{self, TestServer, ADMIN};

struct Setup {
    client: Client,
    ctx: Context,
    /// The same context under 65 536 different targeting keys.
    units: Vec<Context>,
    /// 65 536 copies of the context (the same targeting key): the control for
    /// `units`, with the same memory traffic and no new unit.
    copies: Vec<Context>,
    updates: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Runs until dropped (before the runtime: fields drop in order).
    _server: TestServer,
    _runtime: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let fixture: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/core/testdata/complex-flag.json"
    )))
    .expect("fixture");
    let ctx: Context = serde_json::from_value(fixture["context"].clone()).expect("context");
    let units = (0..65_536)
        .map(|i| {
            let mut context = fixture["context"].clone();
            context["targetingKey"] = json!(format!("user-{i}"));
            serde_json::from_value(context).expect("context")
        })
        .collect();
    let copies = vec![ctx.clone(); 65_536];
    let (server, client, admin) = runtime.block_on(async {
        let server = in_process::start().await;
        let base = server.base.clone();
        let admin = AdminClient::new(&base, ADMIN).expect("admin");
        admin.create_env("bench").await.expect("env");
        let complex = serde_json::from_value(fixture["flags"][0].clone()).expect("flag");
        admin.put_flag("bench", &complex, None).await.expect("flag");
        let toggle = serde_json::from_value(json!({
            "key": "toggle", "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": "on"}
        }))
        .expect("toggle");
        admin
            .put_flag("bench", &toggle, None)
            .await
            .expect("toggle");
        let token = admin
            .create_token("bench-sdk", TokenKind::Sdk, Some("bench"))
            .await
            .expect("token");
        let client = Client::builder(&base, token.token)
            .build()
            .await
            .expect("client");
        (server, client, admin)
    });
    assert!(
        client.kind("checkout-v3").is_some(),
        "the client has the complex flag"
    );
    let updates = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (updates, stop) = (Arc::clone(&updates), Arc::clone(&stop));
        let seen = client.clone();
        seen.on_change(move |_| {
            updates.fetch_add(1, Ordering::Relaxed);
        });
        runtime.spawn(async move {
            let mut on = true;
            while !stop.load(Ordering::Relaxed) {
                let result = if on {
                    admin.kill("bench", "toggle", "bench").await.map(drop)
                } else {
                    admin.revive("bench", "toggle", "bench").await.map(drop)
                };
                if result.is_err() {
                    break;
                }
                on = !on;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    // The second evaluating thread.
    {
        let (client, ctx, stop) = (client.clone(), ctx.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                black_box(client.is_enabled(black_box("checkout-v3"), black_box(&ctx)));
            }
        });
    }
    Setup {
        client,
        ctx,
        units,
        copies,
        updates,
        stop,
        _runtime: runtime,
        _server: server,
    }
}

/// Median and p99 of single `is_enabled` calls, minus the timer's own cost.
fn single_call_percentiles(setup: &Setup, calls: usize) -> (f64, f64) {
    let timer = {
        let mut samples: Vec<u64> = (0..10_000)
            .map(|_| {
                let start = Instant::now();
                black_box(());
                start.elapsed().as_nanos() as u64
            })
            .collect();
        samples.sort_unstable();
        nearest_rank(&samples, 50).unwrap_or(0)
    };
    let mut samples: Vec<u64> = (0..calls)
        .map(|_| {
            let start = Instant::now();
            black_box(
                setup
                    .client
                    .is_enabled(black_box("checkout-v3"), black_box(&setup.ctx)),
            );
            (start.elapsed().as_nanos() as u64).saturating_sub(timer)
        })
        .collect();
    samples.sort_unstable();
    let at = |p: u32| nearest_rank(&samples, p).map_or(f64::NAN, |ns| ns as f64);
    (at(50), at(99))
}

fn bench(c: &mut Criterion) {
    let setup = setup();
    c.bench_function("sdk/is_enabled/complex_2_threads_streaming", |b| {
        b.iter(|| {
            setup
                .client
                .is_enabled(black_box("checkout-v3"), black_box(&setup.ctx))
        })
    });
    for (name, contexts) in [
        (
            "sdk/is_enabled/complex_65536_contexts_same_unit",
            &setup.copies,
        ),
        (
            "sdk/is_enabled/complex_65536_contexts_new_unit_each",
            &setup.units,
        ),
    ] {
        let mut next = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % contexts.len();
                setup
                    .client
                    .is_enabled(black_box("checkout-v3"), black_box(&contexts[next]))
            })
        });
    }
    let (median, p99) = single_call_percentiles(&setup, 1_000_000);
    let updates = setup.updates.load(Ordering::Relaxed);
    println!(
        "sdk/is_enabled single calls (1 000 000, while {updates} updates streamed in): median {median:.0} ns, p99 {p99:.0} ns"
    );
    assert!(updates > 0, "updates must stream in during the benchmark");
    setup.stop.store(true, Ordering::Relaxed);
}

criterion_group!(benches, bench);
criterion_main!(benches);
