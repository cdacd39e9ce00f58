//! The `switchyard-server` binary: configuration, logging, signals.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::Parser;
use switchyard_server::config::{Args, LogFormat};
use switchyard_server::console::session::{SessionSettings, Sessions};
use switchyard_server::orchestrator::OrchestratorClient;
use switchyard_server::{demo, Server};
use tokio::net::TcpListener;

/// jemalloc: faster than glibc's malloc under evaluation load, and it leaves the
/// untouched parts of idle connections' buffers unbacked (docs/PERFORMANCE.md §5).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal (and not with NO_COLOR): escape codes in a file or a
    // log collector are noise.
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a SIGTERM sent as soon as the server says it is
/// listening must shut it down gracefully, not kill it with the default action.
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse().validate().map_err(anyhow::Error::msg)?;
    init_logging(args.log_format);
    let shutdown = shutdown_signal()?;
    let admin_token = args.admin_token.as_deref();
    let mut server = match (&args.redis_url, args.relay()) {
        (_, Some(relay)) => Server::open_relay(relay, admin_token).await?,
        (Some(url), None) => Server::open_redis(url, args.durability(), admin_token).await?,
        (None, None) => Server::open_embedded(&args.data_dir, admin_token)
            .await
            .with_context(|| format!("opening the store in {}", args.data_dir.display()))?,
    };
    server.set_limits(args.limits.settings());
    server.set_exposure(
        args.cors_origins().map_err(anyhow::Error::msg)?,
        args.ops_token.as_deref(),
    );
    let tls = args
        .tls()
        .context("setting up TLS (--tls-cert, --tls-key)")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(tls) = tls {
        server.set_tls(tls);
    }
    server.state.console = std::sync::Arc::new(Sessions::new(SessionSettings {
        // Over HTTPS the session cookie is always `Secure`.
        secure_cookie: args.console_secure_cookie || scheme == "https",
        ..SessionSettings::default()
    }));
    if let Some(url) = &args.orchestrator_url {
        server.state.orchestrator = Some(
            OrchestratorClient::new(url, args.orchestrator_token.clone())
                .map_err(anyhow::Error::msg)?,
        );
        tracing::info!(orchestrator = %url, "the console's Releases section uses this orchestrator");
    }
    let listener = TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    let addr = listener.local_addr()?;
    let grpc_listener = TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("binding {}", args.grpc_addr))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let store = match (&args.redis_url, &args.upstream) {
        (_, Some(url)) => format!("relay of {url}"),
        (Some(url), None) => format!("redis {url}"),
        (None, None) => format!("embedded {}", args.data_dir.display()),
    };
    tracing::info!(%addr, %grpc_addr, %store, %scheme, "switchyard-server listening");
    if let Some(env) = &args.flagd_env {
        tracing::warn!(%env, "the flagd-compatible gRPC service answers WITHOUT a token for this environment");
    }
    if args.demo {
        // The demo's banner shows the generated admin token with the SDK token, so a
        // newcomer sees one labelled set instead of two admin tokens.
        let tokens = demo::install(&server.state, server.generated_admin_token.as_deref()).await?;
        println!("{}", demo::banner(&format!("{scheme}://{addr}"), &tokens));
    } else if let Some(token) = &server.generated_admin_token {
        println!("Generated the first admin token (shown once, store it now):\n  {token}");
    }
    let flagd_env = args
        .flagd_env
        .as_deref()
        .map(switchyard_core::model::EnvName::new);
    server
        .serve_with_grpc(listener, grpc_listener, flagd_env, shutdown)
        .await?;
    Ok(())
}
