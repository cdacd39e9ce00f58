//! Server-Sent Events responses, shared by the SDK stream (`/v1/sdk/stream`) and
//! OFREP's change notifications (`/ofrep/v1/events`): a [`Subscription`]'s events
//! written as frames, heartbeats while idle, the headers that keep proxies from
//! buffering, and the `Last-Event-ID` a reconnecting client sends.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::{Duration, Instant, MissedTickBehavior};

use crate::subscription::{Outgoing, Subscription};

/// The header a reconnecting SSE client sends with the last event id it received.
const LAST_EVENT_ID: &str = "last-event-id";

/// The revision a reconnecting client says it has (`Last-Event-ID`), if any.
pub fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(LAST_EVENT_ID)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
}

/// The `text/event-stream` response: each event as the chunks `frame` makes of it,
/// and a `: heartbeat` comment whenever nothing was written for half of `heartbeat`
/// (checked every half period, so the line is never silent longer than `heartbeat`:
/// proxies and clients see the connection alive); it ends with the subscription.
/// Events do not touch the timer (resetting it per event cost each of 10 000
/// streams a timer-wheel update per change).
pub fn response(
    subscription: Subscription,
    heartbeat: Duration,
    frame: fn(&Outgoing) -> Vec<Bytes>,
) -> Response {
    let half = (heartbeat / 2).max(Duration::from_millis(1));
    let mut idle = tokio::time::interval_at(Instant::now() + half, half);
    idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let chunks = futures_util::stream::unfold(
        (subscription, idle, Instant::now()),
        move |(mut subscription, mut idle, mut written)| async move {
            let chunks = loop {
                tokio::select! {
                    next = subscription.next() => {
                        written = Instant::now();
                        break frame(&next?);
                    }
                    _ = idle.tick() => {
                        if written.elapsed() >= half {
                            written = Instant::now();
                            break vec![Bytes::from_static(b": heartbeat\n\n")];
                        }
                    }
                }
            };
            Some((
                futures_util::stream::iter(chunks),
                (subscription, idle, written),
            ))
        },
    )
    .flatten()
    .map(Ok::<_, Infallible>);
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Ask buffering proxies (nginx) to pass events through at once.
            (
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}
