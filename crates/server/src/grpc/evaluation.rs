//! `switchyard.v1.Evaluation`: `Evaluate` (one flag) and `EvaluateAll` (every flag)
//! for a context, the gRPC twins of `POST /v1/evaluate/{env}/{flag}` and
//! `POST /v1/evaluate/{env}`.
//!
//! The environment comes from the sdk or eval token; admin tokens name it in the
//! request's `environment`. Statuses: missing or invalid token → `UNAUTHENTICATED`,
//! another token kind or environment → `PERMISSION_DENIED`, admin token without an
//! environment or a bad context → `INVALID_ARGUMENT`, unknown environment or flag →
//! `NOT_FOUND`.

use std::sync::Arc;

use switchyard_core::{evaluate_all, Evaluation as Outcome};
use tonic::{Request, Response, Status};

use super::convert::{context, from_json, status};
use super::encoded::EvaluateAllAnswer;
use super::proto::switchyard as pb;
use super::proto::switchyard_server::evaluation_server::Evaluation;
use super::{authenticate, Caller, GrpcState};
use crate::environments::EnvState;
use crate::limits::Budget;
use crate::scope::evaluate_known;
use crate::scope::{env_state, scoped_env};
use crate::store::TokenKind;

/// The `switchyard.v1.Evaluation` service.
pub struct EvaluationService {
    state: GrpcState,
}

impl EvaluationService {
    /// The service over the server's shared state.
    pub fn new(state: GrpcState) -> Self {
        EvaluationService { state }
    }

    /// The environment a request evaluates in, for the token in its metadata.
    async fn environment(
        &self,
        caller: Caller<'_>,
        requested: &str,
    ) -> Result<Arc<EnvState>, Status> {
        let principal = authenticate(&self.state.app, caller, Budget::Read).await?;
        let env = scoped_env(
            &principal,
            (!requested.is_empty()).then_some(requested),
            &[TokenKind::Sdk, TokenKind::Eval],
            "admin tokens must name the environment in the request's `environment` field",
        )
        .map_err(status)?;
        env_state(&self.state.app, &env).map_err(status)
    }
}

/// An evaluation as a protobuf `Result`.
pub fn result(flag_key: &str, outcome: &Outcome<'_>) -> pb::Result {
    pb::Result {
        flag_key: flag_key.to_owned(),
        value: outcome.value.map(from_json),
        variant: outcome.variant.unwrap_or_default().to_owned(),
        reason: outcome.reason.as_str().to_owned(),
        rule_id: outcome.rule_id.unwrap_or_default().to_owned(),
        flag_version: outcome.flag_version,
        error_code: outcome
            .error
            .map(|code| code.as_str().to_owned())
            .unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl Evaluation for EvaluationService {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let current = self
            .environment(Caller::from(&request), &request.get_ref().environment)
            .await?;
        let pb::EvaluateRequest {
            flag_key,
            context: object,
            ..
        } = request.into_inner();
        let ctx = context(object)?;
        let outcome = evaluate_known(&current, &flag_key, &ctx);
        self.state
            .app
            .evaluated_one(current.name.as_str(), &flag_key, "grpc");
        let outcome = outcome.map_err(status)?;
        Ok(Response::new(pb::EvaluateResponse {
            result: Some(result(&flag_key, &outcome)),
        }))
    }

    async fn evaluate_all(
        &self,
        request: Request<pb::EvaluateAllRequest>,
    ) -> Result<Response<EvaluateAllAnswer>, Status> {
        let current = self
            .environment(Caller::from(&request), &request.get_ref().environment)
            .await?;
        let ctx = context(request.into_inner().context)?;
        let answer = EvaluateAllAnswer::new(
            current.name.as_str(),
            current.revision,
            evaluate_all(&current.snapshot, &ctx),
            &current.answer_sizes.grpc_bulk,
        );
        self.state.app.telemetry.evaluated(
            current.name.as_str(),
            "grpc",
            current.snapshot.len() as u64,
        );
        Ok(Response::new(answer))
    }
}
