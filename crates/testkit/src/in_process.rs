//! The flag server running inside the test process, on a free loopback port (or a
//! listener the test gives it), over a temporary embedded store, a given data
//! directory or a Redis: [`start`] for the common case, [`Builder`] for the rest.
//! Also the router alone for `oneshot` tests without a socket ([`app`]).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_core::model::EnvName;
use switchyard_server::http::router;
use switchyard_server::state::AppState;
use switchyard_server::Server;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::DEADLINE;

/// The bootstrap admin token every test server accepts.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// A running server. Dropping it starts a graceful shutdown without waiting for it;
/// [`TestServer::stop`] waits.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The handlers' state, for assertions on in-memory state.
    pub state: AppState,
    /// An HTTP client (30 s timeout).
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT` of the gRPC API, when started with it.
    pub grpc: Option<String>,
    /// Keeps the temporary data directory (embedded store) alive for the server's
    /// lifetime; `None` when the store is elsewhere.
    pub dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Starts a server with an empty embedded store on a free loopback port.
pub async fn start() -> TestServer {
    Builder::default().embedded().await
}

/// Starts a replica on the Redis at `url`, on a free loopback port.
pub async fn start_redis(url: &str) -> TestServer {
    Builder::default().redis(url).await
}

/// Starts a server with an empty embedded store serving HTTP and gRPC on free
/// loopback ports; `flagd_env` opens the flagd service without a token.
pub async fn start_with_grpc(flagd_env: Option<&str>) -> TestServer {
    Builder::default().grpc(flagd_env).embedded().await
}

/// Serves an opened server on a free loopback port; `dir` is kept alive with it.
pub async fn serve(server: Server, dir: Option<tempfile::TempDir>) -> TestServer {
    Builder::default().serve(server, dir).await
}

/// The router alone over an empty embedded store, for `oneshot` tests without a socket.
pub async fn app() -> (axum::Router, AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::open_embedded(dir.path(), Some(ADMIN))
        .await
        .expect("server loads");
    let state = server.state.clone();
    (router(state.clone()), state, dir)
}

/// How a [`TestServer`] is started, when [`start`] and its siblings do not say enough.
#[derive(Default)]
pub struct Builder {
    heartbeat: Option<Duration>,
    grpc: Option<Option<String>>,
    listener: Option<TcpListener>,
    limits: Option<switchyard_server::limits::LimitSettings>,
    configure: Option<Configure>,
}

/// A setting made on an opened server before it serves.
type Configure = Box<dyn FnOnce(&mut Server) + Send>;

impl Builder {
    /// Sends SSE keep-alives every `heartbeat` instead of the default interval.
    pub fn heartbeat(mut self, heartbeat: Duration) -> Builder {
        self.heartbeat = Some(heartbeat);
        self
    }

    /// Serves the gRPC API too, on a free loopback port; `flagd_env` opens the flagd
    /// service without a token.
    pub fn grpc(mut self, flagd_env: Option<&str>) -> Builder {
        self.grpc = Some(flagd_env.map(str::to_owned));
        self
    }

    /// Rate limits other than the defaults.
    pub fn limits(mut self, limits: switchyard_server::limits::LimitSettings) -> Builder {
        self.limits = Some(limits);
        self
    }

    /// Any other setting of the opened server, made before it serves (e.g.
    /// `|s| s.set_exposure(origins, token)`).
    pub fn configure(mut self, configure: impl FnOnce(&mut Server) + Send + 'static) -> Builder {
        self.configure = Some(Box::new(configure));
        self
    }

    /// Serves HTTP on `listener` (e.g. the port of a server this one replaces)
    /// instead of a free port.
    pub fn listener(mut self, listener: TcpListener) -> Builder {
        self.listener = Some(listener);
        self
    }

    /// Starts over an empty embedded store in a temporary directory.
    pub async fn embedded(self) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::open_embedded(dir.path(), Some(ADMIN))
            .await
            .expect("server loads");
        self.serve(server, Some(dir)).await
    }

    /// Starts over the embedded store in `dir` (kept by the caller, e.g. to restart
    /// a server on the same data).
    pub async fn embedded_in(self, dir: &Path) -> TestServer {
        let server = Server::open_embedded(dir, Some(ADMIN))
            .await
            .expect("server loads");
        self.serve(server, None).await
    }

    /// Starts a replica on the Redis at `url`.
    pub async fn redis(self, url: &str) -> TestServer {
        self.redis_durable(url, switchyard_redis::Durability::default())
            .await
    }

    /// Starts a replica on the Redis at `url`, writing with `durability`.
    pub async fn redis_durable(
        self,
        url: &str,
        durability: switchyard_redis::Durability,
    ) -> TestServer {
        let server = Server::open_redis(url, durability, Some(ADMIN))
            .await
            .expect("replica connects");
        self.serve(server, None).await
    }

    /// Serves an opened server; `dir` is kept alive with it.
    pub async fn serve(self, mut server: Server, dir: Option<tempfile::TempDir>) -> TestServer {
        if let Some(heartbeat) = self.heartbeat {
            server.state.sse_heartbeat = heartbeat;
        }
        if let Some(limits) = self.limits {
            server.set_limits(limits);
        }
        if let Some(configure) = self.configure {
            configure(&mut server);
        }
        let state = server.state.clone();
        let listener = match self.listener {
            Some(listener) => listener,
            None => TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        };
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let (task, grpc) = match self.grpc {
            Some(flagd_env) => {
                let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let grpc_base = format!("http://{}", grpc.local_addr().expect("addr"));
                let flagd_env = flagd_env.as_deref().map(EnvName::new);
                let task = tokio::spawn(async move {
                    server
                        .serve_with_grpc(listener, grpc, flagd_env, stopped)
                        .await
                        .map_err(std::io::Error::other)
                });
                (task, Some(grpc_base))
            }
            None => (tokio::spawn(server.serve(listener, stopped)), None),
        };
        TestServer {
            base,
            state,
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("client"),
            grpc,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

impl TestServer {
    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional bearer token and JSON body; returns the
    /// status and the JSON answer (`Null` when empty, a string when not JSON).
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

    /// [`TestServer::call`] that fails the test unless the answer is a 2xx.
    pub async fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, Some(token), body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// Creates an environment (as admin).
    pub async fn create_env(&self, env: &str) {
        self.ok("PUT", &format!("/v1/admin/envs/{env}"), ADMIN, None)
            .await;
    }

    /// Writes a flag (as admin) and returns it as stored.
    pub async fn put_flag(&self, env: &str, flag: Value) -> Value {
        let key = flag["key"].as_str().expect("flag key").to_owned();
        self.ok(
            "PUT",
            &format!("/v1/admin/envs/{env}/flags/{key}"),
            ADMIN,
            Some(flag),
        )
        .await
    }

    /// Kills a flag (as admin), with a reason.
    pub async fn kill(&self, env: &str, key: &str) {
        self.ok(
            "POST",
            &format!("/v1/admin/envs/{env}/flags/{key}/kill"),
            ADMIN,
            Some(json!({ "reason": "incident" })),
        )
        .await;
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

    /// How many SSE clients are connected.
    pub fn sse_clients(&self) -> i64 {
        self.state.telemetry.sse_clients.get()
    }

    /// Stops the server gracefully (ending its streams) and waits until it has
    /// stopped; fails if it takes longer than [`DEADLINE`] or ends with an error.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(DEADLINE, task)
                .await
                .unwrap_or_else(|_| panic!("server did not shut down within {DEADLINE:?}"));
            result.expect("server task").expect("server ran cleanly");
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

/// A killed string flag (variants `a` and `b`) whose `off_variant` is `null`: it
/// serves nothing, and every client gives the caller's code default.
pub fn deferring_flag(key: &str) -> Value {
    json!({
        "key": key, "kind": "string", "variants": {"a": "A", "b": "B"},
        "off_variant": null, "enabled": false, "default": {"variant": "a"}
    })
}

/// The wire form of a unit sketch of `u{from}`..`u{to}`, as an SDK sends it in a
/// metrics entry's `units` (docs/guard.md).
pub fn unit_sketch(range: std::ops::Range<u32>) -> serde_json::Value {
    let mut sketch = switchyard_core::guard::sketch::UnitSketch::new();
    range.for_each(|i| sketch.insert(&format!("u{i}")));
    serde_json::to_value(sketch.encode()).unwrap_or_default()
}
