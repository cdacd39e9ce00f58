//! The real `switchyard-server` binary as a child process, for crash and signal
//! tests: started on a free port (found in its JSON log), killed when dropped.
#![allow(dead_code)]

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
    /// Every line the child wrote to stdout or stderr so far (piped output only).
    pub logs: Arc<Mutex<Vec<String>>>,
    /// The file the child writes stdout and stderr to, when started with one.
    log_file: Option<PathBuf>,
}

/// How [`ServerProcess::start_with`] starts the child.
pub struct Launch<'a> {
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
        ServerProcess::start_with(
            data_dir,
            Launch {
                args: &[],
                admin_token: Some(ADMIN),
                log_file: None,
            },
        )
        .await
    }

    /// Starts the binary on `data_dir` and a free loopback port as `launch` says, and
    /// waits until it logs that it is listening.
    pub async fn start_with(data_dir: &Path, launch: Launch<'_>) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard-server"));
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .args(launch.args)
            .env("RUST_LOG", "info")
            .env_remove("SWITCHYARD_ADMIN_TOKEN")
            .env_remove("SWITCHYARD_HTTP_ADDR")
            .env_remove("SWITCHYARD_DATA_DIR")
            .env_remove("SWITCHYARD_DEMO")
            .env_remove("SWITCHYARD_LOG_FORMAT")
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
            logs: Arc::new(Mutex::new(Vec::new())),
            log_file: launch.log_file.map(Path::to_owned),
        };
        let addr = if process.log_file.is_some() {
            let line = process.wait_for_output("switchyard-server listening").await;
            without_colours(&line)
                .split_whitespace()
                .find_map(|field| field.strip_prefix("addr="))
                .map(str::to_owned)
        } else {
            process.wait_for_json_listening().await
        };
        match addr {
            Some(addr) => process.base = format!("http://{addr}"),
            None => panic!(
                "switchyard-server logged no listening address; output:\n{}",
                process.output()
            ),
        }
        process
    }

    /// Waits for the JSON log line saying the server listens; its address.
    async fn wait_for_json_listening(&mut self) -> Option<String> {
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
