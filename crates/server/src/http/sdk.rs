//! SDK sync: `GET /v1/sdk/snapshot` (the whole environment, `ETag` = revision,
//! 304 when unchanged), `GET /v1/sdk/stream` (Server-Sent Events: a `snapshot` on
//! connect, then one `change` per revision, resumable with `Last-Event-ID`) and
//! `POST /v1/sdk/metrics` (batched exposure and tracked-event counts).
//!
//! The environment comes from the `sdk` token; admin tokens name it with `?env=`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchyard_core::model::EnvName;
use switchyard_core::validation::MAX_KEY_LEN;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::{Duration, Instant};

use crate::auth::Principal;
use crate::environments::{now_ms, ChangeEvent, EnvState};
use crate::error::ApiError;
use crate::http::json::{body_bytes, parse};
use crate::http::{none_match, AppState};
use crate::store::{EventCount, ExposureCount, MetricsBatch, TokenKind};
use crate::telemetry::Telemetry;

/// The most entries (exposures plus events) one metrics batch may carry.
pub const MAX_METRICS_ENTRIES: usize = 10_000;

/// The header a reconnecting SSE client sends with the last event id it received.
const LAST_EVENT_ID: &str = "last-event-id";

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

/// The environment a request reads when the token decides it (SDK sync here, and
/// gRPC): the own environment of an `allowed` token (naming another one is refused),
/// or the one an admin token names in `requested` (400 with `missing` when it names
/// none). Other token kinds are refused.
pub fn scoped_env(
    principal: &Principal,
    requested: Option<&str>,
    allowed: &[TokenKind],
    missing: &str,
) -> Result<String, ApiError> {
    if principal.kind == TokenKind::Admin {
        return requested
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request(missing));
    }
    let own = principal.token_env(allowed)?;
    match requested {
        Some(env) if env != own.as_str() => Err(ApiError::forbidden(format!(
            "token `{}` is not valid for environment `{env}`",
            principal.name
        ))),
        _ => Ok(own.to_string()),
    }
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

/// The current state of `env`; 404 when it does not exist.
pub fn env_state(state: &AppState, env: &str) -> Result<Arc<EnvState>, ApiError> {
    state
        .envs
        .get(env)
        .ok_or_else(|| ApiError::not_found(format!("environment `{env}` does not exist")))
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
        Body::from(current.document.clone()),
    )
        .into_response())
}

/// Counts a connected SSE client for as long as it lives.
struct ClientGuard(Arc<Telemetry>);

impl ClientGuard {
    fn new(telemetry: &Arc<Telemetry>) -> Self {
        telemetry.sse_clients.inc();
        ClientGuard(Arc::clone(telemetry))
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.sse_clients.dec();
    }
}

/// What a stream sends (over SSE here, and over gRPC `switchyard.v1.Sync`).
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// The whole environment.
    Snapshot(Arc<EnvState>),
    /// One revision's change.
    Change(Arc<ChangeEvent>),
}

impl Outgoing {
    /// The revision the client has after this event.
    pub fn revision(&self) -> u64 {
        match self {
            Outgoing::Snapshot(state) => state.revision,
            Outgoing::Change(change) => change.revision,
        }
    }

    /// The JSON document: the snapshot document or the change document.
    pub fn document(&self) -> &Bytes {
        match self {
            Outgoing::Snapshot(state) => &state.document,
            Outgoing::Change(change) => &change.document,
        }
    }

    /// The SSE frame `event: snapshot|change`, `id: <revision>`, `data: <document>`,
    /// as three chunks: the document is the environment's shared bytes, written as
    /// they are, never copied per client (a 10 000-flag snapshot is ~5 MB). Documents
    /// are compact JSON, which has no line breaks, so one `data:` line carries it.
    fn sse_frame(&self) -> [Bytes; 3] {
        let name = match self {
            Outgoing::Snapshot(_) => "snapshot",
            Outgoing::Change(_) => "change",
        };
        [
            Bytes::from(format!("event: {name}\nid: {}\ndata: ", self.revision())),
            self.document().clone(),
            Bytes::from_static(b"\n\n"),
        ]
    }
}

/// The change events after `last` up to the current revision, when the history
/// still holds every one of them (none when `last` is current); `None` when the
/// client must start again from a snapshot.
fn missed_changes(current: &EnvState, last: u64) -> Option<Vec<Arc<ChangeEvent>>> {
    if last >= current.revision {
        return (last == current.revision).then(Vec::new);
    }
    let missed: Vec<Arc<ChangeEvent>> = current
        .history
        .iter()
        .filter(|change| change.revision > last)
        .cloned()
        .collect();
    let expected = current.revision - last;
    let complete = u64::try_from(missed.len()).is_ok_and(|n| n == expected)
        && missed
            .iter()
            .zip(last + 1..)
            .all(|(change, revision)| change.revision == revision);
    complete.then_some(missed)
}

/// Resolves once the server shuts down; never when it cannot any more (the
/// shutdown sender is gone without having signalled).
async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One client's stream: a snapshot first, or the missed changes when resuming; then
/// one change per revision, a fresh snapshot after a lag or a gap; the end when the
/// server shuts down.
pub struct Subscription {
    state: AppState,
    env: EnvName,
    changes: broadcast::Receiver<Arc<ChangeEvent>>,
    shutdown: watch::Receiver<bool>,
    /// The newest revision the client has (from a snapshot or a change).
    sent: u64,
    /// Events to send before listening for changes.
    pending: VecDeque<Outgoing>,
    /// Counts the stream in the SSE clients gauge, for SSE streams.
    client: Option<ClientGuard>,
}

impl Subscription {
    /// Follows `env` for a client that already has revision `after` (`None`: it has
    /// nothing): the missed changes come first when the history still holds them all,
    /// otherwise a snapshot. 404 when the environment does not exist.
    pub fn start(state: &AppState, env: &str, after: Option<u64>) -> Result<Self, ApiError> {
        // Subscribe before reading the current state, so no change falls in between.
        let changes = state.envs.subscribe();
        let current = env_state(state, env)?;
        let pending: VecDeque<Outgoing> =
            match after.and_then(|after| missed_changes(&current, after)) {
                Some(missed) => missed.into_iter().map(Outgoing::Change).collect(),
                None => VecDeque::from([Outgoing::Snapshot(Arc::clone(&current))]),
            };
        Ok(Subscription {
            env: current.name.clone(),
            changes,
            shutdown: state.shutdown.clone(),
            sent: current.revision,
            pending,
            client: None,
            state: state.clone(),
        })
    }

    /// A fresh snapshot, if the environment is newer than what the client has.
    fn resync(&mut self) -> Option<Outgoing> {
        let current = self.state.envs.get(self.env.as_str())?;
        (current.revision > self.sent).then(|| {
            self.sent = current.revision;
            Outgoing::Snapshot(current)
        })
    }

    /// The next event to send; `None` ends the stream.
    pub async fn next(&mut self) -> Option<Outgoing> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        loop {
            tokio::select! {
                biased;
                () = shutting_down(&mut self.shutdown) => return None,
                received = self.changes.recv() => match received {
                    Ok(change) => {
                        if change.env != self.env || change.revision <= self.sent {
                            continue;
                        }
                        if self.sent.checked_add(1) == Some(change.revision) {
                            self.sent = change.revision;
                            return Some(Outgoing::Change(change));
                        }
                        // A revision went by without an event here: resynchronise.
                        if let Some(event) = self.resync() {
                            return Some(event);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        if let Some(event) = self.resync() {
                            return Some(event);
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

/// The `text/event-stream` body: each event's frame, and a `: heartbeat` comment
/// after every `heartbeat` without an event (so proxies and clients see the
/// connection alive).
fn events(subscription: Subscription, heartbeat: Duration) -> Body {
    let idle = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let chunks = futures_util::stream::unfold(
        (subscription, idle),
        |(mut subscription, mut idle)| async move {
            let chunks = tokio::select! {
                next = subscription.next() => {
                    idle.reset();
                    next?.sse_frame().to_vec()
                }
                _ = idle.tick() => vec![Bytes::from_static(b": heartbeat\n\n")],
            };
            Some((futures_util::stream::iter(chunks), (subscription, idle)))
        },
    )
    .flatten()
    .map(Ok::<_, Infallible>);
    Body::from_stream(chunks)
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
    let last = headers
        .get(LAST_EVENT_ID)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let mut subscription = Subscription::start(&state, &env, last)?;
    subscription.client = Some(ClientGuard::new(&state.telemetry));
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Ask buffering proxies (nginx) to pass events through at once.
            (
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        events(subscription, state.sse_heartbeat),
    )
        .into_response())
}

/// The schema of one event of `/v1/sdk/stream`, as `text/event-stream` carries it
/// (the frames are written by [`Outgoing::sse_frame`]; heartbeats are comments).
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

/// A metrics batch as posted: unknown fields are rejected.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MetricsBody {
    /// Exposures per flag and variant.
    #[serde(default)]
    #[schema(max_items = 10_000)]
    exposures: Vec<ExposureCount>,
    /// Tracked events per flag and variant.
    #[serde(default)]
    #[schema(max_items = 10_000)]
    events: Vec<EventCount>,
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

fn check_count(path: String, count: u64) -> Result<(), ApiError> {
    if count == 0 {
        return Err(ApiError::bad_request(format!(
            "{path}: must be greater than 0"
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
        check_count(format!("exposures[{i}].count"), e.count)?;
    }
    for (i, e) in body.events.iter().enumerate() {
        check_name(format!("events[{i}].event"), &e.event)?;
        check_name(format!("events[{i}].flag"), e.flag.as_str())?;
        check_name(format!("events[{i}].variant"), &e.variant)?;
        check_count(format!("events[{i}].count"), e.count)?;
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/sdk/metrics",
    tag = "sdk",
    summary = "Batched exposure and tracked-event counts per flag and variant",
    security(("bearer" = [])),
    request_body(content = MetricsBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Recorded", body = MetricsAccepted),
        (status = 400, description = "Malformed batch; the message names the entry"),
        (status = 403, description = "Not an sdk token"),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Store unavailable")
    )
)]
async fn metrics(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<Response, ApiError> {
    let env = principal.token_env(&[TokenKind::Sdk])?.clone();
    env_state(&state, env.as_str())?;
    let bytes = body_bytes(request, &state).await?;
    // Serde would also read a struct from an array; only an object is a batch.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(
            "the body must be a JSON object `{\"exposures\": [..], \"events\": [..]}`",
        ));
    }
    let body: MetricsBody = parse(&bytes)?;
    check_batch(&body)?;
    let batch = MetricsBatch {
        exposures: body.exposures,
        events: body.events,
    };
    if !batch.exposures.is_empty() || !batch.events.is_empty() {
        let now_minute = now_ms() / 60_000;
        state
            .envs
            .store()
            .record_metrics(&env, now_minute, &batch)
            .await?;
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
    use super::*;
    use crate::environments::Change;
    use crate::Server;
    use axum::http::header::IF_NONE_MATCH;
    use serde_json::json;
    use switchyard_core::model::FlagKey;
    use switchyard_core::Flag;

    /// A server state whose `prod` environment is at revision `revisions`.
    async fn state_at(dir: &std::path::Path, revisions: u64) -> AppState {
        let server = Server::open_embedded(dir, Some("admin"))
            .await
            .expect("server loads");
        let state = server.state.clone();
        let prod = EnvName::new("prod");
        state.envs.create(&prod, "test").await.expect("env created");
        for n in 0..revisions {
            let key = format!("flag-{n}");
            let flag: Flag = serde_json::from_value(json!({
                "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
                "off_variant": "off", "default": {"variant": "off"}
            }))
            .expect("flag");
            state
                .envs
                .apply("prod", |_| {
                    Ok(Change {
                        flags: vec![(FlagKey::new(key.as_str()), Some(flag.clone()))],
                        ..Change::default()
                    })
                })
                .await
                .expect("write");
        }
        state
    }

    fn change(env: &str, revision: u64) -> Arc<ChangeEvent> {
        Arc::new(ChangeEvent {
            env: EnvName::new(env),
            revision,
            document: Bytes::from(format!("{{\"revision\":{revision}}}")),
        })
    }

    fn subscription(
        state: &AppState,
        changes: broadcast::Receiver<Arc<ChangeEvent>>,
        shutdown: watch::Receiver<bool>,
        sent: u64,
    ) -> Subscription {
        Subscription {
            state: state.clone(),
            env: EnvName::new("prod"),
            changes,
            shutdown,
            sent,
            pending: VecDeque::new(),
            client: Some(ClientGuard::new(&state.telemetry)),
        }
    }

    async fn next(subscription: &mut Subscription) -> Option<(&'static str, u64)> {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next())
            .await
            .expect("an event in time");
        next.map(|outgoing| match outgoing {
            Outgoing::Snapshot(state) => ("snapshot", state.revision),
            Outgoing::Change(change) => ("change", change.revision),
        })
    }

    #[tokio::test]
    async fn skips_other_envs_and_old_revisions_and_resyncs_after_a_gap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state_at(dir.path(), 3).await;
        let (tx, rx) = broadcast::channel(16);
        let (_stop, shutdown) = watch::channel(false);
        let mut sub = subscription(&state, rx, shutdown.clone(), 1);
        for event in [change("dev", 2), change("prod", 1), change("prod", 2)] {
            tx.send(event).expect("sent");
        }
        assert_eq!(next(&mut sub).await, Some(("change", 2)));
        assert_eq!(sub.sent, 2);

        // Revision 2 never reached this subscriber: a snapshot (at the current 3)
        // covers it, and what it covers is not sent again.
        let mut gap = subscription(&state, tx.subscribe(), shutdown, 1);
        for revision in [3, 2, 3, 4] {
            tx.send(change("prod", revision)).expect("sent");
        }
        assert_eq!(next(&mut gap).await, Some(("snapshot", 3)));
        assert_eq!(next(&mut gap).await, Some(("change", 4)));
    }

    #[tokio::test]
    async fn a_lagged_receiver_gets_a_fresh_snapshot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state_at(dir.path(), 2).await;
        let (tx, rx) = broadcast::channel(2);
        let (_stop, shutdown) = watch::channel(false);
        let mut sub = subscription(&state, rx, shutdown, 0);
        for revision in 1..=4 {
            tx.send(change("prod", revision)).expect("sent");
        }
        // 1 and 2 were overwritten: the client gets the current state instead.
        assert_eq!(next(&mut sub).await, Some(("snapshot", 2)));
        assert_eq!(next(&mut sub).await, Some(("change", 3)));
        assert_eq!(next(&mut sub).await, Some(("change", 4)));
    }

    #[tokio::test]
    async fn shutdown_or_a_closed_channel_ends_the_stream_and_the_gauge_follows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state_at(dir.path(), 0).await;
        let (tx, rx) = broadcast::channel(4);
        let (stop, shutdown) = watch::channel(false);
        let mut sub = subscription(&state, rx, shutdown, 0);
        assert_eq!(state.telemetry.sse_clients.get(), 1);
        stop.send(true).expect("sent");
        assert_eq!(next(&mut sub).await, None);

        // A dropped shutdown sender is not a shutdown; a closed change channel ends it.
        let mut other = subscription(&state, tx.subscribe(), watch::channel(false).1, 0);
        tx.send(change("prod", 1)).expect("sent");
        assert_eq!(next(&mut other).await, Some(("change", 1)));
        drop(tx);
        assert_eq!(next(&mut other).await, None);
        drop((sub, other));
        assert_eq!(state.telemetry.sse_clients.get(), 0);
    }

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
}
