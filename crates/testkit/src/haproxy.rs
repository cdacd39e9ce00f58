//! A real `haproxy` as a child process, for tests of the HAProxy router and of
//! releases that move traffic: one frontend on a free loopback port balancing
//! round-robin over one backend whose servers (names, upstreams and initial weights
//! chosen by the caller) have no health checks, so their weights alone decide where
//! requests go. Its runtime API listens both on a loopback TCP port and on a unix
//! socket in its temporary directory, at `level admin`. Killed when dropped.
//!
//! Also here: [`Upstream`], a tiny HTTP server answering every request with a fixed
//! body (the "version" a request reached), and [`count_through`], which sends requests
//! through a frontend and counts those bodies.
//!
//! `haproxy` must be on `PATH`; without it every test using this module panics saying
//! so — it never skips.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::free_port;
use crate::path::find_on_path;

/// How long `haproxy` may take, once started, to serve its frontend and runtime API.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);

/// How long one runtime API command or one request through the frontend may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How often readiness is polled until [`READY_DEADLINE`].
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One `server` line of the backend.
#[derive(Debug, Clone, Copy)]
pub struct BackendServer<'a> {
    /// The server's name, as the runtime API addresses it (`<backend>/<name>`).
    pub name: &'a str,
    /// Where it forwards requests.
    pub addr: SocketAddr,
    /// Its initial weight (0..=256); 0 sends it nothing.
    pub weight: u32,
}

/// A running `haproxy`.
pub struct HaproxyProcess {
    child: Child,
    frontend: SocketAddr,
    admin: SocketAddr,
    admin_socket: PathBuf,
    backend: String,
    /// Holds the config, the unix admin socket and `haproxy.log`; removed when
    /// dropped (after the kill: fields drop after `Drop::drop`).
    dir: tempfile::TempDir,
}

impl HaproxyProcess {
    /// Starts `haproxy` with `backend` made of `servers`, on free loopback ports, and
    /// waits until its frontend accepts connections and its runtime API answers.
    pub async fn start(backend: &str, servers: &[BackendServer<'_>]) -> HaproxyProcess {
        let binary = find_on_path("haproxy").unwrap_or_else(|| {
            panic!("haproxy not found: install the Debian package `haproxy` (scripts/test.sh does)")
        });
        let dir = tempfile::tempdir().expect("temp dir for haproxy");
        let admin_socket = dir.path().join("admin.sock");
        // The ports were free when chosen, but another process may take one before
        // haproxy binds it: then haproxy exits and other ports are tried.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let frontend = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let config = dir.path().join("haproxy.cfg");
            std::fs::write(
                &config,
                render_config(frontend, admin, &admin_socket, backend, servers),
            )
            .expect("write haproxy.cfg");
            let log = dir.path().join("haproxy.log");
            let mut child = spawn(&binary, &config, &log);
            match wait_ready(&mut child, frontend, admin).await {
                Ok(()) => {
                    return HaproxyProcess {
                        child,
                        frontend,
                        admin,
                        admin_socket,
                        backend: backend.to_owned(),
                        dir,
                    }
                }
                Err(problem) => {
                    let _ = child.kill().await;
                    let output = std::fs::read_to_string(&log).unwrap_or_default();
                    assert!(
                        attempts < 3,
                        "haproxy did not start: {problem}; its output:\n{output}"
                    );
                    eprintln!("haproxy on ports {frontend}/{admin}: {problem}; trying others");
                }
            }
        }
    }

    /// Where its frontend listens.
    pub fn frontend_addr(&self) -> SocketAddr {
        self.frontend
    }

    /// `http://127.0.0.1:PORT/` of the frontend.
    pub fn frontend_url(&self) -> String {
        format!("http://{}/", self.frontend)
    }

    /// Where its runtime API listens over TCP (`stats socket ipv4@… level admin`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The unix socket its runtime API also listens on (`level admin`).
    pub fn admin_socket_path(&self) -> &Path {
        &self.admin_socket
    }

    /// The backend's name.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// Sends one runtime API command over TCP and returns the answer, trimmed. Kept
    /// independent of the router under test, so assertions do not trust it.
    pub async fn admin_command(&self, command: &str) -> String {
        admin_command(self.admin, command)
            .await
            .unwrap_or_else(|error| panic!("runtime API `{command}` at {}: {error}", self.admin))
    }

    /// What haproxy wrote to stdout and stderr so far, for failure messages.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// Kills it and waits until it has exited, so its ports are closed when this
    /// returns.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for HaproxyProcess {
    fn drop(&mut self) {
        // Killed here, before any field (the temporary directory among them) drops,
        // whatever their order. `kill_on_drop` covers a child dropped while `start`
        // is still waiting for it (a panic there).
        let _ = self.child.start_kill();
    }
}

/// An HTTP server on a free loopback port answering every request with 200 and a
/// fixed body. Stopped when dropped.
pub struct Upstream {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts it; it accepts connections when this returns.
    pub async fn start(body: &'static str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("upstream address");
        let app = axum::Router::new().fallback(move || async move { body });
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .unwrap_or_else(|error| panic!("upstream {addr} ({body}): {error}"));
        });
        Upstream { addr, task }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `n` sequential GETs through `frontend` and counts the answers by body.
/// Panics on any failed request or non-200 answer: a 503 means the backend had no
/// server to send it to, which a test must not count as a version.
pub async fn count_through(frontend: SocketAddr, n: usize) -> HashMap<String, usize> {
    // A new connection per request (no idle pool), and `option http-server-close` in
    // the config, so every request is balanced on its own.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(IO_TIMEOUT)
        .build()
        .expect("HTTP client");
    let url = format!("http://{frontend}/");
    let mut counts = HashMap::new();
    for i in 0..n {
        let response = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|error| panic!("request {i} through {url}: {error}"));
        let status = response.status();
        let body = response
            .text()
            .await
            .unwrap_or_else(|error| panic!("body of request {i} through {url}: {error}"));
        assert_eq!(status, 200, "request {i} through {url} answered {body:?}");
        *counts.entry(body).or_insert(0) += 1;
    }
    counts
}

/// The config: see the module docs for its shape.
fn render_config(
    frontend: SocketAddr,
    admin: SocketAddr,
    admin_socket: &Path,
    backend: &str,
    servers: &[BackendServer<'_>],
) -> String {
    let mut config = format!(
        "\
# Written by the orchestrator's test harness (tests/support/haproxy.rs).
global
    # No daemon, chroot or user: it runs in the foreground (-db) as the test's user.
    stats socket ipv4@{admin} level admin
    stats socket {admin_socket} level admin
    # Without SO_REUSEPORT a port another process already holds makes haproxy exit
    # (and the harness try other ports) instead of silently sharing it.
    noreuseport
    # One thread is plenty for a test and keeps round-robin order deterministic.
    nbthread 1

defaults
    mode http
    # Close the server side after each response so every request is balanced.
    option http-server-close
    timeout connect 2s
    timeout client 5s
    timeout server 5s

frontend web
    bind {frontend}
    default_backend {backend}

backend {backend}
    balance roundrobin
",
        admin_socket = admin_socket.display(),
    );
    for server in servers {
        // No `check`: weights alone decide where requests go.
        writeln!(
            config,
            "    server {} {} weight {}",
            server.name, server.addr, server.weight
        )
        .expect("write to a String");
    }
    config
}

fn spawn(binary: &Path, config: &Path, log: &Path) -> Child {
    let output = std::fs::File::create(log).expect("create haproxy.log");
    let errors = output.try_clone().expect("clone haproxy.log handle");
    Command::new(binary)
        .arg("-f")
        .arg(config)
        .arg("-db")
        .stdin(Stdio::null())
        // Into a file rather than a pipe: nobody has to drain it for haproxy to run.
        .stdout(output)
        .stderr(errors)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("start {}: {error}", binary.display()))
}

/// Polls until the runtime API answers `show info` with this child's pid (so it is our
/// haproxy, past binding every listener) and the frontend accepts a connection.
async fn wait_ready(
    child: &mut Child,
    frontend: SocketAddr,
    admin: SocketAddr,
) -> Result<(), String> {
    let pid = child.id().ok_or("haproxy exited at once")?;
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().map_err(|error| error.to_string())? {
            return Err(format!("haproxy exited with {status}"));
        }
        let problem = match admin_command(admin, "show info").await {
            Ok(info) if info.lines().any(|line| line == format!("Pid: {pid}")) => {
                match tokio::net::TcpStream::connect(frontend).await {
                    Ok(_) => return Ok(()),
                    Err(error) => format!("frontend {frontend}: {error}"),
                }
            }
            Ok(info) => format!("runtime API {admin} is not pid {pid}'s: {info:?}"),
            Err(error) => format!("runtime API {admin}: {error}"),
        };
        if Instant::now() >= deadline {
            return Err(format!("not ready within {READY_DEADLINE:?}: {problem}"));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// One runtime API command over a fresh TCP connection: HAProxy answers and closes.
async fn admin_command(admin: SocketAddr, command: &str) -> std::io::Result<String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(admin).await?;
        stream.write_all(format!("{command}\n").as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer.trim().to_owned())
    };
    tokio::time::timeout(IO_TIMEOUT, exchange)
        .await
        .map_err(|elapsed| std::io::Error::new(std::io::ErrorKind::TimedOut, elapsed))?
}

/// A service's two versions ("stable" and "canary" upstreams answering their name)
/// behind a real haproxy backend that starts with every request going to stable.
pub struct Canary {
    /// The haproxy in front.
    pub haproxy: HaproxyProcess,
    _stable: Upstream,
    _canary: Upstream,
}

impl Canary {
    /// Starts both upstreams and haproxy with backend `backend`.
    pub async fn start(backend: &str) -> Canary {
        let stable = Upstream::start("stable").await;
        let canary = Upstream::start("canary").await;
        let haproxy = HaproxyProcess::start(
            backend,
            &[
                BackendServer {
                    name: "stable",
                    addr: stable.addr(),
                    weight: 100,
                },
                BackendServer {
                    name: "canary",
                    addr: canary.addr(),
                    weight: 0,
                },
            ],
        )
        .await;
        Canary {
            haproxy,
            _stable: stable,
            _canary: canary,
        }
    }

    /// A release plan's `canary:` section for this backend.
    pub fn plan_yaml(&self) -> String {
        format!(
            "{{ router: haproxy, address: \"{}\", backend: {}, stable: stable, canary: canary }}",
            self.haproxy.admin_addr(),
            self.haproxy.backend()
        )
    }

    /// A server's weight as haproxy's runtime API reports it (`25 (initial 0)`), read
    /// without the router under test.
    pub async fn get_weight(&self, server: &str) -> String {
        let backend = self.haproxy.backend();
        self.haproxy
            .admin_command(&format!("get weight {backend}/{server}"))
            .await
    }

    /// `(canary, stable)` current weights.
    pub async fn weights(&self) -> (u32, u32) {
        let current = |answer: String| -> u32 {
            answer
                .split_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("unexpected `get weight` answer {answer:?}"))
        };
        (
            current(self.get_weight("canary").await),
            current(self.get_weight("stable").await),
        )
    }

    /// Which upstream answered how many of `n` requests through haproxy.
    pub async fn counts(&self, n: usize) -> HashMap<String, usize> {
        count_through(self.haproxy.frontend_addr(), n).await
    }

    /// How many of `n` requests through haproxy the canary answered.
    pub async fn canary_share(&self, n: usize) -> usize {
        self.counts(n).await.get("canary").copied().unwrap_or(0)
    }
}
