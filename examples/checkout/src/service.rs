//! The checkout service: `router(state)` so tests drive it without a socket.
//!
//! | route | |
//! |---|---|
//! | `GET /checkout?user=ID` | evaluates `new-checkout` for `ID`; the canary build (`new_code`) takes the new path when it is on, which fails the injected share of its requests (500, and `checkout_error` tracked through the SDK); otherwise 200. The JSON body names the version, the path and the outcome either way |
//! | `GET /metrics` | `checkout_requests_total{version, path, outcome}` |
//! | `POST /admin/fail-rate` | body: a number from 0 to 1, the new path's fail rate from now on |
//! | `GET /healthz` | 200 |
//!
//! The admin route has no authentication: the service is a demo bound to loopback.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use switchyard_sdk::{Client, Context};

use crate::faults::{parse_rate, Faults};
use crate::metrics::{CodePath, Metrics, Outcome, CONTENT_TYPE};
use crate::{ERROR_EVENT, FLAG};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Evaluates the flag locally and tracks errors.
    pub flags: Client,
    /// This build's label (`v1`, `v2`), in answers and metrics.
    pub version: Arc<str>,
    /// Whether this build has the new code path (the canary does, stable does not).
    pub new_code: bool,
    /// The new path's injected failures.
    pub faults: Arc<Faults>,
    /// Request counts.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// The state of build `version` failing `fail_rate` of its new-path requests.
    pub fn new(flags: Client, version: &str, new_code: bool, fail_rate: f64) -> AppState {
        AppState {
            flags,
            version: version.into(),
            new_code,
            faults: Arc::new(Faults::new(fail_rate)),
            metrics: Arc::new(Metrics::new(version)),
        }
    }
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/checkout", get(checkout))
        .route("/metrics", get(metrics))
        .route("/admin/fail-rate", post(set_fail_rate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct Visitor {
    user: String,
}

async fn checkout(State(state): State<AppState>, Query(visitor): Query<Visitor>) -> Response {
    let ctx = Context::new(visitor.user.as_str());
    // The stable build predates the flag, so only the canary build evaluates it: the
    // flag's exposures (and a guard metric's arms) then come from the canary alone.
    let path = if state.new_code && state.flags.is_enabled(FLAG, &ctx) {
        CodePath::New
    } else {
        CodePath::Old
    };
    let outcome = if path == CodePath::New && state.faults.next_fails() {
        state.flags.track(ERROR_EVENT, &ctx);
        Outcome::Error
    } else {
        Outcome::Ok
    };
    state.metrics.count(path, outcome);
    let mut body = json!({
        "version": &*state.version,
        "path": path.as_str(),
        "user": visitor.user,
        "outcome": outcome.as_str(),
    });
    let status = match outcome {
        Outcome::Ok => StatusCode::OK,
        Outcome::Error => {
            body["error"] = "the new checkout failed (injected fault)".into();
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn set_fail_rate(State(state): State<AppState>, body: String) -> Response {
    match parse_rate(&body) {
        Ok(rate) => {
            state.faults.set_rate(rate);
            tracing::info!(rate, version = %state.version, "fail rate changed");
            Json(json!({ "fail_rate": rate })).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use serde_json::Value;
    use switchyard_sdk::Transport;
    use tower::ServiceExt as _;

    use super::*;

    /// An offline client serving `new-checkout` with `variant` for everyone.
    async fn flags(variant: &str) -> Client {
        let document = json!({
            "environment": "test", "revision": 1, "segments": [],
            "flags": [{
                "key": FLAG, "kind": "boolean", "variants": {"on": true, "off": false},
                "off_variant": "off", "default": {"variant": variant}
            }]
        });
        Client::builder("http://127.0.0.1:9", "unused")
            .transport(Transport::Offline)
            .bootstrap(document)
            .build()
            .await
            .expect("offline client")
    }

    async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (u16, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_owned()))
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("answer");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn checkout_as(app: &Router, user: &str) -> (u16, Value) {
        let (status, body) = call(app, "GET", &format!("/checkout?user={user}"), "").await;
        (status, serde_json::from_str(&body).expect("JSON body"))
    }

    /// `(status, path)` of four requests in a row.
    type Answers = [(u16, &'static str); 4];

    #[tokio::test]
    async fn path_and_outcome_follow_the_build_the_flag_and_the_fail_rate() {
        // (flag variant, canary build, fail rate, expected answers)
        let cases: &[(&str, bool, f64, Answers)] = &[
            ("off", true, 0.5, [(200, "old"); 4]),
            ("on", false, 0.5, [(200, "old"); 4]),
            ("on", true, 0.0, [(200, "new"); 4]),
            (
                "on",
                true,
                0.5,
                [(200, "new"), (500, "new"), (200, "new"), (500, "new")],
            ),
            ("on", true, 1.0, [(500, "new"); 4]),
        ];
        for &(variant, new_code, rate, expected) in cases {
            let app = router(AppState::new(flags(variant).await, "v2", new_code, rate));
            for (i, (status, path)) in expected.into_iter().enumerate() {
                let (got, body) = checkout_as(&app, &format!("user-{i}")).await;
                let case = format!("flag {variant}, new code {new_code}, rate {rate}, #{i}");
                assert_eq!((got, body["path"].as_str()), (status, Some(path)), "{case}");
                assert_eq!(body["version"], "v2", "{case}");
                let outcome = if status == 200 { "ok" } else { "error" };
                assert_eq!(body["outcome"], outcome, "{case}");
            }
        }
    }

    #[tokio::test]
    async fn metrics_count_every_answer() {
        let app = router(AppState::new(flags("on").await, "v2", true, 0.5));
        for i in 0..4 {
            checkout_as(&app, &format!("user-{i}")).await;
        }
        let (status, text) = call(&app, "GET", "/metrics", "").await;
        assert_eq!(status, 200);
        for line in [
            r#"checkout_requests_total{version="v2",path="new",outcome="ok"} 2"#,
            r#"checkout_requests_total{version="v2",path="new",outcome="error"} 2"#,
            r#"checkout_requests_total{version="v2",path="old",outcome="ok"} 0"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }

    #[tokio::test]
    async fn the_fail_rate_changes_at_runtime_and_refuses_nonsense() {
        let app = router(AppState::new(flags("on").await, "v2", true, 0.0));
        assert_eq!(checkout_as(&app, "a").await.0, 200);
        assert_eq!(
            call(&app, "POST", "/admin/fail-rate", "1").await,
            (200, r#"{"fail_rate":1.0}"#.to_owned())
        );
        assert_eq!(checkout_as(&app, "a").await.0, 500);
        let (status, body) = call(&app, "POST", "/admin/fail-rate", "2").await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("from 0.0 to 1.0"), "{body}");
        assert_eq!(checkout_as(&app, "a").await.0, 500, "rate kept");
    }

    #[tokio::test]
    async fn health_and_a_missing_user() {
        let app = router(AppState::new(flags("on").await, "v1", false, 0.0));
        assert_eq!(call(&app, "GET", "/healthz", "").await, (200, "ok".into()));
        assert_eq!(call(&app, "GET", "/checkout", "").await.0, 400);
    }
}
