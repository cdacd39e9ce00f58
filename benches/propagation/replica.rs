//! The `switchyard-server` processes under measurement: started from
//! `SWITCHYARD_SERVER_BIN` on loopback, found listening through their JSON log, their
//! memory read from `/proc`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::{ADMIN, START_DEADLINE};

/// VmRSS and VmHWM of a process, in KiB.
pub(crate) fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

// ---------------------------------------------------------------------------------
// Child processes

/// Lines a server wrote, the last few kept for error messages.
type Output = Arc<Mutex<VecDeque<String>>>;

/// Where a server keeps its data.
#[derive(Debug, Clone)]
pub(crate) enum ReplicaStore {
    Embedded(PathBuf),
    Redis(String),
    /// A relay of the server at `upstream`, keeping its snapshots in `data`.
    Relay {
        upstream: String,
        data: PathBuf,
    },
}

/// A `switchyard-server`. Dropping it sends SIGKILL.
pub(crate) struct Replica {
    pub(crate) name: &'static str,
    child: Child,
    pub(crate) http: SocketAddr,
    pub(crate) grpc: SocketAddr,
    output: Output,
}

impl Replica {
    pub(crate) async fn start(
        name: &'static str,
        bin: &Path,
        store: &ReplicaStore,
    ) -> Result<Replica> {
        let mut command = Command::new(bin);
        match store {
            ReplicaStore::Embedded(dir) => command.arg("--data-dir").arg(dir),
            ReplicaStore::Redis(url) => command.args(["--redis-url", url]),
            ReplicaStore::Relay { upstream, data } => command.arg("--data-dir").arg(data).args([
                "--upstream",
                upstream,
                "--upstream-token",
                ADMIN,
            ]),
        };
        let mut child = command
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--grpc-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
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
            .with_context(|| format!("start {}", bin.display()))?;
        let output = Output::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().context("stdout")?;
        let stderr = child.stderr.take().context("stderr")?;
        forward(stdout, tx.clone(), Arc::clone(&output));
        forward(stderr, tx, Arc::clone(&output));
        let found = tokio::time::timeout(START_DEADLINE, async {
            while let Some(line) = rx.recv().await {
                if let Some(addrs) = listening_addrs(&line) {
                    return Some(addrs);
                }
            }
            None
        })
        .await;
        let lines = || {
            output
                .lock()
                .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
        };
        match found {
            Ok(Some((http, grpc))) => Ok(Replica {
                name,
                child,
                http,
                grpc,
                output,
            }),
            Ok(None) => bail!(
                "replica {name} ended before listening:\n{}",
                lines().unwrap_or_default()
            ),
            Err(_) => bail!(
                "replica {name} did not log `switchyard-server listening` within {START_DEADLINE:?}:\n{}",
                lines().unwrap_or_default()
            ),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub(crate) fn output(&self) -> String {
        let lines = self.output.lock().expect("output lock");
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    pub(crate) fn memory(&self) -> Option<(u64, u64)> {
        memory(self.child.id()?)
    }

    pub(crate) async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Drains a child's pipe (so it never blocks), keeping the last 200 lines.
fn forward(
    stream: impl AsyncRead + Unpin + Send + 'static,
    lines: mpsc::UnboundedSender<String>,
    output: Output,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            {
                let mut kept = output.lock().expect("output lock");
                if kept.len() == 200 {
                    kept.pop_front();
                }
                kept.push_back(line.clone());
            }
            let _ = lines.send(line);
        }
    });
}

/// The `addr` and `grpc_addr` of the JSON log line `switchyard-server listening`.
fn listening_addrs(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let value: Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "switchyard-server listening" {
        return None;
    }
    let addr = |name: &str| fields.get(name)?.as_str()?.parse().ok();
    Some((addr("addr")?, addr("grpc_addr")?))
}
