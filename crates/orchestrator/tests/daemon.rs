//! The daemon's HTTP API through `oneshot` (no socket), and the binary end to end:
//! `serve` against a real flag server, then `apply --wait`, `status` and `report` as a
//! CI job would run them.
//!
//! Releases use `router: none` and no metrics, so the flag server (in-process, on a
//! loopback port) is the only other thing running.

use std::path::Path;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use switchyard_core::release::{PlanOutline, ReleaseReport, Weights};
use switchyard_orchestrator::daemon::MAX_BODY;

use tower::ServiceExt as _;

mod support;

use support::api::{plan, Rig};
use support::daemon::Daemon;
use support::flag_server::{FlagServer, ENV};
use switchyard_testkit::eventually;

const FLAG: &str = "new-checkout";
const API_TOKEN: &str = "orchestrator-api-token";

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

fn service_phase(release: &Value) -> &str {
    release["state"]["services"][0]["phase"]
        .as_str()
        .unwrap_or_default()
}

/// Step 1's weight (10) confirmed by the flag server: the service is progressing.
fn at_step_1(release: &Value) -> bool {
    service_phase(release) == "progressing" && release["state"]["services"][0]["weight"] == 10
}

fn phase(release: &Value) -> &str {
    release["state"]["phase"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn an_invalid_plan_is_400_with_every_problem_and_its_path() {
    let rig = Rig::start(&[FLAG], None).await;
    let invalid = "name: bad\nenvironment: production\nservices:\n  - name: web\n    \
                   depends_on: [nope]\n    flags: [new-checkout]\nsteps: [{ weight: 150 }]\n";
    let (status, body) = rig.call("POST", "/v1/releases", invalid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_plan");
    let paths: Vec<&str> = body["error"]["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["path"].as_str().expect("path"))
        .collect();
    assert!(paths.contains(&"services[0].depends_on[0]"), "{body}");
    assert!(paths.contains(&"steps[0].weight"), "{body}");

    // Unreadable: a missing field, an unknown field, not YAML at all, empty, not UTF-8.
    for text in [
        "name: x\nenvironment: production\nservices: []\n".as_bytes(),
        b"name: x\nenvironment: production\nservices: []\nsteps: []\nwat: 1\n",
        b"{ not: [ yaml",
        b"",
        b"\xff\xfe",
    ] {
        let (status, body) = rig.call("POST", "/v1/releases", text.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(!error_message(&body).is_empty(), "{body}");
    }
    let (_, body) = rig
        .call(
            "POST",
            "/v1/releases",
            "name: x\nenvironment: production\nservices: []\nsteps: []\nwat: 1\n",
        )
        .await;
    assert_eq!(error_code(&body), "invalid_plan");
    assert!(body["error"]["problems"][0]["path"].is_string(), "{body}");
}

#[tokio::test]
async fn a_dry_run_outlines_the_plan_or_names_every_problem_and_starts_nothing() {
    let rig = Rig::start(&[FLAG], None).await;
    let text = plan(
        "previewed",
        FLAG,
        "[{ weight: 10, hold: 30s }, { approve: true }, { weight: 100 }]",
    );
    let (status, body) = rig
        .call("POST", "/v1/releases?dry_run=true", text.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let outline: PlanOutline = serde_json::from_value(body.clone()).expect("a PlanOutline");
    assert_eq!(outline.name, "previewed");
    assert_eq!(outline.environments, ["production"]);
    assert_eq!(outline.groups, [["web"]], "{body}");
    assert_eq!(outline.services[0].flags, [FLAG]);
    let steps: Vec<(Option<u32>, Option<f64>, bool)> = outline
        .steps
        .iter()
        .map(|s| (s.weight, s.hold_seconds, s.approve))
        .collect();
    assert_eq!(
        steps,
        [
            (Some(10), Some(30.0), false),
            (None, None, true),
            (Some(100), Some(1.0), false)
        ]
    );
    let (_, releases) = rig.call("GET", "/v1/releases", Body::empty()).await;
    assert_eq!(
        releases,
        json!({ "releases": [] }),
        "a dry run starts nothing"
    );

    let invalid = "name: bad\nenvironment: production\nservices:\n  - name: web\n    \
                   depends_on: [nope]\n    flags: [new-checkout]\nsteps: [{ weight: 150 }]\n";
    let (status, body) = rig.call("POST", "/v1/releases?dry_run=true", invalid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["problems"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    let (status, body) = rig.call("POST", "/v1/releases?dry_run=maybe", text).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("dry_run"), "{body}");
    let (_, releases) = rig.call("GET", "/v1/releases", Body::empty()).await;
    assert_eq!(releases, json!({ "releases": [] }));
}

#[tokio::test]
async fn an_oversized_plan_is_413() {
    let rig = Rig::start(&[FLAG], None).await;
    let mut text = plan("big", FLAG, "[{ weight: 100 }]").into_bytes();
    text.resize(MAX_BODY + 1, b'#');
    let (status, body) = rig.call("POST", "/v1/releases", text).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_code(&body), "payload_too_large");
}

#[tokio::test]
async fn unknown_releases_and_routes_are_json_404_and_405() {
    let rig = Rig::start(&[FLAG], None).await;
    for (method, path) in [
        ("GET", "/v1/releases/nope"),
        ("POST", "/v1/releases/nope/pause"),
        ("POST", "/v1/releases/nope/abort"),
        ("GET", "/v1/releases/nope/report"),
        ("GET", "/v1/nothing-here"),
        ("GET", "/"),
    ] {
        let (status, body) = rig.call(method, path, Body::empty()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(error_code(&body), "not_found");
    }
    let (status, body) = rig.call("DELETE", "/v1/releases", Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(error_code(&body), "method_not_allowed");
    let (status, _, _) = rig.send("GET", "/healthz", None, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = rig.call("GET", "/v1/releases", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "releases": [] }));
}

#[tokio::test]
async fn the_api_token_is_required_on_v1_when_set() {
    let rig = Rig::start(&[FLAG], Some(API_TOKEN)).await;
    for token in [None, Some("wrong"), Some("")] {
        let (status, _, body) = rig.send("GET", "/v1/releases", token, Body::empty()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
        let body: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(error_code(&body), "unauthorized");
    }
    // Unknown /v1 paths do not reveal whether they exist.
    let (status, _, _) = rig.send("GET", "/v1/nope", None, Body::empty()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = rig
        .send("GET", "/v1/releases", Some(API_TOKEN), Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    let request = Request::builder()
        .uri("/v1/releases")
        .header(header::AUTHORIZATION, format!("bearer {API_TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let response = rig
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
    let (status, _, _) = rig.send("GET", "/healthz", None, Body::empty()).await;
    assert_eq!(status, StatusCode::OK, "health needs no token");
}

#[tokio::test]
async fn applying_is_idempotent_and_a_different_plan_conflicts() {
    let rig = Rig::start(&[FLAG], None).await;
    let text = plan(
        "checkout",
        FLAG,
        "[{ weight: 10, hold: 1h }, { weight: 100 }]",
    );
    let (status, release) = rig.call("POST", "/v1/releases", text.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{release}");
    assert_eq!(release["plan"]["name"], "checkout");
    assert_eq!(release["revision"], 1);
    assert!(release["created_at"].is_u64(), "{release}");

    let (status, again) = rig.call("POST", "/v1/releases", text).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["plan"]["name"], "checkout");

    let other = plan(
        "checkout",
        FLAG,
        "[{ weight: 20, hold: 1h }, { weight: 100 }]",
    );
    let (status, body) = rig.call("POST", "/v1/releases", other).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error_message(&body).contains("checkout"), "{body}");

    // JSON plans are plans too.
    let json_plan = json!({
        "name": "as-json", "environment": ENV,
        "services": [{ "name": "api", "flags": [] , "canary": { "router": "none" } }],
        "steps": [{ "weight": 100 }]
    });
    let (status, body) = rig
        .call("POST", "/v1/releases", json_plan.to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["problems"][0]["path"], "services[0].flags",
        "{body}"
    );

    rig.until("checkout", "step 1", at_step_1).await;
    let (status, list) = rig.call("GET", "/v1/releases", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &list["releases"][0];
    assert_eq!(listed["name"], "checkout", "{list}");
    assert_eq!(listed["environment"], ENV);
    assert_eq!(listed["phase"], "running");
    assert!(
        listed["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("checkout")),
        "{list}"
    );
    assert_eq!(listed["services"][0]["name"], "web");
    assert_eq!(listed["services"][0]["step"], 1);
    assert_eq!(listed["services"][0]["weight"], 10);
}

#[tokio::test]
async fn commands_are_answered_or_refused_with_the_reason() {
    let rig = Rig::start(&[FLAG], None).await;
    let text = plan("ramp", FLAG, "[{ weight: 10, hold: 1h }, { weight: 100 }]");
    let (status, _) = rig.call("POST", "/v1/releases", text).await;
    assert_eq!(status, StatusCode::CREATED);
    rig.until("ramp", "step 1", at_step_1).await;

    let (status, body) = rig
        .call("POST", "/v1/releases/ramp/resume", Body::empty())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_message(&body), "nothing is paused");
    let (status, body) = rig
        .call("POST", "/v1/releases/ramp/approve", Body::empty())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_message(&body), "no service awaits approval");

    // Promotion is full or nothing; approval steps are for approve.
    for body in [
        Body::empty(),
        Body::from("{}"),
        Body::from(r#"{"full": false}"#),
    ] {
        let (status, body) = rig.call("POST", "/v1/releases/ramp/promote", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error_message(&body).contains("full"), "{body}");
        assert!(error_message(&body).contains("approve"), "{body}");
    }

    // Malformed bodies are 400 naming the problem; nothing changes.
    let (status, body) = rig
        .call("POST", "/v1/releases/ramp/pause", r#"{"by": 5}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("`by`"), "{body}");
    for malformed in [
        "{not json",
        r#"{"by": "x"} trailing"#,
        r#"{"wat": 1}"#,
        "[]",
    ] {
        let (status, body) = rig.call("POST", "/v1/releases/ramp/pause", malformed).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed}: {body}");
        assert_eq!(error_code(&body), "bad_request");
    }
    // Read as strictly as the flag server reads its bodies (one parser, one error
    // shape): a key written twice is refused rather than read as the last one.
    let (status, body) = rig
        .call(
            "POST",
            "/v1/releases/ramp/pause",
            r#"{"by": "a", "by": "b"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "bad_request", "message": "invalid JSON body: duplicate key `by`"}})
    );

    // An empty body is fine; `by` defaults to "api".
    let (status, release) = rig
        .call("POST", "/v1/releases/ramp/pause", Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK, "{release}");
    assert_eq!(service_phase(&release), "paused");
    let timeline = release["state"]["timeline"].to_string();
    assert!(timeline.contains("paused by api"), "{timeline}");
    let (status, body) = rig
        .call("POST", "/v1/releases/ramp/pause", Body::empty())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "refused");
    assert_eq!(error_message(&body), "nothing is progressing");

    let (status, release) = rig
        .call("POST", "/v1/releases/ramp/resume", r#"{"by": "tester"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{release}");
    assert_eq!(service_phase(&release), "progressing");

    let (status, release) = rig
        .call(
            "POST",
            "/v1/releases/ramp/abort",
            r#"{"reason": "checkout errors spiking", "by": "tester"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{release}");
    let release = rig
        .until("ramp", "the rollback", |r| phase(r) == "rolled_back")
        .await;
    assert_eq!(
        release["state"]["reason"],
        "aborted by tester: checkout errors spiking"
    );
    let (status, body) = rig
        .call("POST", "/v1/releases/ramp/abort", Body::empty())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_message(&body), "the release is over");
}

#[tokio::test]
async fn an_approval_step_waits_and_full_promotion_skips_the_rest() {
    let rig = Rig::start(&[FLAG], None).await;
    let text = plan(
        "gated",
        FLAG,
        "[{ weight: 10, hold: 1s }, { approve: true }, { weight: 50, hold: 1h }, { weight: 100 }]",
    );
    let (status, _) = rig.call("POST", "/v1/releases", text).await;
    assert_eq!(status, StatusCode::CREATED);
    rig.until("gated", "the approval step", |r| {
        service_phase(r) == "awaiting_approval"
    })
    .await;
    let (status, body) = rig
        .call(
            "POST",
            "/v1/releases/gated/approve",
            r#"{"service": "other"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, release) = rig
        .call(
            "POST",
            "/v1/releases/gated/approve",
            r#"{"service": "web"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{release}");
    assert!(
        release["state"]["timeline"]
            .to_string()
            .contains("approved by api"),
        "{release}"
    );
    rig.until("gated", "step 3", |r| {
        r["state"]["services"][0]["weight"] == 50
    })
    .await;
    let (status, _) = rig
        .call(
            "POST",
            "/v1/releases/gated/promote",
            r#"{"full": true, "by": "lead"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let release = rig
        .until("gated", "promotion", |r| phase(r) == "succeeded")
        .await;
    assert_eq!(release["state"]["services"][0]["weight"], 100);
}

#[tokio::test]
async fn reports_come_as_json_or_markdown() {
    let rig = Rig::start(&[FLAG], None).await;
    let text = plan(
        "reported",
        FLAG,
        "[{ weight: 10, hold: 1h }, { weight: 100 }]",
    );
    let (status, _) = rig.call("POST", "/v1/releases", text).await;
    assert_eq!(status, StatusCode::CREATED);
    rig.until("reported", "step 1", at_step_1).await;

    for path in [
        "/v1/releases/reported/report",
        "/v1/releases/reported/report?format=json",
    ] {
        let (status, report) = rig.call("GET", path, Body::empty()).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["name"], "reported");
        assert!(report["timeline"].as_array().is_some_and(|t| !t.is_empty()));
        // The document core's console reads, with the shares each step set.
        let report: ReleaseReport = serde_json::from_value(report).expect("a ReleaseReport");
        let step = report
            .timeline
            .iter()
            .find(|e| e.message == "step 1: weight 10")
            .expect("step 1 in the timeline");
        assert_eq!(
            step.weights,
            Some(Weights {
                traffic: 10,
                flags: 10
            })
        );
        assert_eq!(report.plan.services[0].flags, [FLAG]);
    }
    let (_, listed) = rig.call("GET", "/v1/releases", Body::empty()).await;
    assert_eq!(listed["releases"][0]["services"][0]["flags"], json!([FLAG]));

    let (status, content_type, body) = rig
        .send(
            "GET",
            "/v1/releases/reported/report?format=markdown",
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/markdown; charset=utf-8");
    let markdown = String::from_utf8(body).expect("UTF-8");
    assert!(markdown.starts_with("# Release reported"), "{markdown}");
    assert!(markdown.contains("step 1: weight 10"), "{markdown}");

    let (status, body) = rig
        .call(
            "GET",
            "/v1/releases/reported/report?format=pdf",
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("pdf"), "{body}");
}

// --- the binary -----------------------------------------------------------------------

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write plan");
    path.to_str().expect("UTF-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_applies_waits_and_reports() {
    let flags = FlagServer::start(&[FLAG]).await;
    let mut daemon = Daemon::start(&flags).await;
    let plans = tempfile::tempdir().expect("temp dir");

    // Promoted: exit 0, with the timeline as it happened.
    let promoted = write(
        plans.path(),
        "promoted.yaml",
        &plan(
            "promoted",
            FLAG,
            "[{ weight: 50, hold: 1s }, { weight: 100, hold: 1s }]",
        ),
    );
    let (code, out, err) = daemon.run(&["apply", &promoted, "--wait"]).await;
    assert_eq!(code, 0, "apply --wait:\n{out}\n{err}");
    for line in [
        "  -  release started in `production`",
        "  web  step 1: weight 50",
        "  web  step 2: weight 100",
        "release promoted",
    ] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
    let first = out.lines().next().unwrap_or_default();
    let clock = first.split("  ").next().unwrap_or_default();
    assert!(
        clock.len() == 8 && clock.chars().filter(|c| *c == ':').count() == 2,
        "timeline lines start with HH:MM:SS: {first}"
    );

    // The flag does not exist: pre-checks fail, the release is rolled back, exit 1.
    let ghost = write(
        plans.path(),
        "ghost.yaml",
        &plan("ghost", "no-such-flag", "[{ weight: 50 }, { weight: 100 }]"),
    );
    let (code, out, err) = daemon
        .run(&["apply", &ghost, "--wait", "--timeout", "30s"])
        .await;
    assert_eq!(code, 1, "apply --wait:\n{out}\n{err}");
    assert!(out.contains("pre-checks failed"), "{out}");

    let (code, out, err) = daemon.run(&["status", "ghost"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("ghost"), "{out}");
    assert!(out.contains("rolled_back"), "{out}");

    let (code, out, err) = daemon.run(&["status"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("promoted") && out.contains("succeeded"),
        "{out}"
    );
    assert!(out.contains("ghost"), "{out}");

    let (code, out, err) = daemon.run(&["report", "ghost"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("# Release ghost"), "{out}");
    assert!(out.contains("pre-checks failed"), "{out}");
    assert!(out.contains("no-such-flag"), "{out}");

    // Errors: an invalid plan exits 2 with its problems; a refusal exits 1.
    let invalid = write(
        plans.path(),
        "invalid.yaml",
        &plan("invalid", FLAG, "[{ weight: 0 }]"),
    );
    let (code, out, err) = daemon.run(&["apply", &invalid]).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("steps[0].weight: "), "{err}");
    let (code, _, err) = daemon.run(&["pause", "promoted"]).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim(), "error: the release is over");
    // Nothing answers: the outcome is unknown, exit 3.
    let (code, _, err) = daemon.run(&["status", "--url", "http://127.0.0.1:1"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("http://127.0.0.1:1") && err.contains("switchyard-orchestrator serve"),
        "{err}"
    );

    daemon.child.kill().await.expect("kill serve");
}

/// Issue 16, item 7: approvals (and every other command) record who gave them, from
/// `--by`, else `$USER`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_record_who_gave_them() {
    let flags = FlagServer::start(&[FLAG]).await;
    let mut daemon = Daemon::start(&flags).await;
    let plans = tempfile::tempdir().expect("temp dir");
    let gated = write(
        plans.path(),
        "gated.yaml",
        &plan(
            "gated",
            FLAG,
            "[{ weight: 10 }, { approve: true }, { weight: 50, hold: 1h }, { weight: 100 }]",
        ),
    );
    let (code, out, err) = daemon.run(&["apply", &gated]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    eventually(
        std::time::Duration::from_secs(30),
        "the release to await approval",
        || async {
            let (_, out, _) = daemon.run(&["status", "gated"]).await;
            if out.contains("awaiting_approval") {
                Ok(())
            } else {
                Err(out)
            }
        },
    )
    .await;
    let (code, out, err) = daemon.run(&["approve", "gated", "--by", "ana"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = daemon.run(&["report", "gated"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("approved by ana"), "{out}");
    assert!(!out.contains("approved by ci"), "{out}");
    // Without --by: $USER (the rig sets `ci`); the 1 h hold keeps the release running.
    let (code, out, err) = daemon.run(&["abort", "gated", "--reason", "enough"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (_, report, _) = daemon.run(&["report", "gated"]).await;
    assert!(report.contains("aborted by ci: enough"), "{report}");

    // Release notes: from the default template (the CLI and the API alike), from one's
    // own, and a broken template named by its line.
    let (code, notes, err) = daemon.run(&["report", "gated", "--notes"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(notes.starts_with("# Release notes: gated"), "{notes}");
    assert!(notes.contains("approved by ana"), "{notes}");
    assert!(notes.contains("aborted by ci: enough"), "{notes}");
    let served = reqwest::get(format!(
        "{}/v1/releases/gated/report?format=notes",
        daemon.url
    ))
    .await
    .expect("the API answers")
    .text()
    .await
    .expect("text");
    assert!(served.starts_with("# Release notes: gated"), "{served}");
    let dir = tempfile::tempdir().expect("temp dir");
    let mine = dir.path().join("mine.md");
    std::fs::write(
        &mine,
        "{{ release.name }} in {{ release.environments | join(\", \") }}\n",
    )
    .expect("write");
    let mine = mine.to_string_lossy().into_owned();
    let (code, out, err) = daemon
        .run(&["report", "gated", "--notes", "--template", &mine])
        .await;
    assert_eq!((code, out.as_str()), (0, "gated in production\n"), "{err}");
    let broken = dir.path().join("broken.md");
    std::fs::write(&broken, "fine\n{{ release.nmae }}").expect("write");
    let broken = broken.to_string_lossy().into_owned();
    let (code, _, err) = daemon
        .run(&["report", "gated", "--notes", "--template", &broken])
        .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("release notes template: line 2"), "{err}");
    let (code, _, err) = daemon
        .run(&[
            "report",
            "gated",
            "--notes",
            "--template",
            "/nonexistent/notes.md",
        ])
        .await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot read the release notes template"),
        "{err}"
    );
    daemon.child.kill().await.expect("kill serve");
}

// --- exit codes of `apply --wait` when the daemon goes away ----------------------------

/// Step 1 at 10 %, then an approval: the release waits there until approved.
const AWAITS_APPROVAL: &str = "[{ weight: 10 }, { approve: true }, { weight: 100 }]";

/// Polls the daemon's API until `check` holds for the release.
async fn until_release(daemon: &Daemon, name: &str, what: &str, check: impl Fn(&Value) -> bool) {
    let url = format!("{}/v1/releases/{name}", daemon.url);
    eventually(std::time::Duration::from_secs(30), what, || async {
        let release: Option<Value> = match reqwest::get(&url).await {
            Ok(response) if response.status().is_success() => response.json().await.ok(),
            _ => None,
        };
        if release.as_ref().is_some_and(&check) {
            Ok(())
        } else {
            Err(format!("release is {release:#?}"))
        }
    })
    .await;
}

fn awaiting_approval(release: &Value) -> bool {
    service_phase(release) == "awaiting_approval"
}

/// A background CLI whose stderr is collected as it comes.
struct Waiting {
    child: tokio::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Waiting {
    fn start(daemon: &Daemon, args: &[&str]) -> Waiting {
        let mut child = daemon.spawn_client(args);
        let (stderr, reader) = support::daemon::drain_joined(child.stderr.take().expect("stderr"));
        Waiting {
            child,
            stderr,
            reader,
        }
    }

    /// Polls until its stderr contains `text`.
    async fn until_stderr(&self, text: &str) {
        eventually(
            std::time::Duration::from_secs(30),
            &format!("`{text}` on stderr"),
            || async {
                if !self.stderr.lock().expect("lock").contains(text) {
                    Err(format!(
                        "no `{text}` on stderr: {}",
                        self.stderr.lock().expect("lock")
                    ))
                } else {
                    Ok(())
                }
            },
        )
        .await;
    }

    /// Waits for it to exit: code, stdout, stderr.
    async fn finished(self) -> (i32, String, String) {
        let output = tokio::time::timeout(
            std::time::Duration::from_secs(90),
            self.child.wait_with_output(),
        )
        .await
        .expect("the CLI exits within 90 s")
        .expect("the CLI runs");
        // The whole of stderr: the reader ends when the pipe closes.
        tokio::time::timeout(std::time::Duration::from_secs(10), self.reader)
            .await
            .expect("stderr closes after the CLI exits")
            .expect("the reader does not panic");
        let stderr = self.stderr.lock().expect("lock").clone();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_wait_exits_3_when_the_daemon_stays_away_past_the_reconnect_window() {
    let flags = FlagServer::start(&[FLAG]).await;
    let mut daemon = Daemon::start(&flags).await;
    let plans = tempfile::tempdir().expect("temp dir");
    let file = write(
        plans.path(),
        "lost.yaml",
        &plan("lost", FLAG, AWAITS_APPROVAL),
    );

    let waiting = Waiting::start(
        &daemon,
        &["apply", &file, "--wait", "--reconnect-for", "2s"],
    );
    until_release(&daemon, "lost", "the approval step", awaiting_approval).await;
    daemon.kill().await;

    let (code, out, err) = waiting.finished().await;
    assert_eq!(code, 3, "apply --wait:\n{out}\n{err}");
    assert!(err.contains("lost the orchestrator ("), "{err}");
    assert!(
        err.contains("could not reach it again within 2s") && err.contains("`status lost`"),
        "{err}"
    );
    // Nothing answers at all: also 3, at once for a one-off command.
    let (code, _, err) = daemon.run(&["status"]).await;
    assert_eq!(code, 3, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_wait_follows_a_restarted_daemon_to_the_release_s_end() {
    // Two flags: the first release promotes FLAG to 100 %, and a release whose flag
    // already serves more than its first step is refused by the pre-checks.
    let flags = FlagServer::start(&[FLAG, "new-search"]).await;
    let mut daemon = Daemon::start(&flags).await;
    let plans = tempfile::tempdir().expect("temp dir");
    let promoted = write(
        plans.path(),
        "back.yaml",
        &plan("back", FLAG, AWAITS_APPROVAL),
    );
    let waiting = Waiting::start(
        &daemon,
        &["apply", &promoted, "--wait", "--reconnect-for", "60s"],
    );
    until_release(&daemon, "back", "the approval step", awaiting_approval).await;
    daemon.kill().await;
    waiting.until_stderr("lost the orchestrator (").await;
    daemon.restart().await;
    until_release(&daemon, "back", "the resumed release", awaiting_approval).await;
    let (code, _, err) = daemon.run(&["approve", "back"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = waiting.finished().await;
    assert_eq!(code, 0, "apply --wait:\n{out}\n{err}");
    assert!(err.contains("lost the orchestrator ("), "{err}");
    assert!(err.contains("reached the orchestrator again"), "{err}");
    assert!(out.contains("release promoted"), "{out}");

    // The same after a clean stop, ending in a rollback: exit 1.
    let rolled_back = write(
        plans.path(),
        "undo.yaml",
        &plan("undo", "new-search", AWAITS_APPROVAL),
    );
    let waiting = Waiting::start(
        &daemon,
        &["apply", &rolled_back, "--wait", "--reconnect-for", "60s"],
    );
    until_release(&daemon, "undo", "the approval step", awaiting_approval).await;
    daemon.terminate().await;
    waiting.until_stderr("lost the orchestrator (").await;
    daemon.restart().await;
    let (code, _, err) = daemon
        .run(&["abort", "undo", "--reason", "restart test"])
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = waiting.finished().await;
    assert_eq!(code, 1, "apply --wait:\n{out}\n{err}");
    assert!(err.contains("reached the orchestrator again"), "{err}");
    daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_for_an_environment_the_flag_server_lacks_is_refused_before_starting() {
    let flags = FlagServer::start(&[FLAG]).await;
    let mut daemon = Daemon::start(&flags).await;
    let plans = tempfile::tempdir().expect("temp dir");
    let one = plan("nowhere", FLAG, "[{ weight: 100 }]")
        .replace(&format!("environment: {ENV}\n"), "environment: nowhere\n");
    let file = write(plans.path(), "nowhere.yaml", &one);
    let (code, out, err) = daemon.run(&["apply", &file, "--wait"]).await;
    assert_eq!(code, 2, "apply --wait:\n{out}\n{err}");
    assert_eq!(
        err.trim(),
        "environment: environment `nowhere` does not exist on the flag server"
    );
    assert!(!err.contains("flag `"), "not a missing flag: {err}");

    let two = plan("partly", FLAG, "[{ weight: 100 }]").replace(
        &format!("environment: {ENV}\n"),
        &format!("environments: [{ENV}, nowhere]\n"),
    );
    let response = reqwest::Client::new()
        .post(format!("{}/v1/releases", daemon.url))
        .body(two)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "invalid_plan", "{body}");
    assert_eq!(
        body["error"]["problems"],
        json!([{ "path": "environments[1]", "message": "environment `nowhere` does not exist on the flag server" }])
    );

    // Neither was started, so neither is a release to list or count.
    let (code, out, _) = daemon.run(&["history"]).await;
    assert_eq!((code, out.as_str()), (0, "no releases\n"));
    let (code, out, _) = daemon.run(&["report", "--dora", "--format", "json"]).await;
    assert_eq!(code, 0);
    let dora: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(dora["finished"], 0, "{dora}");
    daemon.kill().await;
}
