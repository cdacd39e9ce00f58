//! `switchyard.v1.Sync.Stream`: the SSE stream (`GET /v1/sdk/stream`) as a gRPC
//! server stream, built on the same [`Subscription`]: a snapshot first (or, with
//! `after_revision`, the missed changes when the server still holds them all), then a
//! `CHANGE` per revision, a fresh `SNAPSHOT` after a lag or a gap, and the end of the
//! stream when the server shuts down. Documents are byte for byte the SSE ones.
//!
//! The environment comes from the sdk token; admin tokens name it in `environment`;
//! eval tokens are refused (`PERMISSION_DENIED`).

use std::pin::Pin;

use futures_util::Stream;
use tonic::{Request, Response, Status};

use super::convert::status;
use super::proto::switchyard as pb;
use super::proto::switchyard::sync_event::Kind;
use super::proto::switchyard::sync_server::Sync as SyncApi;
use super::{authenticate, Caller, GrpcState};
use crate::limits::Budget;
use crate::scope::scoped_env;
use crate::store::TokenKind;
use crate::subscription::{Outgoing, Subscription};
use crate::telemetry::StreamProtocol;

/// The `switchyard.v1.Sync` service.
pub struct SyncService {
    state: GrpcState,
}

impl SyncService {
    /// The service over the server's shared state.
    pub fn new(state: GrpcState) -> Self {
        SyncService { state }
    }
}

/// A stream event as a protobuf `SyncEvent`.
pub fn sync_event(outgoing: &Outgoing) -> pb::SyncEvent {
    let kind = match outgoing {
        Outgoing::Snapshot(_) => Kind::Snapshot,
        Outgoing::Change(_) => Kind::Change,
    };
    pb::SyncEvent {
        kind: kind.into(),
        revision: outgoing.revision(),
        document: outgoing.document().clone(),
    }
}

/// The events of one client's stream.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::SyncEvent, Status>> + Send>>;

#[tonic::async_trait]
impl SyncApi for SyncService {
    type StreamStream = EventStream;

    async fn stream(
        &self,
        request: Request<pb::StreamRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let principal =
            authenticate(&self.state.app, Caller::from(&request), Budget::Stream).await?;
        let request = request.into_inner();
        let env = scoped_env(
            &principal,
            (!request.environment.is_empty()).then_some(request.environment.as_str()),
            &[TokenKind::Sdk],
            "admin tokens must name the environment in the request's `environment` field",
        )
        .map_err(status)?;
        let subscription = Subscription::start(&self.state.app, &env, request.after_revision)
            .map_err(status)?
            .held_by(&principal)
            .map_err(status)?
            .counted_as(StreamProtocol::GrpcSync);
        let events = futures_util::stream::unfold(subscription, |mut subscription| async move {
            let next = subscription.next().await?;
            Some((Ok(sync_event(&next)), subscription))
        });
        Ok(Response::new(Box::pin(events)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::environments::ChangeEvent;

    #[test]
    fn every_message_holds_the_shared_document_not_a_copy() {
        let change = Arc::new(ChangeEvent {
            env: switchyard_core::model::EnvName::new("prod"),
            revision: 7,
            document: Bytes::from_static(br#"{"environment":"prod","revision":7}"#),
        });
        let outgoing = Outgoing::Change(change);
        let event = sync_event(&outgoing);
        assert_eq!((event.kind(), event.revision), (Kind::Change, 7));
        assert_eq!(event.document, outgoing.document());
        assert_eq!(event.document.as_ptr(), outgoing.document().as_ptr());
    }
}
