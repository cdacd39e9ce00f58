//! Release history and DORA figures through the daemon's HTTP API (`oneshot`, no
//! socket), and through the binary's `history` and `report --dora` against a served
//! daemon.
//!
//! Releases use `router: none` and no metrics, so the flag server (in-process, on a
//! loopback port) is the only other thing running.

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::Value;

mod support;

use support::api::{plan, Rig};
use support::daemon::Daemon;
use support::flag_server::{FlagServer, ENV};
use switchyard_testkit::redis::RedisProcess;

const API_TOKEN: &str = "orchestrator-api-token";

/// Two steps, the first held for an hour: the release stays at step 1.
const HELD: &str = "[{ weight: 10, hold: 1h }, { weight: 100 }]";

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn phase(release: &Value) -> &str {
    release["state"]["phase"].as_str().unwrap_or_default()
}

/// Step 1's weight (10) confirmed by the flag server: the service is progressing.
fn at_step_1(release: &Value) -> bool {
    let service = &release["state"]["services"][0];
    service["phase"] == "progressing" && service["weight"] == 10
}

/// A stored release's time to restore: from its `rolling back` entry to `finished_at`.
fn restore_seconds(release: &Value) -> f64 {
    let decided = release["state"]["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("rolling back"))
        })
        .and_then(|e| e["at"].as_u64())
        .expect("a `rolling back` entry");
    let finished = release["state"]["finished_at"]
        .as_u64()
        .expect("finished_at");
    Duration::from_millis(finished - decided).as_secs_f64()
}

#[tokio::test]
async fn history_lists_every_release_newest_first_and_dora_counts_the_finished() {
    let rig = Rig::start(&["shipped-flag", "aborted-flag", "again-flag"], None).await;

    // 1. Promoted.
    rig.apply(plan("shipped", "shipped-flag", "[{ weight: 100 }]"))
        .await;
    rig.until("shipped", "promotion", |r| phase(r) == "succeeded")
        .await;

    // 2. Rolled back by a person.
    rig.apply(plan("aborted", "aborted-flag", HELD)).await;
    rig.until("aborted", "step 1", at_step_1).await;
    let (status, body) = rig
        .call(
            "POST",
            "/v1/releases/aborted/abort",
            r#"{"reason": "errors spiking", "by": "tester"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let aborted = rig
        .until("aborted", "the rollback", |r| phase(r) == "rolled_back")
        .await;

    // 3. The promoted one's name again: the first is archived, the new one runs.
    rig.apply(plan("shipped", "again-flag", HELD)).await;
    rig.until("shipped", "step 1 of the second `shipped`", at_step_1)
        .await;

    let current = rig.get("/v1/releases").await;
    assert_eq!(current["releases"].as_array().map(Vec::len), Some(2));

    let history = rig.get("/v1/history").await;
    let listed = history["releases"].as_array().expect("releases");
    let seen: Vec<(&str, &str)> = listed
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default(),
                r["phase"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("shipped", "running"),
            ("aborted", "rolled_back"),
            ("shipped", "succeeded"),
        ],
        "{history:#}"
    );
    let created: Vec<u64> = listed
        .iter()
        .map(|r| r["created_at"].as_u64().expect("created_at"))
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    // The summary carries what a history table shows.
    assert_eq!(listed[0]["environments"], serde_json::json!([ENV]));
    assert!(listed[0]["started_at"].is_u64(), "{history:#}");
    assert_eq!(listed[0]["finished_at"], Value::Null);
    assert_eq!(listed[1]["reason"], "aborted by tester: errors spiking");
    assert_eq!(listed[1]["finished_at"], aborted["state"]["finished_at"]);
    assert_eq!(listed[2]["reason"], Value::Null);
    assert!(listed[2]["finished_at"].is_u64(), "{history:#}");
    assert_eq!(listed[2]["services"][0]["weight"], 100);

    let newest_two = rig.get("/v1/history?limit=2").await;
    assert_eq!(newest_two["releases"].as_array().map(Vec::len), Some(2));
    assert_eq!(newest_two["releases"][1]["name"], "aborted");
    let all = rig.get("/v1/history?limit=1000").await;
    assert_eq!(all["releases"].as_array().map(Vec::len), Some(3));

    // Finished within the window: one promoted, one rolled back; the running one is not
    // counted. Time to restore: from the rollback decision to `rolled_back`.
    let restore = restore_seconds(&aborted);
    for path in ["/v1/dora", "/v1/dora?window=30d", "/v1/dora?format=json"] {
        let dora = rig.get(path).await;
        assert_eq!(dora["window"], "30d", "{path}");
        assert_eq!(dora["window_seconds"], 2_592_000.0);
        assert_eq!(dora["finished"], 2, "{dora:#}");
        assert_eq!(dora["deployment_frequency"]["promoted"], 1);
        assert_eq!(
            dora["deployment_frequency"]["per_day"].as_f64(),
            Some(1.0 / 30.0)
        );
        assert_eq!(dora["change_failure_rate"]["rate"], 0.5);
        assert_eq!(dora["change_failure_rate"]["rolled_back"], 1);
        assert_eq!(dora["change_failure_rate"]["failed"], 0);
        assert_eq!(dora["change_failure_rate"]["finished"], 2);
        let ttr = &dora["time_to_restore"];
        assert_eq!(ttr["restored"], 1);
        assert_eq!(ttr["not_restored"], 0);
        assert_eq!(ttr["median_seconds"].as_f64(), Some(restore), "{dora:#}");
        assert_eq!(ttr["mean_seconds"].as_f64(), Some(restore), "{dora:#}");
    }
    let hour = rig.get("/v1/dora?window=1h").await;
    assert_eq!(hour["window"], "1h");
    assert_eq!(hour["deployment_frequency"]["per_day"].as_f64(), Some(24.0));
    assert_eq!(hour["change_failure_rate"]["rate"], 0.5);

    let (status, content_type, body) = rig
        .send("GET", "/v1/dora?format=markdown", None, Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/markdown; charset=utf-8");
    let markdown = String::from_utf8(body).expect("UTF-8");
    for line in [
        "# DORA figures",
        "| Deployment frequency | 0.033 per day, 0.233 per week (1 promoted release) |",
        "| Change failure rate | 50% (1 of 2 finished releases rolled back or failed) |",
        "| Lead time for changes | not measured |",
    ] {
        assert!(
            markdown.lines().any(|l| l == line),
            "no `{line}` in:\n{markdown}"
        );
    }
    assert!(
        markdown.contains("| Time to restore | median ") && markdown.contains("(1 rollback)"),
        "{markdown}"
    );
}

#[tokio::test]
async fn bad_limits_and_windows_are_400() {
    let rig = Rig::start(&[], None).await;
    assert_eq!(
        rig.get("/v1/history").await,
        serde_json::json!({ "releases": [] })
    );
    let empty = rig.get("/v1/dora").await;
    assert_eq!(empty["finished"], 0);
    assert_eq!(empty["change_failure_rate"]["rate"], Value::Null);
    assert_eq!(empty["time_to_restore"]["median_seconds"], Value::Null);

    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "limit=",
        "limit=2.5",
    ] {
        let (status, body) = rig
            .call("GET", &format!("/v1/history?{query}"), Body::empty())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(error_code(&body), "bad_request", "{query}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("from 1 to 1000")),
            "{query}: {body}"
        );
    }
    for query in [
        "window=59m",
        "window=366d",
        "window=abc",
        "window=",
        "window=30",
        "format=pdf",
    ] {
        let (status, body) = rig
            .call("GET", &format!("/v1/dora?{query}"), Body::empty())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(error_code(&body), "bad_request", "{query}");
    }
    let year = rig.get("/v1/dora?window=365d").await;
    assert_eq!(year["window"], "365d");
}

#[tokio::test]
async fn history_and_dora_need_the_api_token() {
    let rig = Rig::start(&[], Some(API_TOKEN)).await;
    for path in ["/v1/history", "/v1/dora"] {
        for token in [None, Some("wrong")] {
            let (status, _, _) = rig.send("GET", path, token, Body::empty()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {token:?}");
        }
        let (status, _, _) = rig.send("GET", path, Some(API_TOKEN), Body::empty()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

// --- the binary -----------------------------------------------------------------------

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write plan");
    path.to_str().expect("UTF-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_history_and_dora_figures() {
    let flags = FlagServer::start(&["shipped-flag"]).await;
    let mut daemon = Daemon::start(&flags).await;
    let plans = tempfile::tempdir().expect("temp dir");

    let shipped = write(
        plans.path(),
        "shipped.yaml",
        &plan("shipped", "shipped-flag", "[{ weight: 100 }]"),
    );
    let (code, out, err) = daemon.run(&["apply", &shipped, "--wait"]).await;
    assert_eq!(code, 0, "apply --wait:\n{out}\n{err}");
    // The flag does not exist: the pre-checks fail and the release is rolled back.
    let ghost = write(
        plans.path(),
        "ghost.yaml",
        &plan("ghost", "no-such-flag", "[{ weight: 100 }]"),
    );
    let (code, out, err) = daemon
        .run(&["apply", &ghost, "--wait", "--timeout", "30s"])
        .await;
    assert_eq!(code, 1, "apply --wait:\n{out}\n{err}");

    let (code, out, err) = daemon.run(&["history"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "ENVIRONMENT",
            "OUTCOME",
            "STARTED (UTC)",
            "DURATION",
            "REASON"
        ],
        "{out}"
    );
    assert!(
        lines[1].starts_with("ghost ") && lines[1].contains(" production "),
        "{out}"
    );
    assert!(lines[1].contains(" rolled back "), "{out}");
    assert!(lines[1].contains("pre-checks failed"), "{out}");
    assert!(lines[1].contains("no-such-flag"), "{out}");
    assert!(lines[2].starts_with("shipped "), "{out}");
    assert!(lines[2].contains(" promoted "), "{out}");
    assert!(lines[2].trim_end().ends_with(" -"), "no reason: {out}");

    let (code, out, err) = daemon.run(&["history", "--limit", "1"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("ghost ")));

    let (code, out, err) = daemon.run(&["report", "--dora"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for line in [
        "# DORA figures",
        "| Deployment frequency | 0.033 per day, 0.233 per week (1 promoted release) |",
        "| Change failure rate | 50% (1 of 2 finished releases rolled back or failed) |",
        "| Lead time for changes | not measured |",
    ] {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }

    let (code, out, err) = daemon
        .run(&["report", "--dora", "--window", "7d", "--format", "json"])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let dora: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(dora["window"], "7d");
    assert_eq!(dora["finished"], 2);
    assert_eq!(dora["deployment_frequency"]["promoted"], 1);
    assert_eq!(
        dora["deployment_frequency"]["per_day"].as_f64(),
        Some(1.0 / 7.0)
    );
    assert_eq!(dora["change_failure_rate"]["rate"], 0.5);
    assert_eq!(dora["time_to_restore"]["restored"], 1);
    assert!(dora["time_to_restore"]["median_seconds"].is_f64(), "{dora}");

    // Usage errors exit 2.
    for args in [
        &["report"][..],
        &["report", "shipped", "--dora"],
        &["report", "--dora", "--window", "5m"],
        &["report", "shipped", "--window", "7d"],
        &["history", "--limit", "0"],
        &["history", "--limit", "1001"],
    ] {
        let (code, out, err) = daemon.run(args).await;
        assert_eq!(code, 2, "{args:?}:\n{out}\n{err}");
    }
    // One release's report still works.
    let (code, out, err) = daemon.run(&["report", "shipped"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("# Release shipped"), "{out}");

    daemon.child.kill().await.expect("kill serve");
}

/// `history` as (name, outcome) pairs, newest first, and DORA's (finished, promoted,
/// rolled back), as the binary prints them.
async fn history_and_dora(daemon: &Daemon) -> (Vec<(String, String)>, (u64, u64, u64)) {
    let (code, out, err) = daemon.run(&["history"]).await;
    assert_eq!(code, 0, "history:\n{out}\n{err}");
    let listed = out
        .lines()
        .skip(1)
        .map(|line| {
            let name = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let outcome = ["promoted", "rolled back", "running", "failed"]
                .into_iter()
                .find(|o| line.contains(&format!(" {o} ")))
                .unwrap_or("?")
                .to_owned();
            (name, outcome)
        })
        .collect();
    let (code, out, err) = daemon.run(&["report", "--dora", "--format", "json"]).await;
    assert_eq!(code, 0, "report --dora:\n{out}\n{err}");
    let dora: Value = serde_json::from_str(&out).expect("JSON");
    let count = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
    (
        listed,
        (
            count(&dora["finished"]),
            count(&dora["deployment_frequency"]["promoted"]),
            count(&dora["change_failure_rate"]["rolled_back"]),
        ),
    )
}

/// Drives three releases to their ends (the first archived when a newer release takes
/// its name), then stops the daemon cleanly, then kills it: after each restart,
/// `history` and `report --dora` still list and count all three.
async fn finished_releases_outlive_restarts(extra: &[&str]) {
    let flags = FlagServer::start(&["first-flag", "second-flag"]).await;
    let mut daemon = Daemon::start_with(&flags, extra).await;
    let plans = tempfile::tempdir().expect("temp dir");
    let releases = [
        ("shipped", "first-flag", 0),
        ("shipped", "second-flag", 0),
        // The flag does not exist: the pre-checks fail and the release rolls back.
        ("ghost", "no-such-flag", 1),
    ];
    for (i, (name, flag, expected)) in releases.into_iter().enumerate() {
        let file = write(
            plans.path(),
            &format!("{i}.yaml"),
            &plan(name, flag, "[{ weight: 100 }]"),
        );
        let (code, out, err) = daemon.run(&["apply", &file, "--wait"]).await;
        assert_eq!(code, expected, "apply {name} --wait:\n{out}\n{err}");
    }
    let expected_history: Vec<(String, String)> = [
        ("ghost", "rolled back"),
        ("shipped", "promoted"),
        ("shipped", "promoted"),
    ]
    .iter()
    .map(|(n, o)| ((*n).to_owned(), (*o).to_owned()))
    .collect();
    let before = history_and_dora(&daemon).await;
    assert_eq!(before, (expected_history.clone(), (3, 2, 1)));

    daemon.terminate().await;
    daemon.restart().await;
    assert_eq!(
        history_and_dora(&daemon).await,
        before,
        "after a clean restart"
    );

    daemon.kill().await;
    daemon.restart().await;
    assert_eq!(history_and_dora(&daemon).await, before, "after a crash");
    daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_dora_outlive_restarts_on_the_embedded_store() {
    finished_releases_outlive_restarts(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_dora_outlive_restarts_on_redis() {
    let redis = RedisProcess::start();
    finished_releases_outlive_restarts(&["--redis-url", &redis.url(), "--lease", "1s"]).await;
}
