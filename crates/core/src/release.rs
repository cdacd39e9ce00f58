//! The documents of the release orchestrator's HTTP API, declared once: the
//! orchestrator writes them, its CLI and the flag server's console read them, so the
//! three cannot drift.
//!
//! - [`ReleaseSummary`]: one release in `GET /v1/releases` and `GET /v1/history`;
//! - [`ReleaseReport`]: `GET /v1/releases/{name}/report` — the plan's outline, every
//!   service and the timeline with each measurement and the weights it set;
//! - [`PlanOutline`]: what a plan will do, also the answer of
//!   `POST /v1/releases?dry_run=true`;
//! - [`DoraReport`]: `GET /v1/dora`.
//!
//! Plain data (serde only); what a state or verdict means is the orchestrator's.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// Where a whole release is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Stored, not started.
    Pending,
    /// Services are being released.
    Running,
    /// A failure or an abort: every started service is being rolled back.
    RollingBack,
    /// Every service promoted. Within the daemon's rollback window a person may still
    /// roll it back (`rollback`), which makes it `RollingBack` again.
    Succeeded,
    /// Every started service is back at weight 0 with its flags killed.
    RolledBack,
    /// A rollback action itself failed; a person must look.
    Failed,
}

impl Phase {
    /// Every phase, in the order a release goes through them.
    pub const ALL: [Phase; 6] = [
        Phase::Pending,
        Phase::Running,
        Phase::RollingBack,
        Phase::Succeeded,
        Phase::RolledBack,
        Phase::Failed,
    ];

    /// Whether the release is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::RolledBack | Phase::Failed)
    }

    /// The name the API writes (`rolled_back`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::RollingBack => "rolling_back",
            Phase::Succeeded => "succeeded",
            Phase::RolledBack => "rolled_back",
            Phase::Failed => "failed",
        }
    }

    /// The release's outcome in words (`promoted`, `rolled back`).
    pub fn outcome(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::RollingBack => "rolling back",
            Phase::Succeeded => "promoted",
            Phase::RolledBack => "rolled back",
            Phase::Failed => "failed: rollback did not complete",
        }
    }
}

/// Where one service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServicePhase {
    /// The release has not started.
    Pending,
    /// Some of its dependencies are not promoted yet.
    WaitingForDependencies,
    /// Its health checks run before the first step.
    PreChecks,
    /// The gates of its next step run.
    AwaitingGate,
    /// At a weight step: applying the weight, holding it and analysing.
    Progressing,
    /// At an approval step.
    AwaitingApproval,
    /// Stopped by a person or by a failed analysis (`on_failure: pause`).
    Paused,
    /// Going to 100 %.
    Promoting,
    /// At 100 %: done.
    Succeeded,
    /// Going back to weight 0 with its flags killed.
    RollingBack,
    /// Back at weight 0, flags killed.
    RolledBack,
    /// Never started (or stopped at its pre-checks) because the release ended first;
    /// nothing was applied to it.
    Cancelled,
    /// Its rollback failed.
    Failed,
}

impl ServicePhase {
    /// Nothing more happens to the service: promoted, rolled back, cancelled or failed.
    pub fn is_over(self) -> bool {
        matches!(
            self,
            ServicePhase::Succeeded
                | ServicePhase::RolledBack
                | ServicePhase::Cancelled
                | ServicePhase::Failed
        )
    }

    /// The service is out of the release for good: rolling back, rolled back,
    /// cancelled or failed (it will not be promoted).
    pub fn is_undone(self) -> bool {
        matches!(
            self,
            ServicePhase::RollingBack
                | ServicePhase::RolledBack
                | ServicePhase::Cancelled
                | ServicePhase::Failed
        )
    }

    /// The phase in words (`awaiting approval`).
    pub fn words(self) -> &'static str {
        match self {
            ServicePhase::Pending => "pending",
            ServicePhase::WaitingForDependencies => "waiting for dependencies",
            ServicePhase::PreChecks => "pre-checks",
            ServicePhase::AwaitingGate => "awaiting gate",
            ServicePhase::Progressing => "progressing",
            ServicePhase::AwaitingApproval => "awaiting approval",
            ServicePhase::Paused => "paused",
            ServicePhase::Promoting => "promoting",
            ServicePhase::Succeeded => "succeeded",
            ServicePhase::RollingBack => "rolling back",
            ServicePhase::RolledBack => "rolled back",
            ServicePhase::Cancelled => "cancelled",
            ServicePhase::Failed => "failed",
        }
    }
}

/// One measured value with the thresholds it was judged against and the verdict, so a
/// report can say exactly why a release was rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The metric's name (`health` for a service's health checks).
    pub metric: String,
    /// What was measured; absent when there was no data or the measurement failed.
    pub value: Option<f64>,
    /// The smallest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the measurement could not be taken, or why a check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How the verdict was reached when the value and thresholds alone do not say it
    /// (a guard metric's counts and test statistic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A guard metric's look: both arms, the estimate with its always-valid interval,
    /// the evidence against its threshold and the sample-ratio check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardLook>,
}

/// What a guard metric saw at one look (`docs/guard.md`). Numbers that are infinite
/// (no control events yet, an interval not bounded yet) are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardLook {
    /// The flag's first variant (the ramped one).
    pub treatment: GuardArm,
    /// Every other variant.
    pub control: GuardArm,
    /// The treatment's estimate over the control's, minus 1.
    pub relative_difference: Option<f64>,
    /// The lower end of its always-valid interval.
    pub interval_low: Option<f64>,
    /// The upper end of its always-valid interval.
    pub interval_high: Option<f64>,
    /// `ln Λ`, the evidence that the increase exceeds the limit.
    pub log_evidence: Option<f64>,
    /// `ln(1/α)`: the evidence at which the guard fails.
    pub threshold: f64,
    /// The sample-ratio check, when the ramp's share allows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_ratio: Option<SampleRatioLook>,
}

/// One arm of a guard's look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GuardArm {
    /// Distinct units served the arm since the step began.
    pub units: u64,
    /// Distinct units among them that had the event.
    pub units_with_event: u64,
    /// The arm's estimate: the share of units with the event, or the values' mean.
    pub estimate: f64,
}

/// The sample-ratio check of a look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleRatioLook {
    /// The treatment's share of the units counted.
    pub observed: f64,
    /// The share the ramp serves it.
    pub expected: f64,
    /// The chi-square p-value of this look alone.
    pub p_value: f64,
    /// The always-valid p-value the mismatch is decided on.
    pub always_valid_p: f64,
}

/// A measurement's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the thresholds.
    Pass,
    /// Outside them, or no data under `on_no_data: fail`, or not measurable.
    Fail,
    /// No data under `on_no_data: ignore`.
    Ignored,
    /// The measurement itself is broken (a guard's sample-ratio mismatch): it says
    /// nothing about the release; `analysis.on_invalid` decides.
    Invalid,
}

impl Verdict {
    /// How a measurement without data was counted.
    pub fn counted_as(self) -> &'static str {
        match self {
            Verdict::Pass => "counted as passed",
            Verdict::Fail => "counted as failed",
            Verdict::Ignored => "ignored",
            Verdict::Invalid => "invalid",
        }
    }
}

impl Measurement {
    /// One line saying what was measured against what, e.g. `error-rate 0.2 > max 0.01`,
    /// followed by the detail in parentheses when there is one.
    pub fn explain(&self) -> String {
        match (&self.detail, self.value, &self.error) {
            // A test's verdict without a number to show (e.g. too few samples).
            (Some(detail), None, None) => format!("{}: {detail}", self.metric),
            (Some(detail), _, _) => format!("{} ({detail})", self.explain_value()),
            (None, _, _) => self.explain_value(),
        }
    }

    fn explain_value(&self) -> String {
        let name = &self.metric;
        if let Some(error) = &self.error {
            return format!("{name}: {error}");
        }
        let Some(value) = self.value else {
            return format!("{name}: no data ({})", self.verdict.counted_as());
        };
        let v = Readable(value);
        match (self.min, self.max) {
            (_, Some(max)) if value > max => {
                let (v, max) = apart(value, max);
                format!("{name} {v} > max {max}")
            }
            (Some(min), _) if value < min => {
                let (v, min) = apart(value, min);
                format!("{name} {v} < min {min}")
            }
            (Some(min), Some(max)) => {
                format!("{name} {v} within {}..{}", Readable(min), Readable(max))
            }
            (_, Some(max)) => format!("{name} {v} <= max {}", Readable(max)),
            (Some(min), _) => format!("{name} {v} >= min {}", Readable(min)),
            (None, None) => format!("{name} {v}"),
        }
    }
}

/// A measured number in words: four significant digits, no trailing zeros
/// (`0.07664088177683344` → `0.07664`, `0.5` → `0.5`, `123456.7` → `123457`).
#[derive(Debug, Clone, Copy)]
struct Readable(f64);

impl std::fmt::Display for Readable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v == 0.0 || !v.is_finite() {
            return write!(f, "{v}");
        }
        let decimals = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
        let text = format!("{v:.decimals$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        f.write_str(text)
    }
}

/// A value and the bound it crossed in words, in full where four digits would make
/// them look equal (`0.050004 > max 0.05`).
fn apart(value: f64, bound: f64) -> (String, String) {
    let (v, b) = (Readable(value).to_string(), Readable(bound).to_string());
    if v == b {
        (value.to_string(), bound.to_string())
    } else {
        (v, b)
    }
}

/// The shares a timeline entry left a service at, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    /// The canary's traffic weight.
    pub traffic: u32,
    /// The ramped flags' first-variant share (0 once they are killed).
    pub flags: u32,
}

/// One release in `GET /v1/releases` and `GET /v1/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSummary {
    /// The release's name.
    pub name: String,
    /// The flag server environment it ramps now (the current one of `environments`).
    pub environment: String,
    /// Where the release is.
    pub phase: Phase,
    /// When it was applied (milliseconds since the Unix epoch).
    pub created_at: Millis,
    /// One line for listings (`checkout  running  checkout: step 2/3 weight 50 …`).
    pub summary: String,
    /// Each service, in plan order.
    pub services: Vec<ServiceSummary>,
    /// Every environment it runs in, in order.
    #[serde(default)]
    pub environments: Vec<String>,
    /// When it started (milliseconds since the Unix epoch).
    #[serde(default)]
    pub started_at: Option<Millis>,
    /// When it ended (milliseconds since the Unix epoch).
    #[serde(default)]
    pub finished_at: Option<Millis>,
    /// Why it rolled back or failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// For a rolled-back release: from the decision to roll back to stable being back
    /// (DORA's time to restore), in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_restore_seconds: Option<f64>,
    /// Set for a hotfix: why its ramp was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotfix: Option<String>,
}

/// One service of a [`ReleaseSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// The service's name.
    pub name: String,
    /// Where it is.
    pub phase: ServicePhase,
    /// The step it is at, counted from 1 as in reports; absent before its first step.
    pub step: Option<usize>,
    /// How many steps it runs.
    pub steps: usize,
    /// The weight last confirmed, in percent.
    pub weight: u32,
    /// The region it is released in, for a plan with `regions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The flags it ramps.
    #[serde(default)]
    pub flags: Vec<String>,
}

/// What a plan will do: `POST /v1/releases?dry_run=true` answers it, and every report
/// carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOutline {
    /// The release's name.
    pub name: String,
    /// The environments it runs in, in order.
    pub environments: Vec<String>,
    /// The services in the order they start: each group after the one before it is
    /// promoted, the services of one group together.
    pub groups: Vec<Vec<String>>,
    /// Each service, in plan order.
    pub services: Vec<ServiceOutline>,
    /// The ramp every service follows.
    pub steps: Vec<StepOutline>,
    /// What each analysis measures.
    pub metrics: Vec<MetricOutline>,
    /// What a failed analysis does, in words (`rollback`, `pause`, `gradual rollback …`).
    pub on_failure: String,
    /// Set for a hotfix: why the ramp is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotfix: Option<String>,
    /// The regions, primary first, for a plan with `regions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionOutline>,
}

/// One region of a [`PlanOutline`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionOutline {
    /// Its name.
    pub name: String,
    /// Whether it goes first.
    pub primary: bool,
    /// The highest canary weight before promotion there, in percent.
    pub max_weight: u32,
    /// The services released there.
    pub services: Vec<String>,
}

/// One service of a [`PlanOutline`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceOutline {
    /// Its name.
    pub name: String,
    /// The services promoted before it starts.
    pub depends_on: Vec<String>,
    /// How its traffic is split (`haproxy 127.0.0.1:9999 backend checkout`).
    pub router: String,
    /// The version it moves from (the router's stable backend), where the router names
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
    /// The version it moves to (the router's canary backend), where the router names
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// The flags it ramps (`key`, or `key` rule `id`).
    pub flags: Vec<String>,
    /// How many health checks run before its first step.
    pub health_checks: usize,
    /// How it takes over, in words (`canary`, `blue-green: bake 5m`, `rolling: batch
    /// 25%`).
    #[serde(default)]
    pub strategy: String,
    /// The steps it runs (its strategy's expansion of the plan's steps).
    #[serde(default)]
    pub steps: Vec<StepOutline>,
    /// The region it is released in, for a plan with `regions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// One step of a [`PlanOutline`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutline {
    /// The weight it sets, if any.
    pub weight: Option<u32>,
    /// How long it holds the weight (seconds).
    pub hold_seconds: Option<f64>,
    /// Whether it waits for a person's approval.
    pub approve: bool,
    /// How many gates run before it.
    pub gates: usize,
}

/// One metric of a [`PlanOutline`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricOutline {
    /// Its name.
    pub name: String,
    /// `prometheus` or `guard`.
    pub kind: String,
    /// The smallest passing value.
    pub min: Option<f64>,
    /// The largest passing value.
    pub max: Option<f64>,
}

/// `GET /v1/releases/{name}/report?format=json`: the release as one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseReport {
    /// The release's name.
    pub name: String,
    /// The environment it ramps now.
    pub environment: String,
    /// Every environment it runs in.
    pub environments: Vec<String>,
    /// Where it is.
    pub phase: Phase,
    /// Why it rolled back or failed.
    pub reason: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub started_at: Option<String>,
    /// RFC 3339, UTC.
    pub finished_at: Option<String>,
    /// From start to finish; none while it runs.
    pub duration_seconds: Option<f64>,
    /// Each service, in plan order.
    pub services: Vec<ServiceReport>,
    /// Every decision with its cause, oldest first.
    pub timeline: Vec<EntryReport>,
    /// What the plan does.
    pub plan: PlanOutline,
}

/// One service of a [`ReleaseReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub phase: ServicePhase,
    /// The step it is at, counted from 1; none before its first.
    pub step: Option<usize>,
    /// How many steps it runs.
    pub steps: usize,
    /// The region it is released in, for a plan with `regions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The weight last confirmed, in percent.
    pub weight: u32,
    /// Failed analyses so far.
    pub failures: u32,
    /// The latest analysis.
    pub last_analysis: Vec<MeasurementReport>,
}

/// One entry of a [`ReleaseReport`]'s timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryReport {
    /// RFC 3339, UTC, to the second.
    pub at: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: Millis,
    /// The service concerned, if one.
    pub service: Option<String>,
    /// What happened and why.
    pub message: String,
    /// The measurements behind an analysis decision.
    pub measurements: Vec<MeasurementReport>,
    /// The shares the entry left its service at, when it moved them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
}

/// A [`Measurement`] with its explanation in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasurementReport {
    /// The metric's name.
    pub metric: String,
    /// What was measured.
    pub value: Option<f64>,
    /// The smallest passing value.
    pub min: Option<f64>,
    /// The largest passing value.
    pub max: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it could not be measured.
    pub error: Option<String>,
    /// [`Measurement::explain`].
    pub explanation: String,
    /// A guard metric's look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardLook>,
}

impl From<&Measurement> for MeasurementReport {
    fn from(m: &Measurement) -> Self {
        MeasurementReport {
            metric: m.metric.clone(),
            value: m.value,
            min: m.min,
            max: m.max,
            verdict: m.verdict,
            error: m.error.clone(),
            explanation: m.explain(),
            guard: m.guard.clone(),
        }
    }
}

/// `GET /v1/dora?format=json`: DORA figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoraReport {
    /// The window as people write it (`30d`).
    pub window: String,
    /// Its length in seconds.
    pub window_seconds: f64,
    /// Its start, RFC 3339.
    pub from: String,
    /// Its end, RFC 3339.
    pub to: String,
    /// Releases that finished within it.
    pub finished: usize,
    /// Promoted releases.
    pub deployment_frequency: DeploymentFrequency,
    /// Rolled back or failed, out of finished.
    pub change_failure_rate: ChangeFailureRate,
    /// How long rollbacks took.
    pub time_to_restore: TimeToRestoreReport,
    /// Hotfixes (releases applied with `--hotfix`) among the finished releases, apart:
    /// they skip the ramp, so they are their own series.
    #[serde(default)]
    pub hotfixes: HotfixReport,
}

/// Part of a [`DoraReport`]: the hotfixes that finished in the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HotfixReport {
    /// Hotfixes that finished.
    pub finished: usize,
    /// Of those, promoted.
    pub promoted: usize,
    /// Of those, rolled back or failed.
    pub failed: usize,
    /// Promoted hotfixes per day of the window.
    pub per_day: f64,
}

/// Part of a [`DoraReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentFrequency {
    /// Promoted releases in the window.
    pub promoted: usize,
    /// Per day of the window.
    pub per_day: f64,
}

/// Part of a [`DoraReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeFailureRate {
    /// A fraction (0.5, not 50); none when nothing finished.
    pub rate: Option<f64>,
    /// Rolled back.
    pub rolled_back: usize,
    /// Failed.
    pub failed: usize,
    /// Finished.
    pub finished: usize,
}

/// Part of a [`DoraReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeToRestoreReport {
    /// Rolled-back releases timed.
    pub restored: usize,
    /// Failed releases (not restored by the orchestrator).
    pub not_restored: usize,
    /// Median, seconds.
    pub median_seconds: Option<f64>,
    /// Mean, seconds.
    pub mean_seconds: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_numbers_are_written_with_four_significant_digits() {
        let words = |v: f64| Readable(v).to_string();
        assert_eq!(words(0.07664088177683344), "0.07664");
        assert_eq!(words(0.5), "0.5");
        assert_eq!(words(123456.7), "123457");
        assert_eq!(words(-1.23456), "-1.235");
        assert_eq!(words(0.0), "0");
        assert_eq!(
            apart(0.07664088177683344, 0.05),
            ("0.07664".into(), "0.05".into())
        );
        assert_eq!(apart(0.050004, 0.05), ("0.050004".into(), "0.05".into()));
    }

    #[test]
    fn phase_names_are_what_serde_writes() {
        for phase in Phase::ALL {
            let written = serde_json::to_value(phase).expect("serialises");
            assert_eq!(written, phase.name());
        }
    }

    #[test]
    fn a_measurement_explains_which_threshold_it_crossed() {
        let m = Measurement {
            metric: "error-rate".into(),
            value: Some(0.2),
            min: None,
            max: Some(0.05),
            verdict: Verdict::Fail,
            error: None,
            detail: None,
            guard: None,
        };
        assert_eq!(m.explain(), "error-rate 0.2 > max 0.05");
        let report = MeasurementReport::from(&m);
        assert_eq!(report.explanation, m.explain());
        let none = Measurement {
            value: None,
            verdict: Verdict::Pass,
            ..m
        };
        assert_eq!(none.explain(), "error-rate: no data (counted as passed)");
    }
}
