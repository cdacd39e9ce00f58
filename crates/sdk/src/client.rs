//! The client: an environment's flags in memory, kept in sync in the background,
//! evaluated locally.
//!
//! The hot path (`is_enabled`, `with_evaluation`, typed getters on booleans and
//! numbers) loads the current snapshot from an `ArcSwap` — no lock, no allocation,
//! no I/O — and runs `switchyard_core::evaluate` on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::Value;
use switchyard_core::{
    evaluate, evaluate_all, Context, ErrorCode, Evaluation, FlagKind, Reason, Snapshot,
};

use crate::error::{DocumentError, Error};
use crate::metrics::Metrics;
use crate::state::{ChangeNotice, Config, Inner, Loaded, Servers, Status, Transport};

/// A served variant, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The variant's name (`None` when the flag could not be evaluated).
    pub name: Option<String>,
    /// Its value (`Null` when the flag could not be evaluated).
    pub value: Value,
    /// Why it was served.
    pub reason: Reason,
}

/// A full evaluation result, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// The value, `None` with reason `ERROR`.
    pub value: Option<Value>,
    /// The variant.
    pub variant: Option<String>,
    /// Why.
    pub reason: Reason,
    /// The rule that served.
    pub rule_id: Option<String>,
    /// The flag's version.
    pub flag_version: u64,
    /// Set with reason `ERROR`.
    pub error: Option<ErrorCode>,
}

impl From<&Evaluation<'_>> for Detail {
    fn from(e: &Evaluation<'_>) -> Self {
        Detail {
            value: e.value.cloned(),
            variant: e.variant.map(str::to_owned),
            reason: e.reason,
            rule_id: e.rule_id.map(str::to_owned),
            flag_version: e.flag_version,
            error: e.error,
        }
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    token: String,
    config: Config,
    bootstrap: Option<Bootstrap>,
    fallbacks: Vec<String>,
}

#[derive(Debug, Clone)]
enum Bootstrap {
    File(PathBuf),
    Value(Value),
}

impl ClientBuilder {
    /// How to stay in sync (default: SSE with polling fallback).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.config.transport = transport;
        self
    }

    /// Other servers with the same flags (replicas on one Redis, relays of one
    /// server), tried in order when the one in use cannot be reached; the client
    /// resumes from its revision there, so it misses no change.
    pub fn fallback_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.fallbacks.extend(urls.into_iter().map(Into::into));
        self
    }

    /// For an `https://` server (REST, and the gRPC API with [`Transport::Grpc`]):
    /// trust only the CA certificates in this PEM file instead of the system's roots
    /// (which `SSL_CERT_FILE` can extend).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.ca_file = Some(path.into());
        self
    }

    /// How long `build` waits for the first snapshot (default 5 s).
    pub fn initial_sync_timeout(mut self, timeout: Duration) -> Self {
        self.config.initial_sync_timeout = timeout;
        self
    }

    /// Where the gRPC API listens (`http://host:port`, or `https://host:port` when
    /// the server has TLS), for [`Transport::Grpc`] (default: the main URL, and then
    /// the [fallback URLs](ClientBuilder::fallback_urls)).
    #[cfg(feature = "grpc")]
    pub fn grpc_url(mut self, url: impl Into<String>) -> Self {
        self.config.grpc_url = Some(url.into());
        self
    }

    /// The gRPC APIs of the [fallback servers](ClientBuilder::fallback_urls), tried
    /// in order when the one in use at [`grpc_url`](ClientBuilder::grpc_url) cannot
    /// be reached; the stream resumes from the client's revision there.
    #[cfg(feature = "grpc")]
    pub fn grpc_fallback_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.config
            .grpc_fallbacks
            .extend(urls.into_iter().map(Into::into));
        self
    }

    /// How often to poll when polling (default 30 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// How often metrics are sent (default 60 s; also on `close`).
    pub fn metrics_flush_interval(mut self, interval: Duration) -> Self {
        self.config.metrics_flush_interval = interval;
        self
    }

    /// Flags to serve until (or instead of) the server's: an SDK snapshot document
    /// (`{environment, revision, flags, segments}`) in a file.
    pub fn bootstrap_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.bootstrap = Some(Bootstrap::File(path.into()));
        self
    }

    /// Flags to serve until (or instead of) the server's, as a snapshot document.
    pub fn bootstrap(mut self, document: Value) -> Self {
        self.bootstrap = Some(Bootstrap::Value(document));
        self
    }

    fn load_bootstrap(&self) -> Result<Option<Loaded>, Error> {
        let document = match &self.bootstrap {
            None => return Ok(None),
            Some(Bootstrap::Value(value)) => value.clone(),
            Some(Bootstrap::File(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Bootstrap {
                    path: path.clone(),
                    source,
                })?;
                serde_json::from_str(&text).map_err(|source| DocumentError::NotJson {
                    path: path.clone(),
                    source,
                })?
            }
        };
        Loaded::from_document(&document).map(Some)
    }

    /// Loads the flags: waits (bounded) for the first snapshot from the server, then
    /// keeps them in sync in the background. A bad token or an unreachable server is
    /// an error, unless a bootstrap was given (then the client serves it and keeps
    /// trying). With [`Transport::Offline`] no server is contacted.
    pub async fn build(self) -> Result<Client, Error> {
        let bootstrap = self.load_bootstrap()?;
        let http =
            crate::tls::trusting(reqwest::Client::builder(), self.config.ca_file.as_deref())?
                .connect_timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| Error::Unreachable {
                    url: self.url.clone(),
                    source: Box::new(e),
                })?;
        let offline = self.config.transport == Transport::Offline;
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let initial = bootstrap.unwrap_or_else(|| Loaded {
            environment: String::new(),
            revision: 0,
            snapshot: Snapshot::default(),
        });
        let has_bootstrap = self.bootstrap.is_some();
        let inner = Arc::new(Inner {
            servers: Arc::new(Servers::new(&self.url, &self.fallbacks)),
            token: self.token,
            http,
            state: ArcSwap::from_pointee(initial),
            status: Mutex::new(if offline {
                Status::Offline
            } else {
                Status::Failed {
                    reason: "not synced yet".to_owned(),
                }
            }),
            listeners: Mutex::new(Vec::new()),
            metrics: Metrics::default(),
            config: self.config,
            shutdown,
        });
        if offline {
            if !has_bootstrap {
                return Err(Error::NoBootstrap);
            }
            return Ok(Client { inner });
        }
        let first = tokio::time::timeout(
            inner.config.initial_sync_timeout,
            crate::sync::fetch_snapshot(&inner, None),
        )
        .await;
        match first {
            Ok(Ok(Some(loaded))) => {
                inner.install(loaded, Vec::new());
                inner.set_status(Status::Ready);
            }
            Ok(Ok(None)) => {}
            Ok(Err(error @ Error::Unauthorized { .. })) => return Err(error),
            Ok(Err(error)) if !has_bootstrap => return Err(error),
            Err(_) if !has_bootstrap => {
                return Err(Error::Timeout {
                    url: inner.servers.url().to_owned(),
                    timeout: inner.config.initial_sync_timeout,
                })
            }
            Ok(Err(error)) => inner.set_status(Status::Failed {
                reason: error.to_string(),
            }),
            Err(_) => inner.set_status(Status::Failed {
                reason: "the first snapshot timed out".to_owned(),
            }),
        }
        crate::sync::spawn(Arc::downgrade(&inner), inner.shutdown.subscribe())?;
        crate::metrics::flush::spawn_flusher(Arc::downgrade(&inner), inner.shutdown.subscribe());
        Ok(Client { inner })
    }
}

/// A handle to the SDK; cheap to clone, share it across the service.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.servers.url())
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for the server at `url` with an SDK token.
    pub fn builder(url: impl Into<String>, token: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            token: token.into(),
            config: Config {
                transport: Transport::Sse,
                initial_sync_timeout: Duration::from_secs(5),
                poll_interval: Duration::from_secs(30),
                metrics_flush_interval: Duration::from_secs(60),
                #[cfg(feature = "grpc")]
                grpc_url: None,
                #[cfg(feature = "grpc")]
                grpc_fallbacks: Vec::new(),
                ca_file: None,
            },
            bootstrap: None,
            fallbacks: Vec::new(),
        }
    }

    /// Calls `f` with the evaluation of `key` for `ctx`, without allocating, and
    /// counts the exposure.
    pub fn with_evaluation<R>(
        &self,
        key: &str,
        ctx: &Context,
        f: impl FnOnce(&Evaluation<'_>) -> R,
    ) -> R {
        let state = self.inner.state.load();
        let result = evaluate(&state.snapshot, key, ctx);
        match result.variant {
            Some(variant) => self.exposed(key, variant, ctx),
            None => self.missed(key, &result),
        }
        f(&result)
    }

    /// Whether the flag is on for `ctx`: a boolean flag's value; for other kinds,
    /// whether it serves something other than its off variant. Unknown flags: false.
    pub fn is_enabled(&self, key: &str, ctx: &Context) -> bool {
        let state = self.inner.state.load();
        let result = evaluate(&state.snapshot, key, ctx);
        let Some(variant) = result.variant else {
            self.missed(key, &result);
            return false;
        };
        self.exposed(key, variant, ctx);
        match result.value {
            Some(Value::Bool(on)) => *on,
            _ => state.snapshot.flag(key).is_some_and(|flag| {
                flag.off_variant.as_deref() != Some(variant) && result.reason != Reason::Disabled
            }),
        }
    }

    /// The served variant's name, value and reason.
    pub fn variant(&self, key: &str, ctx: &Context) -> Variant {
        self.with_evaluation(key, ctx, |e| Variant {
            name: e.variant.map(str::to_owned),
            value: e.value.cloned().unwrap_or(Value::Null),
            reason: e.reason,
        })
    }

    /// The full evaluation result.
    pub fn evaluate(&self, key: &str, ctx: &Context) -> Detail {
        self.with_evaluation(key, ctx, |e| Detail::from(e))
    }

    /// The flag's boolean value, or `default` (unknown flag, wrong type, error).
    pub fn bool_value(&self, key: &str, ctx: &Context, default: bool) -> bool {
        self.with_evaluation(key, ctx, |e| e.as_bool().unwrap_or(default))
    }

    /// The flag's string value, or `default`.
    pub fn string_value(&self, key: &str, ctx: &Context, default: &str) -> String {
        self.with_evaluation(key, ctx, |e| e.as_str().unwrap_or(default).to_owned())
    }

    /// The flag's number value, or `default`.
    pub fn number_value(&self, key: &str, ctx: &Context, default: f64) -> f64 {
        self.with_evaluation(key, ctx, |e| e.as_f64().unwrap_or(default))
    }

    /// The flag's value as JSON, or `default`.
    pub fn json_value(&self, key: &str, ctx: &Context, default: Value) -> Value {
        self.with_evaluation(key, ctx, |e| e.value.cloned().unwrap_or(default))
    }

    /// Every flag evaluated for `ctx`.
    pub fn all_flags(&self, ctx: &Context) -> BTreeMap<String, Detail> {
        let state = self.inner.state.load();
        evaluate_all(&state.snapshot, ctx)
            .map(|(key, e)| {
                if let Some(variant) = e.variant {
                    self.exposed(key, variant, ctx);
                }
                (key.to_owned(), Detail::from(&e))
            })
            .collect()
    }

    /// Counts `event` for `ctx`, attributed, for every flag, to the variant `ctx` is
    /// served (so the server can compare event rates between variants).
    ///
    /// With a targeting key, the unit is recorded too: the guard compares the share of
    /// *units* that had the event (docs/guard.md).
    pub fn track(&self, event: &str, ctx: &Context) {
        self.tracked(event, ctx, None);
    }

    /// [`track`](Self::track) with a numeric value (a latency, an amount), for a guard
    /// on the values' mean. A value that is not finite is not recorded (the event is).
    pub fn track_value(&self, event: &str, ctx: &Context, value: f64) {
        self.tracked(event, ctx, Some(value));
    }

    fn tracked(&self, event: &str, ctx: &Context, value: Option<f64>) {
        let state = self.inner.state.load();
        let value = value.filter(|v| v.is_finite());
        for (key, e) in evaluate_all(&state.snapshot, ctx) {
            if let Some(variant) = e.variant {
                self.inner.metrics.event(event, key, variant);
                if let Some(unit) = ctx.targeting_key() {
                    self.inner
                        .metrics
                        .event_unit(event, key, variant, unit, value);
                }
            }
        }
    }

    /// Counts an exposure, and records the unit when the context has a targeting key.
    #[inline]
    fn exposed(&self, key: &str, variant: &str, ctx: &Context) {
        self.inner.metrics.exposure(key, variant);
        if let Some(unit) = ctx.targeting_key() {
            self.inner.metrics.exposure_unit(key, variant, unit);
        }
    }

    /// Notes `key` as unknown when the snapshot does not have it (`FLAG_NOT_FOUND`), so
    /// the server lists it among the environment's unknown flags.
    #[inline]
    fn missed(&self, key: &str, result: &Evaluation<'_>) {
        if result.error == Some(ErrorCode::FlagNotFound) {
            self.inner.metrics.unknown_flag(key);
        }
    }

    /// Calls `listener` after every change of the flags (from the stream, a poll or a
    /// reconnect).
    pub fn on_change(&self, listener: impl Fn(&ChangeNotice) + Send + Sync + 'static) {
        if let Ok(mut listeners) = self.inner.listeners.lock() {
            listeners.push(Arc::new(listener));
        }
    }

    /// Whether the flags are current.
    pub fn status(&self) -> Status {
        self.inner
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or(Status::Failed {
                reason: "status lock poisoned".to_owned(),
            })
    }

    /// The revision of the flags being served.
    pub fn revision(&self) -> u64 {
        self.inner.state.load().revision
    }

    /// The kind of a flag, if it exists.
    pub fn kind(&self, key: &str) -> Option<FlagKind> {
        self.inner.state.load().snapshot.flag(key).map(|f| f.kind)
    }

    /// Stops syncing and sends the metrics still held.
    pub async fn close(&self) {
        let _ = self.inner.shutdown.send(true);
        crate::metrics::flush::flush(&self.inner).await;
    }
}
