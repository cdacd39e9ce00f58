//! Running as a relay (`--upstream URL --upstream-token T`, docs/relay.md): a server
//! whose store is another server. It follows the upstream's SDK stream for every
//! environment its token reads, keeps each compiled snapshot in memory like any
//! server, and serves everything read-only — evaluation (REST, OFREP, gRPC, flagd),
//! snapshots and streams with the upstream's revision numbers, so relays chain and
//! an SDK can move between them and resume.
//!
//! - [`store::UpstreamStore`] is the relay's [`crate::store::Store`]: environments
//!   come from the upstream (or, when it is down at start, from the snapshots on disk,
//!   [`cache`]); writes are refused naming the upstream; SDK metrics go to the
//!   [`forward::Forwarder`].
//! - [`follower`] reads each environment's stream into
//!   [`crate::environments::Environments`] (`change` → the next revision, a gap →
//!   the whole snapshot, reconnecting with `Last-Event-ID`).
//! - [`tokens::TokenCache`] checks tokens with the upstream once per TTL.

pub mod cache;
pub mod follower;
pub mod forward;
pub mod store;
pub mod tokens;
pub mod upstream;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use switchyard_core::model::EnvName;

use crate::environments::now_ms;
use crate::telemetry::EnvLabels;
use cache::SnapshotCache;
use forward::Forwarder;
use tokens::TokenCache;
use upstream::Upstream;

/// How a relay is set up (`--upstream…` options).
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The upstream server's URL.
    pub upstream: String,
    /// The token the relay reads it with (sdk: one environment; admin: all).
    pub token: String,
    /// How long a token's check with the upstream is trusted.
    pub token_ttl: Duration,
    /// How often SDK metrics are forwarded.
    pub metrics_every: Duration,
    /// The most metric entries waiting to be forwarded.
    pub metrics_cap: usize,
    /// Where the last snapshots (`snapshots/`) and token answers (`tokens.json`) are
    /// kept.
    pub dir: PathBuf,
}

/// `result` of a token check.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// `valid`, `invalid` or `unreachable`.
    pub result: &'static str,
}

/// The relay's metrics, registered with every server's (zero unless relaying).
#[derive(Clone, Default)]
pub struct RelayTelemetry {
    /// Whether each environment's upstream stream is connected (1) or not (0).
    pub connected: Family<EnvLabels, Gauge>,
    /// Revisions announced upstream and not yet installed here.
    pub revisions_behind: Family<EnvLabels, Gauge>,
    /// Seconds since anything (an event, a heartbeat) came from the upstream.
    pub seconds_since_upstream: Family<EnvLabels, Gauge<f64, AtomicU64>>,
    /// Whole snapshots received from the upstream (at start, after a gap, or when a
    /// stream could not resume).
    pub snapshots_received: Counter,
    /// Change events received from the upstream.
    pub changes_received: Counter,
    /// Metric batches the upstream accepted.
    pub metrics_forwarded: Counter,
    /// Metric entries dropped: over the cap, or refused upstream.
    pub metrics_dropped: Counter,
    /// Token checks with the upstream, by result.
    pub token_checks: Family<CheckLabels, Counter>,
}

impl RelayTelemetry {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "switchyard_relay_upstream_connected",
            "Whether the relay's stream of an environment from its upstream is connected",
            self.connected.clone(),
        );
        registry.register(
            "switchyard_relay_revisions_behind",
            "Revisions of an environment announced upstream and not yet installed",
            self.revisions_behind.clone(),
        );
        registry.register(
            "switchyard_relay_seconds_since_upstream",
            "Seconds since the upstream last sent anything for an environment",
            self.seconds_since_upstream.clone(),
        );
        registry.register(
            "switchyard_relay_snapshots_received",
            "Whole snapshots received from the upstream (start, gap, a stream that could not resume)",
            self.snapshots_received.clone(),
        );
        registry.register(
            "switchyard_relay_changes_received",
            "Change events received from the upstream",
            self.changes_received.clone(),
        );
        registry.register(
            "switchyard_relay_metrics_forwarded_batches",
            "SDK metric batches forwarded to the upstream",
            self.metrics_forwarded.clone(),
        );
        registry.register(
            "switchyard_relay_metrics_dropped_entries",
            "SDK metric entries dropped (buffer full, or refused upstream)",
            self.metrics_dropped.clone(),
        );
        registry.register(
            "switchyard_relay_token_checks",
            "Tokens checked with the upstream, by result",
            self.token_checks.clone(),
        );
    }

    /// Counts one token check.
    pub fn token_check(&self, result: &'static str) {
        self.token_checks
            .get_or_create(&CheckLabels { result })
            .inc();
    }
}

/// What the relay knows of one environment's link to the upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    /// The stream is open.
    pub connected: bool,
    /// When the upstream last sent anything for it (or, offline, when the snapshot
    /// served was written), ms since the epoch.
    pub heard_ms: u64,
    /// The newest revision the upstream announced.
    pub upstream_revision: u64,
}

/// Every environment's [`Link`], and whether the upstream answered the last time
/// the relay listed its environments.
#[derive(Debug, Default)]
pub struct Links {
    envs: Mutex<BTreeMap<String, Link>>,
    listed: AtomicBool,
}

impl Links {
    fn update(&self, env: &EnvName, change: impl FnOnce(&mut Link)) {
        let mut envs = self.envs.lock().unwrap_or_else(|e| e.into_inner());
        change(envs.entry(env.to_string()).or_default());
    }

    /// The upstream sent something about `env` (at `revision`, when it said).
    pub fn heard(&self, env: &EnvName, revision: Option<u64>) {
        self.update(env, |link| {
            link.heard_ms = now_ms();
            if let Some(revision) = revision {
                link.upstream_revision = link.upstream_revision.max(revision);
            }
        });
    }

    /// `env` is served from a snapshot written at `written_ms`, upstream unreachable.
    pub fn offline(&self, env: &EnvName, revision: u64, written_ms: u64) {
        self.update(env, |link| {
            link.connected = false;
            link.heard_ms = written_ms;
            link.upstream_revision = revision;
        });
    }

    /// The stream of `env` opened or closed.
    pub fn set_connected(&self, env: &EnvName, connected: bool) {
        self.update(env, |link| link.connected = connected);
    }

    /// `env` is gone upstream.
    pub fn remove(&self, env: &EnvName) {
        let mut envs = self.envs.lock().unwrap_or_else(|e| e.into_inner());
        envs.remove(env.as_str());
    }

    /// Whether the upstream answered the last listing.
    pub fn set_listed(&self, listed: bool) {
        self.listed.store(listed, Ordering::Release);
    }

    /// Every environment's link.
    pub fn all(&self) -> BTreeMap<String, Link> {
        self.envs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the relay is in step: the upstream answers and every stream is open.
    pub fn in_step(&self) -> bool {
        self.listed.load(Ordering::Acquire) && self.all().values().all(|link| link.connected)
    }
}

/// A relay's parts that handlers and tasks share (`AppState::relay`).
pub struct Relay {
    /// The upstream.
    pub upstream: Upstream,
    /// Token answers.
    pub tokens: TokenCache,
    /// Each environment's link.
    pub links: Links,
    /// SDK metrics on their way upstream.
    pub forwarder: Forwarder,
    /// Snapshots on disk.
    pub cache: SnapshotCache,
    /// Its metrics.
    pub telemetry: RelayTelemetry,
    /// Its settings.
    pub config: RelayConfig,
}

impl Relay {
    /// A relay of `config.upstream`, counting into `telemetry`.
    pub fn new(config: RelayConfig, telemetry: RelayTelemetry) -> Result<Relay, String> {
        let upstream = Upstream::new(&config.upstream, &config.token)?;
        Ok(Relay {
            tokens: TokenCache::new(
                upstream.clone(),
                config.token_ttl,
                telemetry.clone(),
                config.dir.join("tokens.json"),
            ),
            forwarder: Forwarder::new(config.metrics_cap, telemetry.clone()),
            cache: SnapshotCache::new(&config.dir.join("snapshots")),
            links: Links::default(),
            upstream,
            telemetry,
            config,
        })
    }

    /// Sets the per-environment gauges from the links and the revisions installed
    /// (`installed`: env → revision), for a scrape.
    pub fn update_gauges(&self, installed: &BTreeMap<String, u64>) {
        let now = now_ms();
        for (env, link) in self.links.all() {
            let labels = EnvLabels { env: env.clone() };
            let local = installed.get(&env).copied().unwrap_or(0);
            let t = &self.telemetry;
            t.connected
                .get_or_create(&labels)
                .set(i64::from(link.connected));
            t.revisions_behind.get_or_create(&labels).set(
                i64::try_from(link.upstream_revision.saturating_sub(local)).unwrap_or(i64::MAX),
            );
            t.seconds_since_upstream
                .get_or_create(&labels)
                .set(now.saturating_sub(link.heard_ms) as f64 / 1000.0);
        }
    }
}
