//! Release plans: the YAML a person writes, parsed and validated into a [`Plan`].
//!
//! Parsing happens in two passes. Serde reads the document (errors carry the field path
//! through `serde_path_to_error`), then [`Plan::validate`] checks what serde cannot:
//! unique names, known dependencies, an acyclic graph, monotonic weights, thresholds.
//! Every problem is reported with its path (`services[1].depends_on[0]`), all at once.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dag;

/// A validated release plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The release's name, unique within an orchestrator.
    pub name: String,
    /// The flag server environment whose flags are ramped.
    pub environment: String,
    /// The services released, each with its canary router and flags.
    pub services: Vec<Service>,
    /// The ramp every service follows.
    pub steps: Vec<Step>,
    /// Metric analysis run while a service progresses.
    #[serde(default)]
    pub analysis: Analysis,
    /// What a failed analysis does.
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// One service in a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The service's name, unique within the plan.
    pub name: String,
    /// Services that must be promoted before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// How the canary's traffic weight is set; `none` when omitted (flags only).
    #[serde(default)]
    pub canary: Canary,
    /// The flags ramped together with the canary's weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<FlagRef>,
    /// Checks that must pass before the first step and keep passing during analysis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<HealthCheck>,
}

/// The traffic router that splits a service's traffic between stable and canary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "router", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Canary {
    /// No traffic router: only the flags are ramped.
    #[default]
    None,
    /// HAProxy's runtime API (`set server <backend>/<server> weight N`).
    Haproxy(HaproxyCanary),
}

/// Where HAProxy's runtime API listens and which servers carry the two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyCanary {
    /// `host:port` of a `stats socket ipv4@…` or the path of a unix socket.
    pub address: String,
    /// The backend holding both servers.
    pub backend: String,
    /// The server running the stable version.
    pub stable: String,
    /// The server running the canary version.
    pub canary: String,
}

/// A flag ramped by a service: its default serve, or one named rule's serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlagRef {
    /// The flag's key.
    pub key: String,
    /// The rule whose serve is ramped; the flag's default serve when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl<'de> Deserialize<'de> for FlagRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Written either as `new-checkout` or `{ key: new-checkout, rule: eu-ramp }`.
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FlagRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a flag key or { key, rule }")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<FlagRef, E> {
                Ok(FlagRef {
                    key: key.to_owned(),
                    rule: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FlagRef, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Written {
                    key: String,
                    rule: Option<String>,
                }
                let w = Written::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FlagRef {
                    key: w.key,
                    rule: w.rule,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A health check: an HTTP URL answering 2xx, a TCP port accepting connections, or a
/// gRPC health service reporting SERVING.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// What is checked.
    #[serde(flatten)]
    pub target: HealthTarget,
    /// How long one check may take.
    #[serde(default = "default_check_timeout", with = "duration")]
    pub timeout: Duration,
}

/// The endpoint a [`HealthCheck`] probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthTarget {
    /// `GET url` must answer 2xx.
    Http(String),
    /// `host:port` must accept a TCP connection.
    Tcp(String),
    /// `host:port` must answer `grpc.health.v1.Health/Check` with SERVING.
    Grpc(String),
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(2)
}

/// One step of the ramp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The canary's traffic share and the flags' first-variant share, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// How long the weight is held (and analysed) before the next step; one analysis
    /// interval when absent.
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub hold: Option<Duration>,
    /// Waits for a person's `approve` before going on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approve: bool,
}

/// What the ramp does at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Set this weight and hold it for this long.
    Weight(u32, Duration),
    /// Wait for approval.
    Approve,
}

/// Metric analysis shared by every service of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// How often the metrics are measured while a service progresses.
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// How many failed analyses a service tolerates; one more fails the release.
    #[serde(default)]
    pub failure_limit: u32,
    /// The metrics measured at each analysis.
    #[serde(default)]
    pub metrics: Vec<Metric>,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            interval: default_interval(),
            failure_limit: 0,
            metrics: Vec::new(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}

/// One measured metric with its thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    /// The metric's name in status and reports.
    pub name: String,
    /// A Prometheus instant query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusQuery>,
    /// The largest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The smallest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// What an empty or NaN result counts as.
    #[serde(default)]
    pub on_no_data: OnNoData,
    /// The services this metric is measured for; every service when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
}

impl Metric {
    /// Whether this metric is measured for `service`.
    pub fn applies_to(&self, service: &str) -> bool {
        self.services
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == service))
    }
}

/// A Prometheus server and an instant query returning one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusQuery {
    /// The server's base URL, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    /// A PromQL expression; `{{service}}` is replaced by the service's name.
    pub query: String,
}

/// What a measurement without data counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNoData {
    /// A failed measurement (the safe default: a broken query must not pass).
    #[default]
    Fail,
    /// A passed measurement.
    Pass,
    /// Neither: the measurement is recorded and ignored.
    Ignore,
}

/// What a failed analysis does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Roll the whole release back: canary weight 0, flags killed.
    #[default]
    Rollback,
    /// Pause the failing service until a person resumes or aborts it.
    Pause,
}

/// A plan that could not be read, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The YAML could not be read into a plan.
    #[error("{path}: {message}")]
    Syntax {
        /// Where in the document.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The plan was read but is not valid.
    #[error("invalid release plan:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field, e.g. `steps[2].weight`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl Plan {
    /// Parses and validates a YAML (or JSON) release plan.
    pub fn from_yaml(text: &str) -> Result<Plan, PlanError> {
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let plan: Plan = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = match e.path().to_string() {
                p if p == "." => "plan".to_owned(),
                p => p,
            };
            // serde_yaml_ng prefixes some messages with (part of) the path.
            let message = e.into_inner().to_string();
            let message = match message.split_once(": ") {
                Some((head, rest)) if path.starts_with(head) => rest.to_owned(),
                _ => message,
            };
            PlanError::Syntax { path, message }
        })?;
        plan.validate()?;
        Ok(plan)
    }

    /// Checks what the document's shape cannot express; every problem is reported.
    pub fn validate(&self) -> Result<(), PlanError> {
        let mut problems = Vec::new();
        let mut problem = |path: String, message: String| problems.push(Problem { path, message });

        if !is_name(&self.name) {
            problem("name".into(), NAME_RULE.into());
        }
        if self.environment.trim().is_empty() {
            problem("environment".into(), "must not be empty".into());
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
            if let Canary::Haproxy(h) = &service.canary {
                for (field, value) in [
                    ("address", &h.address),
                    ("backend", &h.backend),
                    ("stable", &h.stable),
                    ("canary", &h.canary),
                ] {
                    if value.trim().is_empty() {
                        problem(format!("{at}.canary.{field}"), "must not be empty".into());
                    }
                }
                if h.stable == h.canary {
                    problem(
                        format!("{at}.canary.canary"),
                        "the canary server must differ from the stable one".into(),
                    );
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

        if self.steps.is_empty() {
            problem("steps".into(), "a release needs at least one step".into());
        }
        let mut previous = 0;
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            match (step.weight, step.approve) {
                (Some(_), true) | (None, false) => problem(
                    at.clone(),
                    "a step has either `weight` or `approve: true`".into(),
                ),
                (None, true) if step.hold.is_some() => problem(
                    format!("{at}.hold"),
                    "`hold` belongs to a weight step".into(),
                ),
                (Some(w), false) if !(1..=100).contains(&w) => {
                    problem(format!("{at}.weight"), "must be between 1 and 100".into())
                }
                (Some(w), false) if w < previous => problem(
                    format!("{at}.weight"),
                    format!("weights never decrease: {w} follows {previous}"),
                ),
                (Some(w), false) => previous = w,
                _ => {}
            }
        }

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
            match &metric.prometheus {
                None => problem(
                    at.clone(),
                    "a metric needs a source: `prometheus: { url, query }`".into(),
                ),
                Some(q) => {
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
                (None, None) => problem(at.clone(), "a metric needs `max`, `min` or both".into()),
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

    /// The step at `index` as what it does.
    pub fn step(&self, index: usize) -> Option<StepKind> {
        let step = self.steps.get(index)?;
        Some(match step.weight {
            Some(w) if !step.approve => {
                StepKind::Weight(w, step.hold.unwrap_or(self.analysis.interval))
            }
            _ => StepKind::Approve,
        })
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The largest weight any step sets.
    pub fn max_weight(&self) -> u32 {
        self.steps
            .iter()
            .filter_map(|s| s.weight)
            .max()
            .unwrap_or(0)
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

fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// Durations written the human way: `30s`, `2m`, `1h 30m`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("`{text}` is not a duration like 30s or 2m ({e})"))
        })
    }
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
name: checkout-v3
environment: production
services:
  - name: auth
    canary: { router: haproxy, address: "127.0.0.1:9999", backend: auth, stable: v2, canary: v3 }
    flags: [enhanced-auth]
  - name: payments
    depends_on: [auth]
    flags: [{ key: new-payment-flow, rule: eu-ramp }]
    health: [ { http: "http://127.0.0.1:9101/healthz" }, { tcp: "127.0.0.1:9102", timeout: 1s } ]
steps:
  - weight: 1
  - weight: 5
    hold: 2m
  - approve: true
  - weight: 100
analysis:
  interval: 10s
  failure_limit: 2
  metrics:
    - name: error-rate
      prometheus: { url: "http://127.0.0.1:9090", query: "sum(rate(errors[1m]))" }
      max: 0.01
      on_no_data: pass
on_failure: pause
"#;

    #[test]
    fn reads_a_full_plan() {
        let plan = Plan::from_yaml(FULL).unwrap();
        assert_eq!(plan.services.len(), 2);
        assert_eq!(
            plan.services[1].flags[0],
            FlagRef {
                key: "new-payment-flow".into(),
                rule: Some("eu-ramp".into())
            }
        );
        assert_eq!(plan.services[0].flags[0].rule, None);
        assert_eq!(
            plan.step(0),
            Some(StepKind::Weight(1, Duration::from_secs(10)))
        );
        assert_eq!(
            plan.step(1),
            Some(StepKind::Weight(5, Duration::from_secs(120)))
        );
        assert_eq!(plan.step(2), Some(StepKind::Approve));
        assert_eq!(plan.step(4), None);
        assert_eq!(plan.analysis.metrics[0].on_no_data, OnNoData::Pass);
        assert_eq!(plan.on_failure, OnFailure::Pause);
        assert_eq!(
            plan.services[1].health[1],
            HealthCheck {
                target: HealthTarget::Tcp("127.0.0.1:9102".into()),
                timeout: Duration::from_secs(1)
            }
        );
        // What is stored is read back identically.
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }

    fn problems(yaml: &str) -> Vec<String> {
        match Plan::from_yaml(yaml) {
            Ok(_) => vec![],
            Err(PlanError::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
            Err(e @ PlanError::Syntax { .. }) => vec![e.to_string()],
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 101}]",
                "steps[0].weight: must be between 1 and 100",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 50}, {weight: 10}]",
                "steps[1].weight: weights never decrease: 10 follows 50",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5, approve: true}]",
                "steps[0]: a step has either `weight` or `approve: true`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f], depends_on: [x]}]\nsteps: [{weight: 5}]",
                "services[0].depends_on[0]: unknown service `x`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s}]\nsteps: [{weight: 5}]",
                "services[0].flags: a service without a traffic router must ramp at least one flag",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f], canary: {router: nginx}}]\nsteps: [{weight: 5}]",
                "services[0].canary.router: unknown variant `nginx`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5, hold: soon}]",
                "steps[0].hold: `soon` is not a duration",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\nanalysis: {metrics: [{name: m, prometheus: {url: 'ftp://x', query: q}}]}",
                "analysis.metrics[0].prometheus.url: `ftp://x` is not an http(s) URL",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\nanalysis: {metrics: [{name: m, prometheus: {url: 'http://x', query: q}}]}",
                "analysis.metrics[0]: a metric needs `max`, `min` or both",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f], health: [{tcp: nope}]}]\nsteps: [{weight: 5}]",
                "services[0].health[0].tcp: `nope` is not host:port",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\nsurprise: 1",
                "unknown field `surprise`",
            ),
            (
                "name: Bad Name\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]",
                "name: must be 1-63 characters",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}, {name: t, flags: [f]}]\nsteps: [{weight: 5}]",
                "services[1].flags[0]: flag `f` is ramped twice in this release",
            ),
        ];
        for (yaml, expected) in cases {
            let found = problems(yaml);
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "expected `{expected}` for\n{yaml}\nfound {found:#?}"
            );
        }
    }

    #[test]
    fn a_cycle_is_rejected_naming_its_members() {
        let yaml = "name: a\nenvironment: p\nsteps: [{weight: 5}]\nservices:\n  - {name: a, flags: [f1], depends_on: [c]}\n  - {name: b, flags: [f2], depends_on: [a]}\n  - {name: c, flags: [f3], depends_on: [b]}\n  - {name: d, flags: [f4]}\n";
        let found = problems(yaml);
        assert_eq!(
            found,
            vec!["services: depends_on forms a cycle: a -> c -> b -> a"]
        );
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let yaml = "name: a\nenvironment: ''\nservices: []\nsteps: []";
        assert_eq!(problems(yaml).len(), 3);
    }
}
