//! The admin API's stored records: the audit log and the SDK-reported metrics.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use switchyard_core::model::{EnvName, FlagKey};

use super::wire::{AuditPage, AuditParams, FlagMetrics, MetricsParams, UnitsParams};
use crate::auth::Admin;
use crate::environments::now_ms;
use crate::error::ApiError;
use crate::http::json::Path;
use crate::scope::env_state;
use crate::state::AppState;
use crate::store::AuditQuery;

/// `since` as an RFC 3339 instant, milliseconds since the epoch, or a duration ago (`15m`).
fn parse_since(since: &str) -> Result<u64, ApiError> {
    if let Ok(ms) = since.parse::<u64>() {
        return Ok(ms);
    }
    if let Ok(instant) = humantime::parse_rfc3339_weak(since) {
        let ms = instant
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        return Ok(ms);
    }
    if let Ok(ago) = humantime::parse_duration(since) {
        let ago = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
        return Ok(now_ms().saturating_sub(ago));
    }
    Err(ApiError::bad_request(format!(
        "`since` must be an RFC 3339 time, epoch milliseconds or a duration such as `1h`, got `{since}`"
    )))
}

#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    tag = "admin",
    summary = "Read the audit log, newest first",
    security(("bearer" = [])),
    params(("env" = Option<String>, Query, description = "Only this environment"), ("flag" = Option<String>, Query, description = "Only this flag, segment or token"), ("since" = Option<String>, Query, description = "RFC 3339 UTC time, epoch ms or a duration ago such as 1h", pattern = "^([0-9]{1,15}|[0-9]{1,6}(s|m|h|d)|20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z)$"), ("limit" = Option<usize>, Query, description = "At most this many (default 100)", minimum = 1, maximum = 1000)),
    responses((status = 200, description = "Entries", body = AuditPage), (status = 400, description = "Malformed request"), (status = 503, description = "Store unavailable; nothing written"))
)]
pub(super) async fn audit(
    State(state): State<AppState>,
    _admin: Admin,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let query = AuditQuery {
        env: params.env.map(EnvName::new),
        target: params.flag,
        since_ms: params.since.as_deref().map(parse_since).transpose()?,
        limit: params.limit.unwrap_or(100).clamp(1, 1000),
        ..AuditQuery::default()
    };
    let entries = state.envs.store().audit(&query).await?;
    Ok(axum::Json(AuditPage { entries }).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/envs/{env}/flags/{key}/metrics",
    tag = "admin",
    summary = "Exposures and tracked events per variant over a window",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key"), ("window" = Option<String>, Query, description = "Duration such as 5m (1m..31d)", pattern = "^(([1-9]|[1-5][0-9])m|([1-9]|1[0-9]|2[0-3])h|([1-9]|[12][0-9]|3[01])d)$")),
    responses((status = 200, description = "Counts per variant", body = FlagMetrics), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 503, description = "Store unavailable; nothing written"))
)]
pub(super) async fn flag_metrics(
    State(state): State<AppState>,
    _admin: Admin,
    Path((env, key)): Path<(String, String)>,
    params: Result<Query<MetricsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let window_text = params.window.unwrap_or_else(|| "5m".to_owned());
    let window = humantime::parse_duration(&window_text).map_err(|e| {
        ApiError::bad_request(format!("`window` must be a duration such as `5m`: {e}"))
    })?;
    if window < Duration::from_secs(60) || window > Duration::from_secs(31 * 86_400) {
        return Err(ApiError::bad_request("`window` must be between 1m and 31d"));
    }
    env_state(&state, &env)?;
    let now_minute = now_ms() / 60_000;
    let minutes = window.as_secs().div_ceil(60);
    let from = now_minute.saturating_sub(minutes - 1);
    let counts = state
        .envs
        .store()
        .flag_metrics(
            &EnvName::new(env.as_str()),
            &FlagKey::new(key.as_str()),
            from,
            now_minute,
        )
        .await?;
    Ok(axum::Json(FlagMetrics {
        environment: env,
        flag: key,
        window: window_text,
        from_ms: from * 60_000,
        variants: counts,
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/envs/{env}/flags/{key}/units",
    tag = "admin",
    summary = "Distinct units per variant in the counts SDKs began after a time (the guard's input)",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag key"), ("since" = String, Query, description = "RFC 3339 UTC time, epoch ms or a duration ago such as 1h", pattern = "^([0-9]{1,15}|[0-9]{1,6}(s|m|h|d)|20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z)$"), ("event" = Option<String>, Query, description = "Only this event")),
    responses((status = 200, description = "Units per variant", body = switchyard_core::admin::FlagUnits), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment"), (status = 503, description = "Store unavailable"))
)]
pub(super) async fn flag_units(
    State(state): State<AppState>,
    _admin: Admin,
    Path((env, key)): Path<(String, String)>,
    params: Result<Query<UnitsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = params
        .since
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("`since` is required: the counts start then"))?;
    let since_ms = parse_since(since)?;
    env_state(&state, &env)?;
    let records = state
        .envs
        .store()
        .flag_units(
            &EnvName::new(env.as_str()),
            &FlagKey::new(key.as_str()),
            since_ms,
        )
        .await?;
    Ok(axum::Json(crate::units::merge(
        &records,
        params.event.as_deref(),
        since.to_owned(),
    ))
    .into_response())
}
