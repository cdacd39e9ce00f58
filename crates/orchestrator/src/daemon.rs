//! The daemon's HTTP API over running releases: `router(orchestrator, api_token)` builds
//! every route, so tests drive it with `oneshot`; [`serve`] runs it on a socket until
//! shutdown.
//!
//! *API Boundary*: JSON in and out; every error is `{ "error": { "code", "message" } }`
//! (plan problems add `problems: [{ path, message }]`). Bad input is a 4xx, never a 500:
//! only a failing store is answered 500, and logged.
//!
//! | Route | |
//! | --- | --- |
//! | `POST /v1/releases` | body: the plan (YAML or JSON) → 201 created, 200 already running |
//! | `POST /v1/releases?dry_run=true` | the plan checked, nothing started → 200 `PlanOutline` (core's `release`) |
//! | `GET /v1/releases` | `{ releases: [ReleaseSummary] }` |
//! | `GET /v1/releases/{name}` | the stored release `{ plan, state, created_at, revision }` |
//! | `POST /v1/releases/{name}/{approve,pause,resume,abort,promote}` | a person's command |
//! | `GET /v1/releases/{name}/report?format=json\|markdown\|notes` | the release's report, or its release notes |
//! | `GET /v1/history?limit=N` | `{ releases: [ReleaseSummary] }`, every release ever applied, newest first |
//! | `GET /v1/dora?window=30d&format=json\|markdown` | [`report::dora`] over the window |
//! | `GET /healthz` | liveness |
//! | `GET /metrics` | Prometheus text ([`crate::telemetry`]); open like `/healthz` |

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use switchyard_core::api_error::{ErrorBody, FieldProblem};
use switchyard_core::json_body;

use crate::driver::{ApplyError, CommandError, Orchestrator};
use crate::machine::{Event, Millis};
use crate::plan::{Plan, PlanError, Problem};
use crate::report;
use crate::store::Release;

/// The largest request body accepted (a plan or a command): 1 MiB.
pub const MAX_BODY: usize = 1 << 20;

/// Who a command is attributed to when the request does not say.
const DEFAULT_BY: &str = "api";

/// Releases `GET /v1/history` lists when the request does not say.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;
/// The most releases `GET /v1/history` lists.
pub const MAX_HISTORY_LIMIT: usize = 1000;

pub use switchyard_core::release::{ReleaseSummary, ServiceSummary};

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// A plan's problems with their paths.
    pub problems: Option<Vec<Problem>>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            problems: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400: the plan cannot be read or is not valid; every problem with its path.
    pub fn invalid_plan(error: PlanError) -> Self {
        let (message, problems) = match error {
            PlanError::Syntax { path, message } => (
                format!("the release plan cannot be read: {path}: {message}"),
                vec![Problem { path, message }],
            ),
            PlanError::Invalid(problems) => (
                format!(
                    "the release plan is invalid ({} problem{})",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ),
                problems,
            ),
        };
        ApiError {
            problems: Some(problems),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_plan", message)
        }
    }

    /// 401: no or wrong token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
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

    /// 409: a release of that name runs another plan.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 409: the command does not apply to the release as it is now.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "refused", message)
    }

    /// 413: the body is too large.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 500: the store failed; logged, and hidden from the client.
    pub fn internal(error: &dyn std::error::Error) -> Self {
        tracing::error!(
            error = %crate::analysis::error_chain(error),
            "internal error"
        );
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the orchestrator's log",
        )
    }
}

impl From<ApplyError> for ApiError {
    fn from(error: ApplyError) -> Self {
        match error {
            ApplyError::Running(_) => ApiError::conflict(error.to_string()),
            ApplyError::Store(_) => ApiError::internal(&error),
            ApplyError::Invalid(plan) => ApiError::invalid_plan(plan),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::NotFound(_) => ApiError::not_found(error.to_string()),
            CommandError::Refused(refusal) => ApiError::refused(refusal.to_string()),
            CommandError::Store(_) => ApiError::internal(&error),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(format!(
                "the request body is larger than the {MAX_BODY}-byte limit"
            ))
        } else {
            ApiError::bad_request(format!(
                "could not read the request body: {}",
                rejection.body_text()
            ))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::new(self.code, self.message);
        body.error.problems = self
            .problems
            .map(|problems| problems.into_iter().map(FieldProblem::from).collect());
        (self.status, Json(body)).into_response()
    }
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

#[derive(Clone)]
struct AppState {
    orchestrator: Orchestrator,
    api_token: Option<Arc<str>>,
}

/// Every route of the daemon. With `api_token`, every `/v1` request must carry
/// `Authorization: Bearer <api_token>`.
pub fn router(orchestrator: Orchestrator, api_token: Option<String>) -> Router {
    let state = AppState {
        orchestrator,
        api_token: api_token.map(Arc::from),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/releases", get(list).post(apply))
        .route("/v1/releases/{name}", get(show))
        .route("/v1/releases/{name}/{command}", post(release_command))
        .route("/v1/releases/{name}/report", get(report_of))
        .route("/v1/history", get(history))
        .route("/v1/dora", get(dora))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::method_not_allowed("this route does not accept that method")
        })
        // As a layer of the whole router (not a route layer) so unknown `/v1` paths
        // answer 401 too and do not reveal which routes exist.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and
/// waits for in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let protected = path == "/v1" || path.starts_with("/v1/");
    if let (true, Some(expected)) = (protected, &state.api_token) {
        let presented = bearer(request.headers()).unwrap_or_default();
        // Constant time, so the token cannot be guessed byte by byte from timings.
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return ApiError::unauthorized(
                "this orchestrator requires `Authorization: Bearer <token>` \
                 (the token given to `serve --api-token`)",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.orchestrator.metrics().await,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyQuery {
    dry_run: Option<String>,
}

async fn apply(
    State(state): State<AppState>,
    query: Result<Query<ApplyQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let dry_run = match query.dry_run.as_deref() {
        None | Some("false") => false,
        Some("true" | "") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`dry_run` is `true` or `false`, not `{other}`"
            )))
        }
    };
    let body = body?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("the release plan is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid_plan(PlanError::Syntax {
            path: "plan".into(),
            message: "the request body is empty; send the release plan (YAML or JSON)".into(),
        }));
    }
    let plan = Plan::from_yaml(text).map_err(ApiError::invalid_plan)?;
    if dry_run {
        return Ok(Json(plan.outline()).into_response());
    }
    let (release, created) = state.orchestrator.apply(plan).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(release)).into_response())
}

async fn list(State(state): State<AppState>) -> Json<Value> {
    let releases: Vec<ReleaseSummary> = state
        .orchestrator
        .list()
        .await
        .iter()
        .map(report::summary)
        .collect();
    Json(json!({ "releases": releases }))
}

async fn find(state: &AppState, name: &str) -> Result<Release, ApiError> {
    state
        .orchestrator
        .get(name)
        .await
        .ok_or_else(|| ApiError::not_found(CommandError::NotFound(name.to_owned()).to_string()))
}

async fn show(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Release>, ApiError> {
    let Path(name) = name?;
    find(&state, &name).await.map(Json)
}

/// Parses an optional JSON command body strictly (core's [`json_body::parse`], as the
/// flag server does): empty means every field's default.
fn command_body<T: DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body::parse(&body).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `by`, or the default when absent or blank.
fn who(by: Option<String>) -> String {
    by.map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| DEFAULT_BY.to_owned())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    service: Option<String>,
    by: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByBody {
    by: Option<String>,
}

/// The body of `abort` and `rollback`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AbortBody {
    reason: Option<String>,
    by: Option<String>,
}

impl AbortBody {
    /// Who, and why (`no reason given` when absent or blank).
    fn who_and_why(self) -> (String, String) {
        let reason = self
            .reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "no reason given".to_owned());
        (who(self.by), reason)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    #[serde(default)]
    full: bool,
    by: Option<String>,
}

/// `POST /v1/releases/{name}/{approve|pause|resume|abort|rollback|promote}`: the body (optional)
/// is read as the command's own shape, so a field another command takes is refused.
async fn release_command(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Release>, ApiError> {
    let Path((name, verb)) = path?;
    let event = match verb.as_str() {
        "approve" => {
            let body: ApproveBody = command_body(body)?;
            Event::Approve {
                service: body.service.filter(|s| !s.trim().is_empty()),
                by: who(body.by),
            }
        }
        "pause" => Event::Pause {
            by: who(command_body::<ByBody>(body)?.by),
        },
        "resume" => Event::Resume {
            by: who(command_body::<ByBody>(body)?.by),
        },
        "abort" => {
            let (by, reason) = command_body::<AbortBody>(body)?.who_and_why();
            Event::Abort { by, reason }
        }
        "rollback" => {
            let (by, reason) = command_body::<AbortBody>(body)?.who_and_why();
            let release = state.orchestrator.rollback(&name, by, reason).await?;
            return Ok(Json(release));
        }
        "promote" => {
            let body: PromoteBody = command_body(body)?;
            if !body.full {
                return Err(ApiError::bad_request(
                    "only full promotion exists: send {\"full\": true} to skip every remaining \
                     step and promote each service to 100%; to pass an approval step, use approve",
                ));
            }
            Event::PromoteFull { by: who(body.by) }
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no command `{other}`: approve, pause, resume, abort, rollback or promote"
            )))
        }
    };
    Ok(Json(state.orchestrator.command(&name, event).await?))
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    format: Option<String>,
}

async fn report_of(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name?;
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let format = query.format.unwrap_or_else(|| "json".to_owned());
    if !["json", "markdown", "notes"].contains(&format.as_str()) {
        return Err(ApiError::bad_request(format!(
            "unknown report format `{format}`; use `json`, `markdown` or `notes`"
        )));
    }
    let release = find(&state, &name).await?;
    let text = match format.as_str() {
        "json" => return Ok(Json(report::json(&release)).into_response()),
        "notes" => report::notes::render(&report::json(&release), report::notes::DEFAULT_TEMPLATE)
            .map_err(|e| ApiError::internal(&e))?,
        _ => report::markdown(&release),
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/markdown; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<String>,
}

async fn history(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let limit = match query.limit {
        None => DEFAULT_HISTORY_LIMIT,
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_HISTORY_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`limit` must be a whole number from 1 to {MAX_HISTORY_LIMIT}, not `{text}`"
                ))
            })?,
    };
    let releases = state
        .orchestrator
        .history()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let releases: Vec<ReleaseSummary> = releases.iter().take(limit).map(report::summary).collect();
    Ok(Json(json!({ "releases": releases })))
}

#[derive(Debug, Deserialize)]
struct DoraQuery {
    window: Option<String>,
    format: Option<String>,
}

async fn dora(
    State(state): State<AppState>,
    query: Result<Query<DoraQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let window = match &query.window {
        None => report::DEFAULT_DORA_WINDOW,
        Some(text) => report::parse_dora_window(text)
            .map_err(|e| ApiError::bad_request(format!("invalid `window`: {e}")))?,
    };
    let format = query.format.unwrap_or_else(|| "json".to_owned());
    if format != "json" && format != "markdown" {
        return Err(ApiError::bad_request(format!(
            "unknown format `{format}`; use `json` or `markdown`"
        )));
    }
    let releases = state
        .orchestrator
        .history()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
        });
    let figures = report::dora(&releases, now, window);
    if format == "json" {
        return Ok(Json(report::dora_json(&figures)).into_response());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/markdown; charset=utf-8"),
        )],
        report::dora_markdown(&figures),
    )
        .into_response())
}
