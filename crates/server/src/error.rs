//! One error type for every HTTP handler: `{ "error": { "code", "message" } }`
//! (core's [`ErrorBody`], the orchestrator's too) with the right status. Internals (store failures, corrupt records) are logged
//! and hidden from clients.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
pub use switchyard_core::api_error::{ErrorBody, FieldProblem};
use switchyard_core::ValidationErrors;

use crate::domain::{EnvError, Malformed};
use crate::store::StoreError;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Structured details (validation problems with their paths).
    pub details: Option<Vec<FieldProblem>>,
    /// For a 429: when to try again (the `Retry-After` header, whole seconds).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 429: over a rate limit; try again after `retry_after`.
    pub fn too_many_requests(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no or unknown credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the token may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        )
    }

    /// 409: conflicts with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 412: `If-Match` did not match.
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            message,
        )
    }

    /// 413: the body is too large.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 422: well-formed but invalid, with every problem and its field path.
    pub fn invalid(errors: &ValidationErrors) -> Self {
        let details = field_problems(errors);
        ApiError {
            details: Some(details),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                errors.to_string(),
            )
        }
    }

    /// 422 with a message only.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 503: the store cannot be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }

    /// 500: a bug or corrupt data; logged, and hidden from the client.
    pub fn internal(error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %error, "store unavailable");
                ApiError::unavailable(format!(
                    "the store is unavailable, so nothing was written; retry later ({error})"
                ))
            }
            StoreError::DiskFull(_) => {
                tracing::error!(error = %error, "the disk under the store is full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "disk_full",
                    "the disk under the store is full, so nothing was written; free space and retry \
                     (flags are still evaluated from memory)",
                )
            }
            StoreError::NoSuchEnvironment(env) => {
                ApiError::not_found(format!("environment `{env}` does not exist"))
            }
            StoreError::DuplicateToken(_)
            | StoreError::RevisionConflict { .. }
            | StoreError::ScheduleSettled(_) => ApiError::conflict(error.to_string()),
            StoreError::ReadOnly { .. } => {
                ApiError::new(StatusCode::CONFLICT, "relay_read_only", error.to_string())
            }
            StoreError::Corrupt { .. } => ApiError::internal(&error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::new(self.code, self.message);
        body.error.details = self.details;
        body.error.request_id = crate::http::security::request_id();
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                retry_after_seconds(after).into(),
            );
        }
        response
    }
}

/// `Retry-After` in whole seconds, rounded up (at least 1: 0 would invite a retry
/// storm).
pub fn retry_after_seconds(after: std::time::Duration) -> u64 {
    after.as_secs() + u64::from(after.subsec_nanos() > 0).max(u64::from(after.is_zero()))
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl From<Malformed> for ApiError {
    fn from(error: Malformed) -> Self {
        ApiError::bad_request(error.to_string())
    }
}

/// The HTTP face of a domain error.
impl From<EnvError> for ApiError {
    fn from(error: EnvError) -> Self {
        match error {
            EnvError::InvalidName { .. } | EnvError::BadRequest(_) => {
                ApiError::bad_request(error.to_string())
            }
            EnvError::MalformedCondition(malformed) => malformed.into(),
            EnvError::PreconditionFailed { message, .. } => ApiError::precondition_failed(message),
            EnvError::NoEnvironment(_) | EnvError::NotFound(_) => {
                ApiError::not_found(error.to_string())
            }
            EnvError::Conflict(message) => ApiError::conflict(message),
            EnvError::InUse { .. } => ApiError::unprocessable(error.to_string()),
            EnvError::Invalid(errors) => ApiError::invalid(&errors),
            EnvError::Store(store) => store.into(),
            EnvError::Encode(e) => ApiError::internal(&e),
        }
    }
}

/// Every problem of `errors` at its field path: what a 422 and a console form show.
pub fn field_problems(errors: &ValidationErrors) -> Vec<FieldProblem> {
    errors
        .errors()
        .iter()
        .map(|e| FieldProblem {
            path: e.path.clone(),
            message: e.problem.to_string(),
        })
        .collect()
}
