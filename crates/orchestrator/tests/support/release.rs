//! Running whole releases in-process against the real processes of the testkit: an
//! orchestrator over an embedded store, waits on a release's state, its timeline in
//! words, and Prometheus monitoring of a canary's error ratio.

use std::sync::Arc;
use std::time::Duration;

use switchyard_orchestrator::analysis::MetricSources;
use switchyard_orchestrator::driver::{Config, Orchestrator};
use switchyard_orchestrator::flags::AdminFlags;
use switchyard_orchestrator::store::embedded::EmbeddedStore;
use switchyard_orchestrator::store::Release;
use switchyard_testkit::eventually;
use switchyard_testkit::prometheus::{
    wait_for_value, Exporter, PrometheusProcess, SCRAPE_DEADLINE,
};

use super::flag_server::FlagServer;

/// How long a whole release may take before a test gives up.
pub const RELEASE_DEADLINE: Duration = Duration::from_secs(90);

pub async fn orchestrator(flags: &FlagServer, dir: &std::path::Path) -> Orchestrator {
    let metrics = MetricSources::standard(&reqwest::Client::new(), Some(&flags.admin));
    orchestrator_measuring(flags, dir, metrics).await
}

pub async fn orchestrator_measuring(
    flags: &FlagServer,
    dir: &std::path::Path,
    metrics: MetricSources,
) -> Orchestrator {
    Orchestrator::open(Config {
        store: Arc::new(EmbeddedStore::open(dir).expect("store opens")),
        flags: Arc::new(AdminFlags::new(flags.admin.clone())),
        metrics,
        http: reqwest::Client::new(),
        poll: Duration::from_millis(100),
        attempts: 2,
        owner: switchyard_orchestrator::driver::owner_id(),
        lease: Duration::from_secs(10),
        rollback_window: switchyard_orchestrator::driver::DEFAULT_ROLLBACK_WINDOW,
    })
    .await
    .expect("orchestrator opens")
}

/// Polls the release until `done` holds for it.
pub async fn wait_for(
    orchestrator: &Orchestrator,
    name: &str,
    what: &str,
    done: impl Fn(&Release) -> bool,
) -> Release {
    eventually(
        RELEASE_DEADLINE,
        &format!("release `{name}` to reach {what}"),
        || async {
            let release = orchestrator.get(name).await.expect("release exists");
            if done(&release) {
                Ok(release)
            } else {
                Err(format!("timeline:\n{}", timeline(&release)))
            }
        },
    )
    .await
}

pub async fn wait_until_over(orchestrator: &Orchestrator, name: &str) -> Release {
    wait_for(orchestrator, name, "its end", |r| {
        r.state.phase.is_terminal()
    })
    .await
}

pub fn timeline(release: &Release) -> String {
    release
        .state
        .timeline
        .iter()
        .map(|e| {
            let measured: Vec<String> = e.measurements.iter().map(|m| m.explain()).collect();
            format!(
                "{} {}: {} {}",
                e.at,
                e.service.as_deref().unwrap_or("-"),
                e.message,
                measured.join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Index of the first timeline entry of `service` whose message starts with `prefix`.
pub fn position(release: &Release, service: &str, prefix: &str) -> usize {
    release
        .state
        .timeline
        .iter()
        .position(|e| e.service.as_deref() == Some(service) && e.message.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` for {service} in\n{}", timeline(release)))
}

/// Metrics scraped by a real Prometheus: the canary's error ratio per service.
pub struct Monitoring {
    /// The exporter Prometheus scrapes; `set` changes what the next scrape reads.
    pub exporter: Exporter,
    /// The Prometheus server.
    pub prometheus: PrometheusProcess,
}

impl Monitoring {
    /// Starts an exporter whose `canary_error_ratio{service}` is `error_ratio` and a
    /// Prometheus scraping it; returns once Prometheus has the value.
    pub async fn start(service: &str, error_ratio: f64) -> Monitoring {
        let exporter = Exporter::start().await;
        exporter.set("canary_error_ratio", &[("service", service)], error_ratio);
        let prometheus = PrometheusProcess::start(&[exporter.addr()]).await;
        let query = format!("canary_error_ratio{{service=\"{service}\"}}");
        wait_for_value(
            &prometheus.url(),
            &query,
            |v| v == error_ratio,
            SCRAPE_DEADLINE,
        )
        .await;
        Monitoring {
            exporter,
            prometheus,
        }
    }

    /// An `analysis:` section measuring the ratio every second (max 0.05).
    pub fn analysis_yaml(&self) -> String {
        format!(
            "analysis:\n  interval: 1s\n  metrics:\n    - name: error-rate\n      prometheus: {{ url: \"{}\", query: 'canary_error_ratio{{service=\"{{{{service}}}}\"}}' }}\n      max: 0.05\n",
            self.prometheus.url()
        )
    }
}
