//! The admin API under `/v1/admin` (admin tokens only): environments, flags and
//! segments with optimistic concurrency, kill switches, promotion, tokens, the audit
//! log and per-variant metrics.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header::ETAG;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_core::model::{EnvName, FlagKey, SegmentKey};
use switchyard_core::validation::{check_name, MAX_KEY_LEN};
use switchyard_core::{Flag, Segment};
use utoipa::ToSchema;

use crate::auth::{generate, kind_name, Admin, Principal, BOOTSTRAP_TOKEN_NAME};
use crate::environments::{now_ms, Change, EnvState};
use crate::error::ApiError;
use crate::http::json::{from_value, parse, Json, Path, RawBody};
use crate::http::preconditions::Preconditions;
use crate::scope::env_state;
use crate::state::AppState;
use crate::store::{AuditEntry, AuditQuery, TokenKind};

mod wire;

use wire::{
    AuditPage, EnvCreated, EnvList, EnvSummary, FlagList, FlagMetrics, Promoted, SegmentList,
    TagKilled, TokenIssued, TokenList, TokenSource, TokenSummary,
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
        .route("/envs/{env}/flags/{key}/metrics", get(flag_metrics))
        .route("/envs/{env}/kill", post(kill_tag))
        .route("/envs/{env}/segments", get(list_segments))
        .route(
            "/envs/{env}/segments/{key}",
            get(get_segment).put(put_segment).delete(delete_segment),
        )
        .route("/promote", post(promote))
        .route("/tokens", post(create_token).get(list_tokens))
        .route("/tokens/{name}", axum::routing::delete(delete_token))
        .route("/audit", get(audit))
}

/// A name from a path or body: core's one character set for names (docs/flags.md).
fn check_key(what: &str, key: &str) -> Result<(), ApiError> {
    check_name(key).map_err(|problem| {
        // Echoed escaped (no invisible or reordering characters) and only when short.
        if key.len() > MAX_KEY_LEN {
            ApiError::bad_request(format!("invalid {what}: {problem}"))
        } else {
            ApiError::bad_request(format!(
                "invalid {what} `{}`: {problem}",
                key.escape_debug()
            ))
        }
    })
}

fn with_etag(status: StatusCode, version: u64, body: impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

fn entry(principal: &Principal, env: Option<&EnvName>, action: &str, target: &str) -> AuditEntry {
    AuditEntry::new(&principal.name, env, action, target)
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
    check_key("environment name", &env)?;
    let conditions = Preconditions::from_headers(&headers)?;
    let what = format!("environment `{env}`");
    conditions.check(&what, state.envs.get(&env).map(|e| e.revision))?;
    let created = state
        .envs
        .create(&EnvName::new(env.as_str()), &principal.name)
        .await?;
    let current = env_state(&state, &env)?;
    if !created {
        // Created by someone else since the check above.
        conditions.check(&what, Some(current.revision))?;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = EnvCreated {
        name: EnvName::new(env),
        revision: current.revision,
    };
    Ok(with_etag(status, current.revision, body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteEnvParams {
    #[serde(default)]
    force: bool,
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
    let conditions = Preconditions::from_headers(&headers)?;
    state
        .envs
        .delete(&env, &principal.name, |current| {
            conditions.check(&format!("environment `{env}`"), Some(current.revision))?;
            let flags = current.snapshot.len();
            let segments = current.snapshot.segments().count();
            if params.force || flags + segments == 0 {
                return Ok(());
            }
            let mut names: Vec<&str> = current.snapshot.flags().map(|f| f.key.as_str()).collect();
            let more = names.len().saturating_sub(5);
            names.truncate(5);
            let listed = names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let listed = match (flags, more) {
                (0, _) => String::new(),
                (_, 0) => format!(" ({listed})"),
                _ => format!(" ({listed} and {more} more)"),
            };
            Err(ApiError::conflict(format!(
                "environment `{env}` still has {flags} flag(s){listed} and {segments} \
                 segment(s); delete them first, or send ?force=true to delete them with it \
                 (the audit log keeps them)"
            )))
        })
        .await?;
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

/// The optional body of kill and revive.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    /// Why, for the audit log.
    #[serde(default)]
    reason: Option<String>,
}

async fn switch_flag(
    state: AppState,
    principal: Principal,
    (env, key): (String, String),
    conditions: Preconditions,
    reason: Option<String>,
    enabled: bool,
) -> Result<Response, ApiError> {
    let env_name = EnvName::new(env.as_str());
    let action = if enabled { "flag.revive" } else { "flag.kill" };
    let new = state
        .envs
        .apply(&env, |current| {
            let before = current.snapshot.flag(&key).ok_or_else(|| {
                ApiError::not_found(format!("flag `{key}` does not exist in `{env}`"))
            })?;
            conditions.check(&format!("flag `{key}`"), Some(before.version))?;
            if before.enabled == enabled {
                return Ok(Change::default());
            }
            let mut after = before.clone();
            after.enabled = enabled;
            after.version += 1;
            let mut audit = entry(&principal, Some(&env_name), action, &key);
            audit.before = Some(json!(before));
            audit.after = Some(json!(after));
            audit.reason = reason.clone();
            Ok(Change {
                flags: vec![(after.key.clone(), Some(after))],
                audit: vec![audit],
                ..Change::default()
            })
        })
        .await?;
    let flag = new
        .snapshot
        .flag(&key)
        .ok_or_else(|| ApiError::not_found(format!("flag `{key}` does not exist in `{env}`")))?;
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
    let conditions = Preconditions::from_headers(&headers)?;
    let body: ReasonBody = optional_body(&body)?;
    switch_flag(state, principal, target, conditions, body.reason, false).await
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
    let conditions = Preconditions::from_headers(&headers)?;
    let body: ReasonBody = optional_body(&body)?;
    switch_flag(state, principal, target, conditions, body.reason, true).await
}

/// Kill every flag with `tag`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KillTag {
    /// The tag.
    #[schema(min_length = 1)]
    tag: String,
    /// Why, for the audit log.
    #[serde(default)]
    reason: Option<String>,
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
    if body.tag.is_empty() {
        return Err(ApiError::bad_request("`tag` must not be empty"));
    }
    let env_name = EnvName::new(env.as_str());
    let mut killed = Vec::new();
    let new = state
        .envs
        .apply(&env, |current| {
            let mut change = Change::default();
            for flag in current.snapshot.flags() {
                if flag.enabled && flag.tags.contains(&body.tag) {
                    let mut after = flag.clone();
                    after.enabled = false;
                    after.version += 1;
                    let mut audit =
                        entry(&principal, Some(&env_name), "flag.kill", flag.key.as_str());
                    audit.before = Some(json!(flag));
                    audit.after = Some(json!(after));
                    audit.reason = body.reason.clone();
                    change.audit.push(audit);
                    change.flags.push((after.key.clone(), Some(after)));
                }
            }
            Ok(change)
        })
        .await?;
    for flag in new.snapshot.flags() {
        if !flag.enabled && flag.tags.contains(&body.tag) {
            killed.push(flag.key.clone());
        }
    }
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

/// Copy flags from one environment to another.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Promote {
    /// The source environment.
    #[schema(value_type = EnvName)]
    from: String,
    /// The target environment (not `from`).
    #[schema(value_type = EnvName)]
    to: String,
    /// Flags to copy; all of `from`'s when empty.
    #[serde(default)]
    #[schema(value_type = Vec<FlagKey>)]
    flags: Vec<String>,
    /// Why, for the audit log.
    #[serde(default)]
    reason: Option<String>,
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
    if body.from == body.to {
        return Err(ApiError::bad_request("`from` and `to` must differ"));
    }
    let source = env_state(&state, &body.from)?;
    let keys: Vec<String> = if body.flags.is_empty() {
        source.snapshot.flags().map(|f| f.key.to_string()).collect()
    } else {
        body.flags.clone()
    };
    let mut flags = Vec::new();
    for key in &keys {
        let flag = source.snapshot.flag(key).ok_or_else(|| {
            ApiError::not_found(format!("flag `{key}` does not exist in `{}`", body.from))
        })?;
        flags.push(flag.clone());
    }
    let to = EnvName::new(body.to.as_str());
    let reason = body
        .reason
        .clone()
        .or_else(|| Some(format!("promoted from `{}`", body.from)));
    let new = state
        .envs
        .apply(&body.to, |current| {
            let mut change = Change::default();
            for flag in &flags {
                let before = current.snapshot.flag(flag.key.as_str());
                let mut after = flag.clone();
                after.version = before.map_or(1, |f| f.version + 1);
                if before.is_some_and(|b| {
                    Flag {
                        version: after.version,
                        ..b.clone()
                    } == after
                }) {
                    continue; // already identical
                }
                let mut audit = entry(&principal, Some(&to), "flag.promote", flag.key.as_str());
                audit.before = before.map(|f| json!(f));
                audit.after = Some(json!(after));
                audit.reason = reason.clone();
                change.audit.push(audit);
                change.flags.push((after.key.clone(), Some(after)));
            }
            Ok(change)
        })
        .await?;
    Ok(axum::Json(Promoted {
        from: body.from,
        to: body.to,
        flags: keys,
        revision: new.revision,
    })
    .into_response())
}

/// A token to issue (its schema is in `wire`: the valid forms depend on `kind`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    kind: TokenKind,
    #[serde(default)]
    env: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/admin/tokens",
    tag = "admin",
    summary = "Issue a token (shown once)",
    security(("bearer" = [])),
    request_body(content = NewToken, content_type = "application/json"),
    responses((status = 201, description = "The token", body = TokenIssued), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 409, description = "Conflict"), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn create_token(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Json(body): Json<NewToken>,
) -> Result<Response, ApiError> {
    check_key("token name", &body.name)?;
    if body.name == BOOTSTRAP_TOKEN_NAME {
        return Err(ApiError::conflict(format!(
            "`{BOOTSTRAP_TOKEN_NAME}` is reserved for the token from --admin-token \
             (SWITCHYARD_ADMIN_TOKEN); choose another name"
        )));
    }
    let env = match (body.kind, body.env) {
        (TokenKind::Admin, Some(_)) => {
            return Err(ApiError::bad_request(
                "admin tokens are not bound to an environment; omit `env`",
            ))
        }
        (TokenKind::Admin, None) => None,
        (kind, None) => {
            return Err(ApiError::bad_request(format!(
                "{} tokens need the `env` they may read",
                kind_name(kind)
            )))
        }
        (_, Some(env)) => {
            env_state(&state, &env)?;
            Some(EnvName::new(env))
        }
    };
    let (token, record) = generate(&body.name, body.kind, env.clone(), now_ms());
    let mut audit = entry(&principal, env.as_ref(), "token.create", &body.name);
    audit.after = Some(json!({ "name": record.name, "kind": record.kind, "env": record.env }));
    state
        .envs
        .store()
        .create_token(record.clone(), audit)
        .await?;
    state.tokens.replace(state.envs.store().tokens().await?);
    let body = TokenIssued {
        name: record.name,
        kind: record.kind,
        env: record.env,
        token,
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/tokens",
    tag = "admin",
    summary = "List tokens (never their secrets), the configured bootstrap admin token included",
    security(("bearer" = [])),
    responses((status = 200, description = "Tokens", body = TokenList), (status = 503, description = "Store unavailable; nothing written"))
)]
async fn list_tokens(State(state): State<AppState>, _admin: Admin) -> Result<Response, ApiError> {
    // The bootstrap token is configuration, not a stored record, but an operator
    // auditing who holds admin access must see it too.
    let bootstrap = state.tokens.has_bootstrap().then(|| TokenSummary {
        name: BOOTSTRAP_TOKEN_NAME.to_owned(),
        kind: TokenKind::Admin,
        env: None,
        created_ms: None,
        source: TokenSource::Configuration,
    });
    let stored = state
        .envs
        .store()
        .tokens()
        .await?
        .into_iter()
        .map(|t| TokenSummary {
            name: t.name,
            kind: t.kind,
            env: t.env,
            created_ms: Some(t.created_ms),
            source: TokenSource::Store,
        });
    let tokens = bootstrap.into_iter().chain(stored).collect();
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
async fn delete_token(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if name == BOOTSTRAP_TOKEN_NAME && state.tokens.has_bootstrap() {
        return Err(ApiError::conflict(format!(
            "`{BOOTSTRAP_TOKEN_NAME}` is the bootstrap admin token from the server's configuration \
             (--admin-token or SWITCHYARD_ADMIN_TOKEN) and cannot be revoked through the API; \
             issue another admin token if you need one, then restart the server without it"
        )));
    }
    let audit = entry(&principal, None, "token.delete", &name);
    let removed = state.envs.store().delete_token(&name, audit).await?;
    if removed.is_none() {
        return Err(ApiError::not_found(format!("no token named `{name}`")));
    }
    state.tokens.replace(state.envs.store().tokens().await?);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    env: Option<String>,
    flag: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

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
async fn audit(
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
    };
    let entries = state.envs.store().audit(&query).await?;
    Ok(axum::Json(AuditPage { entries }).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsParams {
    window: Option<String>,
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
async fn flag_metrics(
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

/// What flags and segments share, so one path writes and deletes both with
/// `If-Match`, validation and audit.
trait Item: Clone + serde::Serialize + serde::de::DeserializeOwned {
    /// `flag` or `segment`, for messages and audit actions.
    const WHAT: &'static str;
    fn version(&self) -> u64;
    fn set_version(&mut self, version: u64);
    fn validate(&self) -> Result<(), switchyard_core::ValidationErrors>;
    fn find<'a>(state: &'a EnvState, key: &str) -> Option<&'a Self>;
    /// A change writing (`Some`) or deleting (`None`) the item.
    fn change(key: &str, item: Option<Self>) -> Change;
    /// The flags that name the item `key` (as a prerequisite or in a rule).
    fn users<'a>(state: &'a EnvState, key: &str) -> Vec<&'a str>;

    /// Refuses to delete an item that flags still name, naming them.
    fn check_unused(state: &EnvState, key: &str) -> Result<(), ApiError> {
        let users = Self::users(state, key);
        if users.is_empty() {
            return Ok(());
        }
        let listed: Vec<String> = users.iter().map(|k| format!("`{k}`")).collect();
        Err(ApiError::unprocessable(format!(
            "{} `{key}` is used by flag(s) {}; remove it from them first",
            Self::WHAT,
            listed.join(", ")
        )))
    }
}

impl Item for Flag {
    const WHAT: &'static str = "flag";
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
    fn validate(&self) -> Result<(), switchyard_core::ValidationErrors> {
        switchyard_core::validate_flag(self)
    }
    fn find<'a>(state: &'a EnvState, key: &str) -> Option<&'a Self> {
        state.snapshot.flag(key)
    }
    fn change(key: &str, item: Option<Self>) -> Change {
        Change {
            flags: vec![(FlagKey::new(key), item)],
            ..Change::default()
        }
    }
    fn users<'a>(state: &'a EnvState, key: &str) -> Vec<&'a str> {
        state
            .snapshot
            .flags()
            .filter(|f| f.prerequisites.iter().any(|p| p.flag.as_str() == key))
            .map(|f| f.key.as_str())
            .collect()
    }
}

impl Item for Segment {
    const WHAT: &'static str = "segment";
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
    fn validate(&self) -> Result<(), switchyard_core::ValidationErrors> {
        switchyard_core::validate_segment(self)
    }
    fn find<'a>(state: &'a EnvState, key: &str) -> Option<&'a Self> {
        state.snapshot.segments().find(|s| s.key.as_str() == key)
    }
    fn change(key: &str, item: Option<Self>) -> Change {
        Change {
            segments: vec![(SegmentKey::new(key), item)],
            ..Change::default()
        }
    }
    fn users<'a>(state: &'a EnvState, key: &str) -> Vec<&'a str> {
        state
            .snapshot
            .flags()
            .filter(|f| {
                f.rules
                    .iter()
                    .any(|r| r.when.segments.iter().any(|s| s.as_str() == key))
            })
            .map(|f| f.key.as_str())
            .collect()
    }
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
    check_key(&format!("{} key", T::WHAT), &key)?;
    let conditions = Preconditions::from_headers(&headers)?;
    let mut item: T = keyed_body(body, &key, T::WHAT)?;
    item.validate().map_err(|e| ApiError::invalid(&e))?;
    let env_name = EnvName::new(env.as_str());
    let mut created = false;
    let new = state
        .envs
        .apply(&env, |current| {
            let before = T::find(current, &key);
            conditions.check(&format!("{} `{key}`", T::WHAT), before.map(T::version))?;
            created = before.is_none();
            item.set_version(before.map_or(1, |b| b.version() + 1));
            let mut audit = entry(
                &principal,
                Some(&env_name),
                &format!("{}.put", T::WHAT),
                &key,
            );
            audit.before = before.map(|b| json!(b));
            audit.after = Some(json!(item));
            let mut change = T::change(&key, Some(item.clone()));
            change.audit.push(audit);
            Ok(change)
        })
        .await?;
    let saved = T::find(&new, &key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("{} `{key}` vanished", T::WHAT)))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, saved.version(), saved))
}

/// Deletes an item, honouring `If-Match` (422 when others still use it).
async fn delete_item<T: Item>(
    state: AppState,
    principal: Principal,
    env: String,
    key: String,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let conditions = Preconditions::from_headers(&headers)?;
    let env_name = EnvName::new(env.as_str());
    state
        .envs
        .apply(&env, |current| {
            let before = T::find(current, &key).ok_or_else(|| {
                ApiError::not_found(format!("{} `{key}` does not exist in `{env}`", T::WHAT))
            })?;
            conditions.check(&format!("{} `{key}`", T::WHAT), Some(before.version()))?;
            T::check_unused(current, &key)?;
            let mut audit = entry(
                &principal,
                Some(&env_name),
                &format!("{}.delete", T::WHAT),
                &key,
            );
            audit.before = Some(json!(before));
            let mut change = T::change(&key, None);
            change.audit.push(audit);
            Ok(change)
        })
        .await?;
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
    kill_tag,
    list_segments,
    get_segment,
    put_segment,
    delete_segment,
    promote,
    create_token,
    list_tokens,
    delete_token,
    audit,
    flag_metrics
))]
pub struct AdminApi;
