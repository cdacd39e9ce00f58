//! The real `switchyard-server` binary as a child process, for crash and signal
//! tests: started on a free port (found in its JSON log), killed when dropped.
#![allow(dead_code)]

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The bootstrap admin token given to the child.
pub const ADMIN: &str = "process-test-admin-token-0123456789";

/// How long the child may take to start listening or to exit.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running `switchyard-server` process. Dropping it sends SIGKILL, so a failing
/// test leaves no process behind.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Every line the child wrote to stdout or stderr so far.
    pub logs: Arc<Mutex<Vec<String>>>,
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

/// The `addr` field of a JSON log line saying the server is listening.
fn listening_addr(line: &str) -> Option<String> {
    let value: Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "switchyard-server listening" {
        return None;
    }
    fields.get("addr")?.as_str().map(str::to_owned)
}

impl ServerProcess {
    /// Starts the binary on `data_dir` and a free loopback port, and waits until it
    /// logs that it is listening.
    pub async fn start(data_dir: &Path) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-server"))
            .arg("--data-dir")
            .arg(data_dir)
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
            .env_remove("SWITCHYARD_DATA_DIR")
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
        let mut process = ServerProcess {
            child,
            base: String::new(),
            logs,
        };
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
            Ok(Some(addr)) => process.base = format!("http://{addr}"),
            Ok(None) => {
                let status = process.child.try_wait().ok().flatten();
                panic!(
                    "switchyard-server ended before listening ({status:?}); output:\n{}",
                    process.output()
                );
            }
            Err(_) => panic!(
                "switchyard-server did not log `switchyard-server listening` within {DEADLINE:?}; output:\n{}",
                process.output()
            ),
        }
        process
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

    /// Everything the child logged so far, one line each.
    pub fn output(&self) -> String {
        self.logs.lock().expect("log lock").join("\n")
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
