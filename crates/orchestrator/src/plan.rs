//! Release plans: the YAML a person writes, parsed and validated into a [`Plan`].
//!
//! Parsing happens in two passes. Serde reads the document (errors carry the field path
//! through `serde_path_to_error`), then [`Plan::validate`] checks what serde cannot:
//! unique names, known dependencies, an acyclic graph, monotonic weights, thresholds.
//! Every problem is reported with its path (`services[1].depends_on[0]`), all at once.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_core::duplicate_keys;

use crate::dag;

/// A validated release plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The release's name, unique within an orchestrator.
    pub name: String,
    /// The flag server environment whose flags are ramped. Either this or
    /// `environments`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub environment: String,
    /// Environments the same release runs in, in order (e.g. staging, then
    /// production), with an approval between each and the next.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
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
    /// Checks that must pass before the release starts.
    #[serde(default, skip_serializing_if = "Gates::is_empty")]
    pub gates: Gates,
    /// Where the release's progress is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notify>,
}

/// Gates run before the release starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Run once, before any service starts.
    #[serde(default)]
    pub pre: Vec<Gate>,
}

impl Gates {
    fn is_empty(&self) -> bool {
        self.pre.is_empty()
    }
}

/// A check that lets a release (or a step) go on: a webhook answering 2xx, or a
/// command exiting 0. A timeout or any other answer halts; it is retried first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GateWritten")]
pub struct Gate {
    /// What is checked.
    #[serde(flatten)]
    pub check: GateCheck,
    /// How long one attempt may take.
    #[serde(default = "default_gate_timeout", with = "duration")]
    pub timeout: Duration,
    /// Further attempts after a failed one.
    #[serde(default = "default_gate_retries")]
    pub retries: u32,
}

/// What a [`Gate`] runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateCheck {
    /// `POST url` with the release's state as JSON; 2xx passes.
    Webhook(String),
    /// `sh -c command`; exit status 0 passes.
    Command(String),
}

/// A [`Gate`] as written; read through this so that a mistyped gate is told which
/// forms there are (serde's `flatten` would only say that no variant matched).
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a gate: `webhook: URL` or `command: COMMAND`, with optional `timeout` and `retries`"
)]
struct GateWritten {
    webhook: Option<String>,
    command: Option<String>,
    #[serde(default = "default_gate_timeout", with = "duration")]
    timeout: Duration,
    #[serde(default = "default_gate_retries")]
    retries: u32,
}

impl TryFrom<GateWritten> for Gate {
    type Error = &'static str;

    fn try_from(written: GateWritten) -> Result<Self, Self::Error> {
        let check = match (written.webhook, written.command) {
            (Some(url), None) => GateCheck::Webhook(url),
            (None, Some(command)) => GateCheck::Command(command),
            _ => {
                return Err(
                    "a gate has exactly one of `webhook: URL` or `command: COMMAND` \
                     (and optional `timeout` and `retries`)",
                )
            }
        };
        Ok(Gate {
            check,
            timeout: written.timeout,
            retries: written.retries,
        })
    }
}

fn default_gate_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_gate_retries() -> u32 {
    2
}

/// A notification target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// `POST`ed to for each event.
    pub webhook: String,
    /// The payload's shape.
    #[serde(default)]
    pub format: NotifyFormat,
    /// The events sent; every event when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NotifyEvent>,
}

/// A notification payload's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// `{ release, event, service, message, environment, at }`.
    #[default]
    Json,
    /// Slack's incoming-webhook shape: `{ text }`.
    Slack,
}

/// A release event that can be notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// The release started (in an environment).
    Started,
    /// A service reached a new weight.
    Step,
    /// A service was paused.
    Paused,
    /// A service waits for approval.
    AwaitingApproval,
    /// The release was promoted (in an environment).
    Promoted,
    /// The release was rolled back.
    RolledBack,
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
    /// A Kubernetes Gateway API `HTTPRoute`'s `backendRefs[].weight`.
    GatewayApi(GatewayApiCanary),
    /// The `nginx.ingress.kubernetes.io/canary-weight` annotation of a canary Ingress.
    NginxIngress(NginxIngressCanary),
    /// `POST { service, stable, canary }` (weights in percent) to a URL; 2xx confirms.
    Webhook(WebhookCanary),
}

/// An HTTPRoute whose two backendRefs carry the stable and canary versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayApiCanary {
    /// The route's namespace.
    pub namespace: String,
    /// The HTTPRoute's name.
    pub route: String,
    /// The backendRef (Service name) of the stable version.
    pub stable: String,
    /// The backendRef (Service name) of the canary version.
    pub canary: String,
    /// A kubeconfig file; the usual inference (KUBECONFIG, in-cluster) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
}

/// The canary Ingress of an NGINX ingress canary pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxIngressCanary {
    /// The Ingress's namespace.
    pub namespace: String,
    /// The canary Ingress's name (it carries `nginx.ingress.kubernetes.io/canary: "true"`).
    pub ingress: String,
    /// A kubeconfig file; the usual inference when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
}

/// A URL told the weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookCanary {
    /// Where the weights are `POST`ed.
    pub url: String,
    /// How long the call may take.
    #[serde(default = "default_gate_timeout", with = "duration")]
    pub timeout: Duration,
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
#[serde(try_from = "HealthCheckWritten")]
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

/// A [`HealthCheck`] as written; read through this so that a mistyped check is told
/// which forms there are (serde's `flatten` would only say that no variant matched).
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a health check: `http: URL`, `tcp: HOST:PORT` or `grpc: HOST:PORT`, with an optional `timeout`"
)]
struct HealthCheckWritten {
    http: Option<String>,
    tcp: Option<String>,
    grpc: Option<String>,
    #[serde(default = "default_check_timeout", with = "duration")]
    timeout: Duration,
}

impl TryFrom<HealthCheckWritten> for HealthCheck {
    type Error = &'static str;

    fn try_from(written: HealthCheckWritten) -> Result<Self, Self::Error> {
        let target = match (written.http, written.tcp, written.grpc) {
            (Some(url), None, None) => HealthTarget::Http(url),
            (None, Some(address), None) => HealthTarget::Tcp(address),
            (None, None, Some(address)) => HealthTarget::Grpc(address),
            _ => {
                return Err(
                    "a health check has exactly one of `http: URL`, `tcp: HOST:PORT` or \
                     `grpc: HOST:PORT` (and an optional `timeout`)",
                )
            }
        };
        Ok(HealthCheck {
            target,
            timeout: written.timeout,
        })
    }
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
    /// Gates that must pass before this step's weight is applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<Gate>,
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
    /// The flag server's own per-variant metrics: treatment vs control event rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardQuery>,
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

/// A guarded rollout: the rate of `event` per exposure among users served the flag's
/// ramped (first) variant, against the users served any other variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardQuery {
    /// The flag whose variants are compared.
    pub flag: String,
    /// The tracked event (SDK `track()`), e.g. `checkout_error`.
    pub event: String,
    /// The largest tolerated relative increase of the treatment's rate over the
    /// control's (0.10 = 10 %).
    pub max_relative_increase: f64,
    /// How sure the test must be that the increase exceeds the limit before failing.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Exposures each arm needs before the test says anything (no data until then).
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// The window of counts read from the server (1m to 31d).
    #[serde(default = "default_guard_window", with = "duration")]
    pub window: Duration,
}

fn default_confidence() -> f64 {
    0.95
}

fn default_min_samples() -> u64 {
    100
}

fn default_guard_window() -> Duration {
    Duration::from_secs(600)
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

/// What a failed analysis does. Written `rollback`, `pause`, or
/// `{ rollback: gradual, step: 25, interval: 30s }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Roll the whole release back: flags killed, canary weight to 0.
    Rollback(Rollback),
    /// Pause the failing service until a person resumes or aborts it.
    Pause,
}

impl Default for OnFailure {
    fn default() -> Self {
        OnFailure::Rollback(Rollback::Instant)
    }
}

/// How a rollback takes the canary's weight to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollback {
    /// At once.
    Instant,
    /// Down by `step` percent every `interval`, so a scaled-down stable version is not
    /// flooded; the flags are killed at once.
    Gradual {
        /// Percent per decrease.
        step: u32,
        /// Time between decreases.
        interval: Duration,
    },
}

impl Serialize for OnFailure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            OnFailure::Pause => s.serialize_str("pause"),
            OnFailure::Rollback(Rollback::Instant) => s.serialize_str("rollback"),
            OnFailure::Rollback(Rollback::Gradual { step, interval }) => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("rollback", "gradual")?;
                map.serialize_entry("step", step)?;
                map.serialize_entry(
                    "interval",
                    &humantime::format_duration(*interval).to_string(),
                )?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for OnFailure {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OnFailure;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`rollback`, `pause` or `{ rollback: gradual, step, interval }`")
            }
            fn visit_str<E: serde::de::Error>(self, word: &str) -> Result<OnFailure, E> {
                match word {
                    "rollback" => Ok(OnFailure::Rollback(Rollback::Instant)),
                    "pause" => Ok(OnFailure::Pause),
                    other => Err(E::unknown_variant(other, &["rollback", "pause"])),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<OnFailure, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields, rename_all = "snake_case")]
                enum Kind {
                    Instant,
                    Gradual,
                }
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Written {
                    rollback: Kind,
                    step: Option<u32>,
                    #[serde(default, with = "optional_duration")]
                    interval: Option<Duration>,
                }
                let w = Written::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                match w.rollback {
                    Kind::Instant => Ok(OnFailure::Rollback(Rollback::Instant)),
                    Kind::Gradual => Ok(OnFailure::Rollback(Rollback::Gradual {
                        step: w.step.unwrap_or(25),
                        interval: w.interval.unwrap_or(Duration::from_secs(30)),
                    })),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
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
    ///
    /// A key written twice in one mapping is refused. The typed fields would refuse
    /// most duplicates anyway (`duplicate field`), but a gate's or a health check's
    /// `webhook`/`http`/… written twice read as an unknown field, and a duplicate
    /// must never silently mean the last one.
    pub fn from_yaml(text: &str) -> Result<Plan, PlanError> {
        if let Some(duplicate) = duplicate_keys::find(serde_yaml_ng::Deserializer::from_str(text)) {
            return Err(PlanError::Syntax {
                path: match duplicate.path.as_str() {
                    "" => "plan".to_owned(),
                    path => path.to_owned(),
                },
                message: format!("duplicate key `{}`", duplicate.key.escape_debug()),
            });
        }
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let plan: Plan = serde_path_to_error::deserialize(deserializer)
            .map_err(|e| every_schema_problem(text, schema_problem(e)))?;
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
        match (
            self.environment.trim().is_empty(),
            self.environments.is_empty(),
        ) {
            (true, true) => problem(
                "environment".into(),
                "name the flag server environment (`environment`, or `environments` in order)"
                    .into(),
            ),
            (false, false) => problem(
                "environments".into(),
                "give either `environment` or `environments`, not both".into(),
            ),
            _ => {}
        }
        for (i, env) in self.environments.iter().enumerate() {
            if env.trim().is_empty() {
                problem(format!("environments[{i}]"), "must not be empty".into());
            } else if self.environments[..i].contains(env) {
                problem(
                    format!("environments[{i}]"),
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
        let mut previous = 0;
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            for (j, gate) in step.gates.iter().enumerate() {
                check_gate(&format!("{at}.gates[{j}]"), gate, &mut problem);
            }
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

    /// The environments the release runs in, in order.
    pub fn environments(&self) -> Vec<&str> {
        if self.environments.is_empty() {
            vec![self.environment.as_str()]
        } else {
            self.environments.iter().map(String::as_str).collect()
        }
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The weight of the first weight step (100 when every step is an approval): the
    /// share the pre-checks allow a ramped flag to serve already.
    pub fn first_weight(&self) -> u32 {
        (0..self.steps.len())
            .find_map(|i| match self.step(i) {
                Some(StepKind::Weight(w, _)) => Some(w),
                _ => None,
            })
            .unwrap_or(100)
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

/// One problem serde found, with its path (`plan` for the document itself).
fn schema_problem(error: serde_path_to_error::Error<serde_yaml_ng::Error>) -> Problem {
    let path = match error.path().to_string() {
        p if p == "." => "plan".to_owned(),
        p => p,
    };
    // serde_yaml_ng prefixes some messages with (part of) the path.
    let message = error.into_inner().to_string();
    let message = match message.split_once(": ") {
        Some((head, rest)) if path.starts_with(head) => rest.to_owned(),
        _ => message,
    };
    Problem { path, message }
}

/// The most schema problems collected from one document.
const MAX_SCHEMA_PROBLEMS: usize = 50;

/// Every problem in a plan whose first schema problem is `first`, not only that one.
///
/// Serde stops at the first problem, so the document is read as a YAML value and read
/// into a [`Plan`] again and again, each time without the field that failed (an unknown
/// field, a value of the wrong type), until it reads; then [`Plan::validate`]'s rule
/// problems are added, except those about a removed field. It stops early where
/// removing would make problems up: a list item (later indexes would shift) or a
/// required field (it would be reported missing).
fn every_schema_problem(text: &str, first: Problem) -> PlanError {
    let Ok(mut document) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return first.into();
    };
    if document.apply_merge().is_err() {
        return first.into();
    }
    let mut problems = vec![first];
    let mut removed: Vec<String> = Vec::new();
    while problems.len() < MAX_SCHEMA_PROBLEMS {
        match serde_path_to_error::deserialize::<_, Plan>(document.clone()) {
            Ok(plan) => {
                let rules = match plan.validate() {
                    Err(PlanError::Invalid(rules)) => rules,
                    _ => Vec::new(),
                };
                problems.extend(rules.into_iter().filter(|rule| {
                    !removed.iter().any(|gone| {
                        rule.path == *gone
                            || rule.path.starts_with(&format!("{gone}."))
                            || rule.path.starts_with(&format!("{gone}["))
                    })
                }));
                break;
            }
            Err(error) => {
                let segments: Vec<serde_path_to_error::Segment> =
                    error.path().iter().cloned().collect();
                let problem = schema_problem(error);
                if removed.iter().any(|gone| caused_by_removal(&problem, gone)) {
                    break;
                }
                if !problems.iter().any(|p| p.path == problem.path) {
                    problems.push(problem.clone());
                }
                if !remove_field(&mut document, &segments) {
                    break;
                }
                removed.push(problem.path);
            }
        }
    }
    if problems.len() == 1 {
        problems.remove(0).into()
    } else {
        PlanError::Invalid(problems)
    }
}

/// Whether `problem` says that the field at `gone`, removed by us, is missing.
fn caused_by_removal(problem: &Problem, gone: &str) -> bool {
    let Some(field) = problem
        .message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    else {
        return false;
    };
    let missing = if problem.path == "plan" {
        field.to_owned()
    } else {
        format!("{}.{field}", problem.path)
    };
    missing == gone
}

/// Removes the mapping entry at `path`; false when `path` does not end in a field of a
/// mapping that is there.
fn remove_field(
    document: &mut serde_yaml_ng::Value,
    path: &[serde_path_to_error::Segment],
) -> bool {
    use serde_path_to_error::Segment;
    let Some((Segment::Map { key }, parents)) = path.split_last() else {
        return false;
    };
    let mut node = document;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => node.get_mut(key.as_str()),
            Segment::Seq { index } => node.get_mut(*index),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        let Some(next) = next else {
            return false;
        };
        node = next;
    }
    node.as_mapping_mut()
        .and_then(|mapping| mapping.remove(key.as_str()))
        .is_some()
}

impl From<Problem> for PlanError {
    fn from(problem: Problem) -> Self {
        PlanError::Syntax {
            path: problem.path,
            message: problem.message,
        }
    }
}

/// A required field's name and value.
type Field<'a> = (&'static str, &'a String);

fn check_gate(at: &str, gate: &Gate, problem: &mut impl FnMut(String, String)) {
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
    if guard.window < Duration::from_secs(60) || guard.window > Duration::from_secs(31 * 86_400) {
        problem(format!("{at}.window"), "must be between 1m and 31d".into());
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

    #[test]
    fn duplicate_keys_are_refused_naming_the_key_and_where() {
        let base = "environment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 50}]\n";
        let cases = [
            (format!("name: a\nname: b\n{base}"), "plan: duplicate key `name`"),
            (
                "name: a\nenvironment: p\nservices:\n  - name: s\n    name: t\n    flags: [f]\nsteps: [{weight: 50}]\n".to_owned(),
                "services[0]: duplicate key `name`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [{key: f, key: g}]}]\nsteps: [{weight: 50}]\n".to_owned(),
                "services[0].flags[0]: duplicate key `key`",
            ),
            // Inside a flattened part, serde alone would call the second one unknown.
            (
                format!("name: a\n{base}gates:\n  pre:\n    - webhook: http://a\n      webhook: http://b\n"),
                "gates.pre[0]: duplicate key `webhook`",
            ),
            (
                format!("name: a\n{base}gates:\n  pre:\n    - command: \"true\"\n      timeout: 1s\n      timeout: 2s\n"),
                "gates.pre[0]: duplicate key `timeout`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f], health: [{http: \"http://a\", http: \"http://b\"}]}]\nsteps: [{weight: 50}]\n".to_owned(),
                "services[0].health[0]: duplicate key `http`",
            ),
            // A JSON plan is read the same way.
            (
                r#"{"name": "a", "environment": "p", "services": [{"name": "s", "flags": ["f"]}], "steps": [{"weight": 50, "weight": 60}]}"#.to_owned(),
                "steps[0]: duplicate key `weight`",
            ),
        ];
        for (yaml, expected) in cases {
            let err = Plan::from_yaml(&yaml).map(|_| ()).expect_err(&yaml);
            assert_eq!(err.to_string(), expected, "{yaml}");
        }
        // The same keys in different mappings are no duplicates.
        Plan::from_yaml(FULL).expect("valid");
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
    fn reads_part_two_fields() {
        let plan = Plan::from_yaml(
            r#"
name: r
environments: [staging, production]
services:
  - name: web
    canary: { router: gateway-api, namespace: shop, route: web, stable: web-v1, canary: web-v2 }
    flags: [f]
  - name: api
    canary: { router: nginx-ingress, namespace: shop, ingress: api-canary }
  - name: edge
    canary: { router: webhook, url: "http://127.0.0.1:9/weights" }
steps:
  - weight: 10
    gates: [ { webhook: "http://127.0.0.1:9/step" } ]
  - weight: 100
analysis:
  metrics:
    - name: checkout-errors
      guard: { flag: f, event: checkout_error, max_relative_increase: 0.1 }
on_failure: { rollback: gradual, step: 20, interval: 10s }
gates:
  pre: [ { webhook: "http://127.0.0.1:9/gate", timeout: 3s }, { command: "test -f /etc/hostname", retries: 0 } ]
notify: [ { webhook: "http://127.0.0.1:9/hook", format: slack, events: [promoted, rolled_back] } ]
"#,
        )
        .unwrap();
        assert_eq!(plan.environments(), ["staging", "production"]);
        assert_eq!(
            plan.on_failure,
            OnFailure::Rollback(Rollback::Gradual {
                step: 20,
                interval: Duration::from_secs(10)
            })
        );
        let guard = plan.analysis.metrics[0].guard.as_ref().unwrap();
        assert_eq!((guard.confidence, guard.min_samples), (0.95, 100));
        assert_eq!(
            plan.gates.pre[1].check,
            GateCheck::Command("test -f /etc/hostname".into())
        );
        assert_eq!(plan.gates.pre[0].retries, 2);
        assert_eq!(plan.notify[0].format, NotifyFormat::Slack);
        assert!(matches!(plan.services[1].canary, Canary::NginxIngress(_)));
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
        assert_eq!(
            serde_json::to_value(OnFailure::Pause).unwrap(),
            serde_json::json!("pause")
        );
    }

    #[test]
    fn part_two_errors_name_the_field() {
        let base = "name: a\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\n";
        let cases: &[(&str, &str)] = &[
            ("environment: p\nenvironments: [q]", "environments: give either `environment` or `environments`, not both"),
            ("environments: [p, p]", "environments[1]: environment `p` is listed twice"),
            ("environment: p\ngates: {pre: [{webhook: nope}]}", "gates.pre[0].webhook: `nope` is not an http(s) URL"),
            ("environment: p\nnotify: [{webhook: 'http://x', format: teams}]", "notify[0].format: unknown variant `teams`"),
            ("environment: p\non_failure: {rollback: gradual, step: 0}", "on_failure.step: must be between 1 and 100"),
            ("environment: p\non_failure: sometimes", "on_failure: unknown variant `sometimes`"),
            ("environment: p\nanalysis: {metrics: [{name: g, guard: {flag: f, event: e, max_relative_increase: 0.1, confidence: 2}}]}", "analysis.metrics[0].guard.confidence: must be between 0.5 and 1"),
            ("environment: p\nanalysis: {metrics: [{name: g, max: 1, guard: {flag: f, event: e, max_relative_increase: 0.1}}]}", "a guard metric's threshold is its `max_relative_increase`"),
        ];
        for (extra, expected) in cases {
            let yaml = format!("{base}{extra}");
            let found = problems(&yaml);
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
    fn every_schema_problem_is_reported_with_the_rule_problems() {
        let yaml = "name: a\nenvironment: p\nsurprise: 1\n\
                    services: [{name: s, flags: [f], colour: red, health: [{tcp: nope}]}]\n\
                    steps: [{weight: 5, hold: soon}, {weight: 1}]\n\
                    analysis: {interval: 1s, extra: true}";
        let found = problems(yaml);
        let expected = [
            "surprise: unknown field `surprise`, expected one of `name`, `environment`, \
             `environments`, `services`, `steps`, `analysis`, `on_failure`, `gates`, `notify`",
            "services[0].colour: unknown field `colour`, expected one of `name`, \
             `depends_on`, `canary`, `flags`, `health`",
            "steps[0].hold: `soon` is not a duration",
            "analysis.extra: unknown field `extra`, expected one of `interval`, \
             `failure_limit`, `metrics`",
            // Rule problems, after the schema's.
            "services[0].health[0].tcp: `nope` is not host:port",
            "steps[1].weight: weights never decrease: 1 follows 5",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for want in expected {
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "no `{want}` in {found:#?}"
            );
        }
        assert!(
            found[4..].iter().all(|p| !p.contains("unknown field")),
            "{found:#?}"
        );
        // A required field that is wrong is reported once, not also as missing.
        let found = problems("name: a\nenvironment: p\nservices: 3\nsteps: [{weight: 5}]\nx: 1");
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].starts_with("services: invalid type: integer `3`"),
            "{found:#?}"
        );
        assert!(found[1].starts_with("x: unknown field `x`"), "{found:#?}");
    }

    #[test]
    fn a_mistyped_health_check_or_gate_names_the_accepted_forms() {
        let base = "name: a\nenvironment: p\nsteps: [{weight: 5}]\n";
        let cases: &[(&str, &str)] = &[
            (
                "services: [{name: s, flags: [f], health: [{htp: 'http://x'}]}]",
                "services[0].health[0].htp: unknown field `htp`, expected one of `http`, `tcp`, `grpc`, `timeout`",
            ),
            (
                "services: [{name: s, flags: [f], health: [{timeout: 1s}]}]",
                "services[0].health[0]: a health check has exactly one of `http: URL`, `tcp: HOST:PORT` or `grpc: HOST:PORT` (and an optional `timeout`)",
            ),
            (
                "services: [{name: s, flags: [f], health: [{http: 'http://x', tcp: 'x:1'}]}]",
                "services[0].health[0]: a health check has exactly one of",
            ),
            (
                "services: [{name: s, flags: [f], health: ['http://x']}]",
                "services[0].health[0]: invalid type: string \"http://x\", expected a health check: `http: URL`, `tcp: HOST:PORT` or `grpc: HOST:PORT`",
            ),
            (
                "services: [{name: s, flags: [f]}]\ngates: {pre: [{webhok: 'http://x'}]}",
                "gates.pre[0].webhok: unknown field `webhok`, expected one of `webhook`, `command`, `timeout`, `retries`",
            ),
            (
                "services: [{name: s, flags: [f]}]\ngates: {pre: [{retries: 1}]}",
                "gates.pre[0]: a gate has exactly one of `webhook: URL` or `command: COMMAND`",
            ),
        ];
        for (extra, expected) in cases {
            let yaml = format!("{base}{extra}");
            let found = problems(&yaml);
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "expected `{expected}` for\n{yaml}\nfound {found:#?}"
            );
            assert!(!found.iter().any(|p| p.contains("flattened")), "{found:#?}");
        }
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let yaml = "name: a\nenvironment: ''\nservices: []\nsteps: []";
        assert_eq!(problems(yaml).len(), 3);
    }
}
