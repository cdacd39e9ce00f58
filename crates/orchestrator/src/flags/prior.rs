//! [`PriorServe`]: what a ramped serve was before a release first touched it.
//!
//! *Architecture Invariant*: plain data with no I/O, so the pure [`crate::machine`]
//! can record it in its state.

use serde::{Deserialize, Serialize};
use switchyard_core::model::Serve;

use crate::plan::FlagRef;

/// What a ramped serve was before a release first touched it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorServe {
    /// The environment.
    pub environment: String,
    /// The flag.
    pub flag: String,
    /// The ramped rule; the default serve when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What it served.
    pub serve: Serve,
    /// Whether the flag was enabled (not killed).
    pub enabled: bool,
}

impl PriorServe {
    /// Whether this records `flag`'s ramped serve in `env`.
    pub fn is_of(&self, env: &str, flag: &FlagRef) -> bool {
        self.environment == env && self.flag == flag.key && self.rule == flag.rule
    }
}
