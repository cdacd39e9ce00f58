//! Keeps keep-alive connections usable after an answer given before the request body
//! was read. The `Principal` extractor answers 401/403 from the headers alone, and a
//! 404/405 or a 413 leaves a body unread too; hyper then only drains what has already
//! arrived and otherwise closes the connection right after the answer, so a client
//! still sending its body on a keep-alive connection sees a broken pipe. This layer
//! reads what the handler left of the body before the answer goes out — at most
//! [`DRAIN_LIMIT`] bytes within [`DRAIN_TIMEOUT`] — and when that is not enough, says
//! `Connection: close` so the client knows the connection ends with this answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::response::Response;
use futures_util::StreamExt as _;
use http_body::{Frame, SizeHint};

use super::MAX_BODY;

/// The most of a body read after its answer is ready: the largest body any route
/// accepts, so every request a client may legitimately send is drained.
pub const DRAIN_LIMIT: usize = MAX_BODY;

/// How long reading a left-over body may take before the connection is given up.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The middleware: hands the handler a body it can read as usual, then drains
/// whatever the handler left unread.
pub async fn drain_unread_body<F: Future<Output = Response>>(
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next(Request::from_parts(parts, body)).await;
    }
    let shared = Arc::new(Mutex::new(Some(body)));
    let lent = Body::new(Lent(Arc::clone(&shared)));
    let mut response = next(Request::from_parts(parts, lent)).await;
    let rest = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(rest) = rest {
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, drain(rest))
            .await
            .unwrap_or(false);
        if !drained {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
    response
}

/// Reads `body` to its end; `false` when it is longer than [`DRAIN_LIMIT`] or fails.
async fn drain(body: Body) -> bool {
    if body.is_end_stream() {
        return true;
    }
    let mut read = 0_usize;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => {
                read = read.saturating_add(bytes.len());
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// The request body as the handler sees it: the real body stays with the middleware,
/// so what the handler does not read can still be drained after it answered.
struct Lent(Arc<Mutex<Option<Body>>>);

impl HttpBody for Lent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        let body = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let body = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        body.as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}
