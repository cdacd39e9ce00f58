//! Propagation latency between replicas sharing one Redis: the time from an admin
//! write on replica A to the `change` event for it on an SSE stream held on replica C.
//!
//! Starts its own `redis-server` (temporary directory, append-only file fsynced on
//! every write, as in the tests) and three `switchyard-server` processes A, B and C
//! with `--redis-url` (binary from `SWITCHYARD_SERVER_BIN`). Through A it creates the
//! environment `bench`, a boolean flag `f` and an sdk token; it opens
//! `GET /v1/sdk/stream` on C and waits until C has caught up with A. Then it performs N
//! sequential writes on A, alternating `POST …/flags/f/kill` and `…/revive`. Each write
//! produces the next revision; its latency runs from just before the request is sent
//! to the arrival on C's stream (the moment the bytes are read from the socket) of
//! the `change` event whose `id` is that revision. Every write waits for its event
//! before the next one starts, so the figure is unloaded latency, including A's
//! durable commit (Redis with `appendfsync always`), the publish, and C's apply.
//!
//! Prints count, median, p90, p99 and max (nearest-rank percentiles), and the
//! acknowledgement time of the writes on A for comparison. Exits non-zero when an
//! event does not arrive within 5 s. Every child process is killed at the end, also
//! on errors.
//!
//! Run: `benches/load/propagation.sh [N=300]` (builds release binaries first).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The bootstrap admin token every replica is started with.
const ADMIN: &str = "propagation-bench-admin-token-0123456789";
/// How long a write's change event may take to reach C before the run fails.
const EVENT_DEADLINE: Duration = Duration::from_secs(5);
/// How long a process may take to start, and C to catch up before the writes.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// The default number of writes.
const DEFAULT_WRITES: usize = 300;

#[tokio::main]
async fn main() -> ExitCode {
    // On Ctrl-C, `run` is dropped: its children are killed and the directory removed.
    let outcome = tokio::select! {
        outcome = run() => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("propagation: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let writes = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                anyhow!("the argument must be a positive number of writes, not {arg:?}")
            })?,
        None => DEFAULT_WRITES,
    };
    let bin = std::env::var("SWITCHYARD_SERVER_BIN")
        .context("set SWITCHYARD_SERVER_BIN to the switchyard-server binary")?;

    // Dropped in reverse order on every exit path: replicas, then Redis (SIGKILL).
    let mut redis = Redis::start().await?;
    let mut replicas = Vec::new();
    for name in ["A", "B", "C"] {
        replicas.push(Replica::start(name, &bin, &redis.url()).await?);
    }
    let result = measure(&replicas, writes).await;
    if result.is_err() {
        for replica in &replicas {
            eprintln!(
                "--- last output of replica {}:\n{}",
                replica.name,
                replica.output()
            );
        }
    }
    for replica in &mut replicas {
        replica.stop().await;
    }
    redis.stop().await;
    result
}

async fn measure(replicas: &[Replica], writes: usize) -> Result<()> {
    let (a, c) = (&replicas[0], &replicas[2]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    call(&http, "PUT", &a.url("/v1/admin/envs/bench"), ADMIN, None).await?;
    let flag = json!({
        "key": "f", "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "default": {"variant": "on"}
    });
    call(
        &http,
        "PUT",
        &a.url("/v1/admin/envs/bench/flags/f"),
        ADMIN,
        Some(flag),
    )
    .await?;
    let token = call(
        &http,
        "POST",
        &a.url("/v1/admin/tokens"),
        ADMIN,
        Some(json!({"name": "bench-sdk", "kind": "sdk", "env": "bench"})),
    )
    .await?["token"]
        .as_str()
        .ok_or_else(|| anyhow!("token creation answered no token"))?
        .to_owned();
    let on_a = call(&http, "GET", &a.url("/v1/sdk/snapshot"), &token, None).await?["revision"]
        .as_u64()
        .ok_or_else(|| anyhow!("A's snapshot has no revision"))?;

    // C may learn of the token and environment a moment later: retry until it answers.
    let mut events = open_stream(c, &token).await?;
    let first = events
        .next(Instant::now() + START_DEADLINE)
        .await
        .context("C's stream sent nothing")?;
    if first.kind != "snapshot" {
        bail!("C's stream began with `{}`, not a snapshot", first.kind);
    }
    let mut revision = first.id.context("C's snapshot event has no id")?;
    let caught_up = Instant::now() + START_DEADLINE;
    while revision < on_a {
        let event = events
            .next(caught_up)
            .await
            .with_context(|| format!("C stays at revision {revision}, A is at {on_a}"))?;
        revision = revision.max(event.id.unwrap_or(revision));
    }
    if revision != on_a {
        bail!("C is at revision {revision}, ahead of A's {on_a}: someone else writes");
    }

    println!(
        "propagation: {writes} sequential writes on replica A (kill/revive), change events on \
         an SSE stream on replica C; 3 replicas, 1 redis-server; starting at revision {revision}"
    );
    let mut latencies = Vec::with_capacity(writes);
    let mut acks = Vec::with_capacity(writes);
    let mut failure = None;
    for i in 0..writes {
        let action = if i % 2 == 0 { "kill" } else { "revive" };
        let expected = revision + 1;
        let path = format!("/v1/admin/envs/bench/flags/f/{action}");
        let sent = Instant::now();
        if let Err(error) = call(
            &http,
            "POST",
            &a.url(&path),
            ADMIN,
            Some(json!({"reason": "propagation benchmark"})),
        )
        .await
        {
            failure = Some(error.context(format!("write {i} ({action})")));
            break;
        }
        acks.push(sent.elapsed());
        match events.change(expected, sent + EVENT_DEADLINE).await {
            Ok(arrived) => latencies.push(arrived - sent),
            Err(error) => {
                failure = Some(error.context(format!("write {i} ({action})")));
                break;
            }
        }
        revision = expected;
    }

    report("A write → change event on C", &mut latencies);
    report("A write acknowledged (HTTP round trip)", &mut acks);
    match failure {
        None => Ok(()),
        Some(error) => Err(error),
    }
}

/// Prints count, median, p90, p99 and max in milliseconds (nearest rank).
fn report(what: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rank = |p: f64| {
        let index = (p / 100.0 * samples.len() as f64).ceil() as usize;
        ms(samples[index.clamp(1, samples.len()) - 1])
    };
    println!("{what}:");
    if samples.is_empty() {
        println!("  count   0");
        return;
    }
    println!("  count   {}", samples.len());
    println!("  median  {:.2} ms", rank(50.0));
    println!("  p90     {:.2} ms", rank(90.0));
    println!("  p99     {:.2} ms", rank(99.0));
    println!("  max     {:.2} ms", ms(samples[samples.len() - 1]));
}

/// One request with a bearer token; fails on a non-2xx status. Returns the JSON body
/// (`Null` when empty).
async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut request = http
        .request(reqwest::Method::from_bytes(method.as_bytes())?, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{method} {url}: {status} {text}");
    }
    Ok(if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).with_context(|| format!("{method} {url}: not JSON: {text}"))?
    })
}

// ---------------------------------------------------------------------------------
// The SSE stream on C

/// One server-sent event, stamped with the time its last bytes were read.
#[derive(Debug)]
struct Event {
    kind: String,
    id: Option<u64>,
    arrived: Instant,
}

/// Events of one stream, parsed by a background task as the bytes arrive.
struct Events {
    rx: mpsc::UnboundedReceiver<Result<Event>>,
}

async fn open_stream(replica: &Replica, token: &str) -> Result<Events> {
    // No overall timeout: the stream stays open for the whole run.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + START_DEADLINE;
    let response = loop {
        let attempt = http
            .get(replica.url("/v1/sdk/stream"))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .context("GET /v1/sdk/stream on C")?;
        if attempt.status().is_success() {
            break attempt;
        }
        if Instant::now() >= deadline {
            let status = attempt.status();
            bail!(
                "GET /v1/sdk/stream on C: {status} {}",
                attempt.text().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut bytes = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        let (mut kind, mut id, mut any) = (String::new(), None, false);
        while let Some(chunk) = bytes.next().await {
            let arrived = Instant::now();
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    let _ = tx.send(Err(anyhow!(error).context("C's stream broke")));
                    return;
                }
            };
            buffer.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(end) = buffer[start..].iter().position(|&b| b == b'\n') {
                let raw = &buffer[start..start + end];
                start += end + 1;
                let line = String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw));
                if line.is_empty() {
                    // A blank line dispatches the event (comment-only blocks are not events).
                    if any {
                        let kind = std::mem::take(&mut kind);
                        let kind = if kind.is_empty() {
                            "message".into()
                        } else {
                            kind
                        };
                        if tx.send(Ok(Event { kind, id, arrived })).is_err() {
                            return;
                        }
                    }
                    (kind, id, any) = (String::new(), None, false);
                    continue;
                }
                if line.starts_with(':') {
                    continue; // heartbeat
                }
                let (field, value) = line.split_once(':').unwrap_or((&line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => (kind, any) = (value.to_owned(), true),
                    "id" => (id, any) = (value.parse().ok(), true),
                    "data" => any = true,
                    _ => {}
                }
            }
            buffer.drain(..start);
        }
        let _ = tx.send(Err(anyhow!("C ended the stream")));
    });
    Ok(Events { rx })
}

impl Events {
    /// The next event, failing at `deadline` or when the stream ends.
    async fn next(&mut self, deadline: Instant) -> Result<Event> {
        match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
            Err(_) => bail!("no event before the deadline"),
            Ok(None) => bail!("C's stream ended"),
            Ok(Some(event)) => event,
        }
    }

    /// When the `change` event with id `revision` arrived.
    async fn change(&mut self, revision: u64, deadline: Instant) -> Result<Instant> {
        loop {
            let event = self.next(deadline).await.with_context(|| {
                format!(
                    "no `change` event with id {revision} on C within {EVENT_DEADLINE:?} of the write"
                )
            })?;
            match event.id {
                Some(id) if id == revision && event.kind == "change" => return Ok(event.arrived),
                Some(id) if id >= revision => bail!(
                    "C sent `{}` with id {id} instead of `change` {revision}",
                    event.kind
                ),
                _ => {} // an older revision: not ours
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Child processes

/// Lines a replica wrote, the last few kept for error messages.
type Output = Arc<Mutex<VecDeque<String>>>;

/// A `switchyard-server` replica. Dropping it sends SIGKILL.
struct Replica {
    name: &'static str,
    child: Child,
    base: String,
    output: Output,
}

impl Replica {
    async fn start(name: &'static str, bin: &str, redis_url: &str) -> Result<Replica> {
        let mut child = Command::new(bin)
            .args(["--redis-url", redis_url])
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
            .env_remove("SWITCHYARD_REDIS_URL")
            .env_remove("SWITCHYARD_DEMO")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {bin}"))?;
        let output = Output::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().context("stdout")?;
        let stderr = child.stderr.take().context("stderr")?;
        forward(stdout, tx.clone(), Arc::clone(&output));
        forward(stderr, tx, Arc::clone(&output));
        let mut replica = Replica {
            name,
            child,
            base: String::new(),
            output,
        };
        let found = tokio::time::timeout(START_DEADLINE, async {
            while let Some(line) = rx.recv().await {
                if let Some(addr) = listening_addr(&line) {
                    return Some(addr);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(addr)) => replica.base = format!("http://{addr}"),
            Ok(None) => bail!(
                "replica {name} ended before listening:\n{}",
                replica.output()
            ),
            Err(_) => bail!(
                "replica {name} did not log `switchyard-server listening` within {START_DEADLINE:?}:\n{}",
                replica.output()
            ),
        }
        Ok(replica)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn output(&self) -> String {
        let lines = self.output.lock().expect("output lock");
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    async fn stop(&mut self) {
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

/// The `addr` of the JSON log line `switchyard-server listening`.
fn listening_addr(line: &str) -> Option<String> {
    let value: Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "switchyard-server listening" {
        return None;
    }
    fields.get("addr")?.as_str().map(str::to_owned)
}

/// A `redis-server` on a free loopback port with a temporary directory. Dropping it
/// sends SIGKILL (before the directory is removed: fields drop in order).
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    async fn start() -> Result<Redis> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("redis-server.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let out: File = OpenOptions::new().create(true).append(true).open(&log)?;
        let err = out.try_clone()?;
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                bail!("redis-server not found: install the Debian package redis-server")
            }
            Err(error) => return Err(error).context("start redis-server"),
        };
        let mut redis = Redis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = redis.child.try_wait()? {
                bail!("redis-server exited ({status}):\n{}", read_log(&log));
            }
            if ping(port).await {
                return Ok(redis);
            }
            if Instant::now() >= deadline {
                bail!(
                    "redis-server did not answer PING within 10 s:\n{}",
                    read_log(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Whether `PING` on `port` answers `+PONG` (not `-LOADING`, not refused).
async fn ping(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await.ok()?;
        Some(line.trim_end() == "+PONG")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Some(true))
    )
}
