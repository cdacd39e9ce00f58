//! `GET /v1/admin/envs/{env}/lifecycle`: stale and expired flags, and unknown keys.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use switchyard_core::admin::Lifecycle;
use utoipa::IntoParams;

use crate::auth::Admin;
use crate::domain;
use crate::error::ApiError;
use crate::http::json::Path;
use crate::state::AppState;

/// How long counts as stale.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LifecycleParams {
    /// Unused or fully rolled out for this many seconds counts as stale (30 days by
    /// default).
    #[param(minimum = 0)]
    pub stale_after_seconds: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/envs/{env}/lifecycle",
    tag = "admin",
    summary = "Which flags are stale or expired, and which keys are evaluated but unknown",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), LifecycleParams),
    responses((status = 200, description = "Every flag's last evaluation and change, and why it is stale", body = Lifecycle), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment"), (status = 503, description = "Store unavailable"))
)]
pub async fn flag_lifecycle(
    State(state): State<AppState>,
    Admin(_principal): Admin,
    Path(env): Path<String>,
    Query(params): Query<LifecycleParams>,
) -> Result<Response, ApiError> {
    let stale_after = params
        .stale_after_seconds
        .map_or(domain::DEFAULT_STALE_AFTER, Duration::from_secs);
    let life = domain::lifecycle(&state, &env, stale_after).await?;
    Ok(axum::Json(life).into_response())
}
