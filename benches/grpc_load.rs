//! gRPC evaluation throughput: `switchyard.v1.Evaluation/Evaluate` (or, with `--all`,
//! `EvaluateAll`) in a closed loop against a running server. Starts nothing itself
//! (`benches/load/grpc-load.sh` and `benches/load/server-load.sh` start a release
//! server and run this).
//!
//! `--concurrency` tasks share `--channels` HTTP/2 connections (task i uses channel
//! i mod channels); each sends one request, waits for its answer and sends the next
//! until `--duration` has passed, with the `--context` (default
//! `{"targetingKey": "user-42", "groups": ["beta"]}`). Every request's latency (send
//! to answer) is recorded. Prints total requests, errors,
//! requests per second over the whole run, and p50/p90/p99/max latency
//! (nearest-rank). Exits non-zero when a request fails.
//!
//! With `--frame FILE` it checks one call and writes the request as a gRPC frame for
//! `h2load` instead (a leaner client: this one shares the machine's two cores with
//! the server and spends more of them than the server does).
//!
//! Bounded on purpose: loopback addresses only, at most 1024 concurrent calls, 64
//! channels and 300 s.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use serde_json::Value;
use switchyard_benches::percentiles::nearest_rank;
use switchyard_server::grpc::convert::json_to_struct;
use switchyard_server::grpc::proto::switchyard::evaluation_client::EvaluationClient;
use switchyard_server::grpc::proto::switchyard::{EvaluateAllRequest, EvaluateRequest};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// Closed-loop gRPC Evaluate load against a running switchyard-server.
#[derive(Debug, Parser)]
struct Args {
    /// The server's gRPC address (a loopback `IP:PORT`).
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: SocketAddr,
    /// An sdk or eval token.
    #[arg(long, env = "SWITCHYARD_TOKEN")]
    token: String,
    /// The flag to evaluate.
    #[arg(long, default_value = "new-checkout")]
    flag: String,
    /// Evaluate every flag of the environment (`EvaluateAll`) instead of `--flag`.
    #[arg(long)]
    all: bool,
    /// The context, a JSON object in OpenFeature's shape.
    #[arg(
        long,
        env = "SWITCHYARD_CONTEXT",
        default_value = r#"{"targetingKey": "user-42", "groups": ["beta"]}"#
    )]
    context: String,
    /// Concurrent calls (1..=1024).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections the calls share (1..=64).
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Seconds to run (1..=300).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Instead of loading the server: check one call, then write the request as a
    /// gRPC frame (flag byte, big-endian length, protobuf message) to this file, for
    /// an HTTP/2 load generator to send as the body (`h2load -d FILE`, as
    /// `benches/load/server-load.sh` does).
    #[arg(long)]
    frame: Option<std::path::PathBuf>,
}

fn check(args: &Args) -> Result<()> {
    if !args.addr.ip().is_loopback() {
        bail!("--addr must be a loopback address, not {}", args.addr);
    }
    if !(1..=1024).contains(&args.concurrency) {
        bail!("--concurrency must be within 1..=1024");
    }
    if !(1..=64).contains(&args.channels) {
        bail!("--channels must be within 1..=64");
    }
    if !(1..=300).contains(&args.duration) {
        bail!("--duration must be within 1..=300 seconds");
    }
    Ok(())
}

/// The request every task sends.
#[derive(Clone)]
enum Call {
    One(EvaluateRequest),
    All(EvaluateAllRequest),
}

impl Call {
    /// The request as one uncompressed gRPC frame.
    fn frame(&self) -> Vec<u8> {
        use prost::Message;
        let message = match self {
            Call::One(request) => request.encode_to_vec(),
            Call::All(request) => request.encode_to_vec(),
        };
        let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
        let mut frame = Vec::with_capacity(5 + message.len());
        frame.push(0);
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(&message);
        frame
    }

    /// Sends the call; returns a one-line description of the answer.
    async fn send(
        &self,
        client: &mut EvaluationClient<Channel>,
        auth: &MetadataValue<tonic::metadata::Ascii>,
    ) -> Result<String, tonic::Status> {
        match self {
            Call::One(request) => {
                let mut call = tonic::Request::new(request.clone());
                call.metadata_mut().insert("authorization", auth.clone());
                let result = client.evaluate(call).await?.into_inner().result;
                let result = result.unwrap_or_default();
                Ok(format!(
                    "variant `{}`, reason {}",
                    result.variant, result.reason
                ))
            }
            Call::All(request) => {
                let mut call = tonic::Request::new(request.clone());
                call.metadata_mut().insert("authorization", auth.clone());
                let answer = client.evaluate_all(call).await?.into_inner();
                Ok(format!(
                    "{} flags of `{}`",
                    answer.results.len(),
                    answer.environment
                ))
            }
        }
    }
}

/// What one task measured.
#[derive(Default)]
struct Tally {
    /// Latencies of the successful requests, in nanoseconds.
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<tonic::Status>,
}

async fn worker(
    mut client: EvaluationClient<Channel>,
    request: Call,
    auth: MetadataValue<tonic::metadata::Ascii>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally {
        latencies: Vec::with_capacity(1 << 16),
        ..Tally::default()
    };
    while Instant::now() < deadline {
        let start = Instant::now();
        match request.send(&mut client, &auth).await {
            Ok(_) => tally
                .latencies
                .push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)),
            Err(status) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(status);
            }
        }
    }
    tally
}

/// The nearest-rank percentile `p` (0..=100) of sorted nanoseconds, in milliseconds.
fn percentile(sorted: &[u64], p: u32) -> f64 {
    nearest_rank(sorted, p).map_or(f64::NAN, |ns| ns as f64 / 1e6)
}

async fn run(args: Args) -> Result<()> {
    check(&args)?;
    let endpoint = Endpoint::from_shared(format!("http://{}", args.addr))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    let mut channels = Vec::with_capacity(args.channels);
    for _ in 0..args.channels {
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("connecting to {}", args.addr))?,
        );
    }
    let auth: MetadataValue<_> = format!("Bearer {}", args.token)
        .parse()
        .context("the token is not valid metadata")?;
    let context: Value = serde_json::from_str(&args.context).context("--context is not JSON")?;
    let Some(context) = context.as_object().map(json_to_struct) else {
        bail!("--context must be a JSON object");
    };
    let (request, what) = if args.all {
        let request = EvaluateAllRequest {
            context: Some(context),
            environment: String::new(),
        };
        (Call::All(request), "EvaluateAll".to_owned())
    } else {
        let request = EvaluateRequest {
            flag_key: args.flag.clone(),
            context: Some(context),
            environment: String::new(),
        };
        (Call::One(request), format!("Evaluate {}", args.flag))
    };

    // One call first, so a wrong token, flag or context is reported plainly.
    let first = request
        .send(&mut EvaluationClient::new(channels[0].clone()), &auth)
        .await
        .with_context(|| format!("the first {what} call failed"))?;
    if let Some(path) = &args.frame {
        std::fs::write(path, request.frame())
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "== gRPC {what}: first answer: {first}; request frame written to {}",
            path.display()
        );
        return Ok(());
    }
    println!(
        "== gRPC {what} at {}: {} concurrent calls on {} channel(s), {} s; first answer: {first}",
        args.addr, args.concurrency, args.channels, args.duration
    );

    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let client = EvaluationClient::new(channels[i % channels.len()].clone());
            tokio::spawn(worker(client, request.clone(), auth.clone(), deadline))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let tally = task.await.context("a load task panicked")?;
        latencies.extend(tally.latencies);
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let total = latencies.len() as u64 + errors;
    println!("requests      {total} ({errors} errors) in {elapsed:.2} s");
    println!(
        "throughput    {:.0} req/s",
        latencies.len() as f64 / elapsed
    );
    println!(
        "latency (ms)  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        percentile(&latencies, 50),
        percentile(&latencies, 90),
        percentile(&latencies, 99),
        percentile(&latencies, 100)
    );
    if let Some(status) = first_error {
        bail!("{errors} requests failed; the first with {status:?}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("grpc_load: {error:#}");
            ExitCode::FAILURE
        }
    }
}
