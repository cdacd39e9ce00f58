//! Metric analysis: measuring a service's metrics and judging them against the plan's
//! thresholds. Sources do I/O; judging ([`judge`]) is pure.

use async_trait::async_trait;

pub mod health;
pub mod prometheus;

/// Something that measures one number for a service.
#[async_trait]
pub trait MetricSource: Send + Sync {
    /// Measures once. `Ok(None)` means the source answered without data (an empty or
    /// NaN result); the plan's `on_no_data` decides what that counts as.
    async fn measure(&self, service: &str) -> Result<Option<f64>, MetricError>;
}

/// A measurement that could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// The source could not be reached or answered with an HTTP error.
    #[error("cannot query {url}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The source answered something that is not a single number.
    #[error("{url} answered {detail}")]
    BadAnswer {
        /// Where.
        url: String,
        /// What was wrong with the answer (e.g. a PromQL error, or several series).
        detail: String,
    },
}
