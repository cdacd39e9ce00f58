//! Switchyard's own evaluation endpoints: `POST /v1/evaluate/{env}/{flag}` and
//! `POST /v1/evaluate/{env}` (bulk), with the context as the JSON body.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Serialize, Serializer};
use switchyard_core::{evaluate_all, Context, Evaluation, Snapshot};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::json::{body_bytes, Path};
use crate::scope::{env_state, evaluate_known, read_context};
use crate::state::AppState;
use crate::store::TokenKind;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/evaluate/{env}/{flag}", post(one))
        .route("/v1/evaluate/{env}", post(bulk))
}

/// The context in a request body; an empty body is an anonymous context.
pub async fn context_body(request: Request, state: &AppState) -> Result<Context, ApiError> {
    let bytes = body_bytes(request, state).await?;
    read_context(&bytes).map_err(ApiError::bad_request)
}

#[utoipa::path(
    post,
    path = "/v1/evaluate/{env}/{flag}",
    tag = "evaluation",
    summary = "Evaluate one flag for the context in the body",
    security(("bearer" = [])),
    request_body(content = Context, description = "The context: {\"targetingKey\": \"user-42\", \"groups\": [..], attributes...}; none is an anonymous context", content_type = "application/json"),
    params(("env" = String, Path, description = "Environment"), ("flag" = String, Path, description = "Flag key")),
    responses((status = 200, description = "The evaluation", body = One), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 413, description = "Body too large"))
)]
async fn one(
    State(state): State<AppState>,
    principal: Principal,
    Path((env, flag)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    principal.require_env(&env, &[TokenKind::Sdk, TokenKind::Eval])?;
    let current = env_state(&state, &env)?;
    let ctx = context_body(request, &state).await?;
    let result = evaluate_known(&current, &flag, &ctx);
    state.evaluated_one(&env, &flag, "rest");
    Ok(axum::Json(One {
        evaluation: result?,
        key: &flag,
    })
    .into_response())
}

/// A single answer: the evaluation's fields, then `key`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = EvaluationAnswer)]
struct One<'a> {
    #[serde(flatten)]
    evaluation: Evaluation<'a>,
    /// The flag.
    key: &'a str,
}

/// The bulk answer, serialised straight from the evaluations: no JSON tree is built
/// in between (it cost an allocation per field of every flag).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BulkEvaluation)]
struct Bulk<'a> {
    /// The environment.
    environment: &'a str,
    /// Its revision.
    revision: u64,
    /// Every flag's evaluation by key.
    #[schema(value_type = std::collections::BTreeMap<String, Evaluation>)]
    flags: EveryFlag<'a>,
}

/// `{key: evaluation, ..}` for every flag of the snapshot, in its order.
struct EveryFlag<'a> {
    snapshot: &'a Snapshot,
    ctx: &'a Context,
}

impl Serialize for EveryFlag<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(evaluate_all(self.snapshot, self.ctx))
    }
}

#[utoipa::path(
    post,
    path = "/v1/evaluate/{env}",
    tag = "evaluation",
    summary = "Evaluate every flag for the context in the body",
    security(("bearer" = [])),
    request_body(content = Context, description = "The context: {\"targetingKey\": \"user-42\", \"groups\": [..], attributes...}; none is an anonymous context", content_type = "application/json"),
    params(("env" = String, Path, description = "Environment")),
    responses((status = 200, description = "Evaluations by flag key", body = Bulk), (status = 400, description = "Malformed request"), (status = 404, description = "No such environment or object"), (status = 413, description = "Body too large"))
)]
async fn bulk(
    State(state): State<AppState>,
    principal: Principal,
    Path(env): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    principal.require_env(&env, &[TokenKind::Sdk, TokenKind::Eval])?;
    let current = env_state(&state, &env)?;
    let ctx = context_body(request, &state).await?;
    state
        .telemetry
        .evaluated(&env, "rest", current.snapshot.len() as u64);
    let answer = Bulk {
        environment: &env,
        revision: current.revision,
        flags: EveryFlag {
            snapshot: &current.snapshot,
            ctx: &ctx,
        },
    };
    Ok(crate::http::json::sized(
        &answer,
        &current.answer_sizes.rest_bulk,
    ))
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(one, bulk))]
pub struct EvaluateApi;
