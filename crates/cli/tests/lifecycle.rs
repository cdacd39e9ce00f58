//! Stale, expired and unknown flags from real traffic: the Rust SDK evaluating against
//! a real `switchyard-server` process (its exposure counts and the keys its snapshot
//! lacks), the server's own evaluations, and `switchyard flags stale` /
//! `flags unknown` / `/metrics`.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::cli;
use switchyard_core::admin::TokenKind;
use switchyard_core::Context;
use switchyard_sdk::admin::AdminClient;
use switchyard_sdk::Client;
use switchyard_testkit::eventually;
use switchyard_testkit::server_process::{ServerProcess, ADMIN};

const ENV: &str = "production";

fn now_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since_epoch.as_millis()).expect("ms fit u64")
}

/// A boolean flag serving `default`, with `extra` fields.
fn flag(key: &str, default: Value, extra: Value) -> switchyard_core::Flag {
    let mut value = json!({
        "key": key, "kind": "boolean", "variants": { "on": true, "off": false },
        "off_variant": "off", "default": default,
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        value[k] = v.clone();
    }
    serde_json::from_value(value).expect("flag JSON")
}

/// The stale flags `switchyard flags stale --after AFTER` lists, by key, with why.
async fn stale(server: &ServerProcess, after: &str) -> Vec<(String, Vec<String>)> {
    let (code, out, err) = cli(
        server,
        &[
            "flags", "stale", "--env", ENV, "--after", after, "-o", "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).expect("JSON");
    listed
        .iter()
        .map(|f| {
            let mut why: Vec<String> = f["stale"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect();
            if f["expired"] == true {
                why.push("expired".into());
            }
            (f["key"].as_str().unwrap_or_default().to_owned(), why)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_expired_and_unknown_flags_come_from_real_traffic() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(data.path()).await;
    let admin = AdminClient::new(&server.base, ADMIN).expect("admin");
    admin.create_env(ENV).await.expect("env");
    let split = json!({ "rollout": { "split": [ { "variant": "on", "weight": 50000 }, { "variant": "off", "weight": 50000 } ] } });
    for f in [
        flag("used", split.clone(), json!({})),
        flag("idle", split.clone(), json!({})),
        flag("done", json!({ "variant": "on" }), json!({})),
        flag("dated", split.clone(), json!({ "expires": "2020-01-31" })),
    ] {
        admin.put_flag(ENV, &f, None).await.expect("flag");
    }
    let token = admin
        .create_token("checkout-service", TokenKind::Sdk, Some(ENV))
        .await
        .expect("sdk token")
        .token;

    // Everything was just written: nothing is stale yet, only the expired one shows.
    assert_eq!(
        stale(&server, "30d").await,
        [("dated".to_owned(), vec!["expired".to_owned()])]
    );

    // A key nobody defined, asked for through the server.
    let (code, _, err) = cli(&server, &["eval", "ghost", "--env", ENV]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("flag `ghost` does not exist"), "{err}");

    // Once three seconds have passed since the writes, the flags nobody evaluates are
    // stale; the SDK then evaluates `used` and sends its counts.
    eventually(Duration::from_secs(20), "`idle` to be stale", || async {
        stale(&server, "3s")
            .await
            .iter()
            .any(|(k, _)| k == "idle")
            .then_some(())
    })
    .await;
    let sdk = Client::builder(&server.base, &token)
        .metrics_flush_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("SDK connects");
    let ctx = Context::new("u-1");
    let before_sdk = now_ms();
    for _ in 0..3 {
        sdk.is_enabled("used", &ctx);
        // Keys the environment does not have, evaluated locally by the SDK.
        assert!(!sdk.is_enabled("phantom", &ctx));
        assert_eq!(sdk.string_value("spectre", &ctx, "fallback"), "fallback");
    }
    sdk.close().await;

    let found = stale(&server, "3s").await;
    let why = |key: &str| found.iter().find(|(k, _)| k == key).map(|(_, w)| w.clone());
    assert_eq!(
        why("used"),
        None,
        "evaluated by the SDK just now: {found:?}"
    );
    assert_eq!(why("idle"), Some(vec!["unused".to_owned()]));
    assert_eq!(
        why("done"),
        Some(vec!["unused".to_owned(), "fully rolled out".to_owned()])
    );
    assert_eq!(
        why("dated"),
        Some(vec!["unused".to_owned(), "expired".to_owned()])
    );

    let (code, out, _) = cli(&server, &["flags", "unknown", "--env", ENV]).await;
    assert_eq!(code, 0);
    assert!(out.contains("ghost"), "{out}");
    assert!(!out.contains("used"), "{out}");

    // The SDK's unknown keys reached the server with its metrics, dated on arrival.
    let (code, out, err) = cli(&server, &["flags", "unknown", "--env", ENV, "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let unknown: Vec<Value> = serde_json::from_str(&out).expect("JSON");
    let keys: Vec<&str> = unknown.iter().filter_map(|u| u["key"].as_str()).collect();
    assert_eq!(keys, ["ghost", "phantom", "spectre"], "{out}");
    for u in &unknown[1..] {
        let at = u["last_evaluated_ms"].as_u64().expect("last evaluated");
        assert!(at >= before_sdk, "seen after the SDK started: {u}");
    }

    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("switchyard_flags_expired{env=\"production\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_flags_stale{env=\"production\"} 0"),
        "{metrics}"
    );
}
