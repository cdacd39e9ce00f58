//! `POST /v1/admin/envs/{env}/apply`: a set of flags and segments written in one
//! atomic commit (flags as code: what `switchyard apply` sends).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use switchyard_core::admin::{ApplyAnswer, ApplyBody};

use crate::auth::Admin;
use crate::domain::{self, Batch};
use crate::error::ApiError;
use crate::http::json::{Json, Path};
use crate::http::preconditions::from_headers;
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/v1/admin/envs/{env}/apply",
    tag = "admin",
    summary = "Write and delete flags and segments in one atomic commit",
    security(("bearer" = [])),
    request_body(content = ApplyBody, content_type = "application/json"),
    params(("env" = String, Path, description = "Environment"), ("If-Match" = Option<String>, Header, description = "Only at this environment revision, e.g. \"12\" (RFC 9110)")),
    responses((status = 200, description = "Applied (or nothing to do)", body = ApplyAnswer), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment"), (status = 412, description = "The environment is at another revision; nothing written"), (status = 422, description = "Invalid: details name each field path (`flags[2].rules[0]…`); nothing written"), (status = 503, description = "Store unavailable; nothing written"))
)]
pub async fn apply_batch(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(env): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ApplyBody>,
) -> Result<Response, ApiError> {
    let conditions = from_headers(&headers)?;
    let batch = Batch {
        flags: body.flags,
        segments: body.segments,
        delete_flags: body.delete_flags,
        delete_segments: body.delete_segments,
        reason: body.reason,
    };
    let applied = domain::apply_batch(&state, &principal, &env, batch, &conditions).await?;
    let named = |list: Vec<(&str, String)>| {
        list.into_iter()
            .map(|(what, key)| format!("{what}:{key}"))
            .collect()
    };
    Ok(axum::Json(ApplyAnswer {
        batch: applied.batch,
        revision: applied.revision,
        created: named(applied.created),
        changed: named(applied.changed),
        deleted: named(applied.deleted),
    })
    .into_response())
}
