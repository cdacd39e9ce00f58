//! HAProxy runtime API router (being written).
use async_trait::async_trait;

use super::{RouterError, TrafficRouter};
use crate::plan::HaproxyCanary;

/// Sets weights through HAProxy's runtime API.
#[derive(Debug, Clone)]
pub struct Haproxy {
    config: HaproxyCanary,
}

impl Haproxy {
    /// A router for the servers `config` names.
    pub fn new(config: HaproxyCanary) -> Self {
        Haproxy { config }
    }
}

#[async_trait]
impl TrafficRouter for Haproxy {
    async fn set_weight(&self, _weight: u32) -> Result<(), RouterError> {
        let _ = &self.config;
        unimplemented!()
    }
    async fn weight(&self) -> Result<u32, RouterError> {
        unimplemented!()
    }
}
