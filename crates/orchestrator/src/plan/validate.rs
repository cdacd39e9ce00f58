//! [`Plan::validate`]: the rules serde cannot express, every problem reported at once.

use super::{
    Canary, Gate, GateCheck, GuardQuery, HealthCheck, HealthTarget, OnFailure, Plan, PlanError,
    Problem, Rollback, Strategy,
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
        // A region plan's services are checked as written; their expansion only adds
        // what the regions say, which `Regions::check` checks.
        let written = self
            .regions
            .as_ref()
            .map_or(&self.services, |r| &r.services);
        if let Some(regions) = &self.regions {
            regions.check(&mut problem);
        }
        if written.is_empty() {
            problem(
                "services".into(),
                "a release needs at least one service".into(),
            );
        }
        let mut seen_flags = std::collections::HashSet::new();
        for (i, service) in written.iter().enumerate() {
            let at = format!("services[{i}]");
            if !is_name(&service.name) {
                problem(format!("{at}.name"), NAME_RULE.into());
            }
            if written[..i].iter().any(|s| s.name == service.name) {
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
                } else if !written.iter().any(|s| &s.name == dep) {
                    problem(
                        format!("{at}.depends_on[{j}]"),
                        format!("unknown service `{dep}`"),
                    );
                }
            }
            let strategy = service.strategy.as_ref().unwrap_or(&self.strategy);
            check_strategy(&format!("{at}.strategy"), strategy, &mut problem);
            if service.strategy.is_none() && i == 0 {
                check_strategy("strategy", &self.strategy, &mut problem);
            }
            check_router(
                &format!("{at}.canary"),
                &service.canary,
                strategy,
                &mut problem,
            );
            for (r, region) in self.regions.iter().flat_map(|r| r.list.iter()).enumerate() {
                if let Some(canary) = region.routers.get(&service.name) {
                    let at = format!("regions[{r}].routers.{}", service.name);
                    check_router(&at, canary, strategy, &mut problem);
                }
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

        let canary = self.services.is_empty()
            || (0..self.services.len()).any(|i| *self.strategy_of(i) == Strategy::Canary);
        if self.steps.is_empty() && canary && self.hotfix.is_none() {
            problem(
                "steps".into(),
                "a canary release needs at least one step (or give every service another `strategy`)".into(),
            );
        }
        if let Some(hotfix) = &self.hotfix {
            if hotfix.reason.trim().is_empty() {
                problem(
                    "hotfix.reason".into(),
                    "a hotfix says why it skips the ramp".into(),
                );
            }
            if hotfix.bake.is_some_and(|b| b.is_zero()) {
                problem("hotfix.bake".into(), "must be longer than 0s".into());
            }
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
                if !written.iter().any(|s| &s.name == name) {
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

pub(super) const NAME_RULE: &str =
    "must be 1-63 characters of lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit";

pub(super) fn is_name(name: &str) -> bool {
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
type Field<'a> = (&'static str, &'a str);

/// The settings of a strategy that serde cannot check.
fn check_strategy(at: &str, strategy: &Strategy, problem: &mut impl FnMut(String, String)) {
    let durations = match strategy {
        Strategy::Canary => vec![],
        Strategy::BlueGreen(b) => vec![("preview", b.preview), ("bake", b.bake)],
        Strategy::Rolling(r) => vec![("hold", r.hold)],
    };
    for (field, value) in durations {
        if value.is_some_and(|d| d.is_zero()) {
            problem(format!("{at}.{field}"), "must be longer than 0s".into());
        }
    }
}

/// A service's router (at `at`), and whether it can run `strategy`: a rolling update
/// needs HAProxy with as many new servers as old; the others move weights between
/// one server of each.
fn check_router(
    at: &str,
    canary: &Canary,
    strategy: &Strategy,
    problem: &mut impl FnMut(String, String),
) {
    let (required, pair): (Vec<Field>, Option<(&str, &str)>) = match canary {
        Canary::None => (vec![], None),
        Canary::Haproxy(h) => {
            let rolling = matches!(strategy, Strategy::Rolling(_));
            let (stable, canary) = (&h.stable.0, &h.canary.0);
            if rolling && stable.len() != canary.len() {
                problem(
                    format!("{at}.canary"),
                    format!(
                        "a rolling update replaces each old server by a new one: {} stable \
                         servers, {} canary servers",
                        stable.len(),
                        canary.len()
                    ),
                );
            }
            if !rolling && (stable.len() != 1 || canary.len() != 1) {
                problem(
                    format!("{at}.stable"),
                    "lists of servers are for `strategy: rolling`; name one stable and one canary server".into(),
                );
            }
            let mut required = vec![
                ("address", h.address.as_str()),
                ("backend", h.backend.as_str()),
            ];
            required.extend(stable.iter().map(|s| ("stable", s.as_str())));
            required.extend(canary.iter().map(|s| ("canary", s.as_str())));
            if stable.is_empty() || canary.is_empty() {
                required.push(("stable", ""));
            }
            if let Some(both) = stable.iter().find(|s| canary.contains(s)) {
                problem(
                    format!("{at}.canary"),
                    format!("server `{both}` is both stable and canary"),
                );
            }
            (required, None)
        }
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
                    format!("{at}.url"),
                    format!("`{}` is not an http(s) URL", w.url),
                );
            }
            (vec![], None)
        }
    };
    if matches!(strategy, Strategy::Rolling(_)) && !matches!(canary, Canary::Haproxy(_)) {
        problem(
            at.to_owned(),
            "a rolling update needs `router: haproxy` with lists of stable and canary servers"
                .into(),
        );
    }
    for (field, value) in required {
        if value.trim().is_empty() {
            problem(format!("{at}.{field}"), "must not be empty".into());
        }
    }
    if pair.is_some_and(|(stable, canary)| stable == canary) {
        problem(
            format!("{at}.canary"),
            "the canary must differ from the stable version".into(),
        );
    }
}

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
