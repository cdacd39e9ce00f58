//! `GET /console/events?env=..`: the console's live stream, for a signed-in session.
//! It follows the environment through the same [`Subscription`] as SDK streams and
//! sends one `change` event (data: the new revision) per revision; the page's script
//! then fetches itself again and swaps in its `data-live` parts.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;

use crate::console::page::{readable_env, PageError};
use crate::console::session::Viewer;
use crate::state::AppState;
use crate::subscription::Subscription;
use crate::telemetry::StreamProtocol;

/// The stream's query.
#[derive(Deserialize)]
pub struct Follow {
    env: String,
}

/// See the module documentation.
pub async fn events(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(follow): Query<Follow>,
) -> Result<Response, PageError> {
    let current = readable_env(&state, &viewer, &follow.env)?;
    let subscription = Subscription::start(&state, &follow.env, Some(current.revision))?
        .held_by(&viewer.principal)?
        .counted_as(StreamProtocol::Console);
    let events = stream::unfold(subscription, |mut subscription| async move {
        let next = subscription.next().await?;
        let event = Event::default()
            .event("change")
            .data(next.revision().to_string());
        Some((Ok::<_, Infallible>(event), subscription))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.sse_heartbeat))
        .into_response())
}
