//! [`MetricSources`]: the registry the driver asks for each metric's source, keyed by
//! [`MetricKind`], so tests and new providers plug their own [`MetricSource`] in.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use switchyard_sdk::admin::AdminClient;

use super::guard::GuardSource;
use super::health::HealthSource;
use super::prometheus::PrometheusSource;
use super::{judge, judge_health, Measurement, MetricError, MetricSource};
use crate::plan::{Metric, Service};

/// What measures a metric: the plan's `prometheus` or `guard` source, or a service's
/// `health` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A Prometheus instant query (`prometheus: { url, query }`).
    Prometheus,
    /// The flag server's per-variant counts (`guard: { flag, event, … }`).
    Guard,
    /// A service's health checks (`health: [...]`), measured at every analysis.
    Health,
}

impl MetricKind {
    /// The kind of a plan's metric; `None` for a metric without a source (which a valid
    /// plan does not have).
    pub fn of(metric: &Metric) -> Option<MetricKind> {
        match (&metric.prometheus, &metric.guard) {
            (Some(_), _) => Some(MetricKind::Prometheus),
            (None, Some(_)) => Some(MetricKind::Guard),
            (None, None) => None,
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            MetricKind::Prometheus => "prometheus",
            MetricKind::Guard => "guard",
            MetricKind::Health => "health",
        })
    }
}

/// What a source is asked to measure.
#[derive(Debug, Clone, Copy)]
pub struct MetricRequest<'a> {
    /// The plan's metric; `None` when the service's health checks are measured.
    pub metric: Option<&'a Metric>,
    /// The service analysed.
    pub service: &'a Service,
    /// The flag server environment the release is in now.
    pub environment: &'a str,
    /// The service's current weight and since when; `None` before a weight was set.
    pub weight: Option<WeightWindow>,
}

/// The weight a service is at, for metrics counted since it was set (the guard).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightWindow {
    /// When the weight was confirmed (Unix milliseconds).
    pub since: switchyard_core::release::Millis,
    /// The share of units the ramp serves the flags' first variant (weight / 100).
    pub share: f64,
    /// The plan's weight steps: a guard spends `1 − confidence` evenly over them.
    pub weight_steps: usize,
}

impl MetricRequest<'_> {
    /// The failed measurement of this request: `error` says why.
    pub fn failed(&self, error: MetricError) -> Measurement {
        match self.metric {
            Some(metric) => judge(metric, Err(error)),
            None => judge_health(Err(error)),
        }
    }
}

/// The metric sources the driver measures with, one per [`MetricKind`].
#[derive(Clone, Default)]
pub struct MetricSources {
    sources: HashMap<MetricKind, Arc<dyn MetricSource>>,
}

impl MetricSources {
    /// No sources: every measurement fails until sources are registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Today's providers: Prometheus queries and health checks through `http`, guard
    /// metrics through the flag server's `admin` API (failing without one).
    pub fn standard(http: &reqwest::Client, admin: Option<&AdminClient>) -> Self {
        let mut sources = Self::new();
        sources
            .register(
                MetricKind::Prometheus,
                Arc::new(PrometheusSource::new(http.clone())),
            )
            .register(
                MetricKind::Guard,
                Arc::new(GuardSource::new(admin.cloned())),
            )
            .register(
                MetricKind::Health,
                Arc::new(HealthSource::new(http.clone())),
            );
        sources
    }

    /// Makes `source` measure every metric of `kind`, in place of the one before.
    pub fn register(&mut self, kind: MetricKind, source: Arc<dyn MetricSource>) -> &mut Self {
        self.sources.insert(kind, source);
        self
    }

    /// Measures `request` with the source of its kind; a failed measurement when no
    /// source is registered for it.
    pub async fn measure(&self, request: MetricRequest<'_>) -> Measurement {
        let kind = match request.metric {
            None => MetricKind::Health,
            Some(metric) => match MetricKind::of(metric) {
                Some(kind) => kind,
                None => {
                    return request.failed(MetricError::Unsupported("the metric has no source"))
                }
            },
        };
        match self.sources.get(&kind) {
            Some(source) => source.measure(request).await,
            None => request.failed(MetricError::NoSource(kind)),
        }
    }
}

impl fmt::Debug for MetricSources {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_set().entries(self.sources.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Verdict;
    use crate::plan::{GuardQuery, OnNoData, PrometheusQuery};

    fn metric(prometheus: bool, guard: bool) -> Metric {
        Metric {
            name: "m".into(),
            prometheus: prometheus.then(|| PrometheusQuery {
                url: "http://127.0.0.1:9".into(),
                query: "q".into(),
            }),
            guard: guard.then(|| GuardQuery {
                flag: "f".into(),
                event: "e".into(),
                max_relative_increase: 0.1,
                confidence: 0.95,
                min_samples: 100,
                value: false,
                mixture: 1.0,
                window: None,
            }),
            min: None,
            max: Some(1.0),
            on_no_data: OnNoData::Pass,
            services: None,
        }
    }

    fn service() -> Service {
        Service {
            name: "s".into(),
            depends_on: vec![],
            canary: Default::default(),
            flags: vec![],
            health: vec![],
            strategy: None,
            steps: vec![],
            region: None,
        }
    }

    #[test]
    fn a_metric_is_of_the_kind_its_source_names() {
        assert_eq!(
            MetricKind::of(&metric(true, false)),
            Some(MetricKind::Prometheus)
        );
        assert_eq!(
            MetricKind::of(&metric(false, true)),
            Some(MetricKind::Guard)
        );
        assert_eq!(MetricKind::of(&metric(false, false)), None);
    }

    #[tokio::test]
    async fn a_kind_without_a_source_fails_its_measurement_saying_so() {
        let (metric, service) = (metric(true, false), service());
        let request = |metric| MetricRequest {
            metric,
            service: &service,
            environment: "production",
            weight: None,
        };
        let none = MetricSources::new();
        let m = none.measure(request(Some(&metric))).await;
        assert_eq!(m.verdict, Verdict::Fail);
        assert_eq!(
            m.explain(),
            "m: no source is registered for prometheus metrics"
        );
        let m = none.measure(request(None)).await;
        assert_eq!((m.metric.as_str(), m.verdict), ("health", Verdict::Fail));
        assert_eq!(
            m.error.as_deref(),
            Some("no source is registered for health metrics")
        );
        // A source registered under the wrong kind says so rather than guess.
        let mut wrong = MetricSources::new();
        wrong.register(MetricKind::Prometheus, Arc::new(GuardSource::new(None)));
        let m = wrong.measure(request(Some(&metric))).await;
        assert_eq!(
            m.explain(),
            "m: the guard source was asked to measure something else"
        );
    }
}
