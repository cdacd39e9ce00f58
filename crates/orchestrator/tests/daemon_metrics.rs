//! The daemon's `GET /metrics`, scraped by a real `prometheus` while the binary drives
//! releases: releases by phase, analyses passed and failed, actions and their errors,
//! and the leases the daemon holds move with what it does.

mod support;

use std::net::SocketAddr;

use support::daemon::Daemon;
use support::flag_server::{FlagServer, ENV};
use switchyard_testkit::prometheus::{wait_for_value, PrometheusProcess, SCRAPE_DEADLINE};

/// A one-service plan ramping `flag` in `steps`, analysed by a Prometheus `query` that
/// must stay at or below 0.5.
fn plan(name: &str, flag: &str, steps: &str, prometheus: &str, query: &str) -> String {
    format!(
        "name: {name}\nenvironment: {ENV}\nservices: [ {{ name: web, flags: [{flag}] }} ]\n\
         steps: {steps}\n\
         analysis:\n  interval: 200ms\n  metrics:\n    - name: errors\n      \
         prometheus: {{ url: \"{prometheus}\", query: \"{query}\" }}\n      max: 0.5\n"
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write plan");
    path.to_str().expect("UTF-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_releases_analyses_actions_and_leases() {
    let flags = FlagServer::start(&["good-flag", "bad-flag", "held-flag"]).await;
    let daemon = Daemon::start(&flags).await;
    let addr: SocketAddr = daemon
        .url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("daemon address");
    let prometheus = PrometheusProcess::start(&[addr]).await;
    let url = prometheus.url();
    let value = |query: &'static str, expected: f64| {
        let url = url.clone();
        async move { wait_for_value(&url, query, |v| v == expected, SCRAPE_DEADLINE).await }
    };
    let plans = tempfile::tempdir().expect("temp dir");

    // Before any release: every phase is exported, at 0.
    value(r#"switchyard_orchestrator_releases{phase="running"}"#, 0.0).await;

    // Promoted: its analyses pass (`vector(0)` ≤ 0.5).
    let good = plan(
        "good",
        "good-flag",
        "[{ weight: 50 }, { weight: 100 }]",
        &url,
        "vector(0)",
    );
    let (code, out, err) = daemon
        .run(&["apply", &write(plans.path(), "good.yaml", &good), "--wait"])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    // Rolled back: its first analysis fails (`vector(1)` > 0.5).
    let bad = plan(
        "bad",
        "bad-flag",
        "[{ weight: 50 }, { weight: 100 }]",
        &url,
        "vector(1)",
    );
    let (code, out, err) = daemon
        .run(&["apply", &write(plans.path(), "bad.yaml", &bad), "--wait"])
        .await;
    assert_eq!(code, 1, "{out}\n{err}");
    // Its flag does not exist: the pre-check (an action) fails.
    let ghost = plan(
        "ghost",
        "no-such-flag",
        "[{ weight: 100 }]",
        &url,
        "vector(0)",
    );
    let (code, out, err) = daemon
        .run(&[
            "apply",
            &write(plans.path(), "ghost.yaml", &ghost),
            "--wait",
        ])
        .await;
    assert_eq!(code, 1, "{out}\n{err}");
    // Held at an approval: running, its lease held by this daemon.
    let held = plan(
        "held",
        "held-flag",
        "[{ weight: 10 }, { approve: true }, { weight: 100 }]",
        &url,
        "vector(0)",
    );
    let (code, out, err) = daemon
        .run(&["apply", &write(plans.path(), "held.yaml", &held)])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");

    value(
        r#"switchyard_orchestrator_releases{phase="succeeded"}"#,
        1.0,
    )
    .await;
    value(
        r#"switchyard_orchestrator_releases{phase="rolled_back"}"#,
        2.0,
    )
    .await;
    value(r#"switchyard_orchestrator_releases{phase="running"}"#, 1.0).await;
    value(r#"switchyard_orchestrator_lease_held{release="held"}"#, 1.0).await;
    value(r#"count(switchyard_orchestrator_lease_held)"#, 1.0).await;
    value(
        r#"switchyard_orchestrator_analyses_total{result="failed"}"#,
        1.0,
    )
    .await;
    wait_for_value(
        &url,
        r#"switchyard_orchestrator_analyses_total{result="passed"}"#,
        |v| v >= 2.0,
        SCRAPE_DEADLINE,
    )
    .await;
    wait_for_value(
        &url,
        r#"switchyard_orchestrator_actions_total{action="rollback"}"#,
        |v| v >= 1.0,
        SCRAPE_DEADLINE,
    )
    .await;
    // One pre-check per release (good, bad, ghost, held); ghost's failed.
    value(
        r#"switchyard_orchestrator_actions_total{action="pre_check"}"#,
        4.0,
    )
    .await;
    value(
        r#"switchyard_orchestrator_action_errors_total{action="pre_check"}"#,
        1.0,
    )
    .await;
    value(r#"sum(switchyard_orchestrator_action_errors_total)"#, 1.0).await;

    // The text itself: Prometheus's content type and every family documented.
    let response = reqwest::get(format!("{}/metrics", daemon.url))
        .await
        .expect("GET /metrics");
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.expect("body");
    for family in [
        "switchyard_orchestrator_releases",
        "switchyard_orchestrator_analyses",
        "switchyard_orchestrator_actions",
        "switchyard_orchestrator_action_errors",
        "switchyard_orchestrator_lease_held",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no {family} in:\n{text}"
        );
    }
}
