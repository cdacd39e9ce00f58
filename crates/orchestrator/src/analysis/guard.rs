//! The `guard` metric: a guarded rollout judged on the flag server's own counts, with no
//! external monitoring (`docs/guard.md` states the method).
//!
//! SDK clients send, per flag variant, sketches of the distinct *units* (targeting keys)
//! they served it, and of the units that then had a tracked event (with the values
//! tracked with it). The *treatment* arm is the flag's first variant (the one a ramp
//! raises); the *control* arm is every other variant. [`Guard`] reads the units counted
//! since the service's weight was set, and [`judge`] decides without I/O:
//!
//! - the **sample-ratio check**: the treatment's share of units against the ramp's share,
//!   sequentially at p < 0.001 ([`SAMPLE_RATIO_LEVEL`]). A mismatch means the assignment
//!   or the counting is broken: the measurement is [`Verdict::Invalid`] and the plan's
//!   `analysis.on_invalid` decides (default pause);
//! - the **always-valid sequential test** (`switchyard_core::guard`) that the treatment's
//!   share of units with the event (or mean value) exceeds the control's by more than
//!   `max_relative_increase`, spending `1 − confidence` evenly over the plan's weight
//!   steps, so a healthy release is failed with at most that chance however many times
//!   it is analysed.
//!
//! Either arm below `min_samples` units (values, for a value guard) gives no verdict
//! ([`GuardOutcome::NoData`]); the plan's `on_no_data` decides what that counts as.

use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use switchyard_core::admin::FlagUnits;
use switchyard_core::guard::{
    means, rates, sample_ratio, Design, Evidence, SampleRatio, UnitCounts, ValueSummary,
};
use switchyard_core::release::{GuardArm, GuardLook, SampleRatioLook};
use switchyard_sdk::admin::AdminClient;

use super::{
    error_chain, Measurement, MetricError, MetricKind, MetricRequest, MetricSource, Verdict,
    WeightWindow,
};
use crate::plan::{GuardQuery, OnNoData};

/// The level of the sample-ratio check.
pub const SAMPLE_RATIO_LEVEL: f64 = 0.001;

/// One arm's units, units with the event, and the values tracked with it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Arm {
    /// Distinct units served the arm and those of them that had the event.
    pub units: UnitCounts,
    /// The values tracked with the event.
    pub values: ValueSummary,
}

/// The outcome of one guard check.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardOutcome {
    /// No weight has been set yet: nothing to count from.
    NotStarted,
    /// An arm is below `min_samples`: no verdict yet.
    NoData {
        /// The flag's first variant.
        treatment: Arm,
        /// Every other variant.
        control: Arm,
    },
    /// Both arms were large enough and the checks ran.
    Tested(Box<Tested>),
}

/// What the checks found at one look.
#[derive(Debug, Clone, PartialEq)]
pub struct Tested {
    /// The flag's first variant.
    pub treatment: Arm,
    /// Every other variant.
    pub control: Arm,
    /// The sequential test.
    pub evidence: Evidence,
    /// The sample-ratio check, when the ramp's share allows one.
    pub sample_ratio: Option<SampleRatio>,
    /// The false-failure probability this guard spends in one weight step.
    pub alpha: f64,
    /// Whether it is a value guard (means, not shares of units).
    pub value: bool,
}

impl Tested {
    /// Whether the sample-ratio check found a mismatch.
    pub fn mismatch(&self) -> bool {
        self.sample_ratio.is_some_and(|s| s.mismatch)
    }
}

/// The treatment (`first_variant`) and control (every other variant) arms of a flag's
/// units, for `event`.
pub fn arms(units: &FlagUnits, first_variant: &str, event: &str) -> (Arm, Arm) {
    let mut treatment = Arm::default();
    let mut control = Arm::default();
    for (variant, v) in &units.variants {
        let arm = if variant == first_variant {
            &mut treatment
        } else {
            &mut control
        };
        arm.units.units = arm.units.units.saturating_add(v.units);
        if let Some(e) = v.events.get(event) {
            arm.units.with_event = arm.units.with_event.saturating_add(e.units);
            arm.values.merge(&e.values);
        }
    }
    (treatment, control)
}

/// Runs the checks of the module docs on the arms. Pure; never panics.
pub fn judge(
    treatment: Arm,
    control: Arm,
    query: &GuardQuery,
    weight: &WeightWindow,
    count_error: f64,
) -> GuardOutcome {
    let needed = query.min_samples.max(1);
    let size = |a: &Arm| {
        if query.value {
            a.values.count
        } else {
            a.units.units
        }
    };
    if size(&treatment) < needed || size(&control) < needed {
        return GuardOutcome::NoData { treatment, control };
    }
    let alpha = (1.0 - query.confidence) / weight.weight_steps.max(1) as f64;
    let design = Design {
        max_relative_increase: query.max_relative_increase,
        alpha,
        mixture: query.mixture,
        count_error,
    };
    let evidence = if query.value {
        means(treatment.values, control.values, &design)
    } else {
        rates(treatment.units, control.units, &design)
    };
    let sample_ratio = sample_ratio(
        treatment.units.units,
        control.units.units,
        weight.share,
        count_error,
        SAMPLE_RATIO_LEVEL,
    );
    GuardOutcome::Tested(Box::new(Tested {
        treatment,
        control,
        evidence,
        sample_ratio,
        alpha,
        value: query.value,
    }))
}

/// A guard metric measured against a flag server.
#[derive(Debug, Clone)]
pub struct Guard {
    query: GuardQuery,
    admin: AdminClient,
    env: String,
}

impl Guard {
    /// Checks `query.flag` in `env` through `admin`.
    pub fn new(query: GuardQuery, admin: AdminClient, env: impl Into<String>) -> Self {
        Guard {
            query,
            admin,
            env: env.into(),
        }
    }

    /// Reads the flag's first variant and its units since the weight was set, and
    /// judges them.
    pub async fn check(&self, weight: Option<&WeightWindow>) -> Result<GuardOutcome, MetricError> {
        let Some(weight) = weight else {
            return Ok(GuardOutcome::NotStarted);
        };
        let (env, key) = (self.env.as_str(), self.query.flag.as_str());
        let flag_server = |context: String| {
            move |source: switchyard_sdk::Error| MetricError::FlagServer { context, source }
        };
        let reading = || format!("reading flag `{key}` in `{env}`");
        let flag = match self.admin.flag(env, key).await {
            Ok(Some(flag)) => Ok(flag.value),
            // The admin client turns the server's 404 into `None`; it is still the
            // server's answer, so it is reported as one.
            Ok(None) => Err(switchyard_sdk::Error::Api {
                status: 404,
                code: "not_found".into(),
                message: format!("flag `{key}` does not exist in `{env}`"),
            }),
            Err(e) => Err(e),
        }
        .map_err(flag_server(reading()))?;
        let Some(first_variant) = flag.variants.keys().next() else {
            return Err(MetricError::BadAnswer {
                url: "the flag server".to_owned(),
                detail: format!("flag `{key}` in `{env}` with no variants"),
            });
        };
        let since =
            chrono::DateTime::from_timestamp_millis(weight.since as i64).ok_or_else(|| {
                MetricError::BadAnswer {
                    url: "the release state".to_owned(),
                    detail: format!("a weight set at {} ms, which is no time", weight.since),
                }
            })?;
        let units = self
            .admin
            .flag_units(env, key, since, Some(&self.query.event))
            .await
            .map_err(flag_server(format!(
                "reading the units of flag `{key}` in `{env}` since {}",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )))?;
        let (treatment, control) = arms(&units, first_variant, &self.query.event);
        Ok(judge(
            treatment,
            control,
            &self.query,
            weight,
            units.relative_error,
        ))
    }
}

/// How long a guard metric's reads of the flag server may take.
const GUARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The source of `guard` metrics: the flag server's unit counts (through its admin API)
/// under the sequential test, in the release's current environment.
#[derive(Debug, Clone)]
pub struct GuardSource {
    admin: Option<AdminClient>,
}

impl GuardSource {
    /// Reads the flag server through `admin`; without it every guard metric fails (it
    /// needs the admin API).
    pub fn new(admin: Option<AdminClient>) -> Self {
        GuardSource { admin }
    }
}

#[async_trait]
impl MetricSource for GuardSource {
    async fn measure(&self, request: MetricRequest<'_>) -> Measurement {
        let Some((metric, query)) = request.metric.and_then(|m| Some((m, m.guard.as_ref()?)))
        else {
            return request.failed(MetricError::WrongKind(MetricKind::Guard));
        };
        let outcome = match &self.admin {
            None => Err(MetricError::Unsupported(
                "guard metrics need the flag server's admin API",
            )),
            Some(admin) => {
                let guard = Guard::new(query.clone(), admin.clone(), request.environment);
                tokio::time::timeout(GUARD_TIMEOUT, guard.check(request.weight.as_ref()))
                    .await
                    .unwrap_or(Err(MetricError::Unsupported(
                        "the flag server did not answer within 10s",
                    )))
            }
        };
        measurement(&metric.name, query, outcome, metric.on_no_data)
    }
}

/// The measurement of a guard check: the relative difference as the value, the verdict
/// of the checks (not of comparing the value with the limit), the look in `guard` and
/// in words in `detail`.
pub fn measurement(
    metric_name: &str,
    query: &GuardQuery,
    outcome: Result<GuardOutcome, MetricError>,
    on_no_data: OnNoData,
) -> Measurement {
    let mut m = Measurement {
        metric: metric_name.to_owned(),
        value: None,
        // The limit is stated in the detail: the verdict is the test's.
        min: None,
        max: None,
        verdict: Verdict::Fail,
        error: None,
        detail: None,
        guard: None,
    };
    let no_data = match on_no_data {
        OnNoData::Fail => Verdict::Fail,
        OnNoData::Pass => Verdict::Pass,
        OnNoData::Ignore => Verdict::Ignored,
    };
    match outcome {
        Err(e) => m.error = Some(error_chain(&e)),
        Ok(GuardOutcome::NotStarted) => {
            m.verdict = no_data;
            m.detail = Some(format!(
                "no data ({}): no weight set yet",
                no_data.counted_as()
            ));
        }
        Ok(GuardOutcome::NoData { treatment, control }) => {
            m.verdict = no_data;
            let what = if query.value { "values" } else { "units" };
            let size = |a: Arm| {
                if query.value {
                    a.values.count
                } else {
                    a.units.units
                }
            };
            m.detail = Some(format!(
                "no data ({}): treatment {} {what}, control {}: each arm needs {}",
                no_data.counted_as(),
                size(treatment),
                size(control),
                query.min_samples
            ));
        }
        Ok(GuardOutcome::Tested(tested)) => {
            let e = &tested.evidence;
            m.value = Some(e.relative_difference).filter(|v| v.is_finite());
            m.verdict = if tested.mismatch() {
                Verdict::Invalid
            } else if e.fails {
                Verdict::Fail
            } else {
                Verdict::Pass
            };
            m.detail = Some(tested_detail(&tested, query));
            m.guard = Some(look(&tested));
        }
    }
    m
}

/// The typed look the reports and the console show.
fn look(t: &Tested) -> GuardLook {
    let finite = |v: f64| Some(v).filter(|v| v.is_finite());
    let arm = |a: &Arm, estimate: f64| GuardArm {
        units: a.units.units,
        units_with_event: a.units.with_event,
        estimate,
    };
    let e = &t.evidence;
    GuardLook {
        treatment: arm(&t.treatment, e.treatment),
        control: arm(&t.control, e.control),
        relative_difference: finite(e.relative_difference),
        interval_low: finite(e.interval.low),
        interval_high: finite(e.interval.high),
        log_evidence: finite(e.log_evidence),
        threshold: e.threshold,
        sample_ratio: t.sample_ratio.map(|s| SampleRatioLook {
            observed: s.observed,
            expected: s.expected,
            p_value: s.p_value,
            always_valid_p: s.always_valid_p,
        }),
    }
}

/// E.g. `treatment 60/2000 units = 3.00 %, control 200/18000 = 1.11 %: +170 % (always
/// valid: +62 % to +350 %), evidence 9.1 ≥ 4.09: the increase exceeds 10 % at 95 %
/// confidence; sample ratio 10.0 % (ramp 10 %), p 0.61`.
fn tested_detail(t: &Tested, query: &GuardQuery) -> String {
    let mut text = String::new();
    if let Some(s) = t.sample_ratio.filter(|s| s.mismatch) {
        let _ = write!(
            text,
            "sample-ratio mismatch: the treatment has {} of {} units = {:.2} %, the ramp \
             serves {} % (always-valid p {:.2e} < {SAMPLE_RATIO_LEVEL}): the assignment or \
             the counting is broken, so the test is not read; ",
            t.treatment.units.units,
            t.treatment
                .units
                .units
                .saturating_add(t.control.units.units),
            s.observed * 100.0,
            percent(s.expected),
            s.always_valid_p,
        );
    }
    for (name, arm, estimate) in [
        ("treatment", &t.treatment, t.evidence.treatment),
        ("control", &t.control, t.evidence.control),
    ] {
        if name == "control" {
            text.push_str(", ");
        }
        if t.value {
            let _ = write!(
                text,
                "{name} mean {} over {} values",
                significant(estimate),
                arm.values.count
            );
        } else {
            let _ = write!(
                text,
                "{name} {}/{} units = {:.2} %",
                arm.units.with_event,
                arm.units.units,
                estimate * 100.0
            );
        }
    }
    let e = &t.evidence;
    let _ = write!(
        text,
        ": {} (always valid: {} to {}), evidence {:.2} {} {:.2}: {} {} % at {} % confidence",
        signed_percent(e.relative_difference),
        signed_percent(e.interval.low),
        signed_percent(e.interval.high),
        e.log_evidence,
        if e.fails { ">=" } else { "<" },
        e.threshold,
        if e.fails {
            "the increase exceeds"
        } else {
            "not shown to exceed"
        },
        percent(query.max_relative_increase),
        percent(query.confidence)
    );
    if let Some(s) = t.sample_ratio.filter(|s| !s.mismatch) {
        let _ = write!(
            text,
            "; sample ratio {:.2} % (ramp {} %), p {:.2}",
            s.observed * 100.0,
            percent(s.expected),
            s.always_valid_p
        );
    }
    text
}

/// `0.1` → `10`, `0.125` → `12.5`, `0.999` → `99.9`.
fn percent(fraction: f64) -> String {
    let text = format!("{:.2}", fraction * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

/// `0.2` → `+20 %`, `-1` → `-100 %`, `∞` → `+∞`.
fn signed_percent(fraction: f64) -> String {
    if fraction.is_infinite() {
        return if fraction > 0.0 {
            "+∞".into()
        } else {
            "-∞".into()
        };
    }
    let sign = if fraction >= 0.0 { "+" } else { "-" };
    format!("{sign}{} %", percent(fraction.abs()))
}

/// Four significant digits.
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests;
