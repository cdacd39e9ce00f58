//! The `switchyard-orchestrator` binary: `serve` runs the daemon (store, flag server
//! client, HTTP API, signals); every other subcommand is a client of a running daemon.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use switchyard_orchestrator::analysis::MetricSources;
use switchyard_orchestrator::cli::{self, Cli, Command, LogFormat, ServeArgs};
use switchyard_orchestrator::daemon;
use switchyard_orchestrator::driver::{Config, Orchestrator};
use switchyard_orchestrator::flags::AdminFlags;
use switchyard_orchestrator::store::embedded::EmbeddedStore;
use switchyard_orchestrator::store::redis::RedisStore;
use switchyard_orchestrator::store::StateStore;
use switchyard_sdk::admin::AdminClient;
use tokio::net::TcpListener;

/// Attempts for a router or flag change before it counts as failed.
const ATTEMPTS: u32 = 3;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // stdout carries the "listening on" line; logs go to stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a SIGTERM right after start stops gracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let shutdown = shutdown_signal()?;
    let owner = switchyard_orchestrator::driver::owner_id();
    let store: Arc<dyn StateStore> = match &args.redis_url {
        Some(url) => Arc::new(
            RedisStore::open(
                url,
                owner.clone(),
                switchyard_redis::Durability {
                    replicas: args.redis_wait_replicas,
                    timeout: args.redis_wait_timeout,
                },
            )
            .await
            .context("opening the Redis store")?,
        ),
        None => Arc::new(
            EmbeddedStore::open(&args.data_dir)
                .with_context(|| format!("opening the store in {}", args.data_dir.display()))?,
        ),
    };
    let admin = AdminClient::with_ca(
        args.server_url.as_str(),
        args.admin_token.as_str(),
        args.server_ca_file.as_deref(),
    )
    .context("building the flag server client")?;
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let orchestrator = Orchestrator::open(Config {
        store,
        metrics: MetricSources::standard(&http, Some(&admin)),
        flags: Arc::new(AdminFlags::new(admin)),
        http,
        poll: args.poll_interval,
        attempts: ATTEMPTS,
        owner,
        lease: args.lease,
        rollback_window: args.rollback_window,
    })
    .await
    .context("loading the stored releases")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    if args.api_token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback without --api-token: anyone who reaches it can abort releases");
    }
    tracing::info!(
        %addr,
        server = %args.server_url,
        data_dir = %args.data_dir.display(),
        "switchyard-orchestrator listening"
    );
    {
        // Tests and scripts read this line to learn the port.
        let mut out = std::io::stdout().lock();
        writeln!(out, "switchyard-orchestrator listening on http://{addr}")?;
        out.flush()?;
    }
    let router = daemon::router(orchestrator.clone(), args.api_token);
    daemon::serve(listener, router, shutdown)
        .await
        .context("serving the API")?;
    // Every transition is already stored; stopping the release tasks between actions
    // leaves nothing half-done that a restart would not redo.
    orchestrator.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let args = match args.validate() {
                Ok(args) => args,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(2);
                }
            };
            match serve(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Client(command) => cli::run(&cli.url, cli.token.as_deref(), command).await,
    }
}
