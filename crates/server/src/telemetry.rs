//! Prometheus metrics for `/metrics`: requests and latency by route, evaluations,
//! SSE clients, store errors, snapshot compile time.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// Labels of request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern, e.g. `/v1/evaluate/{env}/{flag}`.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The response status code.
    pub status: u16,
}

/// Labels of evaluation counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvalLabels {
    /// The environment.
    pub env: String,
    /// `rest`, `ofrep`.
    pub api: &'static str,
}

/// What carries a stream, the `protocol` label of `switchyard_streams`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamProtocol {
    /// The SDK's SSE stream (`/v1/sdk/stream`).
    Sse,
    /// OFREP's event stream.
    Ofrep,
    /// gRPC `switchyard.v1.Sync`.
    GrpcSync,
    /// flagd's gRPC event streams (v1, v2) and its sync service.
    Flagd,
    /// The console's live updates.
    Console,
}

impl StreamProtocol {
    /// Every protocol, so each series is exported (at 0) before its first stream.
    pub const ALL: [StreamProtocol; 5] = [
        StreamProtocol::Sse,
        StreamProtocol::Ofrep,
        StreamProtocol::GrpcSync,
        StreamProtocol::Flagd,
        StreamProtocol::Console,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            StreamProtocol::Sse => "sse",
            StreamProtocol::Ofrep => "ofrep",
            StreamProtocol::GrpcSync => "grpc_sync",
            StreamProtocol::Flagd => "flagd",
            StreamProtocol::Console => "console",
        }
    }
}

/// Labels of `switchyard_streams`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    /// `sse`, `ofrep`, `grpc_sync`, `flagd` or `console`.
    pub protocol: &'static str,
}

/// Counts one open stream in `switchyard_streams` (and SSE and OFREP streams in the
/// older `switchyard_sse_clients`) until it is dropped with the stream.
pub struct StreamGuard {
    streams: Gauge,
    sse_clients: Option<Gauge>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.streams.dec();
        if let Some(sse_clients) = &self.sse_clients {
            sse_clients.dec();
        }
    }
}

/// Labels of per-environment gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvLabels {
    /// The environment.
    pub env: String,
}

/// Every metric the server exports.
pub struct Telemetry {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RouteLabels, Counter>,
    /// Request latency by route, method and status, in seconds.
    pub latency: Family<RouteLabels, Histogram>,
    /// Flags evaluated.
    pub evaluations: Family<EvalLabels, Counter>,
    /// Connected SSE clients: SDK SSE and OFREP event streams (kept for dashboards
    /// made before `streams`).
    pub sse_clients: Gauge,
    /// Open streams by protocol.
    pub streams: Family<StreamLabels, Gauge>,
    /// Store operations that failed.
    pub store_errors: Counter,
    /// Seconds to compile one whole environment into a [`switchyard_core::Snapshot`]:
    /// when the server loads, when a write is validated (the snapshot validated is the
    /// one installed), and when a revision from another replica is installed. The
    /// environments hold a handle to it ([`crate::environments::Environments::load`]).
    pub snapshot_compile: Histogram,
    /// Flags stale (unused or fully rolled out for 30 days), per environment; set when
    /// `/metrics` is read.
    pub flags_stale: Family<EnvLabels, Gauge>,
    /// Flags past their `expires` date, per environment; set when `/metrics` is read.
    pub flags_expired: Family<EnvLabels, Gauge>,
    /// When the flag gauges were last computed: at most once a minute, since each
    /// reads the audit log.
    pub flags_counted: std::sync::Mutex<Option<std::time::Instant>>,
    /// A relay's metrics (docs/relay.md).
    pub relay: crate::relay::RelayTelemetry,
    /// Rate limits and refusals (`limits.rs`).
    pub limits: crate::limits::LimitTelemetry,
    /// `evaluations`' counters by environment, then API.
    evaluation_counters: ByName<(&'static str, Counter)>,
    /// `requests`' counters and `latency`'s histograms by route, then method and status.
    request_metrics: ByName<(Method, u16, Counter, Histogram)>,
}

/// Metrics of a family found by a borrowed name: `Family::get_or_create` takes an owned
/// label set, which would build a `String` on every request; this keeps a handle to the
/// family's metric (a clone shares it) and finds it without allocating once it has been
/// seen.
struct ByName<T>(RwLock<HashMap<String, Vec<T>>>);

impl<T> Default for ByName<T> {
    fn default() -> Self {
        ByName(RwLock::default())
    }
}

impl<T> ByName<T> {
    /// Calls `record` with the entry under `name` that `matches` (made by `create` the
    /// first time), under the map's lock: nothing is cloned on the way.
    fn record(
        &self,
        name: &str,
        matches: impl Fn(&T) -> bool,
        create: impl FnOnce() -> T,
        record: impl FnOnce(&T),
    ) {
        if let Some(found) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .and_then(|entries| entries.iter().find(|e| matches(e)))
        {
            record(found);
            return;
        }
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let entries = map.entry(name.to_owned()).or_default();
        match entries.iter().position(&matches) {
            Some(i) => record(&entries[i]),
            None => {
                entries.push(create());
                if let Some(created) = entries.last() {
                    record(created);
                }
            }
        }
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(
                [
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    1.0,
                ]
                .into_iter(),
            )
        });
        let evaluations = Family::<EvalLabels, Counter>::default();
        let sse_clients = Gauge::default();
        let store_errors = Counter::default();
        registry.register(
            "switchyard_http_requests",
            "HTTP requests",
            requests.clone(),
        );
        registry.register(
            "switchyard_http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register(
            "switchyard_evaluations",
            "Flags evaluated",
            evaluations.clone(),
        );
        registry.register(
            "switchyard_sse_clients",
            "Connected SSE clients",
            sse_clients.clone(),
        );
        let streams = Family::<StreamLabels, Gauge>::default();
        for protocol in StreamProtocol::ALL {
            drop(streams.get_or_create(&StreamLabels {
                protocol: protocol.label(),
            }));
        }
        registry.register(
            "switchyard_streams",
            "Open streams by protocol (sse, ofrep, grpc_sync, flagd, console)",
            streams.clone(),
        );
        registry.register(
            "switchyard_store_errors",
            "Failed store operations",
            store_errors.clone(),
        );
        let snapshot_compile = Histogram::new(
            [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0,
            ]
            .into_iter(),
        );
        registry.register(
            "switchyard_snapshot_compile_seconds",
            "Time to compile a whole environment into a snapshot (load, write validation, install)",
            snapshot_compile.clone(),
        );
        let flags_stale = Family::<EnvLabels, Gauge>::default();
        registry.register(
            "switchyard_flags_stale",
            "Flags unused or serving one variant to everyone for 30 days",
            flags_stale.clone(),
        );
        let flags_expired = Family::<EnvLabels, Gauge>::default();
        registry.register(
            "switchyard_flags_expired",
            "Flags past their expires date",
            flags_expired.clone(),
        );
        let relay = crate::relay::RelayTelemetry::default();
        relay.register(&mut registry);
        let limits = crate::limits::LimitTelemetry::default();
        limits.register(&mut registry);
        Telemetry {
            evaluation_counters: ByName::default(),
            request_metrics: ByName::default(),
            relay,
            limits,
            flags_stale,
            flags_expired,
            flags_counted: std::sync::Mutex::new(None),
            registry,
            requests,
            latency,
            evaluations,
            sse_clients,
            streams,
            store_errors,
            snapshot_compile,
        }
    }
}

impl Telemetry {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts one open stream of `protocol` until the guard is dropped.
    pub fn stream_opened(&self, protocol: StreamProtocol) -> StreamGuard {
        let streams = self
            .streams
            .get_or_create(&StreamLabels {
                protocol: protocol.label(),
            })
            .clone();
        streams.inc();
        let sse_clients = matches!(protocol, StreamProtocol::Sse | StreamProtocol::Ofrep)
            .then(|| self.sse_clients.clone());
        if let Some(sse_clients) = &sse_clients {
            sse_clients.inc();
        }
        StreamGuard {
            streams,
            sse_clients,
        }
    }

    /// Counts `n` evaluations in `env` through `api`.
    pub fn evaluated(&self, env: &str, api: &'static str, n: u64) {
        self.evaluation_counters.record(
            env,
            |(a, _)| *a == api,
            || {
                let labels = EvalLabels {
                    env: env.to_owned(),
                    api,
                };
                (api, self.evaluations.get_or_create(&labels).clone())
            },
            |(_, counter)| {
                counter.inc_by(n);
            },
        );
    }

    /// Counts a request to `route` and records its latency.
    fn requested(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        self.request_metrics.record(
            route,
            |(m, s, ..)| m == method && *s == status,
            || {
                let labels = RouteLabels {
                    route: route.to_owned(),
                    method: method.to_string(),
                    status,
                };
                (
                    method.clone(),
                    status,
                    self.requests.get_or_create(&labels).clone(),
                    self.latency.get_or_create(&labels).clone(),
                )
            },
            |(.., counter, histogram)| {
                counter.inc();
                histogram.observe(seconds);
            },
        );
    }
}

/// Middleware recording every request's route, status and latency.
pub async fn track_requests<F: std::future::Future<Output = Response>>(
    state: &AppState,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let start = Instant::now();
    let response = next(request).await;
    if response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        state.telemetry.store_errors.inc();
    }
    state.telemetry.requested(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        &method,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use switchyard_core::model::{EnvName, FlagKey};
    use switchyard_core::Flag;

    use crate::environments::Change;
    use crate::Server;

    /// `switchyard_snapshot_compile_seconds_count` in an exposition.
    fn compiles(text: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("switchyard_snapshot_compile_seconds_count "))
            .and_then(|v| v.trim().parse().ok())
            .expect("the compile histogram is exported")
    }

    #[tokio::test]
    async fn snapshot_compiles_are_timed_and_exported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::open_embedded(dir.path(), Some("admin"))
            .await
            .expect("server loads");
        let state = &server.state;
        let before = compiles(&state.telemetry.encode());
        state
            .envs
            .create(&EnvName::new("prod"), "test")
            .await
            .expect("env created");
        let flag: Flag = serde_json::from_value(serde_json::json!({
            "key": "f", "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": "off"}
        }))
        .expect("flag");
        state
            .envs
            .apply("prod", |_| {
                Ok(Change {
                    flags: vec![(FlagKey::new("f"), Some(flag.clone()))],
                    ..Change::default()
                })
            })
            .await
            .expect("write");
        let after = compiles(&state.telemetry.encode());
        // Creating compiles one snapshot; the write compiles one, validated and then
        // installed as it is.
        assert_eq!(after, before + 2);
    }
}
