//! A real `redis-server` as a child process, for the Redis store tests: started on a
//! free loopback port with its own temporary directory and append-only persistence
//! fsynced on every write, so [`RedisProcess::stop`] (SIGKILL) followed by
//! [`RedisProcess::restart`] (same port, same directory) loses no acknowledged write.
//! Killed when dropped.
//!
//! The calls are synchronous and short (a start or restart takes tens of
//! milliseconds), so they can be made from async tests directly.
//!
//! `redis-server` must be on `PATH` (`scripts/test.sh` installs the Debian package);
//! without it every test using this module fails with a message saying so — it never
//! skips.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::free_port;

/// How long `redis-server` may take to answer `PING` after it is started.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);

/// How long one raw command may take to connect, and then to be answered.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A running (or deliberately stopped) `redis-server`.
pub struct RedisProcess {
    /// `None` while stopped.
    child: Option<Child>,
    port: u16,
    /// Every line the server wrote to stdout or stderr, across restarts.
    output: Arc<Mutex<Vec<String>>>,
    /// Holds `appendonlydir/`; removed when dropped (after the kill: fields drop
    /// after `Drop::drop`).
    dir: tempfile::TempDir,
    /// What it runs as, besides the defaults.
    role: Role,
}

/// What a [`RedisProcess`] runs as, besides a standalone server.
#[derive(Debug, Clone, Default)]
pub enum Role {
    /// A standalone server (a primary).
    #[default]
    Server,
    /// A standalone server with these further `redis-server` options.
    With(Vec<String>),
    /// A Sentinel with this configuration (written to `sentinel.conf` in its
    /// directory, which Sentinel rewrites as it learns).
    Sentinel(String),
}

/// A RESP reply, as read by [`RedisProcess::command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR …`
    Error(String),
    /// `:1`
    Integer(i64),
    /// `$3\r\nabc` (`None` for `$-1`, nil).
    Bulk(Option<Vec<u8>>),
    /// `*2 …` (`None` for `*-1`, nil).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a simple string or a bulk string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Simple(text) => Some(text),
            Reply::Bulk(Some(bytes)) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }
}

impl RedisProcess {
    /// Starts `redis-server` on a free loopback port and a fresh temporary directory,
    /// and waits until it answers `PING`.
    pub fn start() -> RedisProcess {
        RedisProcess::start_as(Role::Server)
    }

    /// Starts `redis-server` as `role` on a free loopback port (see [`Role`]).
    pub fn start_as(role: Role) -> RedisProcess {
        RedisProcess::start_on(free_port(), role)
    }

    /// Starts `redis-server` as `role` on `port`, or on another free port if that one
    /// is taken when it binds.
    pub fn start_on(first: u16, role: Role) -> RedisProcess {
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        if let Role::Sentinel(config) = &role {
            std::fs::write(dir.path().join("sentinel.conf"), config).expect("sentinel.conf");
        }
        let output = Arc::new(Mutex::new(Vec::new()));
        // The port was free when chosen, but another process may take it before
        // redis-server binds it: then redis-server exits and another port is tried.
        let mut attempts = 0;
        let mut port = first;
        loop {
            attempts += 1;
            let (mut child, woken) = spawn(port, &dir, &output, &role);
            match wait_ready(&mut child, port, &woken) {
                Ok(()) => {
                    return RedisProcess {
                        child: Some(child),
                        port,
                        output,
                        dir,
                        role,
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
                    port = free_port();
                }
            }
        }
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TCP port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory (kept across restarts).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Whether it is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills it (SIGKILL) and waits until it has exited, so its port is closed and
    /// every client connection is broken when this returns. Does nothing if stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Starts it again on the same port and directory (stopping it first if it is
    /// running) and waits until it answers `PING`; what was written before the stop
    /// has been loaded back from the append-only file by then.
    pub fn restart(&mut self) {
        self.stop();
        let (mut child, woken) = spawn(self.port, &self.dir, &self.output, &self.role);
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

    /// Sends one command over a fresh raw TCP connection and returns the reply.
    /// Panics if the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Reply {
        raw_command(self.port, args).unwrap_or_else(|error| {
            panic!(
                "redis command {args:?} on port {}: {error}; redis-server output:\n{}",
                self.port,
                self.output()
            )
        })
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

/// Starts `redis-server` on `port` with its data in `dir`. Its output is collected in
/// `output`; the receiver gets a message for every line (and disconnects at exit).
fn spawn(
    port: u16,
    dir: &tempfile::TempDir,
    output: &Arc<Mutex<Vec<String>>>,
    role: &Role,
) -> (Child, Receiver<()>) {
    let mut command = Command::new("redis-server");
    if let Role::Sentinel(_) = role {
        command
            .arg(dir.path().join("sentinel.conf"))
            .arg("--sentinel");
    }
    command
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir.path())
        .args(["--appendonly", "yes"])
        .args(["--appendfsync", "always"])
        .args(["--save", ""])
        .args(["--daemonize", "no"])
        .args(["--protected-mode", "no"]);
    if let Role::With(options) = role {
        command.args(options);
    }
    let spawned = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == ErrorKind::NotFound => panic!(
            "redis-server not found: install the Debian package redis-server (scripts/test.sh does this)"
        ),
        Err(error) => panic!("could not start redis-server: {error}"),
    };
    let (wake, woken) = mpsc::channel();
    let stdout: ChildStdout = child.stdout.take().expect("stdout");
    let stderr: ChildStderr = child.stderr.take().expect("stderr");
    forward(stdout, wake.clone(), Arc::clone(output));
    forward(stderr, wake, Arc::clone(output));
    (child, woken)
}

/// Drains a pipe of the child on a thread (so it never blocks on a full pipe).
fn forward(pipe: impl Read + Send + 'static, wake: Sender<()>, output: Arc<Mutex<Vec<String>>>) {
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
        let last = match raw_command(port, &["PING"]) {
            Ok(Reply::Simple(pong)) if pong == "PONG" => {
                let info = raw_command(port, &["INFO", "server"])
                    .map_err(|e| format!("INFO server: {e}"))?;
                let answering = info.as_str().and_then(|text| {
                    text.lines()
                        .find_map(|line| line.strip_prefix("process_id:"))
                        .map(|id| id.trim().to_owned())
                });
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

/// One command as a RESP array of bulk strings over a new connection.
fn raw_command(port: u16, args: &[&str]) -> Result<Reply, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, COMMAND_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream
        .write_all(&request)
        .map_err(|e| format!("write: {e}"))?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(reader: &mut impl BufRead) -> Result<Reply, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => return Err("connection closed before the reply".into()),
        Ok(_) => {}
        Err(error) => return Err(format!("read: {error}")),
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let mut chars = line.chars();
    let kind = chars.next();
    let rest = chars.as_str();
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| format!("bad RESP line {line:?}"))
    };
    Ok(match kind {
        Some('+') => Reply::Simple(rest.to_owned()),
        Some('-') => Reply::Error(rest.to_owned()),
        Some(':') => Reply::Integer(number()?),
        Some('$') => match usize::try_from(number()?) {
            Err(_) => Reply::Bulk(None),
            Ok(len) => {
                let mut bytes = vec![0; len + 2]; // with the trailing \r\n
                reader
                    .read_exact(&mut bytes)
                    .map_err(|e| format!("read: {e}"))?;
                bytes.truncate(len);
                Reply::Bulk(Some(bytes))
            }
        },
        Some('*') => match usize::try_from(number()?) {
            Err(_) => Reply::Array(None),
            Ok(len) => Reply::Array(Some(
                (0..len)
                    .map(|_| read_reply(reader))
                    .collect::<Result<_, _>>()?,
            )),
        },
        _ => return Err(format!("bad RESP line {line:?}")),
    })
}
