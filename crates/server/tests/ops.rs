//! `/healthz`, `/readyz` and `/metrics`: through the router (`oneshot`) and over a
//! socket, without any token.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use switchyard_server::http::ops::METRICS_CONTENT_TYPE;
use switchyard_testkit::in_process::{app, boolean_flag, start, ADMIN};
use tower::ServiceExt;

const EVALUATE_ROUTE: &str = "/v1/evaluate/{env}/{flag}";

/// Sends one request through the router; returns status, content type and body text.
async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, String, String) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii content type").to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The value of the sample whose name and labels are exactly `series`, if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[tokio::test]
async fn healthz_is_ok_without_a_token() {
    let (router, _state, _dir) = app().await;
    let (status, content_type, body) = send(&router, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(json_of(&body), json!({ "status": "ok" }));
}

#[tokio::test]
async fn readyz_reports_ready_with_the_environment_count_and_503_while_starting() {
    let (router, state, _dir) = app().await;
    let (status, _, body) = send(&router, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        json_of(&body),
        json!({ "status": "ready", "environments": 0 })
    );

    for env in ["staging", "production"] {
        let request = Request::put(format!("/v1/admin/envs/{env}"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::empty())
            .expect("request");
        let (status, _, body) = send(&router, request).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, _, body) = send(&router, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        json_of(&body),
        json!({ "status": "ready", "environments": 2 })
    );

    // Before the snapshots are loaded the server is alive but not ready.
    state.ready.store(false, Ordering::Release);
    let (status, content_type, body) = send(&router, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(json_of(&body), json!({ "status": "starting" }));
    let (status, _, body) = send(&router, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn metrics_over_the_router_are_openmetrics_text() {
    let (router, _state, _dir) = app().await;
    let (status, _, _) = send(&router, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, content_type, body) = send(&router, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, METRICS_CONTENT_TYPE);
    assert_eq!(
        sample(
            &body,
            r#"switchyard_http_requests_total{route="/healthz",method="GET",status="200"}"#
        ),
        Some(1.0),
        "{body}"
    );
    assert!(body.contains("# TYPE switchyard_http_request_duration_seconds histogram"));
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
}

#[tokio::test]
async fn metrics_over_a_socket_count_requests_by_route_and_evaluations() {
    let server = start().await;
    server.create_env("production").await;
    server
        .put_flag("production", boolean_flag("checkout"))
        .await;
    let eval = server.token("web", "eval", Some("production")).await;

    for groups in [json!(["beta"]), json!([]), json!(["beta", "staff"])] {
        let (status, body) = server
            .call(
                "POST",
                "/v1/evaluate/production/checkout",
                Some(&eval),
                Some(json!({ "targetingKey": "u-1", "groups": groups })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = server
        .call(
            "POST",
            "/v1/evaluate/production",
            Some(&eval),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // No token needed.
    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(content_type.as_deref(), Some(METRICS_CONTENT_TYPE));
    let metrics = response.text().await.expect("body");

    let evaluate_requests = format!(
        r#"switchyard_http_requests_total{{route="{EVALUATE_ROUTE}",method="POST",status="200"}}"#
    );
    assert_eq!(sample(&metrics, &evaluate_requests), Some(3.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_http_requests_total{route="/v1/evaluate/{env}",method="POST",status="200"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    // Three single evaluations and one bulk evaluation of the one flag.
    assert_eq!(
        sample(
            &metrics,
            r#"switchyard_evaluations_total{env="production",api="rest"}"#
        ),
        Some(4.0),
        "{metrics}"
    );
    let latency_count = format!(
        r#"switchyard_http_request_duration_seconds_count{{route="{EVALUATE_ROUTE}",method="POST",status="200"}}"#
    );
    assert_eq!(sample(&metrics, &latency_count), Some(3.0), "{metrics}");
    // Admin writes are counted under their route pattern, not their concrete path.
    assert!(
        metrics.contains(r#"route="/v1/admin/envs/{env}/flags/{key}",method="PUT",status="201""#),
        "{metrics}"
    );
    assert!(!metrics.contains("/v1/evaluate/production"), "{metrics}");

    for (path, expected) in [
        ("/healthz", json!({ "status": "ok" })),
        ("/readyz", json!({ "status": "ready", "environments": 1 })),
    ] {
        let (status, body) = server.call("GET", path, None, None).await;
        assert_eq!((status, body), (200, expected), "{path}");
    }
    server.stop().await;
}
