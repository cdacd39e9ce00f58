//! [`Plan::outline`]: what a plan will do, as core's [`PlanOutline`] — the answer of a
//! dry run and part of every report.

use switchyard_core::release::{
    MetricOutline, PlanOutline, RegionOutline, ServiceOutline, StepOutline,
};

use super::{Canary, FlagRef, OnFailure, Plan, Rollback, Servers, Step, Strategy};

impl Plan {
    /// What this (valid) plan will do: environments, services in the order they start,
    /// the steps, the metrics.
    pub fn outline(&self) -> PlanOutline {
        let groups = crate::dag::groups(&self.services)
            .unwrap_or_else(|_| vec![(0..self.services.len()).collect()])
            .into_iter()
            .map(|group| {
                group
                    .into_iter()
                    .map(|i| self.services[i].name.clone())
                    .collect()
            })
            .collect();
        PlanOutline {
            name: self.name.clone(),
            environments: self.environments.clone(),
            groups,
            services: self
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| ServiceOutline {
                    name: s.name.clone(),
                    depends_on: s.depends_on.clone(),
                    router: router_words(&s.canary),
                    stable: versions(&s.canary).map(|(stable, _)| stable.to_string()),
                    canary: versions(&s.canary).map(|(_, canary)| canary.to_string()),
                    flags: s.flags.iter().map(flag_words).collect(),
                    health_checks: s.health.len(),
                    strategy: match &self.hotfix {
                        Some(_) => "hotfix: one step at 100".to_owned(),
                        None => strategy_words(self.strategy_of(i)),
                    },
                    steps: self.step_outlines(&s.steps),
                    region: s.region.clone(),
                })
                .collect(),
            steps: self.step_outlines(&self.steps),
            metrics: self
                .analysis
                .metrics
                .iter()
                .map(|m| MetricOutline {
                    name: m.name.clone(),
                    kind: if m.guard.is_some() {
                        "guard"
                    } else {
                        "prometheus"
                    }
                    .to_owned(),
                    min: m.min,
                    max: m.max,
                })
                .collect(),
            on_failure: match self.on_failure {
                OnFailure::Pause => "pause".to_owned(),
                OnFailure::Rollback(Rollback::Instant) => "rollback".to_owned(),
                OnFailure::Rollback(Rollback::Gradual { step, interval }) => format!(
                    "gradual rollback: down {step} % every {}",
                    humantime::format_duration(interval)
                ),
            },
            hotfix: self.hotfix.as_ref().map(|h| h.reason.clone()),
            regions: self.region_outlines(),
        }
    }

    fn region_outlines(&self) -> Vec<RegionOutline> {
        let Some(regions) = &self.regions else {
            return Vec::new();
        };
        regions
            .ordered()
            .map(|r| RegionOutline {
                name: r.name.clone(),
                primary: r.primary,
                max_weight: r.max_weight,
                services: self
                    .services
                    .iter()
                    .filter(|s| s.region.as_ref() == Some(&r.name))
                    .map(|s| s.written_name().to_owned())
                    .collect(),
            })
            .collect()
    }

    fn step_outlines(&self, steps: &[Step]) -> Vec<StepOutline> {
        steps
            .iter()
            .map(|step| StepOutline {
                weight: step.weight,
                hold_seconds: match (step.weight, step.approve) {
                    (Some(_), false) => {
                        Some(step.hold.unwrap_or(self.analysis.interval).as_secs_f64())
                    }
                    _ => None,
                },
                approve: step.approve,
                gates: step.gates.len(),
            })
            .collect()
    }
}

/// A strategy in words, with its settings.
fn strategy_words(strategy: &Strategy) -> String {
    let timed = |name: &str, value: Option<std::time::Duration>| {
        value.map(|d| format!("{name} {}", humantime::format_duration(d)))
    };
    let settings: Vec<String> = match strategy {
        Strategy::Canary => vec![],
        Strategy::BlueGreen(b) => [
            timed("preview", b.preview),
            timed("bake", b.bake),
            timed("keep previous", b.keep_previous),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Strategy::Rolling(r) => [
            Some(format!("batch {}", r.batch)),
            Some(format!("max unavailable {}", r.max_unavailable)),
            timed("hold", r.hold),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    if settings.is_empty() {
        strategy.word().to_owned()
    } else {
        format!("{}: {}", strategy.word(), settings.join(", "))
    }
}

/// The flags a service ramps, by key (the plan order kept).
pub fn flag_keys(flags: &[FlagRef]) -> Vec<String> {
    flags.iter().map(|f| f.key.clone()).collect()
}

fn flag_words(flag: &FlagRef) -> String {
    match &flag.rule {
        Some(rule) => format!("{} rule {rule}", flag.key),
        None => flag.key.clone(),
    }
}

/// The stable and canary versions a router names.
fn versions(canary: &Canary) -> Option<(Servers, Servers)> {
    match canary {
        Canary::Haproxy(h) => Some((h.stable.clone(), h.canary.clone())),
        Canary::GatewayApi(g) => Some((g.stable.as_str().into(), g.canary.as_str().into())),
        Canary::None | Canary::NginxIngress(_) | Canary::Webhook(_) => None,
    }
}

fn router_words(canary: &Canary) -> String {
    match canary {
        Canary::None => "none (flags only)".to_owned(),
        Canary::Haproxy(h) => format!(
            "haproxy {} backend {} ({} / {})",
            h.address, h.backend, h.stable, h.canary
        ),
        Canary::GatewayApi(g) => format!("gateway-api HTTPRoute {}/{}", g.namespace, g.route),
        Canary::NginxIngress(n) => format!("nginx-ingress {}/{}", n.namespace, n.ingress),
        Canary::Webhook(w) => format!("webhook {}", w.url),
    }
}
