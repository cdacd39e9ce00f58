//! `checkout-load`: a bounded load generator for the checkout service. Sends
//! `GET /checkout?user=user-N` at `--rate` per second until `--duration` has passed,
//! `--max-requests` were sent, or it gets Ctrl-C / SIGTERM; then prints one line:
//!
//! ```text
//! checkout-load: 3000 requests in 30.0s (100.0/s): 2950 ok, 50 errors; v1 1500 ok 0 errors; v2 1450 ok 50 errors; no answer 0
//! ```

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use switchyard_example_checkout::load::{run, LoadConfig};

/// Sends checkout requests at a steady rate and counts the answers per version.
#[derive(Debug, Parser)]
#[command(name = "checkout-load", about)]
struct Args {
    /// The checkout service, or the load balancer in front of it.
    #[arg(long, env = "CHECKOUT_LOAD_TARGET")]
    target: String,

    /// Requests per second.
    #[arg(long, env = "CHECKOUT_LOAD_RATE", default_value = "50")]
    rate: f64,

    /// Stop after this long (`30s`, `2m`).
    #[arg(long, env = "CHECKOUT_LOAD_DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Stop after this many requests.
    #[arg(long, env = "CHECKOUT_LOAD_MAX_REQUESTS", default_value = "100000")]
    max_requests: u64,

    /// Distinct users, taken in turn (`user-0` …).
    #[arg(long, env = "CHECKOUT_LOAD_USERS", default_value = "1000")]
    users: u64,

    /// Requests in flight at most.
    #[arg(long, env = "CHECKOUT_LOAD_CONCURRENCY", default_value = "64")]
    concurrency: usize,

    /// How long one request may take.
    #[arg(long, env = "CHECKOUT_LOAD_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = LoadConfig {
        target: args.target,
        rate: args.rate,
        duration: args.duration,
        max_requests: args.max_requests,
        users: args.users,
        concurrency: args.concurrency,
        timeout: args.timeout,
    }
    .validate()?;
    let (tally, elapsed) = run(&config, switchyard_example_checkout::stop_signal())
        .await
        .context("building the HTTP client")?;
    println!("{}", tally.summary(elapsed));
    Ok(())
}
