//! JSON bodies: an extractor whose errors are ours (413 past the size limit, 400 naming
//! the field path for invalid JSON, unknown fields or wrong types —
//! `at rules[0].when: unknown field `usres`` — and for a key written twice —
//! `duplicate key `on` at `variants``), and large answers written into a buffer sized
//! from the previous one ([`sized`]).

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use switchyard_core::json_body;

use crate::error::ApiError;
use crate::http::MAX_BODY;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

/// Parses `bytes` as `T` (core's strict [`json_body::parse`]), a 400 naming the path
/// of the first problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    json_body::parse(bytes).map_err(bad_request)
}

/// Reads `T` from an already parsed JSON value, naming the path of the first problem.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    json_body::from_value(value).map_err(bad_request)
}

/// `value` as a JSON answer, serialised into a buffer of the size `last` recorded for
/// the previous answer of its kind (which this one then records): axum's `Json` starts
/// at 128 bytes and doubles, copying a 3 KB bulk answer five times on its way.
pub fn sized<T: Serialize>(value: &T, last: &AtomicUsize) -> Response {
    let mut failed = None;
    let answer = written(last, |buffer| {
        failed = serde_json::to_writer(buffer, value).err();
    });
    match failed {
        None => answer,
        Some(error) => ApiError::internal(&error).into_response(),
    }
}

/// The JSON answer `write` puts in a buffer sized as [`sized`] sizes it.
pub fn written(last: &AtomicUsize, write: impl FnOnce(&mut Vec<u8>)) -> Response {
    // A hint, bounded so one odd answer cannot make every later one reserve too much.
    const MAX_HINT: usize = 16 << 20;
    let hint = last.load(Ordering::Relaxed).min(MAX_HINT);
    let mut buffer = Vec::with_capacity(hint + hint / 8 + 128);
    write(&mut buffer);
    last.store(buffer.len(), Ordering::Relaxed);
    let json = HeaderValue::from_static("application/json");
    ([(CONTENT_TYPE, json)], buffer).into_response()
}

fn bad_request(error: json_body::JsonBodyError) -> ApiError {
    ApiError::bad_request(error.to_string())
}

/// Reads a whole body, mapping the size limit to our 413.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(format!(
                "request body is larger than the {MAX_BODY}-byte limit"
            ))
        } else {
            ApiError::bad_request(format!("could not read the request body: {rejection}"))
        }
    })
}

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "the request body is empty; JSON expected",
            ));
        }
        parse(&bytes).map(Json)
    }
}

/// A whole request body as bytes, with our 413 past the size limit (axum's own
/// `Bytes` extractor answers in plain text).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        body_bytes(req, state).await.map(RawBody)
    }
}

/// Path parameters, rejected with our JSON 400 (e.g. a percent-encoded segment that
/// is not UTF-8) instead of axum's plain text.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            // A route without the parameters its handler expects: our bug, not the client's.
            Err(rejection) if rejection.status().is_server_error() => {
                Err(ApiError::internal(&rejection))
            }
            Err(rejection) => Err(ApiError::bad_request(format!(
                "invalid path: {}",
                rejection.body_text()
            ))),
        }
    }
}
