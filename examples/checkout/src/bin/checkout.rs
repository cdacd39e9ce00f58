//! `checkout`: the canary demo's service. Two builds run side by side: the stable one
//! (`--version v1`) and the canary (`--version v2 --new-code`), whose new code path is
//! behind the `new-checkout` flag. Prints `checkout <version> listening on http://ADDR`
//! on stdout once it accepts connections (so `--listen 127.0.0.1:0` works for tests).

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use switchyard_example_checkout::faults::parse_rate;
use switchyard_example_checkout::service::{router, AppState};
use switchyard_sdk::Client;

/// A checkout service whose new code path is released behind the `new-checkout` flag.
#[derive(Debug, Parser)]
#[command(name = "checkout", about)]
struct Args {
    /// Address to listen on (port 0: any free one).
    #[arg(long, env = "CHECKOUT_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,

    /// This build's label, in answers and metrics (`v1`, `v2`).
    #[arg(long, env = "CHECKOUT_VERSION")]
    version: String,

    /// This build has the new code path (the canary); without it the flag is ignored.
    #[arg(long, env = "CHECKOUT_NEW_CODE")]
    new_code: bool,

    /// The flag server.
    #[arg(
        long,
        env = "CHECKOUT_SERVER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    server_url: String,

    /// An SDK token of the flag server's environment.
    #[arg(long, env = "CHECKOUT_SDK_TOKEN", hide_env_values = true)]
    sdk_token: String,

    /// Share (0.0–1.0) of new-path requests that fail, evenly spread: at 0.2 every
    /// fifth. Changeable at runtime with `POST /admin/fail-rate`.
    #[arg(long, env = "CHECKOUT_FAIL_RATE", default_value = "0", value_parser = parse_rate)]
    fail_rate: f64,

    /// How often the SDK sends exposures and tracked events to the flag server (what a
    /// guard metric reads).
    #[arg(
        long,
        env = "CHECKOUT_METRICS_FLUSH_INTERVAL",
        default_value = "1s",
        value_parser = humantime::parse_duration
    )]
    metrics_flush_interval: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Client::builder(args.server_url.as_str(), args.sdk_token.as_str())
        .metrics_flush_interval(args.metrics_flush_interval)
        .build()
        .await
        .with_context(|| format!("loading flags from {}", args.server_url))?;
    let state = AppState::new(flags.clone(), &args.version, args.new_code, args.fail_rate);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, version = %args.version, new_code = args.new_code, fail_rate = args.fail_rate, "checkout listening");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "checkout {} listening on http://{addr}", args.version)?;
        out.flush()?;
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(switchyard_example_checkout::stop_signal())
        .await
        .context("serving")?;
    // Sends the last exposures and events.
    flags.close().await;
    Ok(())
}
