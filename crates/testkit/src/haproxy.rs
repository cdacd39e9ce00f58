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
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::time::Instant;

use crate::child::ChildProcess;
use crate::free_port;
use crate::http::{serve, Served};
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
    /// Starts in maintenance (`disabled`), as the new servers of a rolling update do.
    pub disabled: bool,
}

/// A running `haproxy`.
pub struct HaproxyProcess {
    child: ChildProcess,
    frontend: SocketAddr,
    admin: SocketAddr,
    admin_socket: PathBuf,
    backend: String,
    /// Holds the config, the unix admin socket and `haproxy.log`; removed when
    /// dropped (after the kill: fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl HaproxyProcess {
    /// Starts `haproxy` with `backend` made of `servers`, on free loopback ports, and
    /// waits until its frontend accepts connections and its runtime API answers.
    pub async fn start(backend: &str, servers: &[BackendServer<'_>]) -> HaproxyProcess {
        HaproxyProcess::start_with_config(backend, |listeners| {
            render_config(listeners, backend, servers)
        })
        .await
    }

    /// Starts `haproxy` with a config of the caller's (e.g. a demo's template), given
    /// the free loopback ports it must use: it must bind its frontend on
    /// `listeners.frontend` and its runtime API on `stats socket
    /// ipv4@{listeners.admin} level admin` (the unix socket is optional). `backend` is
    /// the backend its servers are in. Waits like [`HaproxyProcess::start`].
    pub async fn start_with_config(
        backend: &str,
        config: impl Fn(&Listeners<'_>) -> String,
    ) -> HaproxyProcess {
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
            let listeners = Listeners {
                frontend: SocketAddr::from(([127, 0, 0, 1], free_port())),
                admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
                admin_socket: &admin_socket,
            };
            let (frontend, admin) = (listeners.frontend, listeners.admin);
            let path = dir.path().join("haproxy.cfg");
            std::fs::write(&path, config(&listeners)).expect("write haproxy.cfg");
            let mut command = Command::new(&binary);
            command.arg("-f").arg(&path).arg("-db");
            let mut child = ChildProcess::spawn("haproxy", &mut command, dir.path());
            match wait_ready(&mut child, frontend, admin).await {
                Ok(()) => {
                    return HaproxyProcess {
                        child,
                        frontend,
                        admin,
                        admin_socket,
                        backend: backend.to_owned(),
                        _dir: dir,
                    }
                }
                Err(problem) => {
                    child.kill().await;
                    assert!(
                        attempts < 3,
                        "haproxy did not start: {problem}; its output:\n{}",
                        child.output()
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

    /// A server's current weight in the backend, read with `get weight` (which
    /// answers `25 (initial 0)`).
    pub async fn weight(&self, server: &str) -> u32 {
        let answer = self
            .admin_command(&format!("get weight {}/{server}", self.backend))
            .await;
        answer
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("unexpected `get weight` answer {answer:?}"))
    }

    /// Sets a server's weight in the backend through the runtime API; panics unless
    /// haproxy accepted it (an empty answer).
    pub async fn set_weight(&self, server: &str, weight: u32) {
        let command = format!("set server {}/{server} weight {weight}", self.backend);
        let answer = self.admin_command(&command).await;
        assert!(answer.is_empty(), "`{command}` answered {answer:?}");
    }

    /// What haproxy wrote to stdout and stderr so far, for failure messages.
    pub fn output(&self) -> String {
        self.child.output()
    }

    /// Kills it and waits until it has exited, so its ports are closed when this
    /// returns.
    pub async fn stop(&mut self) {
        self.child.kill().await;
    }
}

impl Drop for HaproxyProcess {
    fn drop(&mut self) {
        // Killed here, before any field (the temporary directory among them) drops,
        // whatever their order. `kill_on_drop` covers a child dropped while `start`
        // is still waiting for it (a panic there).
        self.child.start_kill();
    }
}

/// The loopback listeners a config given to [`HaproxyProcess::start_with_config`] uses.
#[derive(Debug, Clone, Copy)]
pub struct Listeners<'a> {
    /// Where the frontend binds.
    pub frontend: SocketAddr,
    /// Where the runtime API listens over TCP, at `level admin`.
    pub admin: SocketAddr,
    /// Where the runtime API may also listen on a unix socket.
    pub admin_socket: &'a Path,
}

/// An HTTP server on a free loopback port answering every request with 200 and a
/// fixed body. Stopped when dropped.
pub struct Upstream(Served);

impl Upstream {
    /// Starts it; it accepts connections when this returns.
    pub async fn start(body: &'static str) -> Upstream {
        Upstream(serve(axum::Router::new().fallback(move || async move { body })).await)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
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
    listeners: &Listeners<'_>,
    backend: &str,
    servers: &[BackendServer<'_>],
) -> String {
    let Listeners {
        frontend,
        admin,
        admin_socket,
    } = *listeners;
    let mut config = format!(
        "\
# Written by switchyard-testkit's haproxy rig (crates/testkit/src/haproxy.rs).
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
            "    server {} {} weight {}{}",
            server.name,
            server.addr,
            server.weight,
            if server.disabled { " disabled" } else { "" }
        )
        .expect("write to a String");
    }
    config
}

/// Polls until the runtime API answers `show info` with this child's pid (so it is our
/// haproxy, past binding every listener) and the frontend accepts a connection.
async fn wait_ready(
    child: &mut ChildProcess,
    frontend: SocketAddr,
    admin: SocketAddr,
) -> Result<(), String> {
    let pid = child.id().ok_or("haproxy exited at once")?;
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(status) = child.exit_status() {
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
                    disabled: false,
                },
                BackendServer {
                    name: "canary",
                    addr: canary.addr(),
                    weight: 0,
                    disabled: false,
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
        (
            self.haproxy.weight("canary").await,
            self.haproxy.weight("stable").await,
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

/// A rolling update's backend: `old1..oldN` answering "old" and `new1..newN` answering
/// "new" (`disabled` in the configuration, as a deployment adds them), behind a real
/// haproxy.
pub struct Rolling {
    /// The haproxy in front.
    pub haproxy: HaproxyProcess,
    servers: usize,
    _upstreams: Vec<Upstream>,
}

impl Rolling {
    /// Starts `servers` old and `servers` new upstreams and haproxy with backend
    /// `backend`.
    pub async fn start(backend: &str, servers: usize) -> Rolling {
        let mut upstreams = Vec::new();
        let mut names = Vec::new();
        for (prefix, body) in [("old", "old"), ("new", "new")] {
            for i in 1..=servers {
                upstreams.push(Upstream::start(body).await);
                names.push(format!("{prefix}{i}"));
            }
        }
        let lines: Vec<BackendServer> = names
            .iter()
            .zip(&upstreams)
            .map(|(name, upstream)| BackendServer {
                name,
                addr: upstream.addr(),
                weight: 1,
                disabled: name.starts_with("new"),
            })
            .collect();
        let haproxy = HaproxyProcess::start(backend, &lines).await;
        Rolling {
            haproxy,
            servers,
            _upstreams: upstreams,
        }
    }

    /// A release plan's `canary:` section for this backend.
    pub fn plan_yaml(&self) -> String {
        let list = |prefix: &str| {
            (1..=self.servers)
                .map(|i| format!("{prefix}{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{{ router: haproxy, address: \"{}\", backend: {}, stable: [{}], canary: [{}] }}",
            self.haproxy.admin_addr(),
            self.haproxy.backend(),
            list("old"),
            list("new")
        )
    }

    /// Each server's administrative state as `show servers state` reports it: `ready`,
    /// `drain` or `maint`, read without the router under test.
    pub async fn states(&self) -> HashMap<String, &'static str> {
        let answer = self
            .haproxy
            .admin_command(&format!("show servers state {}", self.haproxy.backend()))
            .await;
        answer
            .lines()
            .skip(2)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let admin: u32 = fields.get(6)?.parse().ok()?;
                let state = if admin & 0x63 != 0 {
                    "maint"
                } else if admin & 0x18 != 0 {
                    "drain"
                } else {
                    "ready"
                };
                Some(((*fields.get(3)?).to_owned(), state))
            })
            .collect()
    }

    /// How many of the new servers are ready.
    pub async fn new_ready(&self) -> usize {
        self.states()
            .await
            .iter()
            .filter(|(name, state)| name.starts_with("new") && **state == "ready")
            .count()
    }

    /// Which version answered how many of `n` requests through haproxy.
    pub async fn counts(&self, n: usize) -> HashMap<String, usize> {
        count_through(self.haproxy.frontend_addr(), n).await
    }
}
