//! Traffic routers: what splits a service's traffic between its stable and canary
//! versions.
//!
//! *API Boundary*: a router is told an absolute canary weight in percent (0..=100), so
//! setting it twice is harmless — the driver relies on that to resume after a crash.

use std::sync::Arc;

use async_trait::async_trait;

use crate::plan::Canary;

pub mod haproxy;

/// Sets and reads the share of a service's traffic sent to its canary.
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Sends `weight` % of the traffic to the canary and the rest to stable; returns
    /// once the router confirms the new weights.
    async fn set_weight(&self, weight: u32) -> Result<(), RouterError>;

    /// The canary's current share in percent, as the router reports it.
    async fn weight(&self) -> Result<u32, RouterError>;
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
}

/// The router a plan's `canary` section describes.
pub fn build(canary: &Canary) -> Arc<dyn TrafficRouter> {
    match canary {
        Canary::None => Arc::new(NoRouter),
        Canary::Haproxy(config) => Arc::new(haproxy::Haproxy::new(config.clone())),
        // Being written (orchestrator part 2).
        Canary::GatewayApi(_) | Canary::NginxIngress(_) | Canary::Webhook(_) => Arc::new(NoRouter),
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
