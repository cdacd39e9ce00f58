//! The real `switchyard-server` binary as a child process, for crash, signal and
//! restart tests: started on a free port (or the one given, to restart on the same
//! address) and found listening through its log; SIGKILLed when dropped.
//!
//! The binary is the one of this build, beside the test executable's `deps`
//! directory; a test of another crate needs it built first (`cargo build -p
//! switchyard-server`), and fails saying so when it is not.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub use crate::in_process::ADMIN;
pub use crate::DEADLINE;

/// A running `switchyard-server` process. Dropping it sends SIGKILL, so a failing
/// test leaves no process behind.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Where it listens for HTTP.
    pub addr: SocketAddr,
    /// Where it listens for gRPC (read from the log; `None` if the log did not say).
    pub grpc_addr: Option<SocketAddr>,
    /// Every line the child wrote to stdout or stderr so far (piped output only).
    pub logs: Arc<Mutex<Vec<String>>>,
    /// The file the child writes stdout and stderr to, when started with one.
    log_file: Option<PathBuf>,
}

/// How [`ServerProcess::start_with`] starts the child.
pub struct Launch<'a> {
    /// Where it listens for HTTP (port 0: any free port).
    pub http_addr: SocketAddr,
    /// Where it listens for gRPC (port 0: any free port).
    pub grpc_addr: SocketAddr,
    /// Arguments after the data directory and the loopback ports.
    pub args: &'a [&'a str],
    /// `SWITCHYARD_ADMIN_TOKEN`, if any.
    pub admin_token: Option<&'a str>,
    /// Where stdout and stderr both go. `Some`: this file (not a terminal), and the
    /// default log format; `None`: pipes read into [`ServerProcess::logs`] and JSON logs.
    pub log_file: Option<&'a Path>,
}

fn forward(
    stream: impl AsyncRead + Unpin + Send + 'static,
    lines: mpsc::UnboundedSender<String>,
    logs: Arc<Mutex<Vec<String>>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        // Keep draining until the child closes the pipe, so it never blocks on a full pipe.
        while let Ok(Some(line)) = reader.next_line().await {
            logs.lock().expect("log lock").push(line.clone());
            let _ = lines.send(line);
        }
    });
}

/// `line` without ANSI colour sequences (`ESC [ … m`), so that the address is found
/// in coloured output too and a test about colours fails on its own assertion.
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The `addr` and `grpc_addr` fields of a JSON log line saying the server is listening.
fn listening_addr(line: &str) -> Option<(String, Option<String>)> {
    let value: Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "switchyard-server listening" {
        return None;
    }
    let grpc = fields
        .get("grpc_addr")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((fields.get("addr")?.as_str()?.to_owned(), grpc))
}

/// The `switchyard-server` binary of this build: beside the test executable's `deps`
/// directory (`target/<profile>/switchyard-server`).
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

/// Any free loopback port.
const ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

impl Default for Launch<'_> {
    /// Free loopback ports, [`ADMIN`], JSON logs into [`ServerProcess::logs`].
    fn default() -> Self {
        Launch {
            http_addr: ANY_PORT,
            grpc_addr: ANY_PORT,
            args: &[],
            admin_token: Some(ADMIN),
            log_file: None,
        }
    }
}

impl ServerProcess {
    /// Starts the binary on `data_dir` and free loopback ports, and waits until it
    /// logs that it is listening.
    pub async fn start(data_dir: &Path) -> ServerProcess {
        ServerProcess::start_with(data_dir, Launch::default()).await
    }

    /// Starts the binary on `data_dir` listening for HTTP on `http_addr` and gRPC on
    /// `grpc_addr` (port 0: any free one), e.g. where a killed one listened.
    pub async fn start_on(
        data_dir: &Path,
        http_addr: SocketAddr,
        grpc_addr: SocketAddr,
    ) -> ServerProcess {
        let launch = Launch {
            http_addr,
            grpc_addr,
            ..Launch::default()
        };
        ServerProcess::start_with(data_dir, launch).await
    }

    /// Starts the binary on `data_dir` and a free loopback port as `launch` says, and
    /// waits until it logs that it is listening.
    pub async fn start_with(data_dir: &Path, launch: Launch<'_>) -> ServerProcess {
        let mut command = Command::new(server_binary());
        command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-addr")
            .arg(launch.http_addr.to_string())
            .arg("--grpc-addr")
            .arg(launch.grpc_addr.to_string())
            .args(launch.args)
            .env("RUST_LOG", "info")
            .env_remove("SWITCHYARD_ADMIN_TOKEN")
            .env_remove("SWITCHYARD_HTTP_ADDR")
            .env_remove("SWITCHYARD_GRPC_ADDR")
            .env_remove("SWITCHYARD_REDIS_URL")
            .env_remove("SWITCHYARD_DATA_DIR")
            .env_remove("SWITCHYARD_DEMO")
            .env_remove("SWITCHYARD_LOG_FORMAT")
            .env_remove("SWITCHYARD_ORCHESTRATOR_URL")
            .env_remove("SWITCHYARD_ORCHESTRATOR_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(token) = launch.admin_token {
            command.env("SWITCHYARD_ADMIN_TOKEN", token);
        }
        match launch.log_file {
            Some(path) => {
                let file = std::fs::File::create(path).expect("log file created");
                let second = file.try_clone().expect("log file handle");
                command.stdout(file).stderr(second);
            }
            None => {
                command
                    .args(["--log-format", "json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
            }
        }
        let child = command
            .spawn()
            .expect("the switchyard-server binary starts");
        let mut process = ServerProcess {
            child,
            base: String::new(),
            addr: ANY_PORT,
            grpc_addr: None,
            logs: Arc::new(Mutex::new(Vec::new())),
            log_file: launch.log_file.map(Path::to_owned),
        };
        let addrs = if process.log_file.is_some() {
            let line =
                without_colours(&process.wait_for_output("switchyard-server listening").await);
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|field| field.strip_prefix(name))
                    .map(str::to_owned)
            };
            field("addr=").map(|addr| (addr, field("grpc_addr=")))
        } else {
            process.wait_for_json_listening().await
        };
        let parsed = addrs.and_then(|(addr, grpc)| {
            let grpc = grpc.and_then(|grpc| grpc.parse().ok());
            Some((addr.parse().ok()?, grpc))
        });
        match parsed {
            Some((addr, grpc_addr)) => {
                process.base = format!("http://{addr}");
                process.addr = addr;
                process.grpc_addr = grpc_addr;
            }
            None => panic!(
                "switchyard-server logged no listening address; output:\n{}",
                process.output()
            ),
        }
        process
    }

    /// Waits for the JSON log line saying the server listens; its address.
    async fn wait_for_json_listening(&mut self) -> Option<(String, Option<String>)> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        forward(
            self.child.stdout.take().expect("stdout"),
            tx.clone(),
            Arc::clone(&self.logs),
        );
        forward(
            self.child.stderr.take().expect("stderr"),
            tx,
            Arc::clone(&self.logs),
        );
        let found = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = rx.recv().await {
                if let Some(addr) = listening_addr(&line) {
                    return Some(addr);
                }
            }
            None // both pipes closed: the process ended
        })
        .await;
        match found {
            Ok(Some(addr)) => Some(addr),
            Ok(None) => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "switchyard-server ended before listening ({status:?}); output:\n{}",
                    self.output()
                );
            }
            Err(_) => panic!(
                "switchyard-server did not log `switchyard-server listening` within {DEADLINE:?}; output:\n{}",
                self.output()
            ),
        }
    }

    /// Polls the log file until a line contains `needle`, and returns that line;
    /// fails after [`DEADLINE`] or when the child ends first.
    pub async fn wait_for_output(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(line) = self.output().lines().find(|line| line.contains(needle)) {
                return line.to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "switchyard-server ended ({status}) before writing `{needle}`; output:\n{}",
                    self.output()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "switchyard-server did not write `{needle}` within {DEADLINE:?}; output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> Pid {
        let id = self.child.id().expect("the child is still running");
        Pid::from_raw(i32::try_from(id).expect("pid fits i32"))
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal sent");
    }

    /// SIGKILLs the child and waits until it is gone.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let status = self.wait().await;
        assert!(
            !status.success(),
            "switchyard-server exited cleanly after SIGKILL"
        );
    }

    /// Waits for the child to exit, failing after [`DEADLINE`].
    pub async fn wait(&mut self) -> ExitStatus {
        match tokio::time::timeout(DEADLINE, self.child.wait()).await {
            Ok(status) => status.expect("wait for the child"),
            Err(_) => panic!(
                "switchyard-server did not exit within {DEADLINE:?}; output:\n{}",
                self.output()
            ),
        }
    }

    /// Everything the child wrote so far (lossily decoded when it went to a file).
    pub fn output(&self) -> String {
        match &self.log_file {
            Some(path) => {
                String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
            }
            None => self.logs.lock().expect("log lock").join("\n"),
        }
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGKILL unless it has exited already (then this is a harmless error).
        let _ = self.child.start_kill();
    }
}
