//! The `switchyard-server` binary: configuration, logging, signals.

use anyhow::Context as _;
use clap::Parser;
use switchyard_server::config::{Args, LogFormat};
use switchyard_server::{demo, Server};
use tokio::net::TcpListener;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse().validate().map_err(anyhow::Error::msg)?;
    init_logging(args.log_format);
    let server = match &args.redis_url {
        Some(url) => Server::open_redis(url, args.admin_token.as_deref()).await?,
        None => Server::open_embedded(&args.data_dir, args.admin_token.as_deref())
            .await
            .with_context(|| format!("opening the store in {}", args.data_dir.display()))?,
    };
    let listener = TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    let addr = listener.local_addr()?;
    let grpc_listener = TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("binding {}", args.grpc_addr))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let store = match &args.redis_url {
        Some(url) => format!("redis {url}"),
        None => format!("embedded {}", args.data_dir.display()),
    };
    tracing::info!(%addr, %grpc_addr, %store, "switchyard-server listening");
    if let Some(env) = &args.flagd_env {
        tracing::warn!(%env, "the flagd-compatible gRPC service answers WITHOUT a token for this environment");
    }
    if let Some(token) = &server.generated_admin_token {
        #[allow(clippy::print_stdout)]
        {
            println!("Generated the first admin token (shown once, store it now):\n  {token}");
        }
    }
    if args.demo {
        let tokens = demo::install(&server.state).await?;
        println!("{}", demo::banner(&format!("http://{addr}"), &tokens));
    }
    let flagd_env = args
        .flagd_env
        .as_deref()
        .map(switchyard_core::model::EnvName::new);
    server
        .serve_with_grpc(listener, grpc_listener, flagd_env, shutdown_signal())
        .await?;
    Ok(())
}
