//! OFREP change notifications (OFREP ADR 0008): the bulk evaluation answers with
//! `eventStreams`, one SSE endpoint a static-context provider (a web or mobile app)
//! connects to instead of polling; each change of the token's environment sends
//! `{"type": "refetchEvaluation"}`, and the provider evaluates the flags again.
//!
//! `GET /ofrep/v1/events?ticket=…`: an `EventSource` cannot send an `Authorization`
//! header, so the URL carries a ticket for the token that evaluated (`auth::ticket`),
//! never the token. The endpoint is given as `endpoint.requestUri`, so the provider
//! puts it after the origin it was configured with (we need not know our public URL).
//! Events carry the environment's revision as their `id`: a provider reconnecting with
//! `Last-Event-ID` is told at once when it missed a change.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::environment;
use crate::auth::Principal;
use crate::environments::now_ms;
use crate::error::ApiError;
use crate::http::sse;
use crate::state::AppState;
use crate::subscription::{Outgoing, Subscription};
use crate::telemetry::StreamProtocol;

/// The stream's path (the ticket follows as `?ticket=`).
pub const PATH: &str = "/ofrep/v1/events";

/// Seconds a hidden or backgrounded client keeps the stream before closing it (the
/// ADR's default).
const INACTIVITY_DELAY_SEC: u32 = 120;

/// One entry of the bulk answer's `eventStreams`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OfrepEventStream)]
#[serde(rename_all = "camelCase")]
pub struct EventStream {
    /// Always `sse`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Where to connect: this path on the provider's configured origin.
    endpoint: Endpoint,
    /// Seconds of client inactivity after which the provider closes the stream.
    inactivity_delay_sec: u32,
}

/// `endpoint` of an [`EventStream`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OfrepEventStreamEndpoint)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// `/ofrep/v1/events?ticket=…`.
    request_uri: String,
}

/// The event streams to announce to `principal`: none for a token without an id.
pub fn announce(state: &AppState, principal: &Principal) -> Vec<EventStream> {
    state
        .ticket(principal, now_ms())
        .map(|ticket| EventStream {
            kind: "sse",
            endpoint: Endpoint {
                request_uri: format!("{PATH}?ticket={ticket}"),
            },
            inactivity_delay_sec: INACTIVITY_DELAY_SEC,
        })
        .into_iter()
        .collect()
}

/// The stream's query.
#[derive(Debug, Deserialize)]
pub struct TicketQuery {
    /// The ticket from the bulk answer's `eventStreams`.
    ticket: String,
}

/// The schema of one event of the stream, as `text/event-stream` carries it (written
/// by [`frame`]; heartbeats are comments).
#[derive(utoipa::ToSchema)]
#[schema(as = OfrepEvent)]
#[allow(dead_code)] // a description only
struct Event {
    /// Always `message` (OFREP routes by the data's `type`).
    #[schema(pattern = "^message$")]
    event: String,
    /// The environment's revision after the change; sent back as `Last-Event-ID`.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    /// `{"type":"refetchEvaluation"}`.
    data: String,
}

/// The frame of one change: `refetchEvaluation`, with the revision as the event id.
fn frame(event: &Outgoing) -> Vec<Bytes> {
    vec![Bytes::from(format!(
        "id: {}\nevent: message\ndata: {{\"type\":\"refetchEvaluation\"}}\n\n",
        event.revision()
    ))]
}

#[utoipa::path(
    get,
    path = "/ofrep/v1/events",
    tag = "ofrep",
    summary = "OFREP: change notifications (SSE) for the ticket's environment",
    params(
        ("ticket" = String, Query, description = "The ticket from the bulk answer's `eventStreams`"),
        ("Last-Event-ID" = Option<String>, Header, description = "The last revision received")
    ),
    responses(
        (status = 200, description = "`data: {\"type\":\"refetchEvaluation\"}` per change, `id` = the revision; heartbeats", body = Event, content_type = "text/event-stream"),
        (status = 400, description = "No ticket"),
        (status = 401, description = "Malformed, expired or revoked ticket"),
        (status = 403, description = "The token's environment no longer exists")
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    query: Result<Query<TicketQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::bad_request(format!(
            "`ticket` query parameter missing: take the URL from an OFREP bulk evaluation's \
             `eventStreams` ({PATH}?ticket=…)"
        ))
    })?;
    let principal = state
        .redeem(&query.ticket, now_ms())
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let current = environment(&state, &principal)?;
    // A reconnecting client is told of what it missed; a new one only of what follows.
    let after = sse::last_event_id(&headers).unwrap_or(current.revision);
    let subscription = Subscription::start(&state, current.name.as_str(), Some(after))?
        .held_by(&principal)?
        .counted_as(StreamProtocol::Ofrep);
    Ok(sse::response(subscription, state.sse_heartbeat, frame))
}
