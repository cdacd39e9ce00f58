//! The OpenFeature Remote Evaluation Protocol (OFREP), as its OpenAPI document
//! (open-feature/protocol, `service/openapi.yaml`) defines it:
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}`: one flag. 200
//!   `{key, value, reason, variant, metadata}`; 400 `{key, errorCode, errorDetails}`
//!   with `PARSE_ERROR` or `INVALID_CONTEXT`; 404
//!   `{key, errorCode: "FLAG_NOT_FOUND", errorDetails}`.
//! - `POST /ofrep/v1/evaluate/flags`: every flag. 200 `{flags: [...], eventStreams,
//!   metadata}` with an `ETag`; `If-None-Match` with a current tag → 304 and no body;
//!   400 `{errorCode, errorDetails}`.
//! - `GET /ofrep/v1/events?ticket=…`: change notifications for the bulk answer's
//!   `eventStreams` (OFREP ADR 0008; [`events`]).
//!
//! A disabled flag whose `off_variant` is `null` defers to the caller's code default:
//! a success without `value` or `variant` (OFREP ADR 0006).
//!
//! The body is `{"context": {"targetingKey": "...", ...attributes}}`. `context` is
//! required; `targetingKey` is not: a context without one is anonymous (front ends
//! evaluate for visitors who have no id yet), and rollouts treat it as documented in
//! docs/bucketing.md. `TARGETING_KEY_MISSING` is therefore never returned. As
//! OpenFeature contexts have no list
//! type, `groups` may also be one comma-separated string. The bulk `ETag` hashes the
//! environment, its revision and the raw request body. The environment comes from the
//! token (`sdk` or `eval`): a missing or unknown token is 401, an admin token (bound to
//! no environment) 403, both with our usual `{error: {code, message}}` body, as is 413
//! for a body over [`MAX_BODY`](crate::http::MAX_BODY).
//!
//! Reasons are the core's OpenFeature reasons, except `PREREQUISITE_FAILED`, which is
//! not an OpenFeature reason: it is sent as `DISABLED` (the flag is off for this
//! context and serves its off variant) with `metadata.reason_detail:
//! "PREREQUISITE_FAILED"`.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::ETAG;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use switchyard_core::{evaluate, evaluate_all, Context, ErrorCode, Evaluation, Reason};

pub mod events;

use crate::auth::Principal;
use crate::environments::EnvState;
use crate::error::ApiError;
use crate::http::json::{body_bytes, parse};
use crate::http::none_match;
use crate::scope::check_context;
use crate::state::AppState;
use crate::store::TokenKind;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(one))
        .route("/ofrep/v1/evaluate/flags", post(bulk))
        .route(events::PATH, get(events::stream))
}

/// Why a request cannot be evaluated, as an OFREP error code and details.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    details: String,
}

impl Failure {
    fn bad_request(code: ErrorCode, details: impl Into<String>) -> Self {
        Failure {
            status: StatusCode::BAD_REQUEST,
            code: code.as_str(),
            details: details.into(),
        }
    }

    /// The single-flag failure body: `{key, errorCode, errorDetails}`.
    fn for_flag(self, key: &str) -> Response {
        let body = FlagFailure {
            key,
            error_code: self.code,
            error_details: self.details,
        };
        (self.status, Json(body)).into_response()
    }

    /// The bulk failure body: `{errorCode, errorDetails}`.
    fn for_bulk(self) -> Response {
        let body = BulkFailure {
            error_code: self.code,
            error_details: self.details,
        };
        (self.status, Json(body)).into_response()
    }
}

/// The request body: `{"context": {...}}` (other fields are ignored).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // read as a `Value` by `context_of`; this type is its schema
struct OfrepRequest {
    /// The evaluation context.
    context: Context,
}

/// A successful evaluation: `{key, value, reason, variant, metadata}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OfrepSuccess)]
struct Success<'a> {
    /// The flag.
    key: &'a str,
    /// The served value; absent when the flag is disabled and defers to the caller's
    /// code default (`off_variant: null`; OFREP ADR 0006).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    value: Option<&'a Value>,
    /// An OpenFeature reason (`PREREQUISITE_FAILED` is sent as `DISABLED`).
    #[schema(value_type = String)]
    reason: &'static str,
    /// The served variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    /// Switchyard's details.
    metadata: Metadata<'a>,
}

/// `metadata` of a [`Success`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OfrepMetadata)]
struct Metadata<'a> {
    /// The flag's version.
    flag_version: u64,
    /// The rule that served, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_id: Option<&'a str>,
    /// The precise reason when the wire reason is less precise (`PREREQUISITE_FAILED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    reason_detail: Option<&'static str>,
}

/// A failed evaluation of one flag: `{key, errorCode, errorDetails}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OfrepFlagFailure)]
struct FlagFailure<'a> {
    /// The flag.
    key: &'a str,
    /// An OpenFeature error code, e.g. `FLAG_NOT_FOUND`.
    #[schema(value_type = String)]
    error_code: &'static str,
    /// What went wrong.
    error_details: String,
}

/// A request the bulk evaluation cannot answer: `{errorCode, errorDetails}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OfrepBulkFailure)]
struct BulkFailure {
    /// `PARSE_ERROR` or `INVALID_CONTEXT`.
    #[schema(value_type = String)]
    error_code: &'static str,
    /// What went wrong.
    error_details: String,
}

/// One flag in a bulk answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = OfrepBulkItem)]
enum Item<'a> {
    /// Evaluated.
    Success(Success<'a>),
    /// Could not be evaluated.
    Failure(FlagFailure<'a>),
}

/// The bulk answer: `{flags: [...], eventStreams: [...], metadata: {environment,
/// revision}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OfrepBulk)]
#[serde(rename_all = "camelCase")]
struct Bulk<'a> {
    /// Every flag.
    flags: Vec<Item<'a>>,
    /// Where to hear of changes instead of polling (OFREP ADR 0008); empty for a token
    /// that cannot have a stream ticket.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    event_streams: Vec<events::EventStream>,
    /// The environment evaluated.
    metadata: BulkMetadata<'a>,
}

/// `metadata` of a [`Bulk`] answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OfrepBulkMetadata)]
struct BulkMetadata<'a> {
    /// The environment (from the token).
    environment: &'a str,
    /// Its revision.
    revision: u64,
}

/// Parses an OFREP request body, `{"context": {...}}`, into a [`Context`].
///
/// Not JSON, or not a JSON object → `PARSE_ERROR`; no `context`, or one that is not an
/// object or that our context model cannot hold (nested objects, over the size
/// limits) → `INVALID_CONTEXT`. A context without `targetingKey` is anonymous.
/// Other top-level fields are ignored, attributes whose
/// value is `null` are treated as absent, and `groups` may also be one string of
/// comma-separated names (OpenFeature contexts have no list type, so providers such
/// as the Rust OFREP provider can only send a list that way).
fn context_of(bytes: &[u8]) -> Result<Context, Failure> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::bad_request(
            ErrorCode::ParseError,
            "the request body is empty; expected {\"context\": {\"targetingKey\": \"...\"}}",
        ));
    }
    let body: Value =
        parse(bytes).map_err(|e| Failure::bad_request(ErrorCode::ParseError, e.message))?;
    let Value::Object(mut body) = body else {
        return Err(Failure::bad_request(
            ErrorCode::ParseError,
            "the request body must be a JSON object: {\"context\": {...}}",
        ));
    };
    let mut context: Map<String, Value> = match body.remove("context") {
        Some(Value::Object(context)) => context,
        None | Some(Value::Null) => {
            return Err(Failure::bad_request(
                ErrorCode::InvalidContext,
                "`context` is required: {\"context\": {\"targetingKey\": \"...\"}}",
            ))
        }
        Some(_) => {
            return Err(Failure::bad_request(
                ErrorCode::InvalidContext,
                "`context` must be a JSON object",
            ))
        }
    };
    context.retain(|_, value| !value.is_null());
    if let Some(groups) = context.get_mut("groups") {
        if let Value::String(list) = groups {
            *groups = list
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(|g| Value::String(g.to_owned()))
                .collect();
        }
    }
    let ctx: Context = serde_json::from_value(Value::Object(context)).map_err(|e| {
        Failure::bad_request(ErrorCode::InvalidContext, format!("invalid context: {e}"))
    })?;
    check_context(&ctx).map_err(|e| {
        Failure::bad_request(ErrorCode::InvalidContext, format!("invalid context: {e}"))
    })?;
    Ok(ctx)
}

/// A successful evaluation: `{key, value, reason, variant, metadata}`, or `None` if
/// the evaluation failed.
fn success<'a>(key: &'a str, result: &Evaluation<'a>) -> Option<Success<'a>> {
    if result.error.is_some() || result.reason == Reason::Error {
        return None;
    }
    let value = if result.defers() {
        None
    } else {
        Some(result.value?)
    };
    let (reason, reason_detail) = result.reason.openfeature();
    Some(Success {
        key,
        value,
        reason,
        variant: result.variant,
        metadata: Metadata {
            flag_version: result.flag_version,
            rule_id: result.rule_id,
            reason_detail,
        },
    })
}

/// The error code of a failed evaluation (a compiled snapshot only fails with
/// `FLAG_NOT_FOUND`; anything else is reported as the core says, `GENERAL` at worst).
fn error_code(result: &Evaluation<'_>) -> ErrorCode {
    result.error.unwrap_or(ErrorCode::General)
}

/// The environment the token reads, and its current state.
fn environment(
    state: &AppState,
    principal: &Principal,
) -> Result<std::sync::Arc<EnvState>, ApiError> {
    if principal.kind == TokenKind::Admin {
        return Err(ApiError::forbidden(format!(
            "token `{}` is an admin token, which is not bound to an environment; OFREP \
             evaluates the environment of an sdk or eval token",
            principal.name
        )));
    }
    let env = principal.token_env(&[TokenKind::Sdk, TokenKind::Eval])?;
    state.envs.get(env.as_str()).ok_or_else(|| {
        ApiError::forbidden(format!(
            "token `{}` is bound to environment `{env}`, which does not exist",
            principal.name
        ))
    })
}

#[utoipa::path(
    post,
    path = "/ofrep/v1/evaluate/flags/{key}",
    tag = "ofrep",
    summary = "OFREP: evaluate one flag (environment from the token)",
    security(("bearer" = [])),
    params(("key" = String, Path, description = "Flag key")),
    request_body(content = OfrepRequest, description = "{\"context\": {\"targetingKey\": \"...\", ...}}", content_type = "application/json"),
    responses(
        (status = 200, description = "{key, value, reason, variant, metadata}", body = Success),
        (status = 400, description = "{key, errorCode: PARSE_ERROR | INVALID_CONTEXT, errorDetails}", body = FlagFailure),
        (status = 403, description = "Token not bound to an environment or not allowed"),
        (status = 404, description = "{key, errorCode: FLAG_NOT_FOUND, errorDetails}", body = FlagFailure),
        (status = 413, description = "Body too large")
    )
)]
async fn one(
    State(state): State<AppState>,
    principal: Principal,
    key: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let current = environment(&state, &principal)?;
    let key = match key {
        Ok(Path(key)) => key,
        Err(rejection) => {
            return Ok(Failure::bad_request(
                ErrorCode::ParseError,
                format!("invalid flag key in the path: {rejection}"),
            )
            .for_flag(""))
        }
    };
    let bytes = body_bytes(request, &state).await?;
    let ctx = match context_of(&bytes) {
        Ok(ctx) => ctx,
        Err(failure) => return Ok(failure.for_flag(&key)),
    };
    let result = evaluate(&current.snapshot, &key, &ctx);
    state.evaluated_one(current.name.as_str(), &key, "ofrep");
    if let Some(body) = success(&key, &result) {
        return Ok(Json(body).into_response());
    }
    let code = error_code(&result);
    let failure = match code {
        ErrorCode::FlagNotFound => Failure {
            status: StatusCode::NOT_FOUND,
            code: code.as_str(),
            details: format!("flag `{key}` does not exist in `{}`", current.name),
        },
        ErrorCode::InvalidContext | ErrorCode::ParseError => Failure::bad_request(
            code,
            format!("flag `{key}` could not be evaluated for this context"),
        ),
        _ => {
            tracing::error!(env = %current.name, flag = %key, code = code.as_str(), "OFREP evaluation failed");
            Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: code.as_str(),
                details: format!("flag `{key}` could not be evaluated; see the server log"),
            }
        }
    };
    Ok(failure.for_flag(&key))
}

/// The bulk response's entity tag: a hash of the environment, its revision and the
/// exact request body, so it changes when any flag or segment changes and differs
/// between contexts.
fn etag(current: &EnvState, body: &Bytes) -> String {
    let mut hash = Sha256::new();
    hash.update(current.name.as_str().as_bytes());
    hash.update([0]);
    hash.update(current.revision.to_be_bytes());
    hash.update(body);
    let digest = hash.finalize();
    format!("\"{}\"", hex::encode(&digest[..16]))
}

#[utoipa::path(
    post,
    path = "/ofrep/v1/evaluate/flags",
    tag = "ofrep",
    summary = "OFREP: evaluate every flag (ETag / If-None-Match)",
    security(("bearer" = [])),
    params(("If-None-Match" = Option<String>, Header, description = "ETag of a previous answer")),
    request_body(content = OfrepRequest, description = "{\"context\": {...}}", content_type = "application/json"),
    responses(
        (status = 200, description = "{flags: [...], metadata} with an ETag", body = Bulk),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 400, description = "{errorCode, errorDetails}", body = BulkFailure),
        (status = 403, description = "Token not bound to an environment or not allowed"),
        (status = 413, description = "Body too large")
    )
)]
async fn bulk(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<Response, ApiError> {
    let current = environment(&state, &principal)?;
    let headers = request.headers().clone();
    let bytes = body_bytes(request, &state).await?;
    let ctx = match context_of(&bytes) {
        Ok(ctx) => ctx,
        Err(failure) => return Ok(failure.for_bulk()),
    };
    let tag = etag(&current, &bytes);
    let tag_header = HeaderValue::from_str(&tag).map_err(|e| ApiError::internal(&e))?;
    if none_match(&headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, tag_header)]).into_response());
    }
    let mut flags = Vec::with_capacity(current.snapshot.len());
    for (key, result) in evaluate_all(&current.snapshot, &ctx) {
        match success(key, &result) {
            Some(item) => flags.push(Item::Success(item)),
            None => {
                let code = error_code(&result);
                tracing::error!(env = %current.name, flag = %key, code = code.as_str(), "OFREP evaluation failed");
                flags.push(Item::Failure(FlagFailure {
                    key,
                    error_code: code.as_str(),
                    error_details: format!(
                        "flag `{key}` could not be evaluated; see the server log"
                    ),
                }));
            }
        }
    }
    state
        .telemetry
        .evaluated(current.name.as_str(), "ofrep", flags.len() as u64);
    let body = Bulk {
        flags,
        event_streams: events::announce(&state, &principal),
        metadata: BulkMetadata {
            environment: current.name.as_str(),
            revision: current.revision,
        },
    };
    let answer = crate::http::json::sized(&body, &current.answer_sizes.ofrep_bulk);
    Ok(([(ETAG, tag_header)], answer).into_response())
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(one, bulk, events::stream))]
pub struct OfrepApi;

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::IF_NONE_MATCH;
    use axum::http::HeaderMap;

    fn code(body: &str) -> &'static str {
        match context_of(body.as_bytes()) {
            Ok(_) => "OK",
            Err(failure) => failure.code,
        }
    }

    #[test]
    fn request_bodies_map_to_the_spec_error_codes() {
        let cases = [
            (
                r#"{"context": {"targetingKey": "u1", "country": "IT"}}"#,
                "OK",
            ),
            (
                r#"{"context": {"targetingKey": "u1", "email": null}}"#,
                "OK",
            ),
            (r#"{"context": {"targetingKey": "u1"}, "extra": 1}"#, "OK"),
            (
                r#"{"context": {"targetingKey": "u1", "groups": "a, b"}}"#,
                "OK",
            ),
            (
                r#"{"context": {"targetingKey": "u1", "groups": 3}}"#,
                "INVALID_CONTEXT",
            ),
            ("", "PARSE_ERROR"),
            ("{", "PARSE_ERROR"),
            ("[1]", "PARSE_ERROR"),
            ("{}", "INVALID_CONTEXT"),
            (r#"{"context": null}"#, "INVALID_CONTEXT"),
            (r#"{"context": "u1"}"#, "INVALID_CONTEXT"),
            (r#"{"context": {"targetingKey": 5}}"#, "INVALID_CONTEXT"),
            (
                r#"{"context": {"targetingKey": "u1", "nested": {"a": 1}}}"#,
                "INVALID_CONTEXT",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(code(body), expected, "{body}");
        }
    }

    #[test]
    fn groups_may_be_a_comma_separated_string() {
        let ctx = context_of(br#"{"context": {"targetingKey": "u1", "groups": "beta, staff,,"}}"#)
            .expect("valid");
        assert_eq!(ctx.groups(), ["beta", "staff"]);
        let ctx = context_of(br#"{"context": {"targetingKey": "u1", "groups": ["a,b"]}}"#)
            .expect("valid");
        assert_eq!(ctx.groups(), ["a,b"], "lists are taken as they are");
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(none_match(&headers, "\"a\""));
        assert!(none_match(&headers, "\"b\""));
        assert!(!none_match(&headers, "\"c\""));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match(&headers, "\"c\""));
        assert!(!none_match(&HeaderMap::new(), "\"c\""));
    }
}
