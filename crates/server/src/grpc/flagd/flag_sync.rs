//! `flagd.sync.v1.FlagSyncService`: the environment's flags as flagd flag definitions
//! (`switchyard_core::flagd`), for flagd's in-process providers, which evaluate them
//! locally. `SyncFlags` sends the whole configuration on connect and again after every
//! change that can change an evaluation (the same changes `EventStream` reports), and
//! ends when the server stops; `FetchAllFlags` answers it once; `GetMetadata` is empty
//! (see there). A flag left out is named with its reason in the configuration's
//! metadata and logged each time a configuration is sent; such providers answer it
//! `FLAG_NOT_FOUND`.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use serde_json::{json, Map};
use switchyard_core::flagd::export;
use tonic::{Request, Response, Status};

use super::{FlagdService, CONFIGURATION_CHANGE, PROVIDER_READY};
use crate::environments::EnvState;
use crate::grpc::proto::flagd_sync as pb;
use crate::grpc::proto::flagd_sync::flag_sync_service_server::{
    FlagSyncService, FlagSyncServiceServer,
};
use crate::grpc::{Caller, GrpcState};
use crate::limits::Budget;

/// Adds the service to `routes` and marks it serving in the health reporter.
pub async fn register(
    routes: tonic::service::Routes,
    state: &GrpcState,
    health: &tonic_health::server::HealthReporter,
) -> tonic::service::Routes {
    health
        .set_serving::<FlagSyncServiceServer<FlagdService>>()
        .await;
    routes.add_service(FlagSyncServiceServer::new(FlagdService::new(state.clone())))
}

/// The flagd configuration of an environment's current state. Its flag-set metadata
/// (which flagd adds to every evaluation's metadata) names the environment, the
/// revision and, in `excluded_flags`, each flag left out with its reason; every flag
/// left out is logged too.
fn configuration_text(current: &EnvState) -> String {
    let mut metadata = Map::new();
    metadata.insert("environment".to_owned(), json!(current.name.as_str()));
    metadata.insert("revision".to_owned(), json!(current.revision));
    let segments: Vec<_> = current.snapshot.segments().collect();
    let mut export = export(current.snapshot.flags(), &segments, metadata);
    for (flag, reason) in &export.excluded {
        tracing::warn!(env = %current.name, flag, reason, "flag left out of the flagd sync");
    }
    if !export.excluded.is_empty() {
        let excluded: Vec<String> = export
            .excluded
            .iter()
            .map(|(flag, reason)| format!("{flag}: {reason}"))
            .collect();
        export.configuration["metadata"]["excluded_flags"] = json!(excluded.join("; "));
    }
    export.configuration.to_string()
}

#[tonic::async_trait]
impl FlagSyncService for FlagdService {
    type SyncFlagsStream =
        Pin<Box<dyn Stream<Item = Result<pb::SyncFlagsResponse, Status>> + Send + 'static>>;

    async fn sync_flags(
        &self,
        request: Request<pb::SyncFlagsRequest>,
    ) -> Result<Response<Self::SyncFlagsStream>, Status> {
        let events = self.events(Caller::from(&request)).await?;
        let envs = Arc::clone(&self.state.app.envs);
        let stream = futures_util::stream::unfold(events, move |mut events| {
            let envs = Arc::clone(&envs);
            async move {
                loop {
                    let event = events.next().await?;
                    // Keep-alives have no counterpart here; the rest say "send it all".
                    if event.kind != PROVIDER_READY && event.kind != CONFIGURATION_CHANGE {
                        continue;
                    }
                    let current = envs.get(events.env.as_str())?;
                    let message = pb::SyncFlagsResponse {
                        flag_configuration: configuration_text(&current),
                        sync_context: None,
                    };
                    return Some((Ok(message), events));
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_all_flags(
        &self,
        request: Request<pb::FetchAllFlagsRequest>,
    ) -> Result<Response<pb::FetchAllFlagsResponse>, Status> {
        let current = self
            .environment(Caller::from(&request), Budget::Read)
            .await?;
        Ok(Response::new(pb::FetchAllFlagsResponse {
            flag_configuration: configuration_text(&current),
        }))
    }

    /// Empty: flagd's providers merge this metadata into every evaluation context, so
    /// anything here could shadow a caller's attribute. What flagd puts here, the
    /// configuration's own metadata carries.
    async fn get_metadata(
        &self,
        request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        self.environment(Caller::from(&request), Budget::Read)
            .await?;
        Ok(Response::new(pb::GetMetadataResponse {
            metadata: Some(Default::default()),
        }))
    }
}
