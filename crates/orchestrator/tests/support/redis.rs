//! A real `redis-server` as a child process, for the Redis store tests: started on a
//! free loopback port with its own temporary directory, killed when dropped.
//! [`RedisProcess::start`] keeps nothing on disk (`--save "" --appendonly no`);
//! [`RedisProcess::start_persistent`] fsyncs an append-only file on every write, so
//! [`RedisProcess::stop`] (SIGKILL) followed by [`RedisProcess::restart`] (same port,
//! same directory) loses no acknowledged write.
//!
//! The calls are synchronous and short (a start takes tens of milliseconds), so async
//! tests make them directly. Adapted from the flag server's
//! `crates/server/tests/redis_process.rs`.
//!
//! `redis-server` must be on `PATH` (Debian package `redis-server`); without it every
//! test using this module panics saying so — it never skips.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long `redis-server` may take to answer `PING` after it is started.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);

/// How long the readiness probe may take to connect, and then to be answered.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A running (or deliberately stopped) `redis-server`.
pub struct RedisProcess {
    /// `None` while stopped.
    child: Option<Child>,
    port: u16,
    persistent: bool,
    /// Every line the server wrote to stdout or stderr, across restarts.
    output: Arc<Mutex<Vec<String>>>,
    /// Its working directory; removed when dropped (after the kill: fields drop after
    /// `Drop::drop`).
    dir: tempfile::TempDir,
}

/// A loopback port that was free a moment ago (bound to port 0, read, released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl RedisProcess {
    /// Starts `redis-server` without persistence and waits until it answers `PING`.
    pub fn start() -> RedisProcess {
        RedisProcess::launch(false)
    }

    /// Starts `redis-server` with `appendonly yes` and `appendfsync always`, so what it
    /// acknowledged survives [`RedisProcess::restart`].
    pub fn start_persistent() -> RedisProcess {
        RedisProcess::launch(true)
    }

    fn launch(persistent: bool) -> RedisProcess {
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        let output = Arc::new(Mutex::new(Vec::new()));
        // The port was free when chosen, but another process may take it before
        // redis-server binds it: then redis-server exits and another port is tried.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            let (mut child, woken) = spawn(port, persistent, &dir, &output);
            match wait_ready(&mut child, port, &woken) {
                Ok(()) => {
                    return RedisProcess {
                        child: Some(child),
                        port,
                        persistent,
                        output,
                        dir,
                    }
                }
                Err(problem) => {
                    kill(&mut child);
                    assert!(
                        attempts < 3,
                        "redis-server did not start: {problem}; its output:\n{}",
                        join(&output)
                    );
                    eprintln!("redis-server on port {port}: {problem}; trying another port");
                }
            }
        }
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it (SIGKILL) and waits until it has exited, so its port is closed and
    /// every client connection is broken when this returns. Does nothing if stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Starts it again on the same port and directory (stopping it first if it is
    /// running) and waits until it answers `PING`; when persistent, what it had
    /// acknowledged has been loaded back by then.
    pub fn restart(&mut self) {
        self.stop();
        let (mut child, woken) = spawn(self.port, self.persistent, &self.dir, &self.output);
        if let Err(problem) = wait_ready(&mut child, self.port, &woken) {
            kill(&mut child);
            panic!(
                "redis-server did not restart on port {}: {problem}; its output:\n{}",
                self.port,
                self.output()
            );
        }
        self.child = Some(child);
    }

    /// Everything `redis-server` wrote so far (all runs), one line each.
    pub fn output(&self) -> String {
        join(&self.output)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn join(output: &Mutex<Vec<String>>) -> String {
    output.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
}

/// SIGKILL, then reap (so the port is closed when this returns).
fn kill(child: &mut Child) {
    let _ = child.kill(); // an error means it has exited already
    let _ = child.wait();
}

/// Starts `redis-server` on `port` in `dir`. Its output is collected in `output`; the
/// receiver gets a message for every line (and disconnects at exit).
fn spawn(
    port: u16,
    persistent: bool,
    dir: &tempfile::TempDir,
    output: &Arc<Mutex<Vec<String>>>,
) -> (Child, Receiver<()>) {
    let mut command = Command::new("redis-server");
    command
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir.path())
        .args(["--save", ""])
        .args(["--daemonize", "no"])
        .args(["--protected-mode", "no"]);
    if persistent {
        command.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        command.args(["--appendonly", "no"]);
    }
    let spawned = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == ErrorKind::NotFound => panic!(
            "redis-server not found on PATH: install the Debian package `redis-server` \
             (apt-get install redis-server; scripts/test.sh does this)"
        ),
        Err(error) => panic!("could not start redis-server: {error}"),
    };
    let (wake, woken) = mpsc::channel();
    forward(child.stdout.take().expect("stdout"), wake.clone(), output);
    forward(child.stderr.take().expect("stderr"), wake, output);
    (child, woken)
}

/// Drains a pipe of the child on a thread (so it never blocks on a full pipe).
fn forward(pipe: impl Read + Send + 'static, wake: Sender<()>, output: &Arc<Mutex<Vec<String>>>) {
    let output = Arc::clone(output);
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            output.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            let _ = wake.send(());
        }
    });
}

/// Polls until the child answers `PING` with `+PONG` on `port` — and is the one
/// answering (its `process_id`), not some other server that took the port. Between
/// attempts it waits for the child's next output line or 10 ms, whichever is first.
fn wait_ready(child: &mut Child, port: u16, woken: &Receiver<()>) -> Result<(), String> {
    let pid = child.id();
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!(
                "redis-server exited ({status}) before answering PING"
            ));
        }
        let last = match raw_command(port, "PING") {
            Ok(pong) if pong == "+PONG" => {
                let info = raw_command(port, "INFO server")?;
                let answering = info
                    .lines()
                    .find_map(|line| line.strip_prefix("process_id:"))
                    .map(|id| id.trim().to_owned());
                return if answering == Some(pid.to_string()) {
                    Ok(())
                } else {
                    Err(format!(
                        "port {port} is answered by another redis-server (pid {answering:?}, ours {pid})"
                    ))
                };
            }
            // `-LOADING` while the append-only file is read back, or not listening yet.
            Ok(other) => format!("PING answered {other:?}"),
            Err(error) => error,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "no +PONG on port {port} within {READY_DEADLINE:?} (last: {last})"
            ));
        }
        match woken.recv_timeout((deadline - now).min(Duration::from_millis(10))) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            // Both pipes closed: the child is exiting; `try_wait` will tell.
            Err(RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
            }
        }
    }
}

/// One inline command over a new connection; the reply's first line, or for a bulk
/// string its body.
fn raw_command(port: u16, command: &str) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    let line = line.trim_end().to_owned();
    let Some(len) = line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else {
        return if line.is_empty() {
            Err("connection closed before the reply".into())
        } else {
            Ok(line)
        };
    };
    let mut body = vec![0; len];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("read: {e}"))?;
    String::from_utf8(body).map_err(|e| e.to_string())
}
