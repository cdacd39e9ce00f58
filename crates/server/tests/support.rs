//! Shared by the server's integration tests: a real server on a loopback port with
//! a temporary embedded store, and small HTTP helpers. (Compiled as its own empty
//! test target too; that is harmless.)
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_server::http::{router, AppState};
use switchyard_server::Server;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The bootstrap admin token every test server accepts.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The handlers' state, for assertions on in-memory state.
    pub state: AppState,
    /// An HTTP client.
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// `http://127.0.0.1:PORT` of the gRPC API, when started with it.
    pub grpc: Option<String>,
    /// Keeps the data directory (embedded store) alive for the server's lifetime.
    pub dir: Option<tempfile::TempDir>,
}

/// Starts a server with an empty embedded store on a free loopback port.
pub async fn start() -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::open_embedded(dir.path(), Some(ADMIN))
        .await
        .expect("server loads");
    serve(server, Some(dir)).await
}

/// Starts a replica on the Redis at `url`, on a free loopback port.
pub async fn start_redis(url: &str) -> TestServer {
    let server = Server::open_redis(url, Some(ADMIN))
        .await
        .expect("replica connects");
    serve(server, None).await
}

/// Starts a server with an empty embedded store serving HTTP and gRPC on free
/// loopback ports; `flagd_env` opens the flagd service without a token.
pub async fn start_with_grpc(flagd_env: Option<&str>) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::open_embedded(dir.path(), Some(ADMIN))
        .await
        .expect("server loads");
    let state = server.state.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let grpc_base = format!("http://{}", grpc.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel();
    let flagd_env = flagd_env.map(switchyard_core::model::EnvName::new);
    let task = tokio::spawn(async move {
        server
            .serve_with_grpc(listener, grpc, flagd_env, async {
                let _ = stopped.await;
            })
            .await
            .map_err(std::io::Error::other)
    });
    let mut server = finish(base, state, stop, task, Some(dir));
    server.grpc = Some(grpc_base);
    server
}

/// Serves an opened server on a free loopback port.
pub async fn serve(server: Server, dir: Option<tempfile::TempDir>) -> TestServer {
    let state = server.state.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    finish(base, state, stop, task, dir)
}

fn finish(
    base: String,
    state: AppState,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    dir: Option<tempfile::TempDir>,
) -> TestServer {
    TestServer {
        base,
        state,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        stop: Some(stop),
        task: Some(task),
        grpc: None,
        dir,
    }
}

/// The router alone, for `oneshot` tests without a socket.
pub async fn app() -> (axum::Router, AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::open_embedded(dir.path(), Some(ADMIN))
        .await
        .expect("server loads");
    let state = server.state.clone();
    (router(state.clone()), state, dir)
}

impl TestServer {
    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional bearer token and JSON body; returns status and JSON (Null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// Creates an environment (as admin).
    pub async fn create_env(&self, env: &str) {
        let (status, body) = self
            .call("PUT", &format!("/v1/admin/envs/{env}"), Some(ADMIN), None)
            .await;
        assert!(
            status == 201 || status == 200,
            "create env {env}: {status} {body}"
        );
    }

    /// Writes a flag (as admin) and returns it as stored.
    pub async fn put_flag(&self, env: &str, flag: Value) -> Value {
        let key = flag["key"].as_str().expect("flag key").to_owned();
        let (status, body) = self
            .call(
                "PUT",
                &format!("/v1/admin/envs/{env}/flags/{key}"),
                Some(ADMIN),
                Some(flag),
            )
            .await;
        assert!(
            status == 201 || status == 200,
            "put flag {key}: {status} {body}"
        );
        body
    }

    /// Issues a token of `kind` (`admin`, `sdk`, `eval`) for `env`.
    pub async fn token(&self, name: &str, kind: &str, env: Option<&str>) -> String {
        let mut body = json!({ "name": name, "kind": kind });
        if let Some(env) = env {
            body["env"] = json!(env);
        }
        let (status, body) = self
            .call("POST", "/v1/admin/tokens", Some(ADMIN), Some(body))
            .await;
        assert_eq!(status, 201, "create token: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert!(result.is_ok(), "server did not shut down within 10 s");
        }
    }
}

/// A boolean flag with a rule for group `beta` and a default.
pub fn boolean_flag(key: &str) -> Value {
    json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
        "rules": [{"id": "beta", "when": {"groups": ["beta"]}, "serve": {"variant": "on"}}],
        "default": {"variant": "off"}, "tags": ["demo"]
    })
}

/// Polls `check` every 10 ms until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
