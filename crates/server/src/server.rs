//! Assembling and running the server: open the store, load the environments and
//! tokens, then serve until the shutdown future resolves.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{generate, Tokens, INITIAL_ADMIN_TOKEN_NAME};
use crate::console::session::{SessionSettings, Sessions};
use crate::environments::{now_ms, Environments};
use crate::grpc::GrpcState;
use crate::http::router;
use crate::limits::{LimitSettings, Limits};
use crate::relay::store::UpstreamStore;
use crate::relay::{Relay, RelayConfig};
use crate::replication::Replication;
use crate::state::AppState;
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
        let state = AppState {
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
        };
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
        // A make-service clones the built router per connection (an `Arc`); serving the
        // `Router` itself would rebuild its route table for every connection (~23 KB each).
        // The peer (address, client certificate) is what rate limits and the admin
        // certificate check read.
        let served = match &self.tls {
            None => {
                let app = app.into_make_service_with_connect_info::<Peer>();
                axum::serve(listener, app)
                    .with_graceful_shutdown(graceful)
                    .await
            }
            Some(tls) => {
                tokio::spawn(crate::tls::watch_certificate(
                    Arc::clone(&tls.certificate),
                    self.state.shutdown.clone(),
                ));
                let app = app
                    .layer(axum::middleware::from_fn(crate::http::security::hsts))
                    .into_make_service_with_connect_info::<Peer>();
                axum::serve(TlsListener::new(listener, tls)?, app)
                    .with_graceful_shutdown(graceful)
                    .await
            }
        };
        // Stopped, or failed: either way the background work ends now.
        stop.send_replace(true);
        let finished = futures_util::future::join_all(self.background);
        if tokio::time::timeout(BACKGROUND_GRACE, finished)
            .await
            .is_err()
        {
            tracing::warn!("background work (usage times, schedules) did not finish within {BACKGROUND_GRACE:?}");
        }
        served
    }
}
