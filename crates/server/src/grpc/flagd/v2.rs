//! `flagd.evaluation.v2.Service`: what current flagd providers in RPC mode speak (the
//! Python provider from 0.6, among others). As v1 without `ResolveAll`, and with
//! optional values and variants: a flag that defers to the caller's code default
//! leaves both unset, with reason `DISABLED`.

use std::pin::Pin;

use futures_util::Stream;
use serde_json::Value;
use tonic::{Request, Response, Status};

use super::{event_stream, flag_requests, integer, Event, FlagdService, Want};
use crate::grpc::proto::flagd_v2 as pb;
use crate::grpc::proto::flagd_v2::service_server::{Service, ServiceServer};
use crate::grpc::{convert, Caller, GrpcState};

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

fn message(event: Event) -> pb::EventStreamResponse {
    pb::EventStreamResponse {
        r#type: event.kind.to_owned(),
        data: event.data,
    }
}

#[tonic::async_trait]
impl Service for FlagdService {
    async fn resolve_boolean(
        &self,
        request: Request<pb::ResolveBooleanRequest>,
    ) -> Result<Response<pb::ResolveBooleanResponse>, Status> {
        self.answer(request, Want::Boolean, Value::as_bool, |value, d| {
            pb::ResolveBooleanResponse {
                value,
                reason: d.reason.to_owned(),
                variant: d.variant,
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
                value,
                reason: d.reason.to_owned(),
                variant: d.variant,
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
                value,
                reason: d.reason.to_owned(),
                variant: d.variant,
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
                value,
                reason: d.reason.to_owned(),
                variant: d.variant,
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
                value,
                reason: d.reason.to_owned(),
                variant: d.variant,
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
