//! Assembling and running the server: open the store, load the environments and
//! tokens, then serve until the shutdown future resolves.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;

use crate::auth::{generate, Tokens, INITIAL_ADMIN_TOKEN_NAME};
use crate::console::session::{SessionSettings, Sessions};
use crate::environments::{now_ms, Environments};
use crate::grpc::GrpcState;
use crate::http::router;
use crate::limits::{LimitSettings, Limits};
use crate::relay::store::UpstreamStore;
use crate::relay::{Relay, RelayConfig};
use crate::replication::Replication;
use crate::state::{AppState, Shared};
use crate::store::embedded::EmbeddedStore;
use crate::store::redis::RedisStore;
use crate::store::{AuditEntry, Store, TokenKind};
use crate::telemetry::Telemetry;
use crate::tls::{Peer, TlsListener};

/// The default interval of SSE keep-alive comments.
pub const SSE_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// A loaded server, ready to serve.
pub struct Server {
    /// Shared state of the handlers.
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    /// An admin token generated at this start (the store had none), to print once.
    pub generated_admin_token: Option<String>,
    /// TLS for both listeners, when set (`set_tls`).
    tls: Option<crate::tls::TlsSettings>,
    /// Background work that ends with the server (the usage flusher's last write,
    /// the scheduler), awaited when serving stops so nothing is cut off.
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// How long a stopping server waits for its background work.
const BACKGROUND_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl Server {
    /// Loads everything from `store`. `admin_token` is the bootstrap admin token.
    pub async fn load(store: Arc<dyn Store>, admin_token: Option<&str>) -> anyhow::Result<Server> {
        Server::assemble(store, admin_token, Arc::new(Telemetry::default()), None).await
    }

    /// Loads everything from `store`, counting into `telemetry`; a relay's tokens are
    /// its upstream's, so it generates no admin token of its own.
    async fn assemble(
        store: Arc<dyn Store>,
        admin_token: Option<&str>,
        telemetry: Arc<Telemetry>,
        relay: Option<Arc<Relay>>,
    ) -> anyhow::Result<Server> {
        let envs = Arc::new(
            Environments::load(Arc::clone(&store), telemetry.snapshot_compile.clone()).await?,
        );
        let tokens = Arc::new(Tokens::new(store.tokens().await?, admin_token));
        let mut generated_admin_token = None;
        if relay.is_none() && !tokens.has_admin() {
            let (token, record) =
                generate(INITIAL_ADMIN_TOKEN_NAME, TokenKind::Admin, None, now_ms());
            let audit = AuditEntry {
                reason: Some("no admin token existed at start".to_owned()),
                ..AuditEntry::new("switchyard-server", None, "token.create", &record.name)
            };
            store.create_token(record, audit).await?;
            tokens.replace(store.tokens().await?);
            generated_admin_token = Some(token);
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let limits = Arc::new(Limits::new(
            LimitSettings::default(),
            telemetry.limits.clone(),
        ));
        let state = AppState::new(Shared {
            envs,
            tokens,
            telemetry,
            ready: Arc::new(AtomicBool::new(false)),
            shutdown: shutdown_rx,
            sse_heartbeat: SSE_HEARTBEAT,
            store_degraded: Arc::new(AtomicBool::new(false)),
            console: Arc::new(Sessions::new(SessionSettings::default())),
            orchestrator: None,
            usage: Arc::default(),
            limits,
            admin_needs_client_certificate: false,
            cors_origins: Arc::from(Vec::new()),
            ops_token: None,
            relay,
            metric_batches: Arc::default(),
        });
        state.ready.store(true, Ordering::Release);
        let background = vec![
            tokio::spawn(crate::domain::run_scheduler(state.clone())),
            tokio::spawn(crate::usage::run_flusher(state.clone())),
        ];
        Ok(Server {
            state,
            shutdown,
            generated_admin_token,
            tls: None,
            background,
        })
    }

    /// Serves HTTPS and gRPC over TLS with `settings` (reloading the certificate on
    /// SIGHUP and when its files change).
    pub fn set_tls(&mut self, settings: crate::tls::TlsSettings) {
        self.state.admin_needs_client_certificate = settings.admin_needs_client_certificate;
        self.tls = Some(settings);
    }

    /// Lets browsers on `origins` call the read APIs (CORS), and puts `/metrics` and
    /// `/openapi.json` behind `ops_token` when given.
    pub fn set_exposure(&mut self, origins: Vec<axum::http::HeaderValue>, ops_token: Option<&str>) {
        self.state.cors_origins = Arc::from(origins);
        self.state.ops_token = ops_token.map(crate::auth::sha256);
    }

    /// Replaces the default rate limits (`limits.rs`) before serving.
    pub fn set_limits(&mut self, settings: LimitSettings) {
        self.state.limits = Arc::new(Limits::new(settings, self.state.telemetry.limits.clone()));
    }

    /// Starts as a relay of `config.upstream` (docs/relay.md): loads what the upstream
    /// has (or, when it is down, the snapshots kept on disk) and follows it until the
    /// server shuts down. `admin_token` is a local admin token, if any.
    pub async fn open_relay(
        config: RelayConfig,
        admin_token: Option<&str>,
    ) -> anyhow::Result<Server> {
        let telemetry = Arc::new(Telemetry::default());
        let relay =
            Arc::new(Relay::new(config, telemetry.relay.clone()).map_err(anyhow::Error::msg)?);
        let store = Arc::new(UpstreamStore::new(Arc::clone(&relay)));
        let server = Server::assemble(store, admin_token, telemetry, Some(Arc::clone(&relay)))
            .await
            .map_err(|e| anyhow::anyhow!("starting as a relay of {}: {e}", relay.upstream.url()))?;
        tokio::spawn(crate::relay::follower::run(
            relay,
            Arc::clone(&server.state.envs),
            server.state.shutdown.clone(),
        ));
        Ok(server)
    }

    /// Opens the embedded store in `data_dir` and loads it.
    pub async fn open_embedded(
        data_dir: &std::path::Path,
        admin_token: Option<&str>,
    ) -> anyhow::Result<Server> {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(data_dir)?);
        Server::load(store, admin_token).await
    }

    /// Connects to Redis at `url` (one server, a Cluster or a Sentinel primary;
    /// docs/redis.md), writes with `durability`, loads from it and starts following the other
    /// replicas' writes (until the server shuts down).
    pub async fn open_redis(
        url: &str,
        durability: switchyard_redis::Durability,
        admin_token: Option<&str>,
    ) -> anyhow::Result<Server> {
        let store = RedisStore::connect(url, durability).await?;
        let server = Server::load(Arc::new(store.clone()), admin_token).await?;
        let replication = Replication {
            store,
            envs: Arc::clone(&server.state.envs),
            tokens: Arc::clone(&server.state.tokens),
            degraded: Arc::clone(&server.state.store_degraded),
        };
        tokio::spawn(replication.run(server.state.shutdown.clone()));
        Ok(server)
    }

    /// Serves HTTP on `http` and gRPC on `grpc` until `shutdown` resolves; both stop
    /// together. `flagd_env` opens the flagd-compatible service without a token.
    pub async fn serve_with_grpc(
        self,
        http: TcpListener,
        grpc: TcpListener,
        flagd_env: Option<switchyard_core::model::EnvName>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = GrpcState {
            app: self.state.clone(),
            flagd_env,
        };
        let mut stopping = self.state.shutdown.clone();
        let grpc = tokio::spawn(crate::grpc::serve(
            state,
            grpc,
            self.tls.clone(),
            async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            },
        ));
        self.serve(http, shutdown).await?;
        grpc.await??;
        Ok(())
    }

    /// Serves HTTP on `listener` until `shutdown` resolves, then stops accepting,
    /// ends streams and waits for in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = router(self.state.clone());
        tokio::spawn(crate::limits::run_cleanup(
            Arc::clone(&self.state.limits),
            self.state.shutdown.clone(),
        ));
        let stop = Arc::new(self.shutdown);
        let stopping = Arc::clone(&stop);
        let graceful = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        // The peer (address, client certificate) is what rate limits and the admin
        // certificate check read.
        match &self.tls {
            None => {
                let plain = |_: &TcpStream, addr: std::net::SocketAddr| Peer {
                    addr,
                    client_certified: false,
                };
                serve_connections(listener, app, plain, graceful).await;
            }
            Some(tls) => {
                tokio::spawn(crate::tls::watch_certificate(
                    Arc::clone(&tls.certificate),
                    self.state.shutdown.clone(),
                ));
                let app = app.layer(axum::middleware::from_fn(crate::http::security::hsts));
                let certified = |io: &TlsStream<TcpStream>, addr: std::net::SocketAddr| Peer {
                    addr,
                    client_certified: switchyard_tls::client_certified(io),
                };
                serve_connections(TlsListener::new(listener, tls)?, app, certified, graceful).await;
            }
        }
        // Stopped: the background work ends now.
        stop.send_replace(true);
        let finished = futures_util::future::join_all(self.background);
        if tokio::time::timeout(BACKGROUND_GRACE, finished)
            .await
            .is_err()
        {
            tracing::warn!("background work (usage times, schedules) did not finish within {BACKGROUND_GRACE:?}");
        }
        Ok(())
    }
}

/// The largest HTTP/1 request head, and the most hyper reads or queues for a
/// connection at once: hyper's initial buffer size, and the smallest it accepts.
/// With hyper's default (~400 KiB), a request that arrives in two reads (always with
/// the automatic HTTP/1-or-HTTP/2 choice, which reads the first bytes to decide)
/// doubles the read buffer to 16 KiB, kept for as long as an SSE stream lasts;
/// capped at its initial size, it stays at 8 KiB (docs/PERFORMANCE.md §5). Bodies are
/// not limited by it, only read in pieces of at most this size; a longer head gets 431.
const HTTP1_BUFFER: usize = 8 * 1024;

/// Accepts connections on `listener` until `shutdown` resolves and serves each over
/// HTTP/1.1 or HTTP/2 (hyper's automatic choice, as `axum::serve` makes it), with the
/// connection's [`Peer`] in every request's extensions. Then it stops accepting, asks
/// every connection to finish gracefully and waits until all have closed.
///
/// Our own loop rather than `axum::serve`, which does not let hyper's HTTP/1 buffer
/// size be set ([`HTTP1_BUFFER`]).
async fn serve_connections<L>(
    mut listener: L,
    app: axum::Router,
    peer: impl Fn(&L::Io, L::Addr) -> Peer,
    shutdown: impl Future<Output = ()>,
) where
    L: axum::serve::Listener,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(HTTP1_BUFFER);
    let builder = Arc::new(builder);
    // Each connection holds a receiver of both: dropping `stop` asks them to finish,
    // and `open.closed()` resolves once the last one has ended.
    let (stop, asked) = watch::channel(());
    let (open, connected) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let info = ConnectInfo(peer(&io, addr));
        // A `Router` clone is an `Arc`: the route table is built once, not per
        // connection or request.
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(info);
            app.clone().oneshot(request)
        });
        let builder = Arc::clone(&builder);
        let mut asked = asked.clone();
        let connected = connected.clone();
        tokio::spawn(async move {
            // Built in place: the task holds one copy of the connection's state.
            let mut connection =
                std::pin::pin!(builder.serve_connection(TokioIo::new(io), service));
            let finished = tokio::select! {
                finished = connection.as_mut() => finished,
                _ = asked.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = finished {
                tracing::trace!("connection from {} ended: {error}", info.0.addr);
            }
            drop(connected);
        });
    }
    drop(listener);
    drop(stop);
    drop(connected);
    open.closed().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_head_longer_than_the_http1_buffer_gets_431() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::open_embedded(dir.path(), Some("swy_admin_test"))
            .await
            .expect("server loads");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let get = |padding: usize| {
            client
                .get(format!("http://{addr}/healthz"))
                .header("x-padding", "x".repeat(padding))
                .send()
        };
        let status = |padding| async move { get(padding).await.expect("answered").status() };
        assert_eq!(status(HTTP1_BUFFER - 1024).await, 200, "a head under 8 KiB");
        assert_eq!(
            status(HTTP1_BUFFER).await,
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let _ = stop.send(());
        serving.await.expect("joined").expect("served");
    }
}
