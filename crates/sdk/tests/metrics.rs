//! The client's metrics against a real server (in process, on a loopback port):
//! exposures and tracked events produced through the client arrive exactly, per flag,
//! variant and event — on `close()`, on the flush interval, and after an outage.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_core::sync::SnapshotDocument;
use switchyard_core::{evaluate, evaluate_all, Context, Snapshot};
use switchyard_sdk::Client;
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{self, TestServer, ADMIN};
use tokio::net::TcpListener;

/// A server on the embedded store in `dir` (kept across restarts), on a free port.
async fn start(dir: &Path) -> TestServer {
    in_process::Builder::default().embedded_in(dir).await
}

/// A server on the embedded store in `dir`, on `listener` (the port of one stopped).
async fn serve_on(dir: &Path, listener: TcpListener) -> TestServer {
    in_process::Builder::default()
        .listener(listener)
        .embedded_in(dir)
        .await
}

/// Creates `env` with `flags` and returns an sdk token for it.
async fn environment(server: &TestServer, env: &str, flags: &[Value]) -> String {
    server.create_env(env).await;
    for flag in flags {
        server.put_flag(env, flag.clone()).await;
    }
    server.token(&format!("{env}-sdk"), "sdk", Some(env)).await
}

/// The flags as the SDK loads them, compiled: what the client evaluates.
async fn snapshot(server: &TestServer, sdk: &str) -> Loaded {
    let document = server.ok("GET", "/v1/sdk/snapshot", sdk, None).await;
    let document: SnapshotDocument = serde_json::from_value(document).expect("a snapshot");
    Loaded {
        revision: document.revision,
        snapshot: Snapshot::compile(document.flags, document.segments).expect("valid flags"),
    }
}

/// A snapshot as the SDK loads it.
struct Loaded {
    revision: u64,
    snapshot: Snapshot,
}

/// `{variant: {exposures, events: {event: n}}}` for `flag` over the last 5 minutes.
async fn metrics(server: &TestServer, env: &str, flag: &str) -> Value {
    let body = server
        .ok(
            "GET",
            &format!("/v1/admin/envs/{env}/flags/{flag}/metrics?window=5m"),
            ADMIN,
            None,
        )
        .await;
    body["variants"].clone()
}

fn flags() -> Vec<Value> {
    vec![
        json!({
            "key": "checkout", "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off",
            "rules": [{"id": "beta", "when": {"groups": ["beta"]}, "serve": {"variant": "on"}}],
            "default": {"rollout": {"split": [
                {"variant": "on", "weight": 30000}, {"variant": "off", "weight": 70000}
            ]}}
        }),
        json!({
            "key": "theme", "kind": "string",
            "variants": {"light": "light", "dark": "dark", "auto": "auto"}, "off_variant": "light",
            "rules": [{"id": "pro", "when": {"constraints": [
                {"attribute": "plan", "op": "in", "values": ["pro"]}
            ]}, "serve": {"variant": "dark"}}],
            "default": {"rollout": {"split": [
                {"variant": "light", "weight": 50000}, {"variant": "auto", "weight": 50000}
            ]}}
        }),
        json!({
            "key": "limit", "kind": "number", "variants": {"ten": 10, "zero": 0},
            "off_variant": "zero", "default": {"variant": "ten"}
        }),
        json!({
            "key": "legacy", "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "enabled": false, "default": {"variant": "on"}
        }),
        json!({
            "key": "unused", "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": "on"}
        }),
    ]
}

const FLAGS: [&str; 5] = ["checkout", "theme", "limit", "legacy", "unused"];

/// One variant's counts: exposures, and events by name.
type VariantCounts = (u64, BTreeMap<String, u64>);

/// Counts the test expects, per flag and variant.
#[derive(Debug, Default)]
struct Expected(BTreeMap<String, BTreeMap<String, VariantCounts>>);

impl Expected {
    fn exposure(&mut self, snapshot: &Snapshot, flag: &str, ctx: &Context) {
        if let Some(variant) = evaluate(snapshot, flag, ctx).variant {
            self.slot(flag, variant).0 += 1;
        }
    }

    fn track(&mut self, snapshot: &Snapshot, event: &str, ctx: &Context) {
        for (flag, e) in evaluate_all(snapshot, ctx) {
            if let Some(variant) = e.variant {
                *self
                    .slot(flag, variant)
                    .1
                    .entry(event.to_owned())
                    .or_default() += 1;
            }
        }
    }

    fn slot(&mut self, flag: &str, variant: &str) -> &mut VariantCounts {
        self.0
            .entry(flag.to_owned())
            .or_default()
            .entry(variant.to_owned())
            .or_default()
    }

    /// The admin endpoint's `variants` for `flag`.
    fn json(&self, flag: &str) -> Value {
        let variants = self.0.get(flag).cloned().unwrap_or_default();
        Value::Object(
            variants
                .into_iter()
                .map(|(variant, (exposures, events))| {
                    (variant, json!({"exposures": exposures, "events": events}))
                })
                .collect(),
        )
    }

    fn merge(&mut self, other: Expected) {
        for (flag, variants) in other.0 {
            for (variant, (exposures, events)) in variants {
                let slot = self.slot(&flag, &variant);
                slot.0 += exposures;
                for (event, n) in events {
                    *slot.1.entry(event).or_default() += n;
                }
            }
        }
    }
}

fn user(i: usize) -> Context {
    let mut ctx = Context::new(format!("user-{i}"));
    if i % 7 == 0 {
        ctx = ctx.group("beta");
    }
    if i % 3 == 0 {
        ctx = ctx.attr("plan", "pro");
    }
    ctx
}

/// What user `i` does; returns what the server should count for it.
fn act(client: &Client, snapshot: &Snapshot, i: usize) -> Expected {
    let mut expected = Expected::default();
    let ctx = user(i);
    for _ in 0..(i % 3 + 1) {
        client.is_enabled("checkout", &ctx);
        expected.exposure(snapshot, "checkout", &ctx);
    }
    client.variant("theme", &ctx);
    expected.exposure(snapshot, "theme", &ctx);
    if i % 2 == 0 {
        client.number_value("limit", &ctx, 0.0);
        expected.exposure(snapshot, "limit", &ctx);
    }
    assert!(!client.is_enabled("legacy", &ctx));
    expected.exposure(snapshot, "legacy", &ctx);
    // An unknown flag serves no variant: nothing to count.
    assert!(!client.is_enabled("missing", &ctx));
    if i % 5 == 0 {
        client.track("purchase", &ctx);
        expected.track(snapshot, "purchase", &ctx);
    }
    if i % 11 == 0 {
        client.track("error", &ctx);
        expected.track(snapshot, "error", &ctx);
    }
    if i % 13 == 0 {
        client.all_flags(&ctx);
        for flag in FLAGS {
            expected.exposure(snapshot, flag, &ctx);
        }
    }
    expected
}

/// Users `range` act on four threads at once.
fn produce(client: &Client, snapshot: &Snapshot, range: std::ops::Range<usize>) -> Expected {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let range = range.clone();
                scope.spawn(move || {
                    let mut expected = Expected::default();
                    for i in range.filter(|i| i % 4 == t) {
                        expected.merge(act(client, snapshot, i));
                    }
                    expected
                })
            })
            .collect();
        let mut all = Expected::default();
        for worker in workers {
            all.merge(worker.join().expect("worker"));
        }
        all
    })
}

async fn assert_server_has(server: &TestServer, env: &str, expected: &Expected) {
    for flag in FLAGS {
        assert_eq!(
            metrics(server, env, flag).await,
            expected.json(flag),
            "metrics of {flag}"
        );
    }
}

/// Polls the admin endpoint until it shows `expected` for every flag, failing after
/// `timeout`.
async fn eventually_server_has(
    server: &TestServer,
    env: &str,
    expected: &Expected,
    timeout: Duration,
) {
    let what = format!("the server to receive the expected counts {expected:?}");
    eventually(timeout, &what, || async {
        for flag in FLAGS {
            if metrics(server, env, flag).await != expected.json(flag) {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delivers_exactly_the_counts_produced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path()).await;
    let sdk = environment(&server, "prod", &flags()).await;
    let loaded = snapshot(&server, &sdk).await;
    let client = Client::builder(&server.base, &sdk)
        .metrics_flush_interval(Duration::from_secs(3600))
        .build()
        .await
        .expect("client builds");
    assert_eq!(client.revision(), loaded.revision);

    let expected = produce(&client, &loaded.snapshot, 0..400);
    // The contexts are spread over the variants, so the test checks attribution.
    let served = |flag: &str| expected.0.get(flag).map_or(0, BTreeMap::len);
    assert_eq!(served("checkout"), 2, "{expected:?}");
    assert_eq!(served("theme"), 3, "{expected:?}");
    assert_eq!(served("legacy"), 1, "{expected:?}");
    assert!(
        expected.0["unused"]["on"].0 > 0 && !expected.0["unused"]["on"].1.is_empty(),
        "{expected:?}"
    );
    // Nothing is sent before close (the interval is an hour).
    for flag in FLAGS {
        assert_eq!(metrics(&server, "prod", flag).await, json!({}), "{flag}");
    }

    client.close().await;
    assert_server_has(&server, "prod", &expected).await;
    // A second close has nothing left to send.
    client.close().await;
    assert_server_has(&server, "prod", &expected).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_flush_delivers_counts_without_close() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path()).await;
    let sdk = environment(&server, "staging", &flags()).await;
    let loaded = snapshot(&server, &sdk).await;
    let client = Client::builder(&server.base, &sdk)
        .metrics_flush_interval(Duration::from_millis(50))
        .build()
        .await
        .expect("client builds");

    let mut expected = produce(&client, &loaded.snapshot, 0..100);
    eventually_server_has(&server, "staging", &expected, Duration::from_secs(20)).await;
    // More, after some flushes already went out: the totals add up.
    expected.merge(produce(&client, &loaded.snapshot, 100..250));
    eventually_server_has(&server, "staging", &expected, Duration::from_secs(20)).await;
    // Closing sends nothing twice.
    client.close().await;
    assert_server_has(&server, "staging", &expected).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_held_while_the_server_is_down_arrive_when_it_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path()).await;
    let sdk = environment(&server, "prod", &flags()).await;
    let loaded = snapshot(&server, &sdk).await;
    let client = Client::builder(&server.base, &sdk)
        .metrics_flush_interval(Duration::from_secs(3600))
        .build()
        .await
        .expect("client builds");
    let mut expected = produce(&client, &loaded.snapshot, 0..60);

    let address = server.base.trim_start_matches("http://").to_owned();
    server.stop().await;
    // The POST fails (connection refused): the counts are kept.
    client.close().await;
    expected.merge(produce(&client, &loaded.snapshot, 60..90));

    // The same server (same store, same port) comes back.
    let listener = TcpListener::bind(&address).await.expect("rebind the port");
    let server = serve_on(dir.path(), listener).await;
    client.close().await;
    assert_server_has(&server, "prod", &expected).await;
    server.stop().await;
}
