//! The REST API (axum): `router(state)` builds every route, so tests drive it with
//! `oneshot` and the binary serves it on a socket.

pub mod admin;
pub mod drain;
pub mod evaluate;
pub mod json;
pub mod ofrep;
pub mod openapi;
pub mod ops;
pub mod preconditions;
pub mod sdk;
pub mod security;
pub mod sse;
pub mod whoami;

use axum::extract::{DefaultBodyLimit, Request};
use axum::response::Response;
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// The largest request body accepted (flags, contexts, metric batches): 1 MiB.
pub const MAX_BODY: usize = 1 << 20;

/// Whether `If-None-Match` lists `etag` (weak comparison, as RFC 9110 prescribes for
/// this header) or is `*`.
pub fn none_match(headers: &axum::http::HeaderMap, etag: &str) -> bool {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    headers
        .get_all(axum::http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let console = crate::console::routes(state.clone())
        .layer(axum::middleware::from_fn(security::console_headers));
    let router = Router::new()
        .merge(evaluate::routes())
        .merge(ofrep::routes())
        .merge(sdk::routes())
        .merge(whoami::routes())
        .nest("/v1/admin", admin::routes())
        .merge(ops::routes())
        .merge(openapi::routes())
        .nest("/console", console)
        .route("/", axum::routing::get(crate::console::root))
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::method_not_allowed(
                "this route does not accept that method; see /openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            every_request,
        ));
    // Browsers on the listed origins may call the read APIs (preflights answered here,
    // before routing); nothing else names an allowed origin.
    let router = match security::cors(&state.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// What every request goes through before its route's handler, outermost first: a
/// request id, the ops token check, metrics, draining what the handler leaves of the
/// body, and on a relay the refusal of admin writes. One layer, not five: each
/// `from_fn` layer clones and boxes the route's service and boxes a future on every
/// request (≈ 4 % of the server's time under REST bulk load).
async fn every_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    security::request_ids(request, |request| {
        security::ops_guard(&state, request, |request| {
            crate::telemetry::track_requests(&state, request, |request| {
                drain::drain_unread_body(request, |request| {
                    relay_read_only(&state, request, |request| next.run(request))
                })
            })
        })
    })
    .await
}

/// On a relay, refuses every admin write before it is read: 409 naming the upstream,
/// where changes are made (docs/relay.md).
async fn relay_read_only<F: std::future::Future<Output = Response>>(
    state: &AppState,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    use axum::response::IntoResponse as _;
    match &state.relay {
        Some(relay)
            if !request.method().is_safe() && request.uri().path().starts_with("/v1/admin/") =>
        {
            ApiError::from(crate::store::StoreError::ReadOnly {
                upstream: relay.upstream.url().to_owned(),
            })
            .into_response()
        }
        _ => next(request).await,
    }
}
