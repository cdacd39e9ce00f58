//! The plan's schema: the types a YAML plan is read into.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::gates::{default_gate_timeout, Gate, Gates, Notify};
use super::regions::{Region, RegionFailure, Regions, Waves};
use super::strategy::{Hotfix, Strategy};
use super::Problem;

/// A validated release plan.
///
/// Read and written as [`PlanWritten`]: the environments are one list here however the
/// YAML spells them, so nothing can read the two spellings differently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PlanWritten", into = "PlanWritten")]
pub struct Plan {
    /// The release's name, unique within an orchestrator.
    pub name: String,
    /// The flag server environments whose flags are ramped, in order (e.g. staging, then
    /// production), with an approval between each and the next; one in most plans.
    /// Written `environment: x` or `environments: [x, y]`; a valid plan has at least one.
    pub environments: Vec<String>,
    /// The services released, each with its canary router and flags.
    pub services: Vec<Service>,
    /// The ramp every service follows.
    pub steps: Vec<Step>,
    /// Metric analysis run while a service progresses.
    pub analysis: Analysis,
    /// What a failed analysis does.
    pub on_failure: OnFailure,
    /// Checks that must pass before the release starts.
    pub gates: Gates,
    /// Where the release's progress is announced.
    pub notify: Vec<Notify>,
    /// How every service without its own `strategy` takes over.
    pub strategy: Strategy,
    /// Set for a hotfix: every service runs one step at 100 held for its bake.
    pub hotfix: Option<Hotfix>,
    /// The regions, when the release is rolled out region by region; `services` is
    /// then their expansion, one per region and service (`plan/regions.rs`).
    pub regions: Option<Regions>,
}

/// A [`Plan`] as written: `environment: x` for one environment, or `environments: [x,
/// y]` in order; not both. [`PlanWritten::into_plan`] makes them one list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanWritten {
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    environment: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    environments: Vec<String>,
    #[serde(default, skip_serializing_if = "is_canary")]
    strategy: Strategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hotfix: Option<Hotfix>,
    services: Vec<Service>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    steps: Vec<Step>,
    #[serde(default)]
    analysis: Analysis,
    #[serde(default)]
    on_failure: OnFailure,
    #[serde(default, skip_serializing_if = "Gates::is_empty")]
    gates: Gates,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    notify: Vec<Notify>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    regions: Vec<Region>,
    #[serde(default, skip_serializing_if = "is_default")]
    waves: Waves,
    #[serde(default, skip_serializing_if = "is_default")]
    region_failure: RegionFailure,
}

impl PlanWritten {
    /// The plan with its environments as one list and its steps as the machine runs
    /// them (time-based ramps expanded), and the problems of the steps as written and
    /// of a plan that writes both spellings of its environments (its `environments`
    /// list is kept, so the plan's other problems are still found). A blank
    /// `environment` counts as not written.
    pub fn into_plan(self) -> (Plan, Vec<Problem>) {
        let single = !self.environment.trim().is_empty();
        let mut problems: Vec<Problem> = (single && !self.environments.is_empty())
            .then(|| Problem {
                path: "environments".into(),
                message: "give either `environment` or `environments`, not both".into(),
            })
            .into_iter()
            .collect();
        let environments = if single && self.environments.is_empty() {
            vec![self.environment]
        } else {
            self.environments
        };
        if self.regions.is_empty()
            && (self.waves != Waves::default() || self.region_failure != RegionFailure::default())
        {
            problems.push(Problem {
                path: "regions".into(),
                message: "`waves` and `region_failure` belong to a plan with `regions`".into(),
            });
        }
        let (services, regions) = if self.regions.is_empty() {
            (self.services, None)
        } else {
            let regions = Regions {
                list: self.regions,
                waves: self.waves,
                on_failure: self.region_failure,
                services: self.services,
            };
            (regions.expand(), Some(regions))
        };
        let mut plan = Plan {
            name: self.name,
            environments,
            services,
            steps: super::steps::read(self.steps, &mut problems),
            analysis: self.analysis,
            on_failure: self.on_failure,
            gates: self.gates,
            notify: self.notify,
            strategy: self.strategy,
            hotfix: self.hotfix,
            regions,
        };
        plan.expand_steps();
        (plan, problems)
    }
}

impl TryFrom<PlanWritten> for Plan {
    type Error = Problem;

    fn try_from(written: PlanWritten) -> Result<Plan, Problem> {
        let (plan, mut problems) = written.into_plan();
        if problems.is_empty() {
            Ok(plan)
        } else {
            Err(problems.remove(0))
        }
    }
}

impl From<Plan> for PlanWritten {
    /// One environment is written `environment: x`, several `environments: [x, y]`.
    fn from(plan: Plan) -> PlanWritten {
        let (environment, environments) = match <[String; 1]>::try_from(plan.environments) {
            Ok([one]) => (one, Vec::new()),
            Err(several) => (String::new(), several),
        };
        let (services, regions, waves, region_failure) = match plan.regions {
            Some(r) => (r.services, r.list, r.waves, r.on_failure),
            None => (
                plan.services,
                Vec::new(),
                Waves::default(),
                RegionFailure::default(),
            ),
        };
        PlanWritten {
            name: plan.name,
            environment,
            environments,
            services,
            steps: plan.steps,
            analysis: plan.analysis,
            on_failure: plan.on_failure,
            gates: plan.gates,
            notify: plan.notify,
            strategy: plan.strategy,
            hotfix: plan.hotfix,
            regions,
            waves,
            region_failure,
        }
    }
}

fn is_canary(strategy: &Strategy) -> bool {
    *strategy == Strategy::Canary
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
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
    /// How this service takes over; the plan's `strategy` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// The steps this service runs: its strategy's (or the hotfix's) expansion, made
    /// whenever a plan is read; never written.
    #[serde(skip)]
    pub steps: Vec<Step>,
    /// The region this service is released in, in a plan with `regions` (whose
    /// services are named `service@region`); never written.
    #[serde(skip)]
    pub region: Option<String>,
}

impl Service {
    /// The service's name as written: without the `@region` of a region plan's
    /// service (metrics, `{{service}}` in queries and `depends_on` use it).
    pub fn written_name(&self) -> &str {
        match &self.region {
            Some(region) => self
                .name
                .strip_suffix(region.as_str())
                .and_then(|n| n.strip_suffix('@'))
                .unwrap_or(&self.name),
            None => &self.name,
        }
    }
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
    /// The backend holding both versions' servers.
    pub backend: String,
    /// The server running the stable version (several for `strategy: rolling`).
    pub stable: Servers,
    /// The server running the canary version (several for `strategy: rolling`, as
    /// many as `stable`).
    pub canary: Servers,
}

/// HAProxy server names: written as one name or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers(pub Vec<String>);

impl Servers {
    /// The first server's name (the only one outside a rolling update).
    pub fn first(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }
}

impl fmt::Display for Servers {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

impl From<&str> for Servers {
    fn from(name: &str) -> Servers {
        Servers(vec![name.to_owned()])
    }
}

impl Serialize for Servers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0[..] {
            [one] => s.serialize_str(one),
            several => several.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Servers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a server name or a list of server names")]
        enum Written {
            One(String),
            Several(Vec<String>),
        }
        Ok(match Written::deserialize(deserializer)? {
            Written::One(name) => Servers(vec![name]),
            Written::Several(names) => Servers(names),
        })
    }
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
    /// A time-based ramp, written instead of `weight`; a [`Plan`]'s steps have it
    /// expanded into weight steps (`plan/steps.rs`), so it is `None` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<super::Ramp>,
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
    /// What an invalid analysis does (a guard's sample-ratio mismatch: the counting or
    /// the assignment is broken, so the analysis says nothing): `pause` (default) or
    /// `rollback`.
    #[serde(default = "default_on_invalid")]
    pub on_invalid: OnFailure,
}

fn default_on_invalid() -> OnFailure {
    OnFailure::Pause
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            interval: default_interval(),
            failure_limit: 0,
            metrics: Vec::new(),
            on_invalid: default_on_invalid(),
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
    /// A PromQL expression; `{{service}}` is replaced by the service's name and
    /// `{{region}}` by its region's (in a plan with `regions`).
    pub query: String,
}

/// A guarded rollout: among the distinct units served the flag's ramped (first) variant
/// since its weight was set, the share that had `event` (or the mean of the values
/// tracked with it), against the units served any other variant, under an
/// always-valid sequential test (`docs/guard.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardQuery {
    /// The flag whose variants are compared.
    pub flag: String,
    /// The tracked event (SDK `track()`), e.g. `checkout_error`.
    pub event: String,
    /// The largest tolerated relative increase of the treatment's rate (or mean) over
    /// the control's (0.10 = 10 %).
    pub max_relative_increase: f64,
    /// How sure the test must be that the increase exceeds the limit before failing:
    /// `1 − confidence` is the chance of failing a healthy release, over the whole
    /// release and however often it is looked at.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Distinct units each arm needs before the test says anything (no data until
    /// then).
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// Test the mean of the values tracked with the event (`track_value`: latency,
    /// amount) instead of the share of units that had it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub value: bool,
    /// The relative effect the test's mixture is tuned to (default 1: an increase of
    /// 100 % beyond the limit is found fastest); any positive value keeps the
    /// guarantee.
    #[serde(default = "default_mixture")]
    pub mixture: f64,
    /// Accepted for plans written for the previous test and ignored: the counts start
    /// when the weight was set.
    #[serde(default, skip_serializing)]
    pub window: Option<serde_yaml_ng::Value>,
}

fn default_confidence() -> f64 {
    0.95
}

fn default_min_samples() -> u64 {
    100
}

fn default_mixture() -> f64 {
    1.0
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

/// Durations written the human way: `30s`, `2m`, `1h 30m`.
pub(super) mod duration {
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

pub(super) mod optional_duration {
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
