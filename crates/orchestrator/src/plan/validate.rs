//! [`Plan::validate`]: the rules serde cannot express, every problem reported at once.

use super::{
    Canary, Gate, GateCheck, GuardQuery, HealthCheck, HealthTarget, OnFailure, Plan, PlanError,
    Problem, Rollback,
};
use crate::dag;

impl Plan {
    /// Checks what the document's shape cannot express; every problem is reported.
    pub fn validate(&self) -> Result<(), PlanError> {
        let mut problems = Vec::new();
        let mut problem = |path: String, message: String| problems.push(Problem { path, message });

        if !is_name(&self.name) {
            problem("name".into(), NAME_RULE.into());
        }
        if self.environments.is_empty() {
            problem(
                "environment".into(),
                "name the flag server environment (`environment`, or `environments` in order)"
                    .into(),
            );
        }
        for (i, env) in self.environments.iter().enumerate() {
            if env.trim().is_empty() {
                problem(self.environment_path(i), "must not be empty".into());
            } else if self.environments[..i].contains(env) {
                problem(
                    self.environment_path(i),
                    format!("environment `{env}` is listed twice"),
                );
            }
        }
        for (i, gate) in self.gates.pre.iter().enumerate() {
            check_gate(&format!("gates.pre[{i}]"), gate, &mut problem);
        }
        for (i, notify) in self.notify.iter().enumerate() {
            if !is_http_url(&notify.webhook) {
                problem(
                    format!("notify[{i}].webhook"),
                    format!("`{}` is not an http(s) URL", notify.webhook),
                );
            }
        }
        if let OnFailure::Rollback(Rollback::Gradual { step, interval }) = self.on_failure {
            if !(1..=100).contains(&step) {
                problem("on_failure.step".into(), "must be between 1 and 100".into());
            }
            if interval.is_zero() {
                problem(
                    "on_failure.interval".into(),
                    "must be longer than 0s".into(),
                );
            }
        }
        if self.services.is_empty() {
            problem(
                "services".into(),
                "a release needs at least one service".into(),
            );
        }
        let mut seen_flags = std::collections::HashSet::new();
        for (i, service) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            if !is_name(&service.name) {
                problem(format!("{at}.name"), NAME_RULE.into());
            }
            if self.services[..i].iter().any(|s| s.name == service.name) {
                problem(
                    format!("{at}.name"),
                    format!("service `{}` is listed twice", service.name),
                );
            }
            for (j, dep) in service.depends_on.iter().enumerate() {
                if dep == &service.name {
                    problem(
                        format!("{at}.depends_on[{j}]"),
                        "a service cannot depend on itself".into(),
                    );
                } else if !self.services.iter().any(|s| &s.name == dep) {
                    problem(
                        format!("{at}.depends_on[{j}]"),
                        format!("unknown service `{dep}`"),
                    );
                }
            }
            let (required, pair): (Vec<Field>, Option<(&String, &String)>) = match &service.canary {
                Canary::None => (vec![], None),
                Canary::Haproxy(h) => (
                    vec![
                        ("address", &h.address),
                        ("backend", &h.backend),
                        ("stable", &h.stable),
                        ("canary", &h.canary),
                    ],
                    Some((&h.stable, &h.canary)),
                ),
                Canary::GatewayApi(g) => (
                    vec![
                        ("namespace", &g.namespace),
                        ("route", &g.route),
                        ("stable", &g.stable),
                        ("canary", &g.canary),
                    ],
                    Some((&g.stable, &g.canary)),
                ),
                Canary::NginxIngress(n) => (
                    vec![("namespace", &n.namespace), ("ingress", &n.ingress)],
                    None,
                ),
                Canary::Webhook(w) => {
                    if !is_http_url(&w.url) {
                        problem(
                            format!("{at}.canary.url"),
                            format!("`{}` is not an http(s) URL", w.url),
                        );
                    }
                    (vec![], None)
                }
            };
            for (field, value) in required {
                if value.trim().is_empty() {
                    problem(format!("{at}.canary.{field}"), "must not be empty".into());
                }
            }
            if pair.is_some_and(|(stable, canary)| stable == canary) {
                problem(
                    format!("{at}.canary.canary"),
                    "the canary must differ from the stable version".into(),
                );
            }
            if matches!(service.canary, Canary::None) && service.flags.is_empty() {
                problem(
                    format!("{at}.flags"),
                    "a service without a traffic router must ramp at least one flag".into(),
                );
            }
            for (j, flag) in service.flags.iter().enumerate() {
                if flag.key.trim().is_empty() {
                    problem(format!("{at}.flags[{j}].key"), "must not be empty".into());
                }
                if !seen_flags.insert(flag.key.as_str()) {
                    problem(
                        format!("{at}.flags[{j}]"),
                        format!("flag `{}` is ramped twice in this release", flag.key),
                    );
                }
            }
            for (j, check) in service.health.iter().enumerate() {
                check_health(&format!("{at}.health[{j}]"), check, &mut problem);
            }
        }
        if let Err(cycle) = dag::groups(&self.services) {
            problem(
                "services".into(),
                format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
            );
        }

        if self.steps.is_empty() {
            problem("steps".into(), "a release needs at least one step".into());
        }
        // Each step was checked where it is written (`steps.rs`).

        if self.analysis.interval.is_zero() {
            problem("analysis.interval".into(), "must be longer than 0s".into());
        }
        for (i, metric) in self.analysis.metrics.iter().enumerate() {
            let at = format!("analysis.metrics[{i}]");
            if metric.name.trim().is_empty() {
                problem(format!("{at}.name"), "must not be empty".into());
            }
            if self.analysis.metrics[..i]
                .iter()
                .any(|m| m.name == metric.name)
            {
                problem(
                    format!("{at}.name"),
                    format!("metric `{}` is listed twice", metric.name),
                );
            }
            match (&metric.prometheus, &metric.guard) {
                (None, None) => problem(
                    at.clone(),
                    "a metric needs a source: `prometheus: { url, query }` or `guard: { flag, event, max_relative_increase }`".into(),
                ),
                (Some(_), Some(_)) => problem(
                    at.clone(),
                    "a metric has one source: `prometheus` or `guard`".into(),
                ),
                (None, Some(g)) => {
                    check_guard(&format!("{at}.guard"), g, &mut problem);
                    if metric.min.is_some() || metric.max.is_some() {
                        problem(
                            at.clone(),
                            "a guard metric's threshold is its `max_relative_increase`; remove `min`/`max`".into(),
                        );
                    }
                }
                (Some(q), None) => {
                    if !is_http_url(&q.url) {
                        problem(
                            format!("{at}.prometheus.url"),
                            format!("`{}` is not an http(s) URL", q.url),
                        );
                    }
                    if q.query.trim().is_empty() {
                        problem(format!("{at}.prometheus.query"), "must not be empty".into());
                    }
                }
            }
            match (metric.min, metric.max) {
                (None, None) if metric.guard.is_none() => {
                    problem(at.clone(), "a metric needs `max`, `min` or both".into())
                }
                (Some(min), Some(max)) if min > max => {
                    problem(format!("{at}.min"), format!("min {min} is above max {max}"))
                }
                _ => {}
            }
            for (field, value) in [("min", metric.min), ("max", metric.max)] {
                if value.is_some_and(|v| !v.is_finite()) {
                    problem(format!("{at}.{field}"), "must be a finite number".into());
                }
            }
            for (j, name) in metric.services.iter().flatten().enumerate() {
                if !self.services.iter().any(|s| &s.name == name) {
                    problem(
                        format!("{at}.services[{j}]"),
                        format!("unknown service `{name}`"),
                    );
                }
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(PlanError::Invalid(problems))
        }
    }
}

const NAME_RULE: &str =
    "must be 1-63 characters of lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit";

fn is_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

fn check_health(at: &str, check: &HealthCheck, problem: &mut impl FnMut(String, String)) {
    match &check.target {
        HealthTarget::Http(url) if !is_http_url(url) => problem(
            format!("{at}.http"),
            format!("`{url}` is not an http(s) URL"),
        ),
        HealthTarget::Tcp(addr) | HealthTarget::Grpc(addr) if !is_host_port(addr) => {
            let field = if matches!(check.target, HealthTarget::Tcp(_)) {
                "tcp"
            } else {
                "grpc"
            };
            problem(
                format!("{at}.{field}"),
                format!("`{addr}` is not host:port"),
            )
        }
        _ => {}
    }
    if check.timeout.is_zero() {
        problem(format!("{at}.timeout"), "must be longer than 0s".into());
    }
}

/// A required field's name and value.
type Field<'a> = (&'static str, &'a String);

pub(super) fn check_gate(at: &str, gate: &Gate, problem: &mut impl FnMut(String, String)) {
    match &gate.check {
        GateCheck::Webhook(url) if !is_http_url(url) => problem(
            format!("{at}.webhook"),
            format!("`{url}` is not an http(s) URL"),
        ),
        GateCheck::Command(command) if command.trim().is_empty() => {
            problem(format!("{at}.command"), "must not be empty".into())
        }
        _ => {}
    }
    if gate.timeout.is_zero() {
        problem(format!("{at}.timeout"), "must be longer than 0s".into());
    }
}

fn check_guard(at: &str, guard: &GuardQuery, problem: &mut impl FnMut(String, String)) {
    for (field, value) in [("flag", &guard.flag), ("event", &guard.event)] {
        if value.trim().is_empty() {
            problem(format!("{at}.{field}"), "must not be empty".into());
        }
    }
    if !(guard.max_relative_increase.is_finite() && guard.max_relative_increase >= 0.0) {
        problem(
            format!("{at}.max_relative_increase"),
            "must be a number of at least 0 (0.10 = 10 %)".into(),
        );
    }
    if !(guard.confidence > 0.5 && guard.confidence < 1.0) {
        problem(
            format!("{at}.confidence"),
            "must be between 0.5 and 1 (exclusive), e.g. 0.95".into(),
        );
    }
    if guard.min_samples == 0 {
        problem(format!("{at}.min_samples"), "must be at least 1".into());
    }
    if !(guard.mixture.is_finite() && guard.mixture > 0.0) {
        problem(
            format!("{at}.mixture"),
            "must be a number above 0 (the relative effect the test is tuned to, e.g. 1)".into(),
        );
    }
}

fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}
