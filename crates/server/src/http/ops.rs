//! Operations endpoints, without authentication: `GET /healthz` (the process is
//! alive), `GET /readyz` (the snapshots are loaded and requests can be served) and
//! `GET /metrics` (Prometheus / OpenMetrics text).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::state::AppState;

/// The content type of `/metrics`. `prometheus-client` writes the OpenMetrics 1.0 text
/// format (counter samples carry `_total` while their `# TYPE` line does not, and the
/// body ends with `# EOF`), so it is labelled as such: Prometheus asks for this format
/// first and parses it with its OpenMetrics parser. Labelling it
/// `text/plain; version=0.0.4` would make Prometheus' classic parser see every counter
/// sample as untyped (its name no longer matches its `# TYPE` line).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Whether the server can serve requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// Still loading its state: 503.
    Starting,
    /// Serving, with this many environments loaded: 200.
    Ready {
        /// Environments in memory.
        environments: usize,
    },
    /// The shared store is unreachable: evaluation, OFREP, snapshots and streams
    /// still serve the last state from memory, writes fail with 503. Answered with
    /// 200 so load balancers keep the replica in rotation for reads.
    Degraded {
        /// Environments in memory.
        environments: usize,
    },
    /// A relay whose upstream does not answer or whose streams are not all open: it
    /// serves what it last received (200, like `Degraded`).
    RelayBehind {
        /// Environments in memory.
        environments: usize,
        /// Each environment's revision here and how old it is.
        upstream: UpstreamStatus,
    },
}

/// A relay's link to its upstream, in `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UpstreamStatus {
    /// The upstream's URL.
    pub url: String,
    /// Every environment relayed.
    pub environments: Vec<RelayedEnv>,
}

/// One environment of [`UpstreamStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RelayedEnv {
    /// The environment.
    pub name: String,
    /// The revision served.
    pub revision: u64,
    /// Whether its stream from the upstream is open.
    pub connected: bool,
    /// Seconds since the upstream last sent anything for it (offline: since the
    /// snapshot served was written).
    pub age_seconds: u64,
}

impl Readiness {
    /// The readiness of `state` now.
    pub fn of(state: &AppState) -> Self {
        let environments = state.envs.names().len();
        if !state.is_ready() {
            return Readiness::Starting;
        }
        if let Some(relay) = state.relay.as_ref().filter(|relay| !relay.links.in_step()) {
            let now = crate::environments::now_ms();
            let envs = relay
                .links
                .all()
                .into_iter()
                .map(|(name, link)| RelayedEnv {
                    revision: state.envs.get(&name).map_or(0, |env| env.revision),
                    connected: link.connected,
                    age_seconds: now.saturating_sub(link.heard_ms) / 1000,
                    name,
                })
                .collect();
            return Readiness::RelayBehind {
                environments,
                upstream: UpstreamStatus {
                    url: relay.upstream.url().to_owned(),
                    environments: envs,
                },
            };
        }
        if state
            .store_degraded
            .load(std::sync::atomic::Ordering::Acquire)
        {
            Readiness::Degraded { environments }
        } else {
            Readiness::Ready { environments }
        }
    }
}

/// The body of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok` (healthz); `starting`, `ready` or `degraded` (readyz).
    #[schema(value_type = String)]
    pub status: &'static str,
    /// Environments in memory (readyz, once loaded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environments: Option<usize>,
    /// Why the replica is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub store: Option<&'static str>,
    /// A relay's upstream, when it is not in step with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamStatus>,
}

impl Status {
    fn new(status: &'static str, environments: Option<usize>) -> Self {
        Status {
            status,
            environments,
            store: None,
            upstream: None,
        }
    }
}

impl IntoResponse for Readiness {
    fn into_response(self) -> Response {
        match self {
            Readiness::Starting => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Status::new("starting", None)),
            )
                .into_response(),
            Readiness::Ready { environments } => (
                StatusCode::OK,
                Json(Status::new("ready", Some(environments))),
            )
                .into_response(),
            Readiness::Degraded { environments } => (
                StatusCode::OK,
                Json(Status {
                    store: Some("unavailable: serving the last snapshot; writes fail with 503"),
                    ..Status::new("degraded", Some(environments))
                }),
            )
                .into_response(),
            Readiness::RelayBehind {
                environments,
                upstream,
            } => (
                StatusCode::OK,
                Json(Status {
                    store: Some("relay not in step with its upstream: serving what it last received; admin writes go to the upstream"),
                    upstream: Some(upstream),
                    ..Status::new("degraded", Some(environments))
                }),
            )
                .into_response(),
        }
    }
}

#[utoipa::path(get, path = "/healthz", tag = "ops", summary = "Liveness", responses((status = 200, description = "{\"status\": \"ok\"}", body = Status)))]
async fn healthz() -> Response {
    Json(Status::new("ok", None)).into_response()
}

#[utoipa::path(get, path = "/readyz", tag = "ops", summary = "Readiness: snapshots loaded", responses((status = 200, description = "Ready, or degraded (shared store unreachable; reads still served)", body = Status), (status = 503, description = "Starting", body = Status)))]
async fn readyz(State(state): State<AppState>) -> Response {
    Readiness::of(&state).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "ops", summary = "Prometheus / OpenMetrics exposition", responses((status = 200, description = "Metrics text", body = String, content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<AppState>) -> Response {
    match &state.relay {
        // A relay keeps no audit log or usage: the upstream counts its flags.
        Some(relay) => {
            let installed = state
                .envs
                .names()
                .into_iter()
                .filter_map(|name| state.envs.get(&name).map(|env| (name, env.revision)))
                .collect();
            relay.update_gauges(&installed);
        }
        None => count_flags(&state).await,
    }
    let mut response = state.telemetry.encode().into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    response
}
/// Sets the stale and expired flag gauges of every environment, at most once per
/// [`FLAG_COUNTS_EVERY`] (each count reads the environment's audit log).
async fn count_flags(state: &AppState) {
    {
        let mut counted = state
            .telemetry
            .flags_counted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if counted.is_some_and(|at| at.elapsed() < FLAG_COUNTS_EVERY) {
            return;
        }
        *counted = Some(std::time::Instant::now());
    }
    for env in state.envs.names() {
        // A store that cannot answer leaves the last counts: the scrape still works.
        let Ok(life) =
            crate::domain::lifecycle(state, &env, crate::domain::DEFAULT_STALE_AFTER).await
        else {
            continue;
        };
        let labels = crate::telemetry::EnvLabels { env };
        let stale = life.flags.iter().filter(|l| !l.stale.is_empty()).count();
        let expired = life.flags.iter().filter(|l| l.expired).count();
        let telemetry = &state.telemetry;
        telemetry
            .flags_stale
            .get_or_create(&labels)
            .set(stale as i64);
        telemetry
            .flags_expired
            .get_or_create(&labels)
            .set(expired as i64);
    }
}

/// How often `/metrics` recounts stale and expired flags.
const FLAG_COUNTS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics))]
pub struct OpsApi;
