//! `switchyard-orchestrator serve` as a real process, and its CLI.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, BufReader};
use tokio::process::{Child, Command};

use super::flag_server::{FlagServer, ADMIN};

/// Collects a child's output in the background, so its pipe never fills.
fn drain(stream: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    tokio::spawn(async move {
        let mut stream = stream;
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            let chunk = String::from_utf8_lossy(&buffer[..n]).into_owned();
            sink.lock().expect("lock").push_str(&chunk);
        }
    });
    text
}

/// `switchyard-orchestrator serve` on a free port; killed when dropped.
pub struct Daemon {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The process.
    pub child: Child,
    /// Its stderr so far.
    pub stderr: Arc<Mutex<String>>,
    _data: tempfile::TempDir,
}

impl Daemon {
    /// Serves with the embedded store in a temporary directory.
    pub async fn start(flags: &FlagServer) -> Daemon {
        Daemon::start_with(flags, &[]).await
    }

    /// Serves with extra `serve` arguments (e.g. `--redis-url`).
    pub async fn start_with(flags: &FlagServer, extra: &[&str]) -> Daemon {
        let data = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-orchestrator"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--poll-interval",
                "200ms",
            ])
            .arg("--data-dir")
            .arg(data.path())
            .args(["--server-url", &flags.base, "--admin-token", ADMIN])
            .args(extra)
            .env_remove("SWITCHYARD_ORCHESTRATOR_TOKEN")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the switchyard-orchestrator binary starts");
        let stderr = drain(child.stderr.take().expect("stderr"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let deadline = Duration::from_secs(20);
        let url = tokio::time::timeout(deadline, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("switchyard-orchestrator listening on ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(url) = url else {
            panic!(
                "serve printed no `listening on` line; its stderr:\n{}",
                stderr.lock().expect("lock")
            );
        };
        drain(lines.into_inner().into_inner());
        Daemon {
            url,
            child,
            stderr,
            _data: data,
        }
    }

    /// Runs a client subcommand against this daemon: exit code, stdout, stderr.
    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_switchyard-orchestrator"))
            .args(args)
            .env("SWITCHYARD_ORCHESTRATOR_URL", &self.url)
            .env_remove("SWITCHYARD_ORCHESTRATOR_TOKEN")
            .env("USER", "ci")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{args:?} did not finish within 60 s; daemon stderr:\n{}",
                    self.stderr.lock().expect("lock")
                )
            })
            .expect("the CLI runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}
