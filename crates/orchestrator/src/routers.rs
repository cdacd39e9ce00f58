//! Traffic routers: what splits a service's traffic between its stable and canary
//! versions.
//!
//! *API Boundary*: a router is told an absolute canary weight in percent (0..=100), so
//! setting it twice is harmless — the driver relies on that to resume after a crash.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::plan::{Canary, Strategy};

pub mod gateway_api;
pub mod haproxy;
pub mod haproxy_rolling;
pub mod nginx_ingress;
pub mod webhook;

/// Sets and reads the share of a service's traffic sent to its canary.
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Sends `weight` % of the traffic to the canary and the rest to stable; returns
    /// once the router confirms the new weights.
    async fn set_weight(&self, weight: u32) -> Result<(), RouterError>;

    /// The canary's current share in percent, as the router reports it.
    async fn weight(&self) -> Result<u32, RouterError>;

    /// Drops the previous (stable) version for good once a promoted blue-green
    /// release's `keep_previous` has passed. Nothing by default: the router has it at
    /// weight 0 since the promotion, and that is all it can do.
    async fn retire_previous(&self) -> Result<(), RouterError> {
        Ok(())
    }
}

/// A router call that failed.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The router could not be reached or the connection broke.
    #[error("cannot reach the router at {address}")]
    Unreachable {
        /// Where it was expected.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The router answered, but refused or did not confirm the change.
    #[error("router at {address} answered `{answer}` to `{command}`")]
    Rejected {
        /// Where.
        address: String,
        /// What was sent.
        command: String,
        /// What came back.
        answer: String,
    },
    /// The weight asked for is not a percentage; nothing was sent.
    #[error("canary weight {weight} is not a percentage (0..=100)")]
    InvalidWeight {
        /// What was asked for.
        weight: u32,
    },
    /// An HTTP router did not answer in time.
    #[error("router at {address} did not answer within {}", humantime::format_duration(*timeout))]
    TimedOut {
        /// Where.
        address: String,
        /// How long it was given.
        timeout: Duration,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP router could not be called, or its connection broke.
    #[error("request to the router at {address} failed")]
    Request {
        /// Where.
        address: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// No Kubernetes client could be configured; nothing was sent.
    #[error("cannot configure a Kubernetes client from {kubeconfig}")]
    KubeConfig {
        /// The kubeconfig path, or how the configuration was to be inferred.
        kubeconfig: String,
        /// Why.
        #[source]
        source: Box<KubeConfigError>,
    },
    /// The Kubernetes object the router works on does not exist.
    #[error("{object} does not exist")]
    NotFound {
        /// Kind, namespace and name, e.g. `HTTPRoute shop/payments`.
        object: String,
        /// The API server's answer.
        #[source]
        source: Box<kube::Error>,
    },
    /// A Kubernetes API call failed.
    #[error("cannot {action} {object} through the Kubernetes API")]
    Kube {
        /// Kind, namespace and name.
        object: String,
        /// `read` or `patch`.
        action: &'static str,
        /// Why.
        #[source]
        source: Box<kube::Error>,
    },
    /// Someone else changed the object between each read and write of the router.
    #[error("{object} changed under each of {attempts} attempts to update it")]
    Conflict {
        /// Kind, namespace and name.
        object: String,
        /// How many read-modify-write rounds were tried.
        attempts: u32,
        /// The last conflict.
        #[source]
        source: Box<kube::Error>,
    },
    /// A backendRef the plan names is in no rule of the HTTPRoute.
    #[error("{route} has no backendRef named `{backend}` in any rule")]
    MissingBackend {
        /// `HTTPRoute namespace/name`.
        route: String,
        /// The missing name.
        backend: String,
    },
    /// Both backendRefs exist, but never in the same rule, so no rule splits traffic.
    #[error("{route} has no rule whose backendRefs include both `{stable}` and `{canary}`")]
    NoSplitRule {
        /// `HTTPRoute namespace/name`.
        route: String,
        /// The stable backendRef's name.
        stable: String,
        /// The canary backendRef's name.
        canary: String,
    },
    /// The Ingress is not a canary Ingress, which the operator has to create.
    #[error(
        "{ingress} is not a canary Ingress: its annotation `nginx.ingress.kubernetes.io/canary` \
         is {found}, not \"true\" (creating the canary Ingress is the operator's job)"
    )]
    NotCanary {
        /// `Ingress namespace/name`.
        ingress: String,
        /// The annotation's value, quoted, or `absent`.
        found: String,
    },
    /// A field the router reads holds something that is not a weight.
    #[error("{object}: {field} is `{value}`, not a weight")]
    Malformed {
        /// Kind, namespace and name.
        object: String,
        /// Which field or annotation.
        field: String,
        /// What it holds.
        value: String,
    },
    /// The write was accepted, but reading the object back shows other weights.
    #[error("{object} reads back {found} after setting {expected}")]
    NotApplied {
        /// Kind, namespace and name.
        object: String,
        /// The weights set.
        expected: String,
        /// The weights read back.
        found: String,
    },
}

/// Why no Kubernetes client could be configured.
#[derive(Debug, thiserror::Error)]
pub enum KubeConfigError {
    /// The kubeconfig file could not be read or does not describe a usable context.
    #[error("cannot load the kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// Neither `KUBECONFIG`, `~/.kube/config` nor an in-cluster service account works.
    #[error("cannot infer a configuration (KUBECONFIG, ~/.kube/config or in-cluster)")]
    Infer(#[source] kube::config::InferConfigError),
    /// The configuration was read, but the client could not be built from it.
    #[error("cannot build a client from the configuration")]
    Client(#[source] kube::Error),
}

/// The router a plan's `canary` section describes, for the service named `service`
/// (the webhook router sends that name along) released with `strategy` (a rolling
/// update switches HAProxy servers' states instead of weights). Never fails: routers
/// connect on first use, so a misconfiguration surfaces from
/// [`TrafficRouter::set_weight`].
pub fn build(service: &str, canary: &Canary, strategy: &Strategy) -> Arc<dyn TrafficRouter> {
    match canary {
        Canary::None => Arc::new(NoRouter),
        Canary::Haproxy(config) => match strategy {
            Strategy::Rolling(r) => Arc::new(haproxy_rolling::HaproxyRolling::new(
                config.clone(),
                r.max_unavailable,
            )),
            _ => Arc::new(haproxy::Haproxy::new(config.clone())),
        },
        Canary::GatewayApi(config) => Arc::new(gateway_api::GatewayApi::new(config.clone())),
        Canary::NginxIngress(config) => Arc::new(nginx_ingress::NginxIngress::new(config.clone())),
        Canary::Webhook(config) => Arc::new(webhook::Webhook::new(service, config.clone())),
    }
}

/// `router: none`: the release ramps only flags; there is no traffic to move.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRouter;

#[async_trait]
impl TrafficRouter for NoRouter {
    async fn set_weight(&self, _weight: u32) -> Result<(), RouterError> {
        Ok(())
    }

    async fn weight(&self) -> Result<u32, RouterError> {
        Ok(0)
    }
}
