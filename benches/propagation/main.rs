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
//!   rollout), so that seeding 10 000 flags takes one commit, not 10 000 requests.
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
//! write's acknowledgement on A (HTTP round trip) and A's own time for it (mean and
//! share within 1/5/10 ms, from `switchyard_http_request_duration_seconds`); the time to connect all
//! clients; each server's VmRSS/VmHWM after seeding, after connecting and after the
//! writes; `switchyard_snapshot_compile_seconds` from each server's `/metrics` (the
//! compile at load, and the mean per compile during the writes).
//!
//! Run: `benches/load/propagation.sh [options]` and `benches/load/scale.sh [options]`
//! (they build release binaries and raise `ulimit -n`); `--help` lists the options.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod clients;
mod measure;
mod replica;
mod sse;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Parser, ValueEnum};
use serde_json::json;
use switchyard_core::model::EnvName;
use switchyard_core::sync::ChangeDocument;
use switchyard_core::{Flag, Snapshot};
use switchyard_server::store::embedded::EmbeddedStore;
use switchyard_server::store::redis::RedisStore;
use switchyard_server::store::{AuditEntry, Commit, Store};
use switchyard_testkit::redis::RedisProcess;

use measure::measure;
use replica::{Replica, ReplicaStore};

/// The bootstrap admin token every server is started with.
const ADMIN: &str = "propagation-bench-admin-token-0123456789";
/// The environment under test.
const ENV: &str = "bench";
/// The flag the writes kill and revive.
const TARGET: &str = "kill-target";
/// How long a process may take to start, and a replica to catch up with A.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// The relays' names.
const RELAYS: [&str; 8] = ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8"];
/// File descriptors the tool and each server need besides the client connections.
const FD_SPARE: u64 = 128;

/// Write → receipt latency of admin writes to many SSE or gRPC Sync clients.
#[derive(Debug, Parser)]
#[command(name = "propagation", args_override_self = true)]
struct Args {
    /// Streaming clients (1..=50000).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// How the clients stream: SSE (`GET /v1/sdk/stream`) or gRPC `switchyard.v1.Sync`.
    #[arg(long, value_enum, default_value_t = Protocol::Sse)]
    protocol: Protocol,
    /// 1: one server on the embedded store; 3: a redis-server and three servers
    /// sharing it (writes go to A, clients spread over A, B and C).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Relays of A (each `--upstream A`, 1..=8): clients spread over the relays only,
    /// writes on A. Needs `--replicas 1`.
    #[arg(long, default_value_t = 0)]
    relays: usize,
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
        if !(1..=50_000).contains(&self.clients) {
            bail!("--clients must be within 1..=50000");
        }
        if self.replicas != 1 && self.replicas != 3 {
            bail!("--replicas must be 1 or 3");
        }
        if self.relays > RELAYS.len() || (self.relays > 0 && self.replicas != 1) {
            bail!("--relays must be within 0..=8, and relays need --replicas 1");
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
        seed(
            &RedisStore::connect(&started.url(), Default::default()).await?,
            flags,
        )
        .await?;
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
    for name in RELAYS.into_iter().take(args.relays) {
        let store = ReplicaStore::Relay {
            upstream: replicas[0].url(""),
            data: dir.path().join(name),
        };
        let relay = Replica::start(name, &args.server_bin, &store).await?;
        eprintln!("propagation: relay {name} of A listening");
        replicas.push(relay);
    }
    let (a, clients_on) = match replicas.split_first() {
        Some((a, relays)) if args.relays > 0 => (a, relays),
        Some((a, _)) => (a, replicas.as_slice()),
        None => bail!("no server started"),
    };
    let result = measure(&args, a, clients_on).await;
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
            schedule: None,
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
