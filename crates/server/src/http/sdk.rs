//! SDK sync: `GET /v1/sdk/snapshot` (the whole environment, `ETag` = revision,
//! 304 when unchanged), `GET /v1/sdk/stream` (Server-Sent Events: a `snapshot` on
//! connect, then one `change` per revision, resumable with `Last-Event-ID`) and
//! `POST /v1/sdk/metrics` (batched exposure and tracked-event counts; a batch sent
//! again under the same `Idempotency-Key` is recorded once).
//!
//! The environment comes from the `sdk` token; admin tokens name it with `?env=`.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchyard_core::model::FlagKey;
use switchyard_core::validation::MAX_KEY_LEN;

use crate::auth::Principal;
use crate::environments::now_ms;
use crate::error::ApiError;
use crate::http::json::{body_bytes, parse};
use crate::http::{none_match, sse};
use crate::scope::{env_state, scoped_env};
use crate::state::AppState;
use crate::store::{EventCount, ExposureCount, MetricsBatch, TokenKind};
use crate::subscription::{Outgoing, Subscription};
use crate::telemetry::StreamProtocol;

/// The most entries (exposures plus events) one metrics batch may carry.
pub const MAX_METRICS_ENTRIES: usize = 10_000;

/// The most unknown flag keys one metrics batch may carry.
pub const MAX_UNKNOWN_FLAGS: usize = 1_000;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sdk/snapshot", get(snapshot))
        .route("/v1/sdk/stream", get(stream))
        .route("/v1/sdk/metrics", post(metrics))
}

/// `?env=` for admin tokens.
#[derive(Debug, Default, Deserialize)]
struct EnvQuery {
    env: Option<String>,
}

/// The environment a snapshot or stream reads: the sdk token's own, or the one an
/// admin token names with `?env=`. Other token kinds are refused.
fn target_env(
    principal: &Principal,
    query: Result<Query<EnvQuery>, QueryRejection>,
) -> Result<String, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    scoped_env(
        principal,
        query.env.as_deref(),
        &[TokenKind::Sdk],
        "admin tokens must name the environment with `?env=`",
    )
}

/// The entity tag of a revision: `"<revision>"`.
fn etag(revision: u64) -> String {
    format!("\"{revision}\"")
}

#[utoipa::path(
    get,
    path = "/v1/sdk/snapshot",
    tag = "sdk",
    summary = "The whole environment: {environment, revision, flags, segments} (ETag = revision)",
    security(("bearer" = [])),
    params(("env" = String, Query, description = "Environment: required with an admin token; an sdk token reads its own and may omit it"), ("If-None-Match" = Option<String>, Header, description = "ETag of a previous answer")),
    responses(
        (status = 200, description = "The snapshot document", body = switchyard_core::sync::SnapshotDocumentRef),
        (status = 304, description = "Unchanged"),
        (status = 400, description = "Admin token without ?env="),
        (status = 403, description = "Eval token, or another environment"),
        (status = 404, description = "No such environment")
    )
)]
async fn snapshot(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<EnvQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let env = target_env(&principal, query)?;
    let current = env_state(&state, &env)?;
    let tag = etag(current.revision);
    let tag_value = HeaderValue::from_str(&tag)
        .map_err(|e| ApiError::internal(&e as &dyn std::error::Error))?;
    let no_cache = HeaderValue::from_static("no-cache");
    if none_match(&headers, &tag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(ETAG, tag_value), (CACHE_CONTROL, no_cache)],
        )
            .into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (ETAG, tag_value),
            (CACHE_CONTROL, no_cache),
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        ],
        Body::from(current.document().clone()),
    )
        .into_response())
}

/// The SSE frame `event: snapshot|change`, `id: <revision>`, `data: <document>`,
/// as three chunks: the document is the environment's shared bytes, written as
/// they are, never copied per client (a 10 000-flag snapshot is ~5 MB). Documents
/// are compact JSON, which has no line breaks, so one `data:` line carries it.
fn sse_frame(event: &Outgoing) -> Vec<Bytes> {
    let name = match event {
        Outgoing::Snapshot(_) => "snapshot",
        Outgoing::Change(_) => "change",
    };
    vec![
        Bytes::from(format!("event: {name}\nid: {}\ndata: ", event.revision())),
        event.document().clone(),
        Bytes::from_static(b"\n\n"),
    ]
}

#[utoipa::path(
    get,
    path = "/v1/sdk/stream",
    tag = "sdk",
    summary = "Server-Sent Events: `snapshot` on connect, a `change` per revision, heartbeats; resumable with Last-Event-ID",
    security(("bearer" = [])),
    params(("env" = String, Query, description = "Environment: required with an admin token; an sdk token reads its own and may omit it"), ("Last-Event-ID" = Option<String>, Header, description = "The last revision received")),
    responses(
        (status = 200, description = "Events: `snapshot` (data: the snapshot document), then `change` per revision", body = SseEvent, content_type = "text/event-stream"),
        (status = 403, description = "Eval token, or another environment"),
        (status = 404, description = "No such environment")
    )
)]
async fn stream(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<EnvQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let env = target_env(&principal, query)?;
    let subscription = Subscription::start(&state, &env, sse::last_event_id(&headers))?
        .held_by(&principal)?
        .counted_as(StreamProtocol::Sse);
    Ok(sse::response(subscription, state.sse_heartbeat, sse_frame))
}

/// The schema of one event of `/v1/sdk/stream`, as `text/event-stream` carries it
/// (the frames are written by [`sse_frame`]; heartbeats are comments).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a description only
struct SseEvent {
    /// `snapshot` (data: the snapshot document) or `change` (data: the change document).
    #[schema(pattern = "^(snapshot|change)$")]
    event: String,
    /// The revision after the event; send it back as `Last-Event-ID` to resume.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    /// The JSON document.
    data: String,
}

/// A metrics batch as posted (by an SDK, or by a relay forwarding its SDKs'):
/// unknown fields are rejected.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsBody {
    /// Milliseconds the batch's counts took to accumulate (required with units): the
    /// server dates the units `now − window_ms` (docs/guard.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 86_400_000)]
    pub window_ms: Option<u64>,
    /// Exposures per flag and variant.
    #[serde(default)]
    #[schema(max_items = 10_000)]
    pub exposures: Vec<ExposureCount>,
    /// Tracked events per flag and variant.
    #[serde(default)]
    #[schema(max_items = 10_000)]
    pub events: Vec<EventCount>,
    /// Flag keys the SDK evaluated that its snapshot does not have (`FLAG_NOT_FOUND`),
    /// each once: the lifecycle lists them as unknown flags with the time the batch
    /// arrived. Optional; older SDKs do not send it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 1_000)]
    pub unknown_flags: Vec<FlagKey>,
}

/// The answer to a metrics batch: how many entries were recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct MetricsAccepted {
    /// Entries recorded.
    accepted: AcceptedCounts,
}

/// The counts of a [`MetricsAccepted`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AcceptedCounts {
    /// Exposure entries.
    exposures: usize,
    /// Event entries.
    events: usize,
}

/// A name in a metrics entry: 1 to `MAX_KEY_LEN` bytes without control characters.
fn check_name(path: String, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad_request(format!("{path}: must not be empty")));
    }
    if name.len() > MAX_KEY_LEN || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{path}: must be at most {MAX_KEY_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

fn check_count(path: String, count: u64, carries_units: bool) -> Result<(), ApiError> {
    if count == 0 && !carries_units {
        return Err(ApiError::bad_request(format!(
            "{path}: must be greater than 0 (0 only with units)"
        )));
    }
    Ok(())
}

fn check_batch(body: &MetricsBody) -> Result<(), ApiError> {
    let entries = body.exposures.len() + body.events.len();
    if entries > MAX_METRICS_ENTRIES {
        return Err(ApiError::bad_request(format!(
            "the batch has {entries} entries; at most {MAX_METRICS_ENTRIES} are allowed"
        )));
    }
    for (i, e) in body.exposures.iter().enumerate() {
        check_name(format!("exposures[{i}].flag"), e.flag.as_str())?;
        check_name(format!("exposures[{i}].variant"), &e.variant)?;
        check_count(format!("exposures[{i}].count"), e.count, e.units.is_some())?;
    }
    if body.unknown_flags.len() > MAX_UNKNOWN_FLAGS {
        return Err(ApiError::bad_request(format!(
            "unknown_flags has {} keys; at most {MAX_UNKNOWN_FLAGS} are allowed",
            body.unknown_flags.len()
        )));
    }
    for (i, key) in body.unknown_flags.iter().enumerate() {
        check_name(format!("unknown_flags[{i}]"), key.as_str())?;
    }
    for (i, e) in body.events.iter().enumerate() {
        check_name(format!("events[{i}].event"), &e.event)?;
        check_name(format!("events[{i}].flag"), e.flag.as_str())?;
        check_name(format!("events[{i}].variant"), &e.variant)?;
        check_count(
            format!("events[{i}].count"),
            e.count,
            e.units.is_some() || e.values.is_some(),
        )?;
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/sdk/metrics",
    tag = "sdk",
    summary = "Batched exposure and tracked-event counts per flag and variant, and the flag keys the SDK evaluated but does not have",
    security(("bearer" = [])),
    params(("env" = Option<String>, Query, description = "Environment: required with an admin token (a relay forwarding its SDKs' batches); an sdk token posts for its own"), ("Idempotency-Key" = Option<String>, Header, description = "A batch sent again under the same key (within 10 minutes, to the same server) is recorded once")),
    request_body(content = MetricsBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Recorded (or already recorded under this Idempotency-Key)", body = MetricsAccepted),
        (status = 400, description = "Malformed batch; the message names the entry"),
        (status = 403, description = "Not an sdk or admin token"),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Store unavailable")
    )
)]
async fn metrics(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<EnvQuery>, QueryRejection>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let env = switchyard_core::model::EnvName::new(target_env(&principal, query)?);
    env_state(&state, env.as_str())?;
    let key = crate::idempotency::key(&headers)?;
    let bytes = body_bytes(request, &state).await?;
    // Serde would also read a struct from an array; only an object is a batch.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(
            "the body must be a JSON object `{\"exposures\": [..], \"events\": [..]}`",
        ));
    }
    let body: MetricsBody = parse(&bytes)?;
    check_batch(&body)?;
    let received = now_ms();
    let units = crate::units::records(
        &body.exposures,
        &body.events,
        body.window_ms,
        received,
        rand::random,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let batch = MetricsBatch {
        exposures: body.exposures,
        events: body.events,
        units,
    };
    for exposure in &batch.exposures {
        state
            .usage
            .seen(env.as_str(), exposure.flag.as_str(), received);
    }
    // Keys the SDK's snapshot lacks: recorded like the server's own evaluations of
    // them, so the lifecycle lists them as unknown (when the environment lacks them).
    for key in &body.unknown_flags {
        state.usage.seen(env.as_str(), key.as_str(), received);
    }
    if let Some(relay) = &state.relay {
        relay
            .forwarder
            .add_unknown(&env, &body.unknown_flags, received);
    }
    if !batch.exposures.is_empty() || !batch.events.is_empty() {
        // Claimed before recording, released if recording fails: a retry of a batch
        // that was recorded is answered without recording it again.
        let claim = key.map(|key| state.metric_batches.claim(key)).transpose()?;
        if claim.as_ref().is_none_or(|claim| claim.is_new()) {
            let now_minute = received / 60_000;
            state
                .envs
                .store()
                .record_metrics(&env, now_minute, &batch)
                .await?;
        }
        if let Some(claim) = claim {
            claim.keep();
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(MetricsAccepted {
            accepted: AcceptedCounts {
                exposures: batch.exposures.len(),
                events: batch.events.len(),
            },
        }),
    )
        .into_response())
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(snapshot, stream, metrics))]
pub struct SdkApi;

#[cfg(test)]
mod tests {
    use axum::http::header::IF_NONE_MATCH;

    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let mut headers = HeaderMap::new();
        assert!(!none_match(&headers, "\"3\""));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"1\", W/\"3\""));
        assert!(none_match(&headers, "\"3\""));
        assert!(!none_match(&headers, "\"2\""));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match(&headers, "\"2\""));
    }

    #[test]
    fn unknown_flags_are_optional_and_checked_like_flag_keys() {
        let body = |json: serde_json::Value| -> MetricsBody {
            serde_json::from_value(json).expect("a metrics body")
        };
        // An older SDK's report, without the field.
        let old = body(serde_json::json!({ "exposures": [] }));
        assert!(old.unknown_flags.is_empty());
        assert!(check_batch(&old).is_ok());
        assert!(check_batch(&body(serde_json::json!({ "unknown_flags": ["ghost"] }))).is_ok());
        let long = "k".repeat(MAX_KEY_LEN + 1);
        for (keys, named) in [
            (
                serde_json::json!(["ghost", ""]),
                "unknown_flags[1]: must not be empty",
            ),
            (
                serde_json::json!([long]),
                "unknown_flags[0]: must be at most",
            ),
            (
                serde_json::json!(["a\u{7}b"]),
                "unknown_flags[0]: must be at most",
            ),
        ] {
            let error = check_batch(&body(serde_json::json!({ "unknown_flags": keys })))
                .expect_err("refused");
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.message.contains(named), "{}", error.message);
        }
        let many: Vec<String> = (0..=MAX_UNKNOWN_FLAGS).map(|i| format!("k{i}")).collect();
        let error =
            check_batch(&body(serde_json::json!({ "unknown_flags": many }))).expect_err("too many");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.message.contains("at most 1000"), "{}", error.message);
    }
}
