//! The webhook router against a real HTTP receiver on a loopback port: the exact JSON it
//! sends, and how refusals, silence and unreachable URLs come back as [`RouterError`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use switchyard_orchestrator::plan::{Canary, Strategy, WebhookCanary};
use switchyard_orchestrator::routers::{self, RouterError, TrafficRouter};
use switchyard_testkit::http::{serve, Served};

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// This status and body.
    With(StatusCode, &'static str),
    /// Never: it keeps the request open.
    Never,
}

/// One request the receiver got: its content type and its body as JSON.
type Received = (Option<String>, Value);

/// An HTTP server on a loopback port that records what is `POST`ed to `/weights`;
/// stopped on drop.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    _served: Served,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route(
                "/weights",
                post(
                    move |State(received): State<Arc<Mutex<Vec<Received>>>>,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        let content_type = headers
                            .get(header::CONTENT_TYPE)
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                        let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&body).into_owned())
                        });
                        received
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((content_type, body));
                        match answer {
                            Answer::With(status, body) => (status, body),
                            Answer::Never => std::future::pending().await,
                        }
                    },
                ),
            )
            .with_state(received.clone());
        // Serving stops when dropped, also with a request held open by `Answer::Never`.
        let served = serve(app).await;
        let url = format!("{}/weights", served.url());
        Receiver {
            url,
            received,
            _served: served,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn webhook(url: &str, timeout: Duration) -> Arc<dyn TrafficRouter> {
    routers::build(
        "payments",
        &Canary::Webhook(WebhookCanary {
            url: url.into(),
            timeout,
        }),
        &Strategy::Canary,
    )
}

fn sent(stable: u32, canary: u32) -> Received {
    (
        Some("application/json".into()),
        json!({ "service": "payments", "stable": stable, "canary": canary }),
    )
}

#[tokio::test]
async fn posts_the_weights_and_remembers_the_last_confirmed() {
    let receiver = Receiver::start(Answer::With(StatusCode::NO_CONTENT, "")).await;
    let router = webhook(&receiver.url, Duration::from_secs(5));

    // Nothing to read back before the first call.
    assert_eq!(router.weight().await.expect("weight"), 0);
    for weight in [0, 25, 100] {
        router.set_weight(weight).await.expect("set weight");
        assert_eq!(router.weight().await.expect("weight"), weight);
    }
    assert_eq!(
        receiver.received(),
        [sent(100, 0), sent(75, 25), sent(0, 100)]
    );
}

#[tokio::test]
async fn a_refusal_names_the_status_and_the_body() {
    let receiver = Receiver::start(Answer::With(
        StatusCode::INTERNAL_SERVER_ERROR,
        "mesh API unavailable\n",
    ))
    .await;
    let router = webhook(&receiver.url, Duration::from_secs(5));

    let error = router.set_weight(25).await.expect_err("refused");
    let RouterError::Rejected {
        address,
        command,
        answer,
    } = &error
    else {
        panic!("expected Rejected, got {error:?}");
    };
    assert_eq!(*address, receiver.url);
    assert_eq!(
        command,
        r#"POST {"service":"payments","stable":75,"canary":25}"#
    );
    assert_eq!(
        answer,
        "HTTP 500 Internal Server Error: mesh API unavailable"
    );
    assert_eq!(receiver.received(), [sent(75, 25)]);
    // A refused weight is not the router's weight.
    assert_eq!(router.weight().await.expect("weight"), 0);
}

#[tokio::test]
async fn a_redirect_is_a_refusal_not_followed() {
    let receiver = Receiver::start(Answer::With(StatusCode::TEMPORARY_REDIRECT, "")).await;
    let error = webhook(&receiver.url, Duration::from_secs(5))
        .set_weight(25)
        .await
        .expect_err("redirected");
    assert!(
        matches!(&error, RouterError::Rejected { answer, .. } if answer == "HTTP 307 Temporary Redirect"),
        "{error:?}"
    );
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn silence_is_an_error_naming_the_timeout() {
    let receiver = Receiver::start(Answer::Never).await;
    let router = webhook(&receiver.url, Duration::from_millis(300));

    let started = tokio::time::Instant::now();
    let error = router.set_weight(25).await.expect_err("no answer");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "gave up after {:?}",
        started.elapsed()
    );
    let RouterError::TimedOut {
        address, timeout, ..
    } = &error
    else {
        panic!("expected TimedOut, got {error:?}");
    };
    assert_eq!(
        (address.as_str(), *timeout),
        (receiver.url.as_str(), Duration::from_millis(300))
    );
    assert_eq!(
        error.to_string(),
        format!("router at {} did not answer within 300ms", receiver.url)
    );
    assert_eq!(receiver.received(), [sent(75, 25)]);
}

#[tokio::test]
async fn an_unreachable_url_is_a_request_error() {
    // Nothing listens on port 1.
    let url = "http://127.0.0.1:1/weights";
    let error = webhook(url, Duration::from_secs(5))
        .set_weight(25)
        .await
        .expect_err("unreachable");
    assert!(
        matches!(&error, RouterError::Request { address, .. } if address == url),
        "{error:?}"
    );
}
