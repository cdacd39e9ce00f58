//! Metric analysis: measuring a service's metrics and judging them against the plan's
//! thresholds. Sources do I/O; judging ([`judge`]) is pure.
//!
//! *API Boundary*: [`MetricSource`] is the seam metric providers go behind. The driver
//! asks the source registered for each metric's kind in its [`MetricSources`] (given in
//! its `Config`); [`MetricSources::standard`] registers Prometheus, guard and health.

use async_trait::async_trait;

use crate::plan::{Metric, OnNoData};

pub mod guard;
pub mod health;
pub mod prometheus;
pub mod sources;
pub mod verdict;

pub use sources::{MetricKind, MetricRequest, MetricSources, WeightWindow};
pub use verdict::{Measurement, Verdict};

/// Measures one kind of metric ([`MetricKind`]) for a service, registered in the
/// driver's [`MetricSources`].
#[async_trait]
pub trait MetricSource: Send + Sync {
    /// Measures what `request` names once and judges it against the metric's thresholds
    /// (a source answering one number uses [`judge`]). A measurement that cannot be
    /// taken is a failed [`Measurement`] saying why, never an error of the analysis.
    async fn measure(&self, request: MetricRequest<'_>) -> Measurement;
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
    /// The source answered with a body that is not a query result at all (e.g. a proxy's
    /// HTML page, or a value that is not a number).
    #[error("{url} answered something that is not a Prometheus query result")]
    Undecodable {
        /// Where.
        url: String,
        /// Why it could not be read.
        #[source]
        source: serde_json::Error,
    },
    /// The flag server (a `guard` metric's source) could not be read.
    #[error("flag server: {context}")]
    FlagServer {
        /// What was being read, e.g. ``reading flag `x` in `production` ``.
        context: String,
        /// Why.
        #[source]
        source: switchyard_sdk::Error,
    },
    /// The measurement cannot be taken here (a missing capability or a timeout).
    #[error("{0}")]
    Unsupported(&'static str),
    /// No source is registered for the metric's kind.
    #[error("no source is registered for {0} metrics")]
    NoSource(MetricKind),
    /// The request is not of the kind the source measures (a source registered under
    /// another kind).
    #[error("the {0} source was asked to measure something else")]
    WrongKind(MetricKind),
}

/// Judges one source's answer against a metric's thresholds.
pub fn judge(metric: &Metric, answer: Result<Option<f64>, MetricError>) -> Measurement {
    let mut m = Measurement {
        metric: metric.name.clone(),
        value: None,
        min: metric.min,
        max: metric.max,
        verdict: Verdict::Fail,
        error: None,
        detail: None,
        guard: None,
    };
    match answer {
        Err(e) => m.error = Some(error_chain(&e)),
        Ok(None) => {
            m.verdict = match metric.on_no_data {
                OnNoData::Fail => Verdict::Fail,
                OnNoData::Pass => Verdict::Pass,
                OnNoData::Ignore => Verdict::Ignored,
            }
        }
        Ok(Some(value)) => {
            m.value = Some(value);
            let within = metric.min.is_none_or(|min| value >= min)
                && metric.max.is_none_or(|max| value <= max);
            m.verdict = if within { Verdict::Pass } else { Verdict::Fail };
        }
    }
    m
}

/// The outcome of a service's health checks as a measurement (1 healthy, 0 not).
pub fn judge_health(result: Result<(), impl std::error::Error>) -> Measurement {
    let healthy = result.is_ok();
    Measurement {
        metric: "health".into(),
        value: Some(if healthy { 1.0 } else { 0.0 }),
        min: Some(1.0),
        max: None,
        verdict: if healthy {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        error: result.err().map(|e| error_chain(&e)),
        detail: None,
        guard: None,
    }
}

/// An error with its sources, `outer: inner: innermost`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Metric;

    fn metric(min: Option<f64>, max: Option<f64>, on_no_data: OnNoData) -> Metric {
        Metric {
            name: "m".into(),
            prometheus: None,
            guard: None,
            min,
            max,
            on_no_data,
            services: None,
        }
    }

    #[test]
    fn judges_against_thresholds() {
        let cases = [
            (
                metric(None, Some(0.01), OnNoData::Fail),
                Some(0.005),
                Verdict::Pass,
                "m 0.005 <= max 0.01",
            ),
            (
                metric(None, Some(0.01), OnNoData::Fail),
                Some(0.01),
                Verdict::Pass,
                "m 0.01 <= max 0.01",
            ),
            (
                metric(None, Some(0.01), OnNoData::Fail),
                Some(0.2),
                Verdict::Fail,
                "m 0.2 > max 0.01",
            ),
            (
                metric(Some(0.9), None, OnNoData::Fail),
                Some(0.5),
                Verdict::Fail,
                "m 0.5 < min 0.9",
            ),
            (
                metric(Some(0.9), Some(1.0), OnNoData::Fail),
                Some(0.95),
                Verdict::Pass,
                "m 0.95 within 0.9..1",
            ),
            (
                metric(None, Some(1.0), OnNoData::Fail),
                None,
                Verdict::Fail,
                "m: no data (counted as failed)",
            ),
            (
                metric(None, Some(1.0), OnNoData::Pass),
                None,
                Verdict::Pass,
                "m: no data (counted as passed)",
            ),
            (
                metric(None, Some(1.0), OnNoData::Ignore),
                None,
                Verdict::Ignored,
                "m: no data (ignored)",
            ),
        ];
        for (metric, value, verdict, explained) in cases {
            let m = judge(&metric, Ok(value));
            assert_eq!((m.verdict, m.explain().as_str()), (verdict, explained));
        }
        let failed = judge(
            &metric(None, Some(1.0), OnNoData::Pass),
            Err(MetricError::BadAnswer {
                url: "http://p".into(),
                detail: "2 series".into(),
            }),
        );
        assert_eq!(failed.verdict, Verdict::Fail);
        assert_eq!(failed.explain(), "m: http://p answered 2 series");
    }
}
