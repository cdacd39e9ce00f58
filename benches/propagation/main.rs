//! Kill-switch propagation to many streaming clients, on one server or across three
//! replicas sharing Redis: the time from an admin write to the moment each client's
//! socket delivers the `change` event for it. Also the "scale" figures of one server
//! holding many flags and connections: resident memory, snapshot compile time, time
//! to connect every client and to push one change to all of them.
//!
//! Setup, all on loopback, every child killed on every exit path (also on Ctrl-C):
//! - `--replicas 1`: one `switchyard-server` on the embedded store (a temporary data
//!   directory, no Redis). `--replicas 3`: its own `redis-server` (temporary
//!   directory, append-only file fsynced on every write, as in the tests) and three
//!   servers A, B, C sharing it. The binary comes from `SWITCHYARD_SERVER_BIN`.
//! - Before the servers start, the environment `bench` with `--flags` flags is written
//!   straight into the store in one commit: `kill-target` plus `flag-00001`… made from
//!   one template (a `groups` rule and a rule with an `in` constraint serving a 25/75
//!   rollout). The admin API has no bulk write, and every write rebuilds the whole
//!   environment, so 10 000 flags one by one would take most of an hour.
//! - An sdk token is made through A; every replica must serve A's revision of the
//!   environment before clients connect.
//! - `--clients` clients connect round-robin to the replicas (client i to replica
//!   i mod R), at most `--connect-concurrency` at a time; a client counts as connected
//!   once its initial `snapshot` has arrived in full. SSE clients (`GET
//!   /v1/sdk/stream`) each use their own TCP connection and a minimal HTTP/1.1 +
//!   chunked + SSE parser that keeps only the start of each line (the snapshot's
//!   `data:` line is skipped, not parsed). gRPC clients call `switchyard.v1.Sync/Stream`
//!   over `--grpc-channels` HTTP/2 connections (default: one per client).
//! - `--writes` sequential writes on A, alternating `POST …/flags/kill-target/kill`
//!   and `…/revive`. Each is timed from just before its request is sent; every client
//!   stamps the moment its socket delivered the event for the new revision (the read
//!   that completed it). The next write starts once every client has it; a client
//!   that has not within `--deadline` fails the run, naming how many missed it.
//!
//! Reported (one `summary` line per metric, nearest-rank percentiles): write → receipt
//! over every (write, client) pair, overall and per replica; per write, the time until
//! the last client had it, and the fan-out (first to last client's receipt); the
//! write's acknowledgement on A (HTTP round trip); the time to connect all
//! clients; each server's VmRSS/VmHWM after seeding, after connecting and after the
//! writes; `switchyard_snapshot_compile_seconds` from each server's `/metrics` (the
//! compile at load, and the mean per compile during the writes).
//!
//! Run: `benches/load/propagation.sh [options]` and `benches/load/scale.sh [options]`
//! (they build release binaries and raise `ulimit -n`); `--help` lists the options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod replica;
mod sse;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use switchyard_benches::percentiles::distribution;
use switchyard_core::model::EnvName;
use switchyard_core::sync::ChangeDocument;
use switchyard_core::{Flag, Snapshot};
use switchyard_server::grpc::proto::switchyard::sync_client::SyncClient;
use switchyard_server::grpc::proto::switchyard::sync_event::Kind as GrpcKind;
use switchyard_server::grpc::proto::switchyard::StreamRequest;
use switchyard_server::store::embedded::EmbeddedStore;
use switchyard_server::store::redis::RedisStore;
use switchyard_server::store::{AuditEntry, Commit, Store};
use switchyard_testkit::redis::RedisProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use replica::{memory, Replica, ReplicaStore};
use sse::{find, Body};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

/// The bootstrap admin token every server is started with.
const ADMIN: &str = "propagation-bench-admin-token-0123456789";
/// The environment under test.
const ENV: &str = "bench";
/// The flag the writes kill and revive.
const TARGET: &str = "kill-target";
/// How long a process may take to start, and a replica to catch up with A.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// File descriptors the tool and each server need besides the client connections.
const FD_SPARE: u64 = 128;

/// Write → receipt latency of admin writes to many SSE or gRPC Sync clients.
#[derive(Debug, Parser)]
#[command(name = "propagation", args_override_self = true)]
struct Args {
    /// Streaming clients (1..=20000).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// How the clients stream: SSE (`GET /v1/sdk/stream`) or gRPC `switchyard.v1.Sync`.
    #[arg(long, value_enum, default_value_t = Protocol::Sse)]
    protocol: Protocol,
    /// 1: one server on the embedded store; 3: a redis-server and three servers
    /// sharing it (writes go to A, clients spread over A, B and C).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Sequential writes on A, alternating kill and revive (1..=100000).
    #[arg(long, default_value_t = 50)]
    writes: usize,
    /// Flags in the environment: the kill target plus generated ones (1..=100000).
    #[arg(long, default_value_t = 1)]
    flags: usize,
    /// HTTP/2 connections the gRPC clients share (default: one per client).
    #[arg(long)]
    grpc_channels: Option<usize>,
    /// Clients connecting (waiting for their initial snapshot) at the same time.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Seconds every client has to receive a write before the run fails.
    #[arg(long, default_value_t = 10)]
    deadline: u64,
    /// Seconds all clients have to connect.
    #[arg(long, default_value_t = 600)]
    connect_deadline: u64,
    /// The switchyard-server binary.
    #[arg(long, env = "SWITCHYARD_SERVER_BIN")]
    server_bin: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    Sse,
    Grpc,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Sse => "sse",
            Protocol::Grpc => "grpc",
        }
    }
}

impl Args {
    fn channels(&self) -> usize {
        self.grpc_channels.unwrap_or(self.clients)
    }

    fn check(&self) -> Result<()> {
        if !(1..=20_000).contains(&self.clients) {
            bail!("--clients must be within 1..=20000");
        }
        if self.replicas != 1 && self.replicas != 3 {
            bail!("--replicas must be 1 or 3");
        }
        if !(1..=100_000).contains(&self.writes) {
            bail!("--writes must be within 1..=100000");
        }
        if !(1..=100_000).contains(&self.flags) {
            bail!("--flags must be within 1..=100000");
        }
        if self.protocol == Protocol::Grpc
            && !(self.replicas..=self.clients).contains(&self.channels())
        {
            bail!("--grpc-channels must be within --replicas..=--clients");
        }
        if self.connect_concurrency == 0 || self.deadline == 0 || self.connect_deadline == 0 {
            bail!("--connect-concurrency, --deadline and --connect-deadline must be positive");
        }
        Ok(())
    }

    /// Connections to the servers: one per SSE client, one per gRPC channel.
    fn connections(&self) -> usize {
        match self.protocol {
            Protocol::Sse => self.clients,
            Protocol::Grpc => self.channels(),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // On Ctrl-C, `run` is dropped: its children are killed and its directories removed.
    let outcome = tokio::select! {
        outcome = run(args) => outcome,
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

async fn run(args: Args) -> Result<()> {
    args.check()?;
    check_fd_limit(&args)?;
    let dir = tempfile::tempdir()?;
    let flags = generate_flags(args.flags)?;

    // Dropped in reverse order on every exit path: servers, then Redis (SIGKILL).
    let mut redis = None;
    let mut stores = Vec::new();
    if args.replicas == 3 {
        // The test kit's rig: it panics with a clear message if redis-server is missing.
        let started = RedisProcess::start();
        seed(&RedisStore::connect(&started.url()).await?, flags).await?;
        stores = vec![ReplicaStore::Redis(started.url()); 3];
        redis = Some(started);
    } else {
        let data = dir.path().join("data");
        seed(&EmbeddedStore::open(&data)?, flags).await?;
        stores.push(ReplicaStore::Embedded(data));
    }
    let mut replicas = Vec::new();
    for (name, store) in ["A", "B", "C"].into_iter().zip(stores) {
        let started = Instant::now();
        let replica = Replica::start(name, &args.server_bin, &store).await?;
        eprintln!(
            "propagation: replica {name} listening after {:.2} s",
            started.elapsed().as_secs_f64()
        );
        replicas.push(replica);
    }
    let result = measure(&args, &replicas).await;
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
    if let Some(redis) = &mut redis {
        redis.stop();
    }
    result
}

// ---------------------------------------------------------------------------------
// Seeding

/// `kill-target` and `flag-00001`… from one template: a `groups` rule and an `in`
/// constraint serving a 25/75 rollout. Compiled here, so a bad template fails plainly.
fn generate_flags(count: usize) -> Result<Vec<Flag>> {
    let flags = (0..count)
        .map(|i| {
            let key = if i == 0 {
                TARGET.to_owned()
            } else {
                format!("flag-{i:05}")
            };
            serde_json::from_value(json!({
                "key": key, "kind": "boolean", "description": "propagation benchmark flag",
                "variants": {"on": true, "off": false}, "off_variant": "off",
                "rules": [
                    {"id": "staff", "when": {"groups": ["staff"]}, "serve": {"variant": "on"}},
                    {"id": "eu-ramp",
                     "when": {"constraints": [{"attribute": "country", "op": "in", "values": ["IT", "DE", "FR"]}]},
                     "serve": {"rollout": {"split": [{"variant": "on", "weight": 25000},
                                                     {"variant": "off", "weight": 75000}]}}}
                ],
                "default": {"variant": "off"}, "tags": ["bench"], "version": 1
            }))
            .context("the flag template does not parse")
        })
        .collect::<Result<Vec<Flag>>>()?;
    Snapshot::compile(flags.iter().cloned(), [])
        .map_err(|e| anyhow!("the flag template does not compile: {e}"))?;
    Ok(flags)
}

/// Creates the environment and writes every flag in one commit, before any server runs.
async fn seed(store: &dyn Store, flags: Vec<Flag>) -> Result<()> {
    let env = EnvName::new(ENV);
    let audit = |action: &str| AuditEntry {
        reason: Some("seeded by benches/propagation.rs".to_owned()),
        ..AuditEntry::new("propagation-bench", Some(&env), action, ENV)
    };
    store.create_env(&env, audit("env.create")).await?;
    let count = flags.len();
    // Nobody listens yet (the servers load the environment when they start), but the
    // commit still carries its change document: the Redis store announces it and
    // refuses one that is not JSON.
    let change = ChangeDocument {
        environment: env.clone(),
        revision: 1,
        flags: flags.clone(),
        ..ChangeDocument::default()
    };
    let event = serde_json::to_vec(&change).context("encode the seed's change document")?;
    store
        .commit(Commit {
            env: env.clone(),
            expected_revision: 0,
            flags: flags
                .into_iter()
                .map(|f| (f.key.clone(), Some(f)))
                .collect(),
            segments: Vec::new(),
            audit: vec![audit("bench.seed")],
            event: event.into(),
        })
        .await?;
    eprintln!("propagation: seeded `{ENV}` with {count} flags in the store");
    Ok(())
}

// ---------------------------------------------------------------------------------
// The measurement

/// What a client tells the coordinator.
enum Note {
    /// An event arrived (its last bytes were read at `arrived`).
    Event {
        client: usize,
        kind: EventKind,
        revision: u64,
        arrived: Instant,
    },
    /// The client's stream failed or ended.
    Failed { client: usize, error: anyhow::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Snapshot,
    Change,
    Other,
}

/// Per server: VmRSS and VmHWM (KiB) and the compile histogram's (count, sum).
#[derive(Debug, Clone, Copy, Default)]
struct ServerSample {
    rss_kib: u64,
    hwm_kib: u64,
    compiles: u64,
    compile_seconds: f64,
}

async fn sample_servers(http: &reqwest::Client, replicas: &[Replica]) -> Vec<ServerSample> {
    let mut samples = Vec::new();
    for replica in replicas {
        let (rss_kib, hwm_kib) = replica.memory().unwrap_or_default();
        let (compiles, compile_seconds) =
            compile_histogram(http, replica).await.unwrap_or_default();
        samples.push(ServerSample {
            rss_kib,
            hwm_kib,
            compiles,
            compile_seconds,
        });
    }
    samples
}

/// `switchyard_snapshot_compile_seconds` (count, sum) from `/metrics`.
async fn compile_histogram(http: &reqwest::Client, replica: &Replica) -> Option<(u64, f64)> {
    let text = http
        .get(replica.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some((
        value("switchyard_snapshot_compile_seconds_count")? as u64,
        value("switchyard_snapshot_compile_seconds_sum")?,
    ))
}

async fn measure(args: &Args, replicas: &[Replica]) -> Result<()> {
    let a = &replicas[0];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let token = call(
        &http,
        "POST",
        &a.url("/v1/admin/tokens"),
        ADMIN,
        Some(json!({"name": "bench-sdk", "kind": "sdk", "env": ENV})),
    )
    .await?["token"]
        .as_str()
        .ok_or_else(|| anyhow!("token creation answered no token"))?
        .to_owned();
    let (mut revision, snapshot_bytes) = snapshot_revision(&http, a, &token).await?;
    for replica in &replicas[1..] {
        caught_up(&http, replica, &token, revision).await?;
    }
    let seeded = sample_servers(&http, replicas).await;

    println!(
        "propagation: {} {} clients over {} replica(s) ({}), {} flags (snapshot {:.1} KiB), \
         {} sequential writes on A (kill/revive of `{TARGET}`), starting at revision {revision}",
        args.clients,
        args.protocol.name(),
        replicas.len(),
        match args.protocol {
            Protocol::Sse => "one TCP connection per client".to_owned(),
            Protocol::Grpc => format!("{} HTTP/2 connection(s)", args.channels()),
        },
        args.flags,
        snapshot_bytes as f64 / 1024.0,
        args.writes,
    );

    // Connect every client; each reports its initial snapshot, then every event.
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let mut clients = JoinSet::new();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let grpc = match args.protocol {
        Protocol::Grpc => Some(GrpcChannels::new(replicas, args.channels())?),
        Protocol::Sse => None,
    };
    let auth: MetadataValue<Ascii> = format!("Bearer {token}")
        .parse()
        .context("the token is not valid metadata")?;
    let connect_start = Instant::now();
    for client in 0..args.clients {
        let replica = client % replicas.len();
        let spec = ClientSpec {
            client,
            notes: notes_tx.clone(),
            gate: Arc::clone(&gate),
        };
        match &grpc {
            None => {
                let addr = replicas[replica].http;
                let token = token.clone();
                clients.spawn(async move { spec.report(sse_client(&spec, addr, &token).await) });
            }
            Some(channels) => {
                let channel = channels.for_client(client, replicas.len());
                let auth = auth.clone();
                clients.spawn(async move { spec.report(grpc_client(&spec, channel, auth).await) });
            }
        }
    }
    drop(notes_tx);
    let connect_deadline = connect_start + Duration::from_secs(args.connect_deadline);
    let mut connected = vec![false; args.clients];
    let mut count = 0;
    let mut progress = Instant::now();
    while count < args.clients {
        let note = next_note(&mut notes, connect_deadline)
            .await
            .with_context(|| {
                format!(
                    "{} of {} clients had no snapshot within {} s",
                    args.clients - count,
                    args.clients,
                    args.connect_deadline
                )
            })?;
        match note {
            Note::Event {
                client,
                kind: EventKind::Snapshot,
                revision: got,
                ..
            } if !connected[client] => {
                if got != revision {
                    bail!("client {client}'s snapshot is at revision {got}, not {revision}");
                }
                connected[client] = true;
                count += 1;
            }
            Note::Event { client, kind, .. } => {
                bail!("client {client} sent {kind:?} before any write")
            }
            Note::Failed { client, error } => {
                return Err(error.context(format!(
                    "client {client} (replica {}) failed while connecting",
                    replicas[client % replicas.len()].name
                )))
            }
        }
        if progress.elapsed() >= Duration::from_secs(2) {
            progress = Instant::now();
            eprintln!(
                "propagation: {count}/{} clients connected after {:.1} s",
                args.clients,
                connect_start.elapsed().as_secs_f64()
            );
        }
    }
    let connect_time = connect_start.elapsed();
    eprintln!(
        "propagation: all {} clients connected in {:.2} s",
        args.clients,
        connect_time.as_secs_f64()
    );
    let after_connect = sample_servers(&http, replicas).await;

    // The writes.
    let writer = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let deadline = Duration::from_secs(args.deadline);
    let mut latencies = Vec::with_capacity(args.writes * args.clients);
    let mut by_replica = vec![Vec::with_capacity(args.writes * args.clients); replicas.len()];
    let mut last_client = Vec::with_capacity(args.writes);
    let mut fanout = Vec::with_capacity(args.writes);
    let mut acks = Vec::with_capacity(args.writes);
    let mut resyncs = 0usize;
    let mut failure = None;
    let writes_start = Instant::now();
    let mut progress = Instant::now();
    'writes: for i in 0..args.writes {
        let action = if i % 2 == 0 { "kill" } else { "revive" };
        let expected = revision + 1;
        let url = a.url(&format!("/v1/admin/envs/{ENV}/flags/{TARGET}/{action}"));
        let body = json!({"reason": "propagation benchmark"});
        let sent = Instant::now();
        let ack = call(&writer, "POST", &url, ADMIN, Some(body)).await;
        let acked = sent.elapsed();
        match ack {
            Ok(_) => acks.push(acked),
            Err(error) => {
                failure = Some(error.context(format!("write {i} ({action})")));
                break;
            }
        }
        let mut received: Vec<Option<Instant>> = vec![None; args.clients];
        let mut count = 0;
        while count < args.clients {
            let note = match next_note(&mut notes, sent + deadline).await {
                Ok(note) => note,
                Err(error) => {
                    let mut missing = vec![0usize; replicas.len()];
                    for (client, got) in received.iter().enumerate() {
                        if got.is_none() {
                            missing[client % replicas.len()] += 1;
                        }
                    }
                    let per_replica: Vec<String> = replicas
                        .iter()
                        .zip(&missing)
                        .map(|(r, n)| format!("{n} on {}", r.name))
                        .collect();
                    failure = Some(error.context(format!(
                        "write {i} ({action}, revision {expected}): {} of {} clients did not \
                         receive it within {} s ({})",
                        args.clients - count,
                        args.clients,
                        args.deadline,
                        per_replica.join(", ")
                    )));
                    break 'writes;
                }
            };
            match note {
                Note::Event {
                    client,
                    kind,
                    revision: got,
                    arrived,
                } => {
                    let covers = match kind {
                        EventKind::Change => got == expected,
                        // A client that lagged gets a fresh snapshot instead.
                        EventKind::Snapshot => got >= expected,
                        EventKind::Other => false,
                    };
                    if got > expected {
                        failure = Some(anyhow!(
                            "client {client} got revision {got} while waiting for {expected}: someone else writes"
                        ));
                        break 'writes;
                    }
                    if covers && received[client].is_none() {
                        received[client] = Some(arrived);
                        count += 1;
                        resyncs += usize::from(kind == EventKind::Snapshot);
                    }
                }
                Note::Failed { client, error } => {
                    failure = Some(error.context(format!(
                        "client {client} (replica {}) failed during write {i}",
                        replicas[client % replicas.len()].name
                    )));
                    break 'writes;
                }
            }
        }
        let (mut fastest, mut slowest) = (Duration::MAX, Duration::ZERO);
        for (client, arrived) in received.iter().enumerate() {
            let latency = arrived.map_or(Duration::ZERO, |t| t.saturating_duration_since(sent));
            latencies.push(latency);
            by_replica[client % replicas.len()].push(latency);
            (fastest, slowest) = (fastest.min(latency), slowest.max(latency));
        }
        last_client.push(slowest);
        fanout.push(slowest.saturating_sub(fastest));
        revision = expected;
        if progress.elapsed() >= Duration::from_secs(5) {
            progress = Instant::now();
            eprintln!(
                "propagation: {}/{} writes after {:.1} s",
                i + 1,
                args.writes,
                writes_start.elapsed().as_secs_f64()
            );
        }
    }
    let after_writes = sample_servers(&http, replicas).await;
    clients.abort_all();

    // The summary: one greppable line per metric.
    println!(
        "summary run protocol={} replicas={} clients={} flags={} writes={} completed={} \
         grpc_channels={} connect_concurrency={}",
        args.protocol.name(),
        replicas.len(),
        args.clients,
        args.flags,
        args.writes,
        last_client.len(),
        match args.protocol {
            Protocol::Grpc => args.channels().to_string(),
            Protocol::Sse => "-".to_owned(),
        },
        args.connect_concurrency,
    );
    println!(
        "summary write_to_receipt_ms {}",
        distribution(&mut latencies)
    );
    if replicas.len() > 1 {
        for (replica, samples) in replicas.iter().zip(&mut by_replica) {
            println!(
                "summary write_to_receipt_ms[replica={}] {}",
                replica.name,
                distribution(samples)
            );
        }
    }
    println!("summary last_client_ms {}", distribution(&mut last_client));
    println!("summary fanout_ms {}", distribution(&mut fanout));
    println!("summary write_ack_ms {}", distribution(&mut acks));
    println!("summary resync_snapshots {resyncs}");
    println!(
        "summary connect_all_s {:.2} (snapshot {:.1} KiB each)",
        connect_time.as_secs_f64(),
        snapshot_bytes as f64 / 1024.0
    );
    for (i, replica) in replicas.iter().enumerate() {
        for (phase, samples) in [
            ("seeded", &seeded),
            ("connected", &after_connect),
            ("after_writes", &after_writes),
        ] {
            let s = samples[i];
            println!(
                "summary server_memory_mib[replica={},phase={phase}] vmrss={:.1} vmhwm={:.1}",
                replica.name,
                s.rss_kib as f64 / 1024.0,
                s.hwm_kib as f64 / 1024.0
            );
        }
        let (load, end) = (seeded[i], after_writes[i]);
        let during = end.compiles.saturating_sub(load.compiles);
        let mean_ms = |sum: f64, n: u64| {
            if n == 0 {
                f64::NAN
            } else {
                sum * 1000.0 / n as f64
            }
        };
        println!(
            "summary snapshot_compile_ms[replica={}] at_load_mean={:.2} (n={}) during_writes_mean={:.2} (n={})",
            replica.name,
            mean_ms(load.compile_seconds, load.compiles),
            load.compiles,
            mean_ms(end.compile_seconds - load.compile_seconds, during),
            during,
        );
    }
    let (rss, hwm) = memory(std::process::id()).unwrap_or_default();
    println!(
        "summary tool_memory_mib vmrss={:.1} vmhwm={:.1}",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    match failure {
        None => Ok(()),
        Some(error) => Err(error),
    }
}

/// The next note from a client, failing at `deadline` or when every client is gone.
async fn next_note(notes: &mut mpsc::UnboundedReceiver<Note>, deadline: Instant) -> Result<Note> {
    match tokio::time::timeout_at(deadline.into(), notes.recv()).await {
        Err(_) => bail!("deadline passed"),
        Ok(None) => bail!("every client has stopped"),
        Ok(Some(note)) => Ok(note),
    }
}

/// The revision of `replica`'s SDK snapshot and the snapshot's size in bytes.
async fn snapshot_revision(
    http: &reqwest::Client,
    replica: &Replica,
    token: &str,
) -> Result<(u64, usize)> {
    let response = http
        .get(replica.url("/v1/sdk/snapshot"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!(
            "GET /v1/sdk/snapshot on {}: {status} {}",
            replica.name,
            String::from_utf8_lossy(&body)
        );
    }
    let document: Value = serde_json::from_slice(&body)?;
    let revision = document["revision"]
        .as_u64()
        .ok_or_else(|| anyhow!("{}'s snapshot has no revision", replica.name))?;
    Ok((revision, body.len()))
}

/// Waits until `replica` knows the token and serves revision `revision`.
async fn caught_up(
    http: &reqwest::Client,
    replica: &Replica,
    token: &str,
    revision: u64,
) -> Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        let last = snapshot_revision(http, replica, token).await;
        match &last {
            Ok((got, _)) if *got == revision => return Ok(()),
            Ok((got, _)) if *got > revision => {
                bail!(
                    "{} is at revision {got}, ahead of A's {revision}",
                    replica.name
                )
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            let state = match last {
                Ok((got, _)) => format!("stays at revision {got}"),
                Err(error) => format!("{error:#}"),
            };
            bail!(
                "{} did not catch up with A's revision {revision}: {state}",
                replica.name
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
// Clients

/// What every client task holds.
struct ClientSpec {
    client: usize,
    notes: mpsc::UnboundedSender<Note>,
    /// Bounds how many clients connect at once; released once the snapshot is in.
    gate: Arc<Semaphore>,
}

impl ClientSpec {
    fn event(&self, kind: EventKind, revision: u64, arrived: Instant) {
        let _ = self.notes.send(Note::Event {
            client: self.client,
            kind,
            revision,
            arrived,
        });
    }

    /// Reports how a client's stream ended (it only ends on errors).
    fn report(&self, outcome: Result<()>) {
        let error = outcome.err().unwrap_or_else(|| anyhow!("the stream ended"));
        let _ = self.notes.send(Note::Failed {
            client: self.client,
            error,
        });
    }

    async fn admit(&self) -> Result<OwnedSemaphorePermit> {
        Arc::clone(&self.gate)
            .acquire_owned()
            .await
            .context("the connect gate closed")
    }
}

/// The read buffer while the (possibly large) snapshot arrives, and afterwards.
const SNAPSHOT_BUFFER: usize = 64 * 1024;
const STREAM_BUFFER: usize = 4 * 1024;

/// One SSE client on its own TCP connection: `GET /v1/sdk/stream`, then events until
/// the server closes the stream.
async fn sse_client(spec: &ClientSpec, addr: SocketAddr, token: &str) -> Result<()> {
    let mut permit = Some(spec.admit().await?);
    let mut socket = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    socket.set_nodelay(true)?;
    let request = format!(
        "GET /v1/sdk/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;

    let mut buffer = vec![0u8; SNAPSHOT_BUFFER];
    let mut filled = 0;
    let head_end = loop {
        let n = socket.read(&mut buffer[filled..]).await?;
        if n == 0 {
            bail!("the server closed the connection before answering");
        }
        filled += n;
        if let Some(end) = find(&buffer[..filled], b"\r\n\r\n") {
            break end + 4;
        }
        if filled == buffer.len() {
            bail!("the response head is larger than {SNAPSHOT_BUFFER} bytes");
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        let status = head.lines().next().unwrap_or_default().to_owned();
        bail!(
            "GET /v1/sdk/stream: {status} {}",
            String::from_utf8_lossy(&buffer[head_end..filled])
        );
    }
    let mut body = Body::new(head.contains("\r\ntransfer-encoding: chunked"));
    let mut events = Vec::new();
    let mut arrived = Instant::now();
    let mut start = head_end;
    loop {
        body.feed(&buffer[start..filled], &mut events)?;
        for (kind, id) in events.drain(..) {
            let revision = id.with_context(|| format!("a {kind:?} event without an id"))?;
            spec.event(kind, revision, arrived);
            if kind == EventKind::Snapshot && permit.take().is_some() {
                buffer = vec![0u8; STREAM_BUFFER];
            }
        }
        if body.done() {
            bail!("the server ended the stream");
        }
        filled = socket.read(&mut buffer).await?;
        arrived = Instant::now();
        if filled == 0 {
            bail!("the server closed the connection");
        }
        start = 0;
    }
}

/// The gRPC connections: channel j goes to replica j mod R.
struct GrpcChannels {
    /// Per replica, its channels.
    per_replica: Vec<Vec<Channel>>,
}

impl GrpcChannels {
    fn new(replicas: &[Replica], channels: usize) -> Result<GrpcChannels> {
        let mut per_replica = vec![Vec::new(); replicas.len()];
        for j in 0..channels {
            let replica = &replicas[j % replicas.len()];
            let endpoint = Endpoint::from_shared(format!("http://{}", replica.grpc))?
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(10));
            // Connects on first use, i.e. inside the connect gate.
            per_replica[j % replicas.len()].push(endpoint.connect_lazy());
        }
        Ok(GrpcChannels { per_replica })
    }

    /// Client i streams from replica i mod R, over one of that replica's channels.
    fn for_client(&self, client: usize, replicas: usize) -> Channel {
        let own = &self.per_replica[client % replicas];
        own[(client / replicas) % own.len()].clone()
    }
}

/// One `switchyard.v1.Sync/Stream` call.
async fn grpc_client(
    spec: &ClientSpec,
    channel: Channel,
    auth: MetadataValue<Ascii>,
) -> Result<()> {
    let mut permit = Some(spec.admit().await?);
    let mut client = SyncClient::new(channel).max_decoding_message_size(1 << 30);
    let mut request = tonic::Request::new(StreamRequest {
        after_revision: None,
        environment: String::new(),
    });
    request.metadata_mut().insert("authorization", auth);
    let mut stream = client
        .stream(request)
        .await
        .context("Sync/Stream")?
        .into_inner();
    while let Some(event) = stream.message().await.context("Sync/Stream")? {
        let arrived = Instant::now();
        let kind = match event.kind() {
            GrpcKind::Snapshot => EventKind::Snapshot,
            GrpcKind::Change => EventKind::Change,
            GrpcKind::Unspecified => EventKind::Other,
        };
        spec.event(kind, event.revision, arrived);
        if kind == EventKind::Snapshot {
            permit.take();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Limits and memory

/// The soft and hard limits of open files, from `/proc/self/limits`.
fn fd_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace();
    let parse = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(u64::MAX);
    Some((parse(values.next()), parse(values.next())))
}

/// Fails when the servers (which inherit this limit) or the tool could run out of
/// file descriptors.
fn check_fd_limit(args: &Args) -> Result<()> {
    let Some((soft, hard)) = fd_limits() else {
        return Ok(());
    };
    let connections = args.connections() as u64;
    let needed = connections + FD_SPARE;
    if soft < needed {
        bail!(
            "{} connections need about {needed} open files in this tool and its servers, but \
             the soft limit is {soft} (hard {hard}): raise it with `ulimit -n {hard}` (the \
             scripts in benches/load do) or use fewer clients",
            connections
        );
    }
    Ok(())
}
