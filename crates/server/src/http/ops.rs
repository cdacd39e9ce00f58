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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl Readiness {
    /// The readiness of `state` now.
    pub fn of(state: &AppState) -> Self {
        let environments = state.envs.names().len();
        if !state.is_ready() {
            Readiness::Starting
        } else if state
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
}

impl Status {
    fn new(status: &'static str, environments: Option<usize>) -> Self {
        Status {
            status,
            environments,
            store: None,
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
    count_flags(&state).await;
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
