//! The admin surface's hygiene: request ids on answers, error bodies and log lines;
//! security headers on the console; CORS off unless origins are listed, and then only
//! on the read APIs; `/metrics` and `/openapi.json` behind `--ops-token` when set; and
//! no secret in the server's logs after a run that issues, uses, rotates and revokes
//! tokens.

use axum::http::HeaderValue;
use serde_json::json;
use switchyard_testkit::in_process::{boolean_flag, Builder, TestServer, ADMIN};
use switchyard_testkit::server_process::{ServerProcess, ADMIN as PROCESS_ADMIN};

const APP: &str = "https://app.example.com";

async fn seeded(builder: Builder) -> TestServer {
    let server = builder.embedded().await;
    server.create_env("prod").await;
    server.put_flag("prod", boolean_flag("checkout")).await;
    server
}

#[tokio::test]
async fn every_answer_has_a_request_id_which_error_bodies_repeat() {
    let server = seeded(Builder::default()).await;
    let client = reqwest::Client::new();
    let answer = client
        .get(server.url("/v1/admin/envs/nope/flags"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 404);
    assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
    let id = answer.headers()["x-request-id"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert_eq!(id.len(), 16, "{id}");
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(body["error"]["request_id"], json!(id), "{body}");
    // A client's own id is kept; one that is not sane is replaced.
    for (sent, kept) in [("trace-42", true), ("bad id with spaces", false)] {
        let answer = client
            .get(server.url("/healthz"))
            .header("x-request-id", sent)
            .send()
            .await
            .expect("sent");
        let echoed = answer.headers()["x-request-id"].to_str().expect("ASCII");
        assert_eq!(echoed == sent, kept, "{sent} → {echoed}");
    }
    server.stop().await;
}

#[tokio::test]
async fn console_pages_forbid_framing_and_foreign_scripts() {
    let server = seeded(Builder::default()).await;
    let answer = reqwest::get(server.url("/console/login"))
        .await
        .expect("sent");
    assert_eq!(answer.status(), 200);
    let policy = answer.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII");
    for part in [
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(policy.contains(part), "{policy}");
    }
    assert_eq!(answer.headers()["x-frame-options"], "DENY");
    server.stop().await;
}

/// The CORS answer to a preflight of `path` from `origin`.
async fn preflight(server: &TestServer, path: &str, origin: &str) -> Option<String> {
    let answer = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("sent");
    answer
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn cors_is_off_by_default_and_then_only_for_listed_origins_on_read_apis() {
    let evaluate = "/ofrep/v1/evaluate/flags";
    let closed = seeded(Builder::default()).await;
    assert_eq!(preflight(&closed, evaluate, APP).await, None);
    closed.stop().await;

    let open = seeded(Builder::default().configure(|server| {
        server.set_exposure(vec![HeaderValue::from_static(APP)], None);
    }))
    .await;
    assert_eq!(preflight(&open, evaluate, APP).await.as_deref(), Some(APP));
    assert_eq!(
        preflight(&open, "/v1/sdk/snapshot", APP).await.as_deref(),
        Some(APP)
    );
    assert_eq!(
        preflight(&open, evaluate, "https://evil.example").await,
        None
    );
    assert_eq!(
        preflight(&open, "/v1/admin/envs", APP).await,
        None,
        "never the admin API"
    );
    assert_eq!(
        preflight(&open, "/console/login", APP).await,
        None,
        "never the console"
    );
    open.stop().await;
}

#[tokio::test]
async fn an_ops_token_guards_metrics_and_the_api_description() {
    let server = seeded(Builder::default().configure(|server| {
        server.set_exposure(Vec::new(), Some("ops-secret-0123456789"));
    }))
    .await;
    let sdk = server.token("web", "sdk", Some("prod")).await;
    for path in ["/metrics", "/openapi.json"] {
        let status = |token: Option<&str>| {
            let mut request = reqwest::Client::new().get(server.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move { request.send().await.expect("sent").status().as_u16() }
        };
        assert_eq!(status(None).await, 401, "{path}");
        assert_eq!(
            status(Some(&sdk)).await,
            401,
            "{path}: an sdk token is not enough"
        );
        assert_eq!(status(Some("ops-secret-0123456789")).await, 200, "{path}");
        assert_eq!(status(Some(ADMIN)).await, 200, "{path}");
    }
    let health = reqwest::get(server.url("/healthz")).await.expect("sent");
    assert_eq!(health.status(), 200, "health stays open");
    server.stop().await;
}

#[tokio::test]
async fn no_secret_reaches_the_log() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(dir.path()).await;
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str, body: serde_json::Value| {
        let mut request = client.request(method, server.url(path)).bearer_auth(token);
        if !body.is_null() {
            request = request.json(&body);
        }
        async move {
            let answer = request.send().await.expect("sent");
            answer.json::<serde_json::Value>().await.unwrap_or_default()
        }
    };
    use reqwest::Method;
    call(
        Method::PUT,
        "/v1/admin/envs/prod",
        PROCESS_ADMIN,
        json!(null),
    )
    .await;
    call(
        Method::PUT,
        "/v1/admin/envs/prod/flags/checkout",
        PROCESS_ADMIN,
        boolean_flag("checkout"),
    )
    .await;
    let issued = call(
        Method::POST,
        "/v1/admin/tokens",
        PROCESS_ADMIN,
        json!({"name": "web", "kind": "sdk", "env": "prod"}),
    )
    .await;
    let first = issued["token"].as_str().expect("secret").to_owned();
    let rotated = call(
        Method::POST,
        "/v1/admin/tokens/web/rotate",
        PROCESS_ADMIN,
        json!({}),
    )
    .await;
    let second = rotated["token"].as_str().expect("secret").to_owned();
    for token in [first.as_str(), second.as_str(), "swy_0000_wrong-guess"] {
        call(Method::GET, "/v1/sdk/snapshot", token, json!(null)).await;
        call(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            token,
            json!({"context": {}}),
        )
        .await;
    }
    call(
        Method::DELETE,
        "/v1/admin/tokens/web",
        PROCESS_ADMIN,
        json!(null),
    )
    .await;
    call(Method::GET, "/v1/sdk/snapshot", &second, json!(null)).await;

    let log = server.output();
    assert!(log.contains("switchyard-server listening"), "{log}");
    for secret in [
        PROCESS_ADMIN,
        first.as_str(),
        second.as_str(),
        "wrong-guess",
    ] {
        assert!(!log.contains(secret), "`{secret}` is in the log:\n{log}");
    }
    server.kill().await;
}
