//! The daemon's HTTP API over a real orchestrator and flag server, without a socket
//! (`oneshot`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::Value;
use switchyard_orchestrator::analysis::MetricSources;
use switchyard_orchestrator::daemon;
use switchyard_orchestrator::driver::{Config, Orchestrator};
use switchyard_orchestrator::flags::AdminFlags;
use switchyard_orchestrator::store::embedded::EmbeddedStore;
use switchyard_sdk::admin::AdminClient;
use tower::ServiceExt as _;

use super::flag_server::{FlagServer, ADMIN, ENV};
use switchyard_testkit::eventually;

/// A daemon router over an orchestrator driving the flag server.
pub struct Rig {
    /// The daemon's router.
    pub router: Router,
    _flags: FlagServer,
    _store: tempfile::TempDir,
}

impl Rig {
    pub async fn start(flags: &[&str], api_token: Option<&str>) -> Rig {
        let flags = FlagServer::start(flags).await;
        let store = tempfile::tempdir().expect("temp dir");
        let admin = AdminClient::new(flags.base.as_str(), ADMIN).expect("admin client");
        let orchestrator = Orchestrator::open(Config {
            store: Arc::new(EmbeddedStore::open(store.path()).expect("store")),
            metrics: MetricSources::standard(&reqwest::Client::new(), Some(&admin)),
            flags: Arc::new(AdminFlags::new(admin)),
            http: reqwest::Client::new(),
            poll: Duration::from_millis(50),
            attempts: 1,
            owner: switchyard_orchestrator::driver::owner_id(),
            lease: Duration::from_secs(10),
            rollback_window: switchyard_orchestrator::driver::DEFAULT_ROLLBACK_WINDOW,
        })
        .await
        .expect("orchestrator opens");
        Rig {
            router: daemon::router(orchestrator, api_token.map(str::to_owned)),
            _flags: flags,
            _store: store,
        }
    }

    /// Sends a request; returns status, content type and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, String, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(body.into()).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, content_type, bytes.to_vec())
    }

    /// Sends a request without a token; returns status and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let (status, content_type, bytes) = self.send(method, path, None, body).await;
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}: {status} answered {content_type:?}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let json = serde_json::from_slice(&bytes).expect("JSON body");
        (status, json)
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, Body::empty()).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn apply(&self, plan: String) {
        let (status, body) = self.call("POST", "/v1/releases", plan).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Polls the release until `check` holds for it.
    pub async fn until(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(Duration::from_secs(20), what, || async {
            let release = self.get(&format!("/v1/releases/{name}")).await;
            if check(&release) {
                Ok(release)
            } else {
                Err(format!("release is {release:#}"))
            }
        })
        .await
    }
}

/// A one-service plan ramping `flag` with these steps (flow YAML).
pub fn plan(name: &str, flag: &str, steps: &str) -> String {
    format!(
        "name: {name}\nenvironment: {ENV}\nservices:\n  - name: web\n    flags: [{flag}]\n\
         steps: {steps}\nanalysis: {{ interval: 1s }}\n"
    )
}
