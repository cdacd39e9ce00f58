//! Prometheus metrics for the daemon's `GET /metrics`: releases by phase, analyses run
//! and failed, actions performed and their errors, and the leases this process holds.
//!
//! Counters move as the driver performs actions; the gauges (releases by phase, leases)
//! are set from the store and the driver's tasks when scraped, so they are true even
//! for releases another replica changed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::analysis::{Measurement, Verdict};
use crate::machine::{Action, Outcome, Phase};

/// Labels of the releases-by-phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The release's phase, e.g. `running`, `rolled_back`.
    pub phase: &'static str,
}

/// Labels of the analyses counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnalysisLabels {
    /// `passed` (every measurement passed or was ignored) or `failed`.
    pub result: &'static str,
}

/// Labels of the actions counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// The action, e.g. `set_weight`, `rollback`.
    pub action: &'static str,
}

/// Labels of the lease gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    /// The release.
    pub release: String,
}

/// Every metric the orchestrator exports.
pub struct Telemetry {
    registry: Registry,
    releases: Family<PhaseLabels, Gauge>,
    analyses: Family<AnalysisLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    action_errors: Family<ActionLabels, Counter>,
    leases: Family<LeaseLabels, Gauge>,
    /// One scrape at a time: each clears and refills the gauges.
    scrape: std::sync::Mutex<()>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::default();
        let releases = Family::<PhaseLabels, Gauge>::default();
        let analyses = Family::<AnalysisLabels, Counter>::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let action_errors = Family::<ActionLabels, Counter>::default();
        let leases = Family::<LeaseLabels, Gauge>::default();
        registry.register(
            "switchyard_orchestrator_releases",
            "Current releases (one per name, as stored) by phase",
            releases.clone(),
        );
        registry.register(
            "switchyard_orchestrator_analyses",
            "Metric analyses run by this process, by result",
            analyses.clone(),
        );
        registry.register(
            "switchyard_orchestrator_actions",
            "Actions (router, flag, analysis, gate, notification) performed by this process",
            actions.clone(),
        );
        registry.register(
            "switchyard_orchestrator_action_errors",
            "Actions performed by this process that failed (after their retries)",
            action_errors.clone(),
        );
        registry.register(
            "switchyard_orchestrator_lease_held",
            "1 for each release whose lease this process holds (it drives the release)",
            leases.clone(),
        );
        Telemetry {
            registry,
            releases,
            analyses,
            actions,
            action_errors,
            leases,
            scrape: std::sync::Mutex::default(),
        }
    }
}

impl Telemetry {
    /// Counts an action the driver performed and how it came out.
    pub fn performed(&self, action: &Action, outcome: &Outcome) {
        let labels = ActionLabels {
            action: action_name(action),
        };
        self.actions.get_or_create(&labels).inc();
        match outcome {
            Outcome::Failed { .. } => {
                self.action_errors.get_or_create(&labels).inc();
            }
            Outcome::Measured { measurements } => {
                let result = if analysis_failed(measurements) {
                    "failed"
                } else {
                    "passed"
                };
                self.analyses
                    .get_or_create(&AnalysisLabels { result })
                    .inc();
            }
            Outcome::Done | Outcome::Checked { .. } => {}
        }
    }

    /// The Prometheus text exposition, with the gauges set from `phases` (every
    /// current release's phase) and `leased` (the releases this process drives).
    pub fn encode(&self, phases: impl IntoIterator<Item = Phase>, leased: &[String]) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.releases.clear();
        for phase in Phase::ALL {
            // Every phase is exported, 0 included, so a query need not guess.
            self.releases
                .get_or_create(&PhaseLabels {
                    phase: phase.name(),
                })
                .set(0);
        }
        for phase in phases {
            self.releases
                .get_or_create(&PhaseLabels {
                    phase: phase.name(),
                })
                .inc();
        }
        self.leases.clear();
        for release in leased {
            self.leases
                .get_or_create(&LeaseLabels {
                    release: release.clone(),
                })
                .set(1);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The action as it is written in a stored outbox (`set_weight`).
fn action_name(action: &Action) -> &'static str {
    match action {
        Action::PreCheck { .. } => "pre_check",
        Action::SetWeight { .. } => "set_weight",
        Action::Analyse { .. } => "analyse",
        Action::Rollback { .. } => "rollback",
        Action::KillFlags { .. } => "kill_flags",
        Action::SetTraffic { .. } => "set_traffic",
        Action::Gate { .. } => "gate",
        Action::Notify { .. } => "notify",
    }
}

fn analysis_failed(measurements: &[Measurement]) -> bool {
    measurements.iter().any(|m| m.verdict == Verdict::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_serialised_forms() {
        for phase in Phase::ALL {
            assert_eq!(
                serde_json::to_value(phase).unwrap(),
                serde_json::json!(phase.name())
            );
        }
        let action = Action::SetTraffic {
            service: "s".into(),
            weight: 1,
        };
        assert_eq!(
            serde_json::to_value(&action).unwrap()["action"],
            action_name(&action)
        );
    }
}
