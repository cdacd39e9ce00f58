//! `/v1/admin/tokens`: issue (the secret shown once), list, rotate, revoke.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::wire::{NewToken, RotateToken, TokenIssued, TokenList};
use crate::auth::Admin;
use crate::domain;
use crate::error::ApiError;
use crate::http::json::{Json, Path};
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/v1/admin/tokens",
    tag = "admin",
    summary = "Issue a token (shown once)",
    security(("bearer" = [])),
    request_body(content = NewToken, content_type = "application/json"),
    responses((status = 201, description = "The token", body = TokenIssued), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 409, description = "Conflict"), (status = 503, description = "Store unavailable; nothing written"))
)]
pub(super) async fn create_token(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Json(body): Json<NewToken>,
) -> Result<Response, ApiError> {
    let issued = domain::issue_token(
        &state,
        &principal,
        &body.name,
        body.kind,
        body.env.as_deref(),
        body.expires_ms,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(TokenIssued::from(issued))).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/admin/tokens/{name}/rotate",
    tag = "admin",
    summary = "Rotate a token: a new secret (shown once); the old one is accepted for a grace period",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Token name")),
    request_body(content = RotateToken, content_type = "application/json"),
    responses((status = 200, description = "The new secret", body = TokenIssued), (status = 400, description = "Malformed request"), (status = 404, description = "No such token"), (status = 409, description = "Expired, rotated meanwhile, or the bootstrap admin token"), (status = 503, description = "Store unavailable; nothing written"))
)]
pub(super) async fn rotate_token(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(name): Path<String>,
    Json(body): Json<RotateToken>,
) -> Result<Response, ApiError> {
    let grace = std::time::Duration::from_secs(body.grace_seconds);
    let issued = domain::rotate_token(&state, &principal, &name, grace).await?;
    Ok(axum::Json(TokenIssued::from(issued)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/tokens",
    tag = "admin",
    summary = "List tokens (never their secrets), the configured bootstrap admin token included",
    security(("bearer" = [])),
    responses((status = 200, description = "Tokens", body = TokenList), (status = 503, description = "Store unavailable; nothing written"))
)]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let tokens = domain::list_tokens(&state).await?;
    Ok(axum::Json(TokenList { tokens }).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/admin/tokens/{name}",
    tag = "admin",
    summary = "Revoke a token",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Token name")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such environment or object"), (status = 409, description = "The bootstrap admin token comes from configuration; restart without it"), (status = 503, description = "Store unavailable; nothing written"))
)]
pub(super) async fn delete_token(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    domain::revoke_token(&state, &principal, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
