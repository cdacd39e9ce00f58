//! Switchyard's own evaluation endpoints: `POST /v1/evaluate/{env}/{flag}` and
//! `POST /v1/evaluate/{env}` (bulk), with the context as the JSON body.

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use switchyard_core::{evaluate_all, write_json_str, Context, Evaluation, Snapshot};

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
    let evaluation = result?;
    Ok(crate::http::json::written(
        &current.answer_sizes.rest_one,
        |out| write_one(out, &evaluation, &flag),
    ))
}

/// [`One`] as JSON, written as [`write_bulk`] writes its evaluations.
fn write_one(out: &mut Vec<u8>, evaluation: &Evaluation<'_>, key: &str) {
    out.push(b'{');
    evaluation.write_json_fields(out);
    out.extend_from_slice(b",\"key\":");
    write_json_str(out, key);
    out.push(b'}');
}

/// A single answer: the evaluation's fields, then `key` (the schema, and the
/// serialisation [`write_one`] is tested against).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = EvaluationAnswer)]
struct One<'a> {
    #[serde(flatten)]
    evaluation: Evaluation<'a>,
    /// The flag.
    key: &'a str,
}

/// The bulk answer's schema; [`write_bulk`] writes it.
#[derive(utoipa::ToSchema)]
#[schema(as = BulkEvaluation)]
#[allow(dead_code)] // read by the OpenAPI document only
struct Bulk {
    /// The environment.
    environment: String,
    /// Its revision.
    revision: u64,
    /// Every flag's evaluation by key.
    #[schema(value_type = std::collections::BTreeMap<String, Evaluation>)]
    flags: (),
}

/// `{"environment":..,"revision":..,"flags":{key: evaluation, ..}}` for every flag of
/// the snapshot, in its order, written straight from the evaluations and the JSON
/// their flags keep ([`Evaluation::write_json`]): no tree, no serde per field.
fn write_bulk(out: &mut Vec<u8>, env: &str, revision: u64, snapshot: &Snapshot, ctx: &Context) {
    out.extend_from_slice(b"{\"environment\":");
    write_json_str(out, env);
    out.extend_from_slice(b",\"revision\":");
    out.extend_from_slice(itoa::Buffer::new().format(revision).as_bytes());
    out.extend_from_slice(b",\"flags\":{");
    for (i, (key, evaluation)) in evaluate_all(snapshot, ctx).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, key);
        out.push(b':');
        evaluation.write_json(out);
    }
    out.extend_from_slice(b"}}");
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
    Ok(crate::http::json::written(
        &current.answer_sizes.rest_bulk,
        |out| write_bulk(out, &env, current.revision, &current.snapshot, &ctx),
    ))
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(one, bulk))]
pub struct EvaluateApi;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_written_as_their_schemas_serialise() {
        let flags: Vec<switchyard_core::Flag> = serde_json::from_value(json!([
            {"key": "a \"quoted\" key", "kind": "json", "off_variant": null,
             "variants": {"x": "ex", "y": {"why": [1, 2.5]}},
             "rules": [{"id": "r", "when": {"users": ["u-1"]}, "serve": {"variant": "y"}}],
             "default": {"variant": "x"}},
            {"key": "killed", "kind": "boolean", "enabled": false, "off_variant": null,
             "variants": {"on": true, "off": false}, "default": {"variant": "on"}}
        ]))
        .expect("flags parse");
        let snapshot = Snapshot::compile(flags, vec![]).expect("compiles");
        for user in ["u-1", "u-2"] {
            let ctx = Context::new(user);
            let mut bulk = Vec::new();
            write_bulk(&mut bulk, "prod\u{e9}", 12, &snapshot, &ctx);
            let flags: serde_json::Map<String, serde_json::Value> = evaluate_all(&snapshot, &ctx)
                .map(|(key, e)| (key.to_owned(), serde_json::to_value(e).expect("serialises")))
                .collect();
            let expected = json!({"environment": "prod\u{e9}", "revision": 12, "flags": flags});
            assert_eq!(
                String::from_utf8(bulk).expect("UTF-8"),
                serde_json::to_string(&expected).expect("serialises")
            );
            for key in ["a \"quoted\" key", "killed", "missing"] {
                let evaluation = switchyard_core::evaluate(&snapshot, key, &ctx);
                let mut one = Vec::new();
                write_one(&mut one, &evaluation, key);
                assert_eq!(
                    String::from_utf8(one).expect("UTF-8"),
                    serde_json::to_string(&One { evaluation, key }).expect("serialises")
                );
            }
        }
    }
}
