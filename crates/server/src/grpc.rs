//! The gRPC API (tonic), on its own port (`--grpc-addr`): `switchyard.v1.Evaluation`
//! and `switchyard.v1.Sync`, flagd-compatible `flagd.evaluation.v1.Service` and `v2.Service` and
//! `flagd.sync.v1.FlagSyncService`, gRPC
//! health (`grpc.health.v1`) and server reflection. Tokens travel as
//! `authorization: Bearer <token>` metadata with the same kinds and scopes as REST.
//! Generated protobuf types stay inside this module; `convert.rs` maps them.

pub mod convert;
pub mod encoded;
pub mod evaluation;
pub mod flagd;
pub mod sync;

use std::future::Future;

use switchyard_core::model::EnvName;
use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::auth::Principal;
use crate::limits::Budget;
use crate::state::AppState;
use crate::tls::Peer;

/// Generated code.
pub mod proto {
    /// `switchyard.v1`.
    pub mod switchyard {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("switchyard.v1");
    }

    /// `flagd.evaluation.v1`: the flagd-compatible evaluation service.
    pub mod flagd {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("flagd.evaluation.v1");
    }

    /// `flagd.evaluation.v2`: the same service as current flagd providers speak it.
    pub mod flagd_v2 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("flagd.evaluation.v2");
    }

    /// `flagd.sync.v1`: flag definitions for flagd's in-process providers.
    pub mod flagd_sync {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("flagd.sync.v1");
    }

    /// The server side of `switchyard.v1.Evaluation` as this server runs it:
    /// `EvaluateAll` answers with [`super::encoded::EvaluateAllAnswer`], the same
    /// bytes as `EvaluateAllResponse` (generated a second time by `build.rs`).
    pub mod switchyard_server {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        include!(concat!(env!("OUT_DIR"), "/server_side/switchyard.v1.rs"));
    }

    /// Every service's descriptors, for server reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("switchyard_descriptor");
}

/// What the gRPC services share.
#[derive(Clone)]
pub struct GrpcState {
    /// The same state the HTTP handlers use.
    pub app: AppState,
    /// The environment the flagd-compatible service serves to callers without a token
    /// (`--flagd-env`); `None` requires a token there too.
    pub flagd_env: Option<EnvName>,
}

/// Who calls an RPC: its metadata and, when known, its address. (gRPC does not
/// pass client certificates on, so admin tokens that need one are refused here.)
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    metadata: &'a MetadataMap,
    peer: Option<Peer>,
}

impl<'a, T> From<&'a tonic::Request<T>> for Caller<'a> {
    fn from(request: &'a tonic::Request<T>) -> Self {
        Caller {
            metadata: request.metadata(),
            peer: request.remote_addr().map(|addr| Peer {
                addr,
                client_certified: false,
            }),
        }
    }
}

impl Caller<'_> {
    /// Whether it sent a token.
    pub fn has_token(&self) -> bool {
        self.metadata.contains_key("authorization")
    }
}

/// The principal behind a request's `authorization` metadata, within the rate
/// limits of `budget` (`limits.rs`).
pub async fn authenticate(
    state: &AppState,
    caller: Caller<'_>,
    budget: Budget,
) -> Result<Principal, Status> {
    let header = caller.metadata.get("authorization").ok_or_else(|| {
        Status::unauthenticated("missing `authorization: Bearer <token>` metadata")
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(crate::auth::bearer)
        .ok_or_else(|| {
            Status::unauthenticated("the authorization metadata must be `Bearer <token>`")
        })?;
    state
        .authenticate_within(token, budget, caller.peer)
        .await
        .map_err(convert::status)
}

/// Serves every gRPC service on `listener` (over TLS with `tls`) until `shutdown`
/// resolves.
pub async fn serve(
    state: GrpcState,
    listener: TcpListener,
    tls: Option<crate::tls::TlsSettings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let routes = tonic::service::Routes::default().add_service(health_service);
    let routes = match reflection {
        Ok(reflection) => routes.add_service(reflection),
        Err(error) => {
            tracing::warn!(%error, "gRPC reflection unavailable");
            routes
        }
    };
    let routes = services(routes, &state, &health).await;
    let server = tonic::transport::Server::builder().add_routes(routes);
    match tls {
        // Nagle's algorithm off: small unary answers must not wait for more to send.
        None => {
            server
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    shutdown,
                )
                .await
        }
        // (The TLS listener turns Nagle off itself.)
        Some(tls) => {
            server
                .serve_with_incoming_shutdown(crate::tls::grpc_incoming(listener, &tls)?, shutdown)
                .await
        }
    }
    .map_err(std::io::Error::other)
}

/// The API services; each marks itself serving in the health reporter.
#[allow(unused_variables)]
async fn services(
    routes: tonic::service::Routes,
    state: &GrpcState,
    health: &tonic_health::server::HealthReporter,
) -> tonic::service::Routes {
    // switchyard.v1 Evaluation and Sync:
    let routes = {
        use proto::switchyard::sync_server::SyncServer;
        use proto::switchyard_server::evaluation_server::EvaluationServer;
        health
            .set_serving::<EvaluationServer<evaluation::EvaluationService>>()
            .await;
        health.set_serving::<SyncServer<sync::SyncService>>().await;
        routes
            .add_service(EvaluationServer::new(evaluation::EvaluationService::new(
                state.clone(),
            )))
            .add_service(SyncServer::new(sync::SyncService::new(state.clone())))
    };
    // flagd.evaluation.v1 and v2 Service:
    flagd::register(routes, state, health).await
}
