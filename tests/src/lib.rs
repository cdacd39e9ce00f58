//! End-to-end tests across the server, SDK and orchestrator live in `tests/`; this
//! library holds what they share: servers (in-process, or the real binary as a child
//! process that can be killed and restarted on the same port and data), a small
//! admin API client, and waiting with a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_server::Server;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// The bootstrap admin token of every test server.
pub const ADMIN: &str = "e2e-admin-token-0123456789abcdef";

/// How long anything a test waits for may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` every 10 ms until it returns `Some`, failing after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls a synchronous condition every 10 ms until it holds, failing after [`DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    eventually(what, || std::future::ready(condition().then_some(()))).await;
}

/// The admin API of a server, through plain HTTP.
#[derive(Debug, Clone)]
pub struct Admin {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    http: reqwest::Client,
}

impl Admin {
    /// The admin API at `base` with [`ADMIN`].
    pub fn new(base: &str) -> Admin {
        Admin {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("HTTP client"),
        }
    }

    /// Sends `method path` with the admin token and an optional JSON body; returns
    /// the status and the JSON answer (`Null` when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("admin answer");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// Creates an environment.
    pub async fn create_env(&self, env: &str) {
        self.ok("PUT", &format!("/v1/admin/envs/{env}"), None).await;
    }

    /// Creates or replaces a flag; returns it as stored.
    pub async fn put_flag(&self, env: &str, flag: Value) -> Value {
        let key = flag["key"].as_str().expect("flag key").to_owned();
        self.ok(
            "PUT",
            &format!("/v1/admin/envs/{env}/flags/{key}"),
            Some(flag),
        )
        .await
    }

    /// Deletes a flag.
    pub async fn delete_flag(&self, env: &str, key: &str) {
        self.ok("DELETE", &format!("/v1/admin/envs/{env}/flags/{key}"), None)
            .await;
    }

    /// Creates or replaces a segment.
    pub async fn put_segment(&self, env: &str, segment: Value) {
        let key = segment["key"].as_str().expect("segment key").to_owned();
        self.ok(
            "PUT",
            &format!("/v1/admin/envs/{env}/segments/{key}"),
            Some(segment),
        )
        .await;
    }

    /// Kills a flag.
    pub async fn kill(&self, env: &str, key: &str) {
        self.ok(
            "POST",
            &format!("/v1/admin/envs/{env}/flags/{key}/kill"),
            Some(json!({"reason": "e2e"})),
        )
        .await;
    }

    /// Revives a killed flag.
    pub async fn revive(&self, env: &str, key: &str) {
        self.ok(
            "POST",
            &format!("/v1/admin/envs/{env}/flags/{key}/revive"),
            Some(json!({})),
        )
        .await;
    }

    /// Issues a token of `kind` for `env`; returns it.
    pub async fn token(&self, name: &str, kind: &str, env: &str) -> String {
        let answer = self
            .ok(
                "POST",
                "/v1/admin/tokens",
                Some(json!({"name": name, "kind": kind, "env": env})),
            )
            .await;
        answer["token"].as_str().expect("token").to_owned()
    }

    /// Revokes a token.
    pub async fn revoke(&self, name: &str) {
        self.ok("DELETE", &format!("/v1/admin/tokens/{name}"), None)
            .await;
    }

    /// The environment's current revision, from its SDK snapshot.
    pub async fn revision(&self, env: &str) -> u64 {
        let answer = self
            .ok("GET", &format!("/v1/sdk/snapshot?env={env}"), None)
            .await;
        answer["revision"].as_u64().expect("revision")
    }

    /// The server's evaluation of `flag` for `context` (REST API, admin token).
    pub async fn evaluate(&self, env: &str, flag: &str, context: Value) -> Value {
        self.ok("POST", &format!("/v1/evaluate/{env}/{flag}"), Some(context))
            .await
    }

    /// Creates `env` and an `sdk` token for it; returns the token.
    pub async fn env_with_sdk_token(&self, env: &str) -> String {
        self.create_env(env).await;
        self.token(&format!("{env}-sdk"), "sdk", env).await
    }
}

/// A boolean flag: `on` for group `beta`, `off` otherwise.
pub fn beta_flag(key: &str) -> Value {
    json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off",
        "rules": [{"id": "beta", "when": {"groups": ["beta"]}, "serve": {"variant": "on"}}],
        "default": {"variant": "off"}
    })
}

/// A boolean flag on for everyone.
pub fn on_flag(key: &str) -> Value {
    json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "default": {"variant": "on"}
    })
}

/// A server running in this process, on a free loopback port, with a temporary
/// embedded store.
pub struct InProcess {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The server's state (for in-memory assertions such as connected streams).
    pub state: switchyard_server::http::AppState,
    /// Its admin API.
    pub admin: Admin,
    /// `http://127.0.0.1:PORT` of the gRPC API, when started with it.
    pub grpc: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts a server; `heartbeat` overrides the SSE keep-alive interval.
    pub async fn start(heartbeat: Option<Duration>) -> InProcess {
        InProcess::launch(heartbeat, false).await
    }

    /// Starts a server that also serves the gRPC API.
    pub async fn start_with_grpc() -> InProcess {
        InProcess::launch(None, true).await
    }

    /// Starts a replica on the Redis at `url` (with the gRPC API when `with_grpc`).
    pub async fn start_redis(url: &str, with_grpc: bool) -> InProcess {
        let server = Server::open_redis(url, Some(ADMIN))
            .await
            .expect("replica connects");
        InProcess::serve(
            server,
            None,
            with_grpc,
            tempfile::tempdir().expect("temp dir"),
        )
        .await
    }

    async fn launch(heartbeat: Option<Duration>, with_grpc: bool) -> InProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::open_embedded(dir.path(), Some(ADMIN))
            .await
            .expect("server loads");
        InProcess::serve(server, heartbeat, with_grpc, dir).await
    }

    async fn serve(
        mut server: Server,
        heartbeat: Option<Duration>,
        with_grpc: bool,
        dir: tempfile::TempDir,
    ) -> InProcess {
        if let Some(heartbeat) = heartbeat {
            server.state.sse_heartbeat = heartbeat;
        }
        let state = server.state.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel();
        let stopped = async {
            let _ = stopped.await;
        };
        let (task, grpc) = if with_grpc {
            let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let grpc_base = format!("http://{}", grpc.local_addr().expect("addr"));
            let task = tokio::spawn(server.serve_with_grpc(listener, grpc, None, stopped));
            (task, Some(grpc_base))
        } else {
            let task = tokio::spawn(async move {
                server.serve(listener, stopped).await?;
                Ok(())
            });
            (task, None)
        };
        InProcess {
            admin: Admin::new(&base),
            base,
            state,
            grpc,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// How many SSE clients are connected.
    pub fn sse_clients(&self) -> i64 {
        self.state.telemetry.sse_clients.get()
    }

    /// Stops the server gracefully (ending its streams) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(DEADLINE, task).await;
            assert!(result.is_ok(), "server did not shut down in time");
        }
    }
}

/// The `switchyard-server` binary of this build: next to the test executable's
/// `deps` directory (`target/<profile>/switchyard-server`).
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join(format!("switchyard-server{}", std::env::consts::EXE_SUFFIX)))
        .expect("target directory");
    assert!(
        binary.is_file(),
        "{} does not exist; build it first: cargo build -p switchyard-server",
        binary.display()
    );
    binary
}

/// The real `switchyard-server` binary as a child process (SIGKILLed when dropped).
pub struct ServerProcess {
    child: Child,
    /// Where it listens for HTTP.
    pub addr: SocketAddr,
    /// Where it listens for gRPC.
    pub grpc_addr: SocketAddr,
    /// `http://ADDR`
    pub base: String,
    /// Its admin API.
    pub admin: Admin,
    logs: Arc<Mutex<Vec<String>>>,
}

fn forward(
    stream: impl AsyncRead + Unpin + Send + 'static,
    lines: mpsc::UnboundedSender<String>,
    logs: Arc<Mutex<Vec<String>>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        // Drain until the child closes the pipe, so it never blocks on a full pipe.
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(mut logs) = logs.lock() {
                logs.push(line.clone());
            }
            let _ = lines.send(line);
        }
    });
}

/// The HTTP and gRPC addresses of the JSON log line saying the server listens.
fn listening_addr(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let value: Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "switchyard-server listening" {
        return None;
    }
    let http = fields.get("addr")?.as_str()?.parse().ok()?;
    let grpc = fields.get("grpc_addr")?.as_str()?.parse().ok()?;
    Some((http, grpc))
}

impl ServerProcess {
    /// Starts the binary on `data_dir`, listening for HTTP on `addr` (port 0: any
    /// free one) and gRPC on any free port, and waits until it logs that it listens.
    pub async fn start(data_dir: &Path, addr: SocketAddr) -> ServerProcess {
        ServerProcess::start_with_grpc(data_dir, addr, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// [`ServerProcess::start`] with the gRPC API on `grpc`.
    pub async fn start_with_grpc(
        data_dir: &Path,
        addr: SocketAddr,
        grpc: SocketAddr,
    ) -> ServerProcess {
        let mut child = Command::new(server_binary())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-addr")
            .arg(addr.to_string())
            .arg("--grpc-addr")
            .arg(grpc.to_string())
            .args(["--log-format", "json"])
            .env("SWITCHYARD_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "info")
            .env_remove("SWITCHYARD_HTTP_ADDR")
            .env_remove("SWITCHYARD_GRPC_ADDR")
            .env_remove("SWITCHYARD_DATA_DIR")
            .env_remove("SWITCHYARD_REDIS_URL")
            .env_remove("SWITCHYARD_DEMO")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the switchyard-server binary starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        forward(
            child.stdout.take().expect("stdout"),
            tx.clone(),
            Arc::clone(&logs),
        );
        forward(child.stderr.take().expect("stderr"), tx, Arc::clone(&logs));
        let found = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = rx.recv().await {
                if let Some(addr) = listening_addr(&line) {
                    return Some(addr);
                }
            }
            None // both pipes closed: the process ended
        })
        .await;
        let output = || logs.lock().map(|l| l.join("\n")).unwrap_or_default();
        let (addr, grpc_addr) = match found {
            Ok(Some(addrs)) => addrs,
            Ok(None) => panic!(
                "switchyard-server ended before listening; output:\n{}",
                output()
            ),
            Err(_) => panic!(
                "switchyard-server did not log `switchyard-server listening` in time; output:\n{}",
                output()
            ),
        };
        let base = format!("http://{addr}");
        ServerProcess {
            child,
            addr,
            grpc_addr,
            admin: Admin::new(&base),
            base,
            logs,
        }
    }

    /// SIGKILLs the process and waits until it is gone.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let waited = tokio::time::timeout(DEADLINE, self.child.wait()).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "switchyard-server did not exit after SIGKILL"
        );
    }

    /// Everything the process logged so far.
    pub fn output(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// An address on which nothing listens (a port that was just free).
pub async fn unused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// A TCP proxy in front of a server, whose connections can be cut while the server
/// keeps running (so a stream ends without the server losing its history).
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    open: Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        Proxy::launch(target, false).await
    }

    /// Forwards to `target` but answers every request for the SSE stream with 404,
    /// as a proxy that does not pass event streams might.
    pub async fn refusing_streams(target: SocketAddr) -> Proxy {
        Proxy::launch(target, true).await
    }

    async fn launch(target: SocketAddr, refuse_streams: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (open, _) = tokio::sync::watch::channel(true);
        let open = Arc::new(open);
        let state = Arc::clone(&open);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    continue; // cut: refuse by closing at once
                }
                let mut closed = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    if refuse_streams {
                        tokio::select! {
                            () = forward_refusing_streams(inbound, outbound) => {}
                            _ = closed.wait_for(|open| !*open) => {}
                        }
                        return;
                    }
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Proxy { addr, open, task }
    }

    /// `http://ADDR`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways, except that a request for `/v1/sdk/stream` gets a 404 and the
/// connection is closed. (Requests are recognised by the start of a read, which is
/// where a client's request line lands.)
async fn forward_refusing_streams(inbound: tokio::net::TcpStream, outbound: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let (refuse, refused) = oneshot::channel::<()>();
    let upstream = async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let Ok(n) = client_read.read(&mut buffer).await else {
                return;
            };
            let chunk = &buffer[..n];
            if n == 0 {
                return;
            }
            if chunk.starts_with(b"GET /v1/sdk/stream") {
                let _ = refuse.send(());
                return;
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        tokio::select! {
            _ = refused => {
                let _ = client_write
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
            () = async {
                while let Ok(n) = server_read.read(&mut buffer).await {
                    if n == 0 || client_write.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            } => {}
        }
    };
    tokio::join!(upstream, downstream);
}
