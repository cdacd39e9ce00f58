//! The measurement: connect the clients, time each write until every client has it,
//! and print the `summary` lines (latencies, fan-out, memory, compile times).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};
use switchyard_benches::percentiles::distribution;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tonic::metadata::{Ascii, MetadataValue};

use crate::clients::{grpc_client, sse_client, ClientSpec, GrpcChannels};
use crate::replica::{memory, Replica};
use crate::{Args, EventKind, Note, Protocol, ADMIN, ENV, START_DEADLINE, TARGET};

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

/// A replica's `/metrics` exposition.
async fn metrics(http: &reqwest::Client, replica: &Replica) -> Option<String> {
    http.get(replica.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// `switchyard_snapshot_compile_seconds` (count, sum) from `/metrics`.
async fn compile_histogram(http: &reqwest::Client, replica: &Replica) -> Option<(u64, f64)> {
    let text = metrics(http, replica).await?;
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

/// The server's own time for the kill/revive writes (request in, response out,
/// from `switchyard_http_request_duration_seconds` on A): a `summary` line with the
/// mean and the share of writes answered within 1, 5 and 10 ms (bucket bounds).
async fn write_server_times(http: &reqwest::Client, replica: &Replica) -> Option<String> {
    let text = metrics(http, replica).await?;
    let writes = text.lines().filter(|line| {
        line.starts_with("switchyard_http_request_duration_seconds")
            && (line.contains("/kill\"") || line.contains("/revive\""))
    });
    let (mut count, mut sum) = (0.0, 0.0);
    let mut within = [(0.001, 0.0), (0.005, 0.0), (0.01, 0.0)];
    for line in writes {
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        if line.starts_with("switchyard_http_request_duration_seconds_count") {
            count += value;
        } else if line.starts_with("switchyard_http_request_duration_seconds_sum") {
            sum += value;
        } else {
            for (bound, n) in &mut within {
                if line.contains(&format!("le=\"{bound}\"")) {
                    *n += value;
                }
            }
        }
    }
    let share = |n: f64| n * 100.0 / count;
    Some(format!(
        "summary write_server_ms[replica={}] mean={:.2} within_1ms={:.0}% within_5ms={:.0}% within_10ms={:.0}% (n={count})",
        replica.name,
        sum * 1000.0 / count,
        share(within[0].1),
        share(within[1].1),
        share(within[2].1),
    ))
}

/// Writes on `a`; clients spread over `replicas` (A among them, or A's relays).
pub(crate) async fn measure(args: &Args, a: &Replica, replicas: &[Replica]) -> Result<()> {
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
    for replica in replicas.iter().filter(|r| r.name != a.name) {
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
        "summary run protocol={} replicas={} relays={} clients={} flags={} writes={} completed={} \
         grpc_channels={} connect_concurrency={}",
        args.protocol.name(),
        args.replicas,
        args.relays,
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
        let streams = (0..args.clients)
            .filter(|client| client % replicas.len() == i)
            .count();
        let added = after_connect[i].rss_kib.saturating_sub(seeded[i].rss_kib);
        if streams > 0 {
            println!(
                "summary memory_per_stream_kib[replica={}] {:.2} ({streams} streams, +{:.1} MiB VmRSS)",
                replica.name,
                added as f64 / streams as f64,
                added as f64 / 1024.0
            );
        }
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
    if let Some(line) = write_server_times(&http, a).await {
        println!("{line}");
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
