//! `switchyard-orchestrator serve` as a real process, and its CLI.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, BufReader};
use tokio::process::{Child, Command};

use super::flag_server::{FlagServer, ADMIN};

/// Collects a child's output in the background, so its pipe never fills.
pub fn drain(stream: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    drain_joined(stream).0
}

/// [`drain`], with the task that reads: it ends when the stream closes, after which the
/// text is complete (a child that exited may still have output in the pipe).
pub fn drain_joined(
    stream: impl AsyncRead + Unpin + Send + 'static,
) -> (Arc<Mutex<String>>, tokio::task::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let reader = tokio::spawn(async move {
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
    (text, reader)
}

/// `switchyard-orchestrator serve` on a free port; killed when dropped.
pub struct Daemon {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The process.
    pub child: Child,
    /// Its stderr so far.
    pub stderr: Arc<Mutex<String>>,
    /// What it was started with, for [`Daemon::restart`].
    server_url: String,
    extra: Vec<String>,
    data: tempfile::TempDir,
}

impl Daemon {
    /// Serves with the embedded store in a temporary directory.
    pub async fn start(flags: &FlagServer) -> Daemon {
        Daemon::start_with(flags, &[]).await
    }

    /// Serves with extra `serve` arguments (e.g. `--redis-url`).
    pub async fn start_with(flags: &FlagServer, extra: &[&str]) -> Daemon {
        let data = tempfile::tempdir().expect("temp dir");
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        let (url, child, stderr) = serve(&flags.base, data.path(), "127.0.0.1:0", &extra).await;
        Daemon {
            url,
            child,
            stderr,
            server_url: flags.base.clone(),
            extra,
            data,
        }
    }

    /// Kills the process (as a crash would) and waits until it is gone.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill serve");
    }

    /// Stops the process with SIGTERM (a clean shutdown) and waits until it is gone.
    pub async fn terminate(&mut self) {
        let pid = self.child.id().expect("serve is running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let exited = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("serve exits within 20 s of SIGTERM")
            .expect("wait for serve");
        assert!(exited.success(), "serve exited with {exited} on SIGTERM");
    }

    /// Starts the daemon again (after [`Daemon::kill`] or [`Daemon::terminate`]) on the
    /// same port, with the same store and arguments.
    pub async fn restart(&mut self) {
        let listen = self
            .url
            .strip_prefix("http://")
            .expect("http URL")
            .to_owned();
        let (url, child, stderr) =
            serve(&self.server_url, self.data.path(), &listen, &self.extra).await;
        assert_eq!(url, self.url, "restarted on another address");
        self.child = child;
        self.stderr = stderr;
    }

    /// A client subcommand against this daemon, not started yet.
    fn client(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard-orchestrator"));
        command
            .args(args)
            .env("SWITCHYARD_ORCHESTRATOR_URL", &self.url)
            .env_remove("SWITCHYARD_ORCHESTRATOR_TOKEN")
            .env("USER", "ci")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts a client subcommand against this daemon in the background, its output
    /// piped (e.g. `apply --wait` while the daemon is killed and restarted).
    pub fn spawn_client(&self, args: &[&str]) -> Child {
        self.client(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the CLI starts")
    }

    /// Runs a client subcommand against this daemon: exit code, stdout, stderr.
    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.client(args).output();
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

/// Starts `serve` and waits for its `listening on` line: its URL, process and stderr.
async fn serve(
    server_url: &str,
    data: &std::path::Path,
    listen: &str,
    extra: &[String],
) -> (String, Child, Arc<Mutex<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-orchestrator"))
        .args(["serve", "--listen", listen, "--poll-interval", "200ms"])
        .arg("--data-dir")
        .arg(data)
        .args(["--server-url", server_url, "--admin-token", ADMIN])
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
    (url, child, stderr)
}
