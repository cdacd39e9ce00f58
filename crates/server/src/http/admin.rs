//! The admin API under `/v1/admin` (admin tokens only): environments, flags and
//! segments with optimistic concurrency, kill switches, promotion, tokens, the audit
//! log and per-variant metrics.

use axum::extract::{Query, State};
use axum::http::header::ETAG;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::Value;
use switchyard_core::model::EnvName;
use switchyard_core::{Flag, Segment};

use crate::auth::{Admin, Principal};
use crate::domain::{self, check_key, Item};
use crate::error::ApiError;
use crate::http::json::{from_value, parse, Json, Path, RawBody};
use crate::http::preconditions::from_headers;
use crate::scope::env_state;
use crate::state::AppState;

mod batch;
mod lifecycle;
mod records;
mod schedules;
mod tokens;
mod wire;

use wire::{
    DeleteEnvParams, EnvCreated, EnvList, EnvSummary, FlagList, KillTag, Promote, Promoted,
    ReasonBody, RevertBody, SegmentList, TagKilled,
};

/// Routes, relative to `/v1/admin`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/envs", get(list_envs))
        .route("/envs/{env}", put(create_env).delete(delete_env))
        .route("/envs/{env}/flags", get(list_flags))
        .route(
            "/envs/{env}/flags/{key}",
            get(get_flag).put(put_flag).delete(delete_flag),
        )
        .route("/envs/{env}/flags/{key}/kill", post(kill_flag))
        .route("/envs/{env}/flags/{key}/revive", post(revive_flag))
        .route("/envs/{env}/flags/{key}/revert", post(revert_flag))
        .route(
            "/envs/{env}/flags/{key}/metrics",
            get(records::flag_metrics),
        )
        .route("/envs/{env}/flags/{key}/units", get(records::flag_units))
        .route("/envs/{env}/kill", post(kill_tag))
        .route("/envs/{env}/segments", get(list_segments))
        .route(
            "/envs/{env}/segments/{key}",
            get(get_segment).put(put_segment).delete(delete_segment),
        )
        .route("/envs/{env}/apply", post(batch::apply_batch))
        .route("/envs/{env}/lifecycle", get(lifecycle::flag_lifecycle))
        .route(
            "/envs/{env}/schedules",
            get(schedules::list_schedules).post(schedules::create_schedule),
        )
        .route(
            "/envs/{env}/schedules/{id}",
            axum::routing::delete(schedules::cancel_schedule),
        )
        .route("/promote", post(promote))
        .route(
            "/tokens",
            post(tokens::create_token).get(tokens::list_tokens),
        )
        .route(
            "/tokens/{name}",
            axum::routing::delete(tokens::delete_token),
        )
        .route(
            "/tokens/{name}/rotate",
            axum::routing::post(tokens::rotate_token),
        )
        .route("/audit", get(records::audit))
}

fn with_etag(status: StatusCode, version: u64, body: impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// Parses a flag or segment body, taking the key from the path when the body has none.
fn keyed_body<T: serde::de::DeserializeOwned>(
    mut body: Value,
    key: &str,
    what: &str,
) -> Result<T, ApiError> {
    let Value::Object(object) = &mut body else {
        return Err(ApiError::bad_request(format!(
            "the {what} must be a JSON object"
        )));
    };
    match object.get("key") {
        None => {
            object.insert("key".to_owned(), Value::String(key.to_owned()));
        }
        Some(Value::String(k)) if k == key => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the body's key {other} does not match the path's `{key}`"
            )))
        }
    }
    from_value(body)
}

#[utoipa::path(
    get,
    path = "/v1/admin/envs",
    tag = "admin",
    summary = "List environments",
    security(("bearer" = [])),
    responses((status = 200, description = "Environments with revision and flag count", body = EnvList))
)]
async fn list_envs(State(state): State<AppState>, _admin: Admin) -> Result<Response, ApiError> {
    let environments = state
        .envs
        .names()
        .iter()
        .filter_map(|name| state.envs.get(name))
        .map(|env| EnvSummary {
            name: env.name.clone(),
            revision: env.revision,
            flags: env.snapshot.len(),
        })
        .collect();
    Ok(axum::Json(EnvList { environments }).into_response())
}

#[utoipa::path(
    put,
    path = "/v1/admin/envs/{env}",
    tag = "admin",
    summary = "Create an environment",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), ("If-Match" = Option<String>, Header, description = "Only at this revision, e.g. \"12\" (RFC 9110)"), ("If-None-Match" = Option<String>, Header, description = "Not at this revision; `*`: only if it does not exist")),
    responses((status = 201, description = "Created", body = EnvCreated), (status = 200, description = "Already existed", body = EnvCreated), (status = 400, description = "Malformed request"), (status = 412, description = "A precondition did not hold; nothing written"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn create_env(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(env): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let conditions = from_headers(&headers)?;
    let (created, revision) = domain::create_env(&state, &principal, &env, &conditions).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = EnvCreated {
        name: EnvName::new(env),
        revision,
    };
    Ok(with_etag(status, revision, body))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/envs/{env}",
    tag = "admin",
    summary = "Delete an environment (409 while it has flags or segments, unless ?force=true)",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), ("force" = Option<bool>, Query, description = "Delete its flags and segments too"), ("If-Match" = Option<String>, Header, description = "Expected revision, e.g. \"12\"")),
    responses((status = 204, description = "Deleted; the audit entry keeps every flag and segment it had"), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment"), (status = 409, description = "It still has flags or segments"), (status = 412, description = "If-Match did not match"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn delete_env(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(env): Path<String>,
    headers: HeaderMap,
    params: Result<Query<DeleteEnvParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let conditions = from_headers(&headers)?;
    domain::delete_env(&state, &principal, &env, params.force, &conditions).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/envs/{env}/flags",
    tag = "admin",
    summary = "List flags",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment")),
    responses((status = 200, description = "Every flag of the environment", body = FlagList), (status = 404, description = "No such environment or object"))
)]
async fn list_flags(
    State(state): State<AppState>,
    _admin: Admin,
    Path(env): Path<String>,
) -> Result<Response, ApiError> {
    let current = env_state(&state, &env)?;
    Ok(axum::Json(FlagList {
        environment: &env,
        revision: current.revision,
        flags: current.snapshot.flags().collect(),
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/envs/{env}/flags/{key}",
    tag = "admin",
    summary = "Get a flag (ETag = version)",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key")),
    responses((status = 200, description = "The flag (ETag: its version)", body = Flag), (status = 404, description = "No such environment or object"))
)]
async fn get_flag(
    State(state): State<AppState>,
    _admin: Admin,
    Path((env, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let current = env_state(&state, &env)?;
    let flag = current
        .snapshot
        .flag(&key)
        .ok_or_else(|| ApiError::not_found(format!("flag `{key}` does not exist in `{env}`")))?;
    Ok(with_etag(StatusCode::OK, flag.version, flag))
}

#[utoipa::path(
    put,
    path = "/v1/admin/envs/{env}/flags/{key}",
    tag = "admin",
    summary = "Create or replace a flag",
    security(("bearer" = [])),
    request_body(content = Flag, description = "The flag (docs/flags.md) without `key`, which the path gives (a `key` in the body must equal it). 422 names every field that validation refuses: variants a rule, the default or `off_variant` name but do not define, weights not summing to 100000, values not of `kind`, unknown segments or prerequisites.", content_type = "application/json",
        example = json!({"kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "rules": [{"id": "staff", "when": {"groups": ["staff"]}, "serve": {"variant": "on"}}], "default": {"rollout": {"split": [{"variant": "on", "weight": 25000}, {"variant": "off", "weight": 75000}]}}, "tags": ["payments"]})),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"12\""), ("If-None-Match" = Option<String>, Header, description = "`*`: only create, never replace")),
    responses((status = 201, description = "Created", body = Flag), (status = 200, description = "Replaced", body = Flag), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 412, description = "If-Match did not match"), (status = 413, description = "Body too large"), (status = 422, description = "Invalid: details name each field path"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn put_flag(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path((env, key)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    put_item::<Flag>(state, principal, env, key, headers, body).await
}

#[utoipa::path(
    delete,
    path = "/v1/admin/envs/{env}/flags/{key}",
    tag = "admin",
    summary = "Delete a flag",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"12\"")),
    responses((status = 204, description = "Deleted"), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 412, description = "If-Match did not match"), (status = 422, description = "Invalid: details name each field path"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn delete_flag(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path((env, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete_item::<Flag>(state, principal, env, key, headers).await
}

async fn switch_flag(
    state: AppState,
    principal: Principal,
    (env, key): (String, String),
    headers: HeaderMap,
    body: &[u8],
    enabled: bool,
) -> Result<Response, ApiError> {
    let conditions = from_headers(&headers)?;
    let body: ReasonBody = optional_body(body)?;
    let flag = domain::set_enabled(
        &state,
        &principal,
        &env,
        &key,
        enabled,
        body.reason,
        &conditions,
    )
    .await?;
    Ok(with_etag(StatusCode::OK, flag.version, flag))
}

/// An optional JSON body (kill and revive may be sent without one).
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(body)
    }
}

#[utoipa::path(
    post,
    path = "/v1/admin/envs/{env}/flags/{key}/kill",
    tag = "admin",
    summary = "Kill switch: serve off_variant to everyone",
    security(("bearer" = [])),
    request_body(content = ReasonBody, description = "Optional: {\"reason\": \"why\"}", content_type = "application/json"),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key"), ("If-Match" = Option<String>, Header, description = "Only at this version, e.g. \"12\" (RFC 9110)"), ("If-None-Match" = Option<String>, Header, description = "Not at this version; `*`: only if it does not exist")),
    responses((status = 200, description = "The killed flag", body = Flag), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 412, description = "A precondition did not hold; nothing written"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn kill_flag(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(target): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    switch_flag(state, principal, target, headers, &body, false).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/envs/{env}/flags/{key}/revive",
    tag = "admin",
    summary = "Undo a kill",
    security(("bearer" = [])),
    request_body(content = ReasonBody, description = "Optional: {\"reason\": \"why\"}", content_type = "application/json"),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key"), ("If-Match" = Option<String>, Header, description = "Only at this version, e.g. \"12\" (RFC 9110)"), ("If-None-Match" = Option<String>, Header, description = "Not at this version; `*`: only if it does not exist")),
    responses((status = 200, description = "The revived flag", body = Flag), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 412, description = "A precondition did not hold; nothing written"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn revive_flag(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(target): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    switch_flag(state, principal, target, headers, &body, true).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/envs/{env}/flags/{key}/revert",
    tag = "admin",
    summary = "Write a flag back to an earlier version (from its audit history), as a new version",
    security(("bearer" = [])),
    request_body(content = RevertBody, content_type = "application/json"),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key"), ("If-Match" = Option<String>, Header, description = "Only at this version, e.g. \"12\" (RFC 9110)"), ("If-None-Match" = Option<String>, Header, description = "Not at this version")),
    responses((status = 200, description = "The flag at its new version, with the earlier content", body = Flag), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment, flag or version"), (status = 412, description = "A precondition did not hold; nothing written"), (status = 422, description = "The earlier version no longer validates (e.g. a segment it names is gone)"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn revert_flag(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path((env, key)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<RevertBody>,
) -> Result<Response, ApiError> {
    let conditions = from_headers(&headers)?;
    let flag =
        domain::revert_flag(&state, &principal, &env, &key, body.version, &conditions).await?;
    Ok(with_etag(StatusCode::OK, flag.version, flag))
}

#[utoipa::path(
    post,
    path = "/v1/admin/envs/{env}/kill",
    tag = "admin",
    summary = "Kill every flag carrying a tag",
    security(("bearer" = [])),
    request_body(content = KillTag, content_type = "application/json"),
    params(("env" = String, Path, description = "Environment")),
    responses((status = 200, description = "The flags killed", body = TagKilled), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn kill_tag(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(env): Path<String>,
    Json(body): Json<KillTag>,
) -> Result<Response, ApiError> {
    let (_, new) = domain::kill_tag(&state, &principal, &env, &body.tag, body.reason).await?;
    // Every flag with the tag that is killed now, whether by this call or before.
    let killed = new
        .snapshot
        .flags()
        .filter(|f| !f.enabled && f.tags.contains(&body.tag))
        .map(|f| f.key.clone())
        .collect();
    Ok(axum::Json(TagKilled {
        tag: body.tag,
        killed,
        revision: new.revision,
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/envs/{env}/segments",
    tag = "admin",
    summary = "List segments",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment")),
    responses((status = 200, description = "Every segment", body = SegmentList), (status = 404, description = "No such environment or object"))
)]
async fn list_segments(
    State(state): State<AppState>,
    _admin: Admin,
    Path(env): Path<String>,
) -> Result<Response, ApiError> {
    let current = env_state(&state, &env)?;
    Ok(axum::Json(SegmentList {
        environment: &env,
        revision: current.revision,
        segments: current.snapshot.segments().collect(),
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/envs/{env}/segments/{key}",
    tag = "admin",
    summary = "Get a segment",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key")),
    responses((status = 200, description = "The segment (ETag: its version)", body = Segment), (status = 404, description = "No such environment or object"))
)]
async fn get_segment(
    State(state): State<AppState>,
    _admin: Admin,
    Path((env, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let current = env_state(&state, &env)?;
    let segment = Segment::find(&current, &key)
        .ok_or_else(|| ApiError::not_found(format!("segment `{key}` does not exist in `{env}`")))?;
    Ok(with_etag(StatusCode::OK, segment.version, segment))
}

#[utoipa::path(
    put,
    path = "/v1/admin/envs/{env}/segments/{key}",
    tag = "admin",
    summary = "Create or replace a segment",
    security(("bearer" = [])),
    request_body(content = Segment, description = "The segment without `key`, which the path gives: {\"when\": {...}}. 422 when its `when` names segments or fails validation.", content_type = "application/json",
        example = json!({"description": "Paying customers in the EU", "when": {"constraints": [{"attribute": "plan", "op": "in", "values": ["pro", "team"]}]}})),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"12\""), ("If-None-Match" = Option<String>, Header, description = "`*`: only create, never replace")),
    responses((status = 201, description = "Created", body = Segment), (status = 200, description = "Replaced", body = Segment), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 412, description = "If-Match did not match"), (status = 413, description = "Body too large"), (status = 422, description = "Invalid: details name each field path"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn put_segment(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path((env, key)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    put_item::<Segment>(state, principal, env, key, headers, body).await
}

#[utoipa::path(
    delete,
    path = "/v1/admin/envs/{env}/segments/{key}",
    tag = "admin",
    summary = "Delete a segment (422 while flags use it)",
    security(("bearer" = [])),
    params(("env" = String, Path, description = "Environment"), ("key" = String, Path, description = "Flag or segment key"), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"12\"")),
    responses((status = 204, description = "Deleted"), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 412, description = "If-Match did not match"), (status = 422, description = "Invalid: details name each field path"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn delete_segment(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path((env, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete_item::<Segment>(state, principal, env, key, headers).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/promote",
    tag = "admin",
    summary = "Copy flags from one environment to another",
    security(("bearer" = [])),
    request_body(content = Promote, description = "{\"from\": \"staging\", \"to\": \"production\", \"flags\": [..]} (all flags when empty)", content_type = "application/json"),
    responses((status = 200, description = "Promoted", body = Promoted), (status = 400, description = "Malformed request, or `from` equals `to`"), (status = 404, description = "No such environment or object"), (status = 422, description = "Invalid: details name each field path"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn promote(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Json(body): Json<Promote>,
) -> Result<Response, ApiError> {
    let promoted = domain::promote(
        &state,
        &principal,
        &body.from,
        &body.to,
        &body.flags,
        body.reason,
        None,
    )
    .await?;
    Ok(axum::Json(Promoted {
        from: body.from,
        to: body.to,
        flags: promoted.flags.iter().map(ToString::to_string).collect(),
        revision: promoted.revision,
    })
    .into_response())
}

/// Creates (201) or replaces (200) an item, honouring `If-Match`.
async fn put_item<T: Item>(
    state: AppState,
    principal: Principal,
    env: String,
    key: String,
    headers: HeaderMap,
    body: Value,
) -> Result<Response, ApiError> {
    check_key(T::KEY, &key)?;
    let conditions = from_headers(&headers)?;
    let item: T = keyed_body(body, &key, T::WHAT)?;
    let action = format!("{}.put", T::WHAT);
    let saved =
        domain::put_item(&state, &principal, &env, item, &conditions, &action, None).await?;
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, saved.item.version(), saved.item))
}

/// Deletes an item, honouring `If-Match` (422 when others still use it).
async fn delete_item<T: Item>(
    state: AppState,
    principal: Principal,
    env: String,
    key: String,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let conditions = from_headers(&headers)?;
    domain::delete_item::<T>(&state, &principal, &env, &key, &conditions).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_envs,
    create_env,
    delete_env,
    list_flags,
    get_flag,
    put_flag,
    delete_flag,
    kill_flag,
    revive_flag,
    revert_flag,
    kill_tag,
    list_segments,
    get_segment,
    put_segment,
    delete_segment,
    promote,
    batch::apply_batch,
    lifecycle::flag_lifecycle,
    schedules::list_schedules,
    schedules::create_schedule,
    schedules::cancel_schedule,
    tokens::create_token,
    tokens::list_tokens,
    tokens::delete_token,
    tokens::rotate_token,
    records::audit,
    records::flag_metrics,
    records::flag_units
))]
pub struct AdminApi;
