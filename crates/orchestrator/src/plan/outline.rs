//! [`Plan::outline`]: what a plan will do, as core's [`PlanOutline`] — the answer of a
//! dry run and part of every report.

use switchyard_core::release::{MetricOutline, PlanOutline, ServiceOutline, StepOutline};

use super::{Canary, FlagRef, OnFailure, Plan, Rollback};

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
                .map(|s| ServiceOutline {
                    name: s.name.clone(),
                    depends_on: s.depends_on.clone(),
                    router: router_words(&s.canary),
                    stable: versions(&s.canary).map(|(stable, _)| stable.to_owned()),
                    canary: versions(&s.canary).map(|(_, canary)| canary.to_owned()),
                    flags: s.flags.iter().map(flag_words).collect(),
                    health_checks: s.health.len(),
                })
                .collect(),
            steps: (0..self.steps.len())
                .map(|i| {
                    let step = &self.steps[i];
                    let hold = match self.step(i) {
                        Some(super::StepKind::Weight(_, hold)) => Some(hold.as_secs_f64()),
                        _ => None,
                    };
                    StepOutline {
                        weight: step.weight,
                        hold_seconds: hold,
                        approve: step.approve,
                        gates: step.gates.len(),
                    }
                })
                .collect(),
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
        }
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
fn versions(canary: &Canary) -> Option<(&str, &str)> {
    match canary {
        Canary::Haproxy(h) => Some((&h.stable, &h.canary)),
        Canary::GatewayApi(g) => Some((&g.stable, &g.canary)),
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
