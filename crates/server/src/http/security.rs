//! What every answer carries for safety: a request id (`X-Request-Id`: the client's
//! if it sent a sane one, else a new one) on the answer, in error bodies and on every
//! log line about the request; `X-Content-Type-Options: nosniff`; for the console's
//! pages a content security policy and no framing; CORS only for the origins the
//! operator lists (`--cors-origin`), only on the read APIs browsers call.

use std::future::Future;

use axum::extract::Request;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    /// The id of the request being handled, for error bodies.
    static CURRENT: String;
}

/// The id of the request this task is handling, if any.
pub fn request_id() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// A client's request id is kept when it is 1 to 64 visible ASCII characters.
fn sane(id: &HeaderValue) -> Option<String> {
    let id = id.to_str().ok()?;
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| id.to_owned())
}

/// Gives the request an id and carries it into its span, its errors and its answer.
pub async fn request_ids<F: Future<Output = Response>>(
    mut request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(sane)
        .unwrap_or_else(|| {
            let mut bytes = [0_u8; 8];
            rand::thread_rng().fill_bytes(&mut bytes);
            hex::encode(bytes)
        });
    // Sane or generated, the id is visible ASCII: it always makes a header value.
    let value = HeaderValue::from_str(&id).ok();
    if let Some(value) = &value {
        request.headers_mut().insert(REQUEST_ID, value.clone());
    }
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = CURRENT.scope(id, next(request).instrument(span)).await;
    let headers = response.headers_mut();
    if let Some(value) = value {
        headers.insert(REQUEST_ID, value);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The console's policy: its own scripts, styles (and inline style attributes, which
/// the charts use), images and connections only; never framed; forms post to itself.
const CONSOLE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Headers of every console page.
pub async fn console_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_POLICY),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// `Strict-Transport-Security` on every answer of a server that speaks TLS.
pub async fn hsts(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// `/metrics` and `/openapi.json` behind `--ops-token` when it is set: its bearer
/// token, or any admin token, passes; anything else is 401.
pub async fn ops_guard<F: Future<Output = Response>>(
    state: &crate::state::AppState,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    use axum::response::IntoResponse as _;
    let path = request.uri().path();
    let guarded = path == "/metrics" || path == "/openapi.json";
    let Some(expected) = state.ops_token.filter(|_| guarded) else {
        return next(request).await;
    };
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer);
    let allowed = presented.is_some_and(|token| {
        use subtle::ConstantTimeEq as _;
        bool::from(crate::auth::sha256(token).ct_eq(&expected))
            || state
                .tokens
                .authenticate(token)
                .is_some_and(|p| p.kind == crate::store::TokenKind::Admin)
    });
    if allowed {
        next(request).await
    } else {
        crate::error::ApiError::unauthorized(format!(
            "{path} needs `Authorization: Bearer <token>` with the server's --ops-token or an admin token"
        ))
        .into_response()
    }
}

/// Paths browsers on other origins may call (with `--cors-origin`).
fn readable_cross_origin(path: &str) -> bool {
    path.starts_with("/v1/evaluate/")
        || path.starts_with("/ofrep/")
        || path.starts_with("/v1/sdk/")
        || path == "/v1/whoami"
}

/// CORS for the read APIs (evaluation, OFREP, SDK), allowing `origins` only; `None`
/// when none are listed (the default: browsers on other origins are not let in).
/// Other paths never name an allowed origin, so browsers refuse them.
pub fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins.to_vec();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, parts| {
                readable_cross_origin(parts.uri.path()) && origins.contains(origin)
            }))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                axum::http::header::IF_NONE_MATCH,
                HeaderName::from_static("last-event-id"),
                REQUEST_ID,
            ])
            .expose_headers([
                axum::http::header::ETAG,
                axum::http::header::RETRY_AFTER,
                REQUEST_ID,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
