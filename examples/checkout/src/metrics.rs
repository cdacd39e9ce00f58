//! `checkout_requests_total{version, path, outcome}`: what the release's analysis
//! queries in Prometheus.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text (OpenMetrics 1.0, which Prometheus
/// scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which code path answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePath {
    /// The code every version has.
    Old,
    /// The code behind the flag, only in the canary build.
    New,
}

impl CodePath {
    /// `old` or `new`, as in labels and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            CodePath::Old => "old",
            CodePath::New => "new",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200.
    Ok,
    /// 500.
    Error,
}

impl Outcome {
    /// `ok` or `error`, as in labels and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    version: String,
    path: &'static str,
    outcome: &'static str,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    version: String,
}

impl Metrics {
    /// Metrics of the build labelled `version`. Every path × outcome series exists from
    /// the start at 0, so an error rate reads 0 (not "no data") before the first error.
    pub fn new(version: &str) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "checkout_requests",
            "Checkout requests by version, code path and outcome",
            requests.clone(),
        );
        let metrics = Metrics {
            registry,
            requests,
            version: version.to_owned(),
        };
        for path in [CodePath::Old, CodePath::New] {
            for outcome in [Outcome::Ok, Outcome::Error] {
                // Adding 0 creates the series.
                metrics
                    .requests
                    .get_or_create(&metrics.labels(path, outcome))
                    .inc_by(0);
            }
        }
        metrics
    }

    fn labels(&self, path: CodePath, outcome: Outcome) -> RequestLabels {
        RequestLabels {
            version: self.version.clone(),
            path: path.as_str(),
            outcome: outcome.as_str(),
        }
    }

    /// Counts one request.
    pub fn count(&self, path: CodePath, outcome: Outcome) {
        self.requests
            .get_or_create(&self.labels(path, outcome))
            .inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_starts_at_zero_and_counts() {
        let metrics = Metrics::new("v2");
        metrics.count(CodePath::New, Outcome::Error);
        metrics.count(CodePath::New, Outcome::Ok);
        metrics.count(CodePath::New, Outcome::Ok);
        let text = metrics.encode();
        for line in [
            r#"checkout_requests_total{version="v2",path="old",outcome="ok"} 0"#,
            r#"checkout_requests_total{version="v2",path="old",outcome="error"} 0"#,
            r#"checkout_requests_total{version="v2",path="new",outcome="ok"} 2"#,
            r#"checkout_requests_total{version="v2",path="new",outcome="error"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
