//! `/v1/admin/envs/{env}/schedules`: changes to flags scheduled for a time (list,
//! create, cancel); the server carries them out (`domain/schedules.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use switchyard_core::admin::{NewSchedule, Schedule};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::domain;
use crate::error::ApiError;
use crate::http::json::{Json, Path};
use crate::state::AppState;

/// `GET /v1/admin/envs/{env}/schedules`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    /// Every scheduled change of the environment, by due time (done, failed and
    /// cancelled ones too).
    pub schedules: Vec<Schedule>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/envs/{env}/schedules",
    tag = "admin",
    summary = "List the scheduled changes of an environment",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment")),
    responses((status = 200, description = "Scheduled changes by due time", body = ScheduleList), (status = 404, description = "No such environment"), (status = 503, description = "Store unavailable"))
)]
pub async fn list_schedules(
    State(state): State<AppState>,
    Admin(_principal): Admin,
    Path(env): Path<String>,
) -> Result<Response, ApiError> {
    let schedules = domain::list_schedules(&state, &env).await?;
    Ok(axum::Json(ScheduleList { schedules }).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/admin/envs/{env}/schedules",
    tag = "admin",
    summary = "Schedule a change to a flag: kill, revive, ramp or replace it at a time",
    security(("bearer" = [])),
    request_body(content = NewSchedule, content_type = "application/json"),
    params(("env" = String, Path, description = "Environment")),
    responses((status = 201, description = "Scheduled", body = Schedule), (status = 400, description = "Malformed request, or a change the flag cannot take"), (status = 404, description = "No such environment or flag"), (status = 422, description = "The replacement flag is invalid"), (status = 503, description = "Store unavailable; nothing written"))
)]
pub async fn create_schedule(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(env): Path<String>,
    Json(body): Json<NewSchedule>,
) -> Result<Response, ApiError> {
    let schedule = domain::create_schedule(&state, &principal, &env, body).await?;
    Ok((StatusCode::CREATED, axum::Json(schedule)).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/admin/envs/{env}/schedules/{id}",
    tag = "admin",
    summary = "Cancel a pending scheduled change",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), ("id" = String, Path, description = "The scheduled change's id")),
    responses((status = 200, description = "Cancelled", body = Schedule), (status = 404, description = "No such environment or scheduled change"), (status = 409, description = "No longer pending"), (status = 503, description = "Store unavailable; nothing written"))
)]
pub async fn cancel_schedule(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path((env, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let schedule = domain::cancel_schedule(&state, &principal, &env, &id).await?;
    Ok(axum::Json(schedule).into_response())
}
