//! `flagd.evaluation.v1.Service`: what older flagd providers in RPC mode speak. Its
//! values and variants are not optional, so a flag that defers to the caller's code
//! default answers their zero values with reason `DISABLED` and an empty variant (as
//! flagd does for a flag without a default variant), which providers read as "use the
//! code default".

use std::collections::HashMap;
use std::pin::Pin;

use futures_util::Stream;
use serde_json::{json, Value};
use switchyard_core::{evaluate_all, ErrorCode, Reason};
use tonic::{Request, Response, Status};

use super::{details, event_stream, flag_requests, flagd_context, integer, Event, FlagdService};
use super::{Want, API};
use crate::grpc::proto::flagd as pb;
use crate::grpc::proto::flagd::service_server::{Service, ServiceServer};
use crate::grpc::{convert, Caller, GrpcState};
use crate::limits::Budget;

/// Adds the service to `routes` and marks it serving in the health reporter.
pub async fn register(
    routes: tonic::service::Routes,
    state: &GrpcState,
    health: &tonic_health::server::HealthReporter,
) -> tonic::service::Routes {
    health.set_serving::<ServiceServer<FlagdService>>().await;
    routes.add_service(ServiceServer::new(FlagdService::new(state.clone())))
}

flag_requests!(
    pb::ResolveBooleanRequest,
    pb::ResolveStringRequest,
    pb::ResolveFloatRequest,
    pb::ResolveIntRequest,
    pb::ResolveObjectRequest,
);

/// A value as `AnyFlag`'s oneof; `None` for arrays and null, which flagd's types
/// cannot carry.
fn any_value(value: &Value) -> Option<pb::any_flag::Value> {
    use pb::any_flag::Value as V;
    match value {
        Value::Bool(b) => Some(V::BoolValue(*b)),
        Value::String(s) => Some(V::StringValue(s.clone())),
        Value::Number(n) => n.as_f64().map(V::DoubleValue),
        Value::Object(o) => Some(V::ObjectValue(convert::json_to_struct(o))),
        Value::Array(_) | Value::Null => None,
    }
}

fn message(event: Event) -> pb::EventStreamResponse {
    pb::EventStreamResponse {
        r#type: event.kind.to_owned(),
        data: event.data,
    }
}

#[tonic::async_trait]
impl Service for FlagdService {
    async fn resolve_all(
        &self,
        request: Request<pb::ResolveAllRequest>,
    ) -> Result<Response<pb::ResolveAllResponse>, Status> {
        let current = self
            .environment(Caller::from(&request), Budget::Read)
            .await?;
        let ctx = flagd_context(request.into_inner().context)?;
        let mut flags = HashMap::with_capacity(current.snapshot.len());
        for (key, result) in evaluate_all(&current.snapshot, &ctx) {
            let value = match (result.error, result.value) {
                (None, Some(value)) if result.reason != Reason::Error => {
                    let Some(value) = any_value(value) else {
                        tracing::debug!(
                            flag = key,
                            "ResolveAll skips a value that is not a boolean, string, number or object"
                        );
                        continue;
                    };
                    Some(value)
                }
                // Defers to the code default: no value, as in a bulk OFREP answer.
                _ if result.defers() => None,
                (error, _) => {
                    let code = error.unwrap_or(ErrorCode::General).as_str();
                    tracing::error!(env = %current.name, flag = key, code, "flagd evaluation failed");
                    continue;
                }
            };
            let details = details(&result);
            flags.insert(
                key.to_owned(),
                pb::AnyFlag {
                    reason: details.reason.to_owned(),
                    variant: details.variant.unwrap_or_default(),
                    value,
                    metadata: Some(details.metadata),
                },
            );
        }
        self.state.app.telemetry.evaluated(
            current.name.as_str(),
            API,
            current.snapshot.len() as u64,
        );
        let metadata =
            json!({ "environment": current.name.as_str(), "revision": current.revision });
        Ok(Response::new(pb::ResolveAllResponse {
            flags,
            metadata: metadata.as_object().map(convert::json_to_struct),
        }))
    }

    async fn resolve_boolean(
        &self,
        request: Request<pb::ResolveBooleanRequest>,
    ) -> Result<Response<pb::ResolveBooleanResponse>, Status> {
        self.answer(request, Want::Boolean, Value::as_bool, |value, d| {
            pb::ResolveBooleanResponse {
                value: value.unwrap_or_default(),
                reason: d.reason.to_owned(),
                variant: d.variant.unwrap_or_default(),
                metadata: Some(d.metadata),
            }
        })
        .await
    }

    async fn resolve_string(
        &self,
        request: Request<pb::ResolveStringRequest>,
    ) -> Result<Response<pb::ResolveStringResponse>, Status> {
        self.answer(
            request,
            Want::String,
            |v| v.as_str().map(str::to_owned),
            |value, d| pb::ResolveStringResponse {
                value: value.unwrap_or_default(),
                reason: d.reason.to_owned(),
                variant: d.variant.unwrap_or_default(),
                metadata: Some(d.metadata),
            },
        )
        .await
    }

    async fn resolve_float(
        &self,
        request: Request<pb::ResolveFloatRequest>,
    ) -> Result<Response<pb::ResolveFloatResponse>, Status> {
        self.answer(request, Want::Float, Value::as_f64, |value, d| {
            pb::ResolveFloatResponse {
                value: value.unwrap_or_default(),
                reason: d.reason.to_owned(),
                variant: d.variant.unwrap_or_default(),
                metadata: Some(d.metadata),
            }
        })
        .await
    }

    async fn resolve_int(
        &self,
        request: Request<pb::ResolveIntRequest>,
    ) -> Result<Response<pb::ResolveIntResponse>, Status> {
        self.answer(request, Want::Integer, integer, |value, d| {
            pb::ResolveIntResponse {
                value: value.unwrap_or_default(),
                reason: d.reason.to_owned(),
                variant: d.variant.unwrap_or_default(),
                metadata: Some(d.metadata),
            }
        })
        .await
    }

    async fn resolve_object(
        &self,
        request: Request<pb::ResolveObjectRequest>,
    ) -> Result<Response<pb::ResolveObjectResponse>, Status> {
        self.answer(
            request,
            Want::Object,
            |v| v.as_object().map(convert::json_to_struct),
            |value, d| pb::ResolveObjectResponse {
                value: Some(value.unwrap_or_default()),
                reason: d.reason.to_owned(),
                variant: d.variant.unwrap_or_default(),
                metadata: Some(d.metadata),
            },
        )
        .await
    }

    type EventStreamStream =
        Pin<Box<dyn Stream<Item = Result<pb::EventStreamResponse, Status>> + Send + 'static>>;

    async fn event_stream(
        &self,
        request: Request<pb::EventStreamRequest>,
    ) -> Result<Response<Self::EventStreamStream>, Status> {
        let events = self.events(Caller::from(&request)).await?;
        Ok(Response::new(event_stream(events, message)))
    }
}
