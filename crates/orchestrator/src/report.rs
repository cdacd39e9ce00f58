//! Release reports: a JSON document for tools, a Markdown timeline for people and one
//! line per release for CLI listings.
//!
//! *Architecture Invariant*: reports are pure functions of a stored [`Release`] — no
//! clock, no I/O — so a running release has no duration yet. They add no judgement of
//! their own: every decision shown is the machine's timeline entry, which carries its
//! cause, followed by the measurements behind it.
//!
//! Steps are counted from 1 as people say them (`step 2/5`), in JSON too (`"step": 2,
//! "steps": 5`); a service that has not reached its first step has none (`–`, `null`).
//! Times are RFC 3339 in UTC to the second; the timeline's `at_ms` keeps the exact value.
//!
//! [`dora`] sums many releases up as DORA figures (deployment frequency, change failure
//! rate, time to restore), with `now` and the window as arguments.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Value};

use crate::analysis::Measurement;
use crate::machine::{Entry, Millis, Phase, ServicePhase, ServiceState, State};
use crate::plan::Plan;
use crate::store::Release;

/// The release as one JSON document: summary, services and the timeline with every
/// measurement and its explanation.
pub fn json(release: &Release) -> Value {
    let Release {
        plan,
        state,
        created_at,
        ..
    } = release;
    json!({
        "name": plan.name,
        "environment": state.environment(plan),
        "environments": plan.environments(),
        "phase": state.phase,
        "reason": state.reason,
        "created_at": timestamp(*created_at),
        "started_at": state.started_at.map(timestamp),
        "finished_at": state.finished_at.map(timestamp),
        "duration_seconds": duration(state).map(|d| d.as_secs_f64()),
        "services": state
            .services
            .iter()
            .map(|s| json!({
                "name": s.name,
                "phase": s.phase,
                "step": step_number(plan, s),
                "steps": plan.steps.len(),
                "weight": s.weight,
                "failures": s.failures,
                "last_analysis": s.last_analysis.iter().map(measurement_json).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>(),
        "timeline": state.timeline.iter().map(entry_json).collect::<Vec<_>>(),
    })
}

/// `- **Environment:** production`, or for a release through several,
/// `- **Environments:** staging → production (now: production)`.
fn environment_line(plan: &Plan, state: &State) -> String {
    let all = plan.environments();
    if all.len() > 1 {
        format!(
            "- **Environments:** {} (now: {})",
            one_line(&all.join(" → ")),
            one_line(state.environment(plan))
        )
    } else {
        format!("- **Environment:** {}", one_line(state.environment(plan)))
    }
}

/// The release as a Markdown report: summary with the outcome and why, a services table
/// and the timeline, each analysis followed by its measurements.
pub fn markdown(release: &Release) -> String {
    let Release {
        plan,
        state,
        created_at,
        ..
    } = release;
    let mut lines = vec![
        format!("# Release {}", one_line(&plan.name)),
        String::new(),
        environment_line(plan, state),
        format!("- **Outcome:** {}", outcome(state.phase)),
        format!("- **Created:** {}", timestamp(*created_at)),
        format!(
            "- **Started:** {}",
            state.started_at.map_or("not yet".into(), timestamp)
        ),
    ];
    if let Some(finished) = state.finished_at {
        lines.push(format!("- **Finished:** {}", timestamp(finished)));
    }
    if let Some(took) = duration(state) {
        lines.push(format!(
            "- **Duration:** {}",
            humantime::format_duration(took)
        ));
    }
    if let Some(reason) = &state.reason {
        lines.extend([String::new(), format!("**Why:** {}", one_line(reason))]);
    }

    lines.extend(
        [
            "",
            "## Services",
            "",
            "| Service | Phase | Step | Weight | Failed analyses |",
            "| --- | --- | --- | --- | --- |",
        ]
        .map(String::from),
    );
    for s in &state.services {
        let step =
            step_number(plan, s).map_or("–".into(), |i| format!("{i}/{}", plan.steps.len()));
        lines.push(row(&[
            &s.name,
            &name_of(&s.phase).replace('_', " "),
            &step,
            &format!("{}%", s.weight),
            &s.failures.to_string(),
        ]));
    }

    lines.extend([String::new(), "## Timeline".into(), String::new()]);
    if state.timeline.is_empty() {
        lines.push("_Nothing has happened yet._".into());
    } else {
        lines.extend(["| Time | Service | Event |", "| --- | --- | --- |"].map(String::from));
    }
    for entry in &state.timeline {
        let service = entry.service.as_deref().unwrap_or_default();
        lines.push(row(&[&timestamp(entry.at), service, &entry.message]));
        for m in &entry.measurements {
            let measured = format!("↳ {} — {}", m.explain(), name_of(&m.verdict));
            lines.push(row(&["", "", &measured]));
        }
    }

    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// One line for CLI listings, e.g. `checkout-v3  running  auth: step 2/5 weight 25
/// (progressing); payments: waiting_for_dependencies`.
pub fn summary_line(release: &Release) -> String {
    let Release { plan, state, .. } = release;
    let services: Vec<String> = state
        .services
        .iter()
        .map(|s| {
            let phase = name_of(&s.phase);
            match step_number(plan, s) {
                Some(i) => format!(
                    "{}: step {i}/{} weight {} ({phase})",
                    s.name,
                    plan.steps.len(),
                    s.weight
                ),
                None => format!("{}: {phase}", s.name),
            }
        })
        .collect();
    format!(
        "{}  {}  {}",
        plan.name,
        name_of(&state.phase),
        services.join("; ")
    )
}

fn entry_json(entry: &Entry) -> Value {
    json!({
        "at": timestamp(entry.at),
        "at_ms": entry.at,
        "service": entry.service,
        "message": entry.message,
        "measurements": entry.measurements.iter().map(measurement_json).collect::<Vec<_>>(),
    })
}

fn measurement_json(m: &Measurement) -> Value {
    json!({
        "metric": m.metric,
        "value": m.value,
        "min": m.min,
        "max": m.max,
        "verdict": m.verdict,
        "error": m.error,
        "explanation": m.explain(),
    })
}

/// The step a service is at, counted from 1, if it has reached one. `step` stays where a
/// service stopped, so a rolled-back service shows the step it was rolled back from; one
/// that never had a weight confirmed (its pre-checks or first weight failed) has none.
/// The step `s` is at, counted from 1 as people read it; `None` before its first step.
/// Listings and reports both use it, so they never disagree.
pub fn step_number(plan: &Plan, s: &ServiceState) -> Option<usize> {
    use ServicePhase::*;
    let reached = match s.phase {
        Progressing | AwaitingApproval | Paused | Promoting | Succeeded => true,
        RollingBack | RolledBack | Failed => s.step_since.is_some() || s.step > 0,
        Pending | WaitingForDependencies | PreChecks | AwaitingGate | Cancelled => false,
    };
    // Past the last step means promoted: show it as the last.
    reached.then(|| (s.step + 1).min(plan.steps.len()))
}

fn duration(state: &State) -> Option<Duration> {
    let (started, finished) = (state.started_at?, state.finished_at?);
    Some(Duration::from_millis(finished.saturating_sub(started)))
}

/// RFC 3339 in UTC; a value chrono cannot represent is still shown, as a number.
fn timestamp(ms: Millis) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .map_or_else(
            || format!("{ms} ms after the Unix epoch"),
            |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
}

/// The release's outcome in words.
pub fn outcome(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "pending",
        Phase::Running => "running",
        Phase::RollingBack => "rolling back",
        Phase::Succeeded => "promoted",
        Phase::RolledBack => "rolled back",
        Phase::Failed => "failed: rollback did not complete",
    }
}

/// A phase's or verdict's name as the API writes it (`rolled_back`).
pub fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_owned(),
    }
}

/// A Markdown table row; cells cannot break out of their column or the row.
fn row(cells: &[&str]) -> String {
    let cells: Vec<String> = cells
        .iter()
        .map(|c| one_line(c).replace('|', "\\|"))
        .collect();
    format!("| {} |", cells.join(" | "))
}

/// Text that stays on its line (error chains may span several).
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

// --- DORA figures ---------------------------------------------------------------------

/// The shortest window DORA figures are computed over: one hour.
pub const MIN_DORA_WINDOW: Duration = Duration::from_secs(60 * 60);
/// The longest window DORA figures are computed over: 365 days.
pub const MAX_DORA_WINDOW: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The window used when none is given: 30 days.
pub const DEFAULT_DORA_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);

const SECONDS_PER_DAY: f64 = 86_400.0;

/// DORA figures over the releases that finished within a window; see [`dora`].
#[derive(Debug, Clone, PartialEq)]
pub struct Dora {
    /// The window's length.
    pub window: Duration,
    /// Its start: `to - window` (milliseconds since the Unix epoch).
    pub from: Millis,
    /// Its end, the `now` it was computed at (inclusive).
    pub to: Millis,
    /// Releases that finished within the window: promoted, rolled back or failed.
    pub finished: usize,
    /// Of those, promoted: the deployments.
    pub promoted: usize,
    /// Of those, rolled back (stable put back).
    pub rolled_back: usize,
    /// Of those, failed (their rollback did not complete).
    pub failed: usize,
    /// Promoted releases per day of the window.
    pub deployments_per_day: f64,
    /// `(rolled_back + failed) / finished`; `None` when none finished.
    pub change_failure_rate: Option<f64>,
    /// How long the orchestrator took to put stable back.
    pub time_to_restore: TimeToRestore,
}

/// Time to restore: for each rolled-back release, from the timeline entry that started
/// the rollback (`rolling back: …`) to the release reaching `rolled_back` (its
/// `finished_at`).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeToRestore {
    /// Rolled-back releases timed.
    pub restored: usize,
    /// Failed releases: their rollback did not complete, so stable was not put back by
    /// the orchestrator and they have no time to restore.
    pub not_restored: usize,
    /// The median of the times; `None` when nothing was restored.
    pub median: Option<Duration>,
    /// The mean of the times; `None` when nothing was restored.
    pub mean: Option<Duration>,
}

/// DORA figures over the releases that finished within `[now - window, now]`:
///
/// - **deployment frequency**: promoted releases, and that count per day of the window
///   (a zero window gives 0);
/// - **change failure rate**: rolled-back or failed releases / every finished one
///   (`None` when none finished). Every rollback counts: a breached analysis, a failed
///   pre-check or step, a killed flag, a person's abort, or a promoted release rolled
///   back by a person (`rollback`), which then counts as rolled back, not promoted;
/// - **time to restore**: see [`TimeToRestore`]. It is the time the orchestrator took
///   to put stable back (canary at weight 0, flags killed), which is what it controls;
///   detecting the problem before that is the analysis' interval and limit, and a
///   failed release needs a person, so it is counted apart and not timed.
///
/// Lead time for changes is out of scope: it starts at a commit, which the
/// orchestrator never sees.
///
/// Releases still running (or not finished by `now`) are not counted.
pub fn dora(releases: &[Release], now: Millis, window: Duration) -> Dora {
    let from = now.saturating_sub(Millis::try_from(window.as_millis()).unwrap_or(Millis::MAX));
    let (mut promoted, mut rolled_back, mut failed) = (0, 0, 0);
    let mut restores = Vec::new();
    for Release { state, .. } in releases {
        if !state.finished_at.is_some_and(|t| from <= t && t <= now) {
            continue;
        }
        match state.phase {
            Phase::Succeeded => promoted += 1,
            Phase::RolledBack => {
                rolled_back += 1;
                if let Some(took) = restore_time(state) {
                    restores.push(took);
                }
            }
            Phase::Failed => failed += 1,
            Phase::Pending | Phase::Running | Phase::RollingBack => {}
        }
    }
    let finished = promoted + rolled_back + failed;
    let days = window.as_secs_f64() / SECONDS_PER_DAY;
    restores.sort_unstable();
    Dora {
        window,
        from,
        to: now,
        finished,
        promoted,
        rolled_back,
        failed,
        deployments_per_day: if days > 0.0 {
            promoted as f64 / days
        } else {
            0.0
        },
        change_failure_rate: (finished > 0)
            .then(|| (rolled_back + failed) as f64 / finished as f64),
        time_to_restore: TimeToRestore {
            restored: restores.len(),
            not_restored: failed,
            median: median(&restores),
            mean: mean(&restores),
        },
    }
}

/// From the first `rolling back` entry to `finished_at`.
fn restore_time(state: &State) -> Option<Duration> {
    let started = state
        .timeline
        .iter()
        .find(|e| e.message.starts_with("rolling back"))?
        .at;
    let finished = state.finished_at?;
    Some(Duration::from_millis(finished.saturating_sub(started)))
}

/// The middle of sorted `values`; the mean of the two middle ones for an even count.
fn median(sorted: &[Duration]) -> Option<Duration> {
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[mid]),
        _ => Some((sorted[mid - 1] + sorted[mid]) / 2),
    }
}

fn mean(values: &[Duration]) -> Option<Duration> {
    let count = u32::try_from(values.len()).ok().filter(|n| *n > 0)?;
    Some(values.iter().sum::<Duration>() / count)
}

/// Reads a DORA window (`30d`, `12h`, `1week`), between [`MIN_DORA_WINDOW`] and
/// [`MAX_DORA_WINDOW`].
pub fn parse_dora_window(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration such as `30d` or `12h`: {e}"))?;
    if !(MIN_DORA_WINDOW..=MAX_DORA_WINDOW).contains(&window) {
        return Err(format!(
            "the window must be from {} to {}, not {}",
            window_text(MIN_DORA_WINDOW),
            window_text(MAX_DORA_WINDOW),
            window_text(window)
        ));
    }
    Ok(window)
}

/// DORA figures as JSON; durations in seconds, the rate as a fraction (0.5, not 50).
pub fn dora_json(dora: &Dora) -> Value {
    let ttr = &dora.time_to_restore;
    json!({
        "window": window_text(dora.window),
        "window_seconds": dora.window.as_secs_f64(),
        "from": timestamp(dora.from),
        "to": timestamp(dora.to),
        "finished": dora.finished,
        "deployment_frequency": {
            "promoted": dora.promoted,
            "per_day": dora.deployments_per_day,
        },
        "change_failure_rate": {
            "rate": dora.change_failure_rate,
            "rolled_back": dora.rolled_back,
            "failed": dora.failed,
            "finished": dora.finished,
        },
        "time_to_restore": {
            "restored": ttr.restored,
            "not_restored": ttr.not_restored,
            "median_seconds": ttr.median.map(|d| d.as_secs_f64()),
            "mean_seconds": ttr.mean.map(|d| d.as_secs_f64()),
        },
    })
}

/// DORA figures as Markdown: one table and what each figure means.
pub fn dora_markdown(dora: &Dora) -> String {
    let ttr = &dora.time_to_restore;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let frequency = format!(
        "{} per day, {} per week ({})",
        decimal(dora.deployments_per_day, 3),
        decimal(dora.deployments_per_day * 7.0, 3),
        plural(dora.promoted, "promoted release", "promoted releases"),
    );
    let failures = dora.rolled_back + dora.failed;
    let failure_rate = match dora.change_failure_rate {
        Some(rate) => format!(
            "{}% ({failures} of {} rolled back or failed)",
            decimal(rate * 100.0, 1),
            plural(dora.finished, "finished release", "finished releases"),
        ),
        None => "– (no release finished)".to_owned(),
    };
    let mut restore = match (ttr.median, ttr.mean) {
        (Some(median), Some(mean)) => format!(
            "median {}, mean {} ({})",
            to_the_milli(median),
            to_the_milli(mean),
            plural(ttr.restored, "rollback", "rollbacks"),
        ),
        _ => "– (nothing rolled back)".to_owned(),
    };
    if ttr.not_restored > 0 {
        restore.push_str(&format!(
            "; {} not restored",
            plural(ttr.not_restored, "failed release", "failed releases")
        ));
    }
    let lines = [
        "# DORA figures".to_owned(),
        String::new(),
        format!(
            "Releases that finished from {} to {} ({}).",
            timestamp(dora.from),
            timestamp(dora.to),
            window_text(dora.window)
        ),
        String::new(),
        "| Figure | Value |".to_owned(),
        "| --- | --- |".to_owned(),
        row(&["Deployment frequency", &frequency]),
        row(&["Change failure rate", &failure_rate]),
        row(&["Time to restore", &restore]),
        row(&["Lead time for changes", "not measured"]),
        String::new(),
        "- **Deployment frequency**: releases promoted within the window.".to_owned(),
        "- **Change failure rate**: releases rolled back (for any reason, aborts included) \
         or failed, out of every release that finished."
            .to_owned(),
        "- **Time to restore**: how long the orchestrator took to put stable back, from its \
         decision to roll back to the release being rolled back. A failed release's rollback \
         did not complete; it is counted apart, not timed."
            .to_owned(),
        "- **Lead time for changes** starts at a commit, which the orchestrator does not see."
            .to_owned(),
    ];
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// A window as people write it: `30d`, `12h`, else humantime's `90m 30s` (whose months
/// and years are not whole days, so `365d` would read `11months 30days 3h 50m 24s`).
pub fn window_text(window: Duration) -> String {
    const HOUR: u64 = 60 * 60;
    const DAY: u64 = 24 * HOUR;
    let secs = window.as_secs();
    if window.subsec_nanos() == 0 && secs > 0 {
        if secs % DAY == 0 {
            return format!("{}d", secs / DAY);
        }
        if secs % HOUR == 0 {
            return format!("{}h", secs / HOUR);
        }
    }
    humantime::format_duration(window).to_string()
}

/// `value` with at most `places` decimals, trailing zeros dropped (`0.033`, `50`).
fn decimal(value: f64, places: usize) -> String {
    let text = format!("{value:.places$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// `1m 30s 250ms`: whole milliseconds.
fn to_the_milli(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Verdict;
    use crate::machine::{step, Action, Event, Outcome};
    use crate::plan::{Analysis, Canary, FlagRef, Metric, OnFailure, OnNoData, Service, Step};

    /// 2024-05-01T10:40:00Z.
    const START: Millis = 1_714_560_000_000;

    /// How the outside world answers the machine's actions.
    #[derive(Debug, Clone, Copy, Default)]
    struct World {
        /// Analyses measure an error rate of 0.2 (max 0.01) from this weight on.
        failing_from: Option<u32>,
        /// Rollbacks fail.
        rollback_fails: bool,
    }

    impl World {
        fn perform(self, action: &Action, state: &State) -> Outcome {
            match action {
                Action::Analyse { service } => {
                    let weight = state.service(service).map_or(0, |s| s.weight);
                    let fail = self.failing_from.is_some_and(|from| weight >= from);
                    Outcome::Measured {
                        measurements: vec![Measurement {
                            metric: "error-rate".into(),
                            value: Some(if fail { 0.2 } else { 0.001 }),
                            min: None,
                            max: Some(0.01),
                            verdict: if fail { Verdict::Fail } else { Verdict::Pass },
                            error: None,
                            detail: None,
                        }],
                    }
                }
                Action::Rollback { .. } if self.rollback_fails => Outcome::Failed {
                    error: "router unreachable".into(),
                },
                _ => Outcome::Done,
            }
        }
    }

    /// `checkout-v3`: auth, then payments; steps 10, 25, 50; one failed analysis
    /// tolerated.
    fn plan() -> Plan {
        let service = |name: &str, deps: &[&str]| Service {
            name: name.into(),
            depends_on: deps.iter().map(|d| (*d).into()).collect(),
            canary: Canary::None,
            flags: vec![FlagRef {
                key: format!("{name}-flag"),
                rule: None,
            }],
            health: vec![],
        };
        Plan {
            name: "checkout-v3".into(),
            environment: "production".into(),
            services: vec![service("auth", &[]), service("payments", &["auth"])],
            steps: [10, 25, 50]
                .map(|w| Step {
                    weight: Some(w),
                    hold: None,
                    approve: false,
                    gates: vec![],
                })
                .into(),
            analysis: Analysis {
                interval: Duration::from_secs(30),
                failure_limit: 1,
                metrics: vec![Metric {
                    name: "error-rate".into(),
                    prometheus: None,
                    guard: None,
                    min: None,
                    max: Some(0.01),
                    on_no_data: OnNoData::Fail,
                    services: None,
                }],
            },
            on_failure: OnFailure::default(),
            environments: vec![],
            gates: Default::default(),
            notify: vec![],
        }
    }

    /// Runs the machine as the driver would (start, perform the outbox's first action,
    /// tick at each wake-up) until `stop` holds or nothing more can happen.
    fn drive(
        plan: &Plan,
        mut state: State,
        mut now: Millis,
        world: World,
        stop: impl Fn(&State) -> bool,
    ) -> (State, Millis) {
        for _ in 0..500 {
            if stop(&state) {
                break;
            }
            let event = if state.phase == Phase::Pending {
                Event::Start
            } else if let Some(action) = state.outbox.first().cloned() {
                let outcome = world.perform(&action, &state);
                Event::Performed { action, outcome }
            } else if let Some(wake) = state.next_wakeup(plan) {
                now = now.max(wake);
                Event::Tick
            } else {
                break;
            };
            state = step(plan, &state, event, now).0;
        }
        (state, now)
    }

    fn release(world: World, stop: impl Fn(&State) -> bool) -> Release {
        let plan = plan();
        let (state, _) = drive(&plan, State::new(&plan), START, world, stop);
        Release {
            plan,
            state,
            created_at: START - 60_000,
            revision: 0,
        }
    }

    fn rolled_back() -> Release {
        let world = World {
            failing_from: Some(25),
            ..World::default()
        };
        release(world, |_| false)
    }

    fn auth_at_25(state: &State) -> bool {
        state.outbox.is_empty() && state.service("auth").is_some_and(|s| s.weight == 25)
    }

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    /// When a release stops being driven.
    type Stop = fn(&State) -> bool;

    const WHY: &str = "auth: 2 failed analyses (limit 1): error-rate 0.2 > max 0.01";

    #[test]
    fn outcome_phase_and_summary_line_follow_the_release() {
        let never: Stop = |_| false;
        let failing = World {
            failing_from: Some(25),
            ..World::default()
        };
        let cases: [(&str, World, Stop, &str, &str); 7] = [
            (
                "not started",
                World::default(),
                |_| true,
                "pending",
                "checkout-v3  pending  auth: pending; payments: pending",
            ),
            (
                "ramping",
                World::default(),
                auth_at_25,
                "running",
                "checkout-v3  running  auth: step 2/3 weight 25 (progressing); \
                 payments: waiting_for_dependencies",
            ),
            (
                "second service ramping",
                World::default(),
                |s| s.service("payments").is_some_and(|p| p.weight == 10),
                "running",
                "checkout-v3  running  auth: step 3/3 weight 100 (succeeded); \
                 payments: step 1/3 weight 10 (progressing)",
            ),
            (
                "healthy",
                World::default(),
                never,
                "promoted",
                "checkout-v3  succeeded  auth: step 3/3 weight 100 (succeeded); \
                 payments: step 3/3 weight 100 (succeeded)",
            ),
            (
                "breach, rolling back",
                failing,
                |s| s.phase == Phase::RollingBack,
                "rolling back",
                "checkout-v3  rolling_back  auth: step 2/3 weight 25 (rolling_back); \
                 payments: cancelled",
            ),
            (
                "breach",
                failing,
                never,
                "rolled back",
                "checkout-v3  rolled_back  auth: step 2/3 weight 0 (rolled_back); \
                 payments: cancelled",
            ),
            (
                "breach, rollback fails",
                World {
                    rollback_fails: true,
                    ..failing
                },
                never,
                "failed: rollback did not complete",
                "checkout-v3  failed  auth: step 2/3 weight 25 (failed); payments: cancelled",
            ),
        ];
        for (case, world, stop, word, line) in cases {
            let release = release(world, stop);
            let md = markdown(&release);
            assert!(
                has_line(&md, &format!("- **Outcome:** {word}")),
                "{case}:\n{md}"
            );
            assert_eq!(summary_line(&release), line, "{case}");
            assert_eq!(
                json(&release)["phase"],
                name_of(&release.state.phase),
                "{case}"
            );
            let why = release.state.reason.is_some();
            assert_eq!(md.contains("**Why:**"), why, "{case}:\n{md}");
            let finished = release.state.phase.is_terminal();
            assert_eq!(md.contains("- **Finished:**"), finished, "{case}");
        }
    }

    #[test]
    fn markdown_says_why_a_release_rolled_back() {
        let md = markdown(&rolled_back());
        for line in [
            "# Release checkout-v3",
            "- **Environment:** production",
            "- **Outcome:** rolled back",
            "- **Created:** 2024-05-01T10:39:00Z",
            "- **Started:** 2024-05-01T10:40:00Z",
            "- **Finished:** 2024-05-01T10:41:30Z",
            "- **Duration:** 1m 30s",
            &format!("**Why:** {WHY}"),
            "| Service | Phase | Step | Weight | Failed analyses |",
            "| auth | rolled back | 2/3 | 0% | 2 |",
            "| payments | cancelled | – | 0% | 0 |",
            "| Time | Service | Event |",
            "| 2024-05-01T10:40:00Z |  | release started in `production` |",
            "| 2024-05-01T10:40:30Z | auth | step 2: weight 25 |",
            &format!("| 2024-05-01T10:41:30Z |  | rolling back: {WHY} |"),
            "| 2024-05-01T10:41:30Z |  | release rolled back |",
        ] {
            assert!(has_line(&md, line), "missing `{line}` in:\n{md}");
        }
        // Each analysis is followed by its measurements, the failing one explained.
        let lines: Vec<&str> = md.lines().collect();
        let follows = |entry: &str, measured: &str| {
            lines
                .windows(2)
                .any(|w| w[0].ends_with(entry) && w[1] == measured)
        };
        let breach = "|  |  | ↳ error-rate 0.2 > max 0.01 — fail |";
        let healthy = "|  |  | ↳ error-rate 0.001 <= max 0.01 — pass |";
        assert!(follows("| auth | analysis passed |", healthy), "{md}");
        assert!(
            follows(
                "| auth | analysis failed (1 so far, 1 tolerated): error-rate 0.2 > max 0.01 |",
                breach
            ),
            "{md}"
        );
        assert!(
            follows(
                "| auth | analysis failed (2 so far, 1 tolerated): error-rate 0.2 > max 0.01 |",
                breach
            ),
            "{md}"
        );
        assert!(md.ends_with("| 2024-05-01T10:41:30Z |  | release rolled back |\n"));
    }

    #[test]
    fn json_has_the_summary_services_and_measured_timeline() {
        let release = rolled_back();
        let v = json(&release);
        for (field, expected) in [
            ("name", json!("checkout-v3")),
            ("environment", json!("production")),
            ("phase", json!("rolled_back")),
            ("reason", json!(WHY)),
            ("created_at", json!("2024-05-01T10:39:00Z")),
            ("started_at", json!("2024-05-01T10:40:00Z")),
            ("finished_at", json!("2024-05-01T10:41:30Z")),
            ("duration_seconds", json!(90.0)),
        ] {
            assert_eq!(v[field], expected, "{field}");
        }
        let breach = json!({
            "metric": "error-rate",
            "value": 0.2,
            "min": null,
            "max": 0.01,
            "verdict": "fail",
            "error": null,
            "explanation": "error-rate 0.2 > max 0.01",
        });
        assert_eq!(
            v["services"],
            json!([
                {
                    "name": "auth",
                    "phase": "rolled_back",
                    "step": 2,
                    "steps": 3,
                    "weight": 0,
                    "failures": 2,
                    "last_analysis": [breach],
                },
                {
                    "name": "payments",
                    "phase": "cancelled",
                    "step": null,
                    "steps": 3,
                    "weight": 0,
                    "failures": 0,
                    "last_analysis": [],
                },
            ])
        );
        let timeline = v["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), release.state.timeline.len());
        assert_eq!(
            timeline[0],
            json!({
                "at": "2024-05-01T10:40:00Z",
                "at_ms": START,
                "service": null,
                "message": "release started in `production`",
                "measurements": [],
            })
        );
        let decided = timeline
            .iter()
            .position(|e| e["message"] == format!("rolling back: {WHY}"))
            .unwrap();
        assert_eq!(
            timeline[decided - 1],
            json!({
                "at": "2024-05-01T10:41:30Z",
                "at_ms": START + 90_000,
                "service": "auth",
                "message": "analysis failed (2 so far, 1 tolerated): error-rate 0.2 > max 0.01",
                "measurements": [breach],
            })
        );
    }

    #[test]
    fn cells_cannot_break_the_tables() {
        // A person's abort reason is free text.
        let running = release(World::default(), auth_at_25);
        let abort = Event::Abort {
            by: "ana".into(),
            reason: "dashboards | red\nsee #ops".into(),
        };
        let now = running.state.timeline.last().unwrap().at;
        let aborted = step(&running.plan, &running.state, abort, now).0;
        let (state, _) = drive(&running.plan, aborted, now, World::default(), |_| false);
        let release = Release { state, ..running };
        let md = markdown(&release);
        assert!(has_line(
            &md,
            "**Why:** aborted by ana: dashboards | red see #ops"
        ));
        assert!(has_line(
            &md,
            "| 2024-05-01T10:40:30Z |  | rolling back: aborted by ana: dashboards \\| red see #ops |"
        ));
        // Every row has exactly its table's columns.
        let mut columns = 0;
        for line in md.lines() {
            if !line.starts_with('|') {
                columns = 0;
                continue;
            }
            let separators = line.replace("\\|", "").matches('|').count();
            if columns == 0 {
                columns = separators;
            }
            assert_eq!(separators, columns, "{line}");
        }
    }

    #[test]
    fn a_release_not_started_has_no_times_or_timeline_yet() {
        let release = release(World::default(), |_| true);
        let md = markdown(&release);
        assert!(has_line(&md, "- **Started:** not yet"), "{md}");
        assert!(has_line(&md, "_Nothing has happened yet._"), "{md}");
        assert!(!md.contains("**Finished:**") && !md.contains("**Duration:**"));
        let v = json(&release);
        for field in ["started_at", "finished_at", "duration_seconds", "reason"] {
            assert_eq!(v[field], Value::Null, "{field}");
        }
        assert_eq!(v["timeline"], json!([]));
    }

    #[test]
    fn names_are_the_serialised_ones() {
        assert_eq!(name_of(&Phase::RolledBack), "rolled_back");
        assert_eq!(
            name_of(&ServicePhase::WaitingForDependencies),
            "waiting_for_dependencies"
        );
        assert_eq!(name_of(&Verdict::Fail), "fail");
    }

    #[test]
    fn times_outside_chronos_range_are_still_shown() {
        assert_eq!(timestamp(START), "2024-05-01T10:40:00Z");
        assert_eq!(
            timestamp(Millis::MAX),
            format!("{} ms after the Unix epoch", Millis::MAX)
        );
    }

    // --- DORA figures -------------------------------------------------------------

    const DAY: Millis = 86_400_000;
    const THIRTY_DAYS: Duration = Duration::from_secs(30 * 86_400);

    /// A release of `plan()` that started at `started` and reached `phase` at
    /// `finished`, having decided to roll back at `rolling_back`.
    fn ended(
        phase: Phase,
        started: Millis,
        rolling_back: Option<Millis>,
        finished: Option<Millis>,
    ) -> Release {
        let plan = plan();
        let mut state = State::new(&plan);
        state.phase = phase;
        state.started_at = Some(started);
        state.finished_at = finished;
        let entry = |at, message: &str| Entry {
            at,
            service: None,
            message: message.into(),
            measurements: vec![],
        };
        state
            .timeline
            .push(entry(started, "release started in `production`"));
        if let Some(at) = rolling_back {
            state
                .timeline
                .push(entry(at, "rolling back: aborted by ana: no"));
        }
        if let Some(at) = finished {
            state.timeline.push(entry(at, "release over"));
        }
        Release {
            plan,
            state,
            created_at: started,
            revision: 1,
        }
    }

    fn promoted(finished: Millis) -> Release {
        ended(Phase::Succeeded, finished - 600_000, None, Some(finished))
    }

    /// Rolled back `restore_ms` after the rollback was decided, which was at `decided`.
    fn restored(decided: Millis, restore_ms: Millis) -> Release {
        let finished = Some(decided + restore_ms);
        ended(Phase::RolledBack, decided - 60_000, Some(decided), finished)
    }

    fn window_of_releases() -> Vec<Release> {
        let from = START - 30 * DAY;
        vec![
            promoted(START - DAY),
            promoted(from),  // on the window's start: counted
            promoted(START), // on its end: counted
            promoted(from - 1),
            promoted(START + 1),
            restored(START - 2 * DAY, 30_000),
            restored(START - 3 * DAY, 240_000),
            restored(START - 4 * DAY, 90_000),
            restored(from - 10_000, 20_000), // decided before the window, finished in it
            ended(
                Phase::Failed,
                START - 5 * DAY,
                Some(START - 5 * DAY + 1_000),
                Some(START - 5 * DAY + 2_000),
            ),
            ended(Phase::Running, START - 600_000, None, None),
            ended(
                Phase::RollingBack,
                START - 600_000,
                Some(START - 1_000),
                None,
            ),
        ]
    }

    #[test]
    fn dora_counts_the_releases_finished_within_the_window() {
        let dora = dora(&window_of_releases(), START, THIRTY_DAYS);
        let expected = Dora {
            window: THIRTY_DAYS,
            from: START - 30 * DAY,
            to: START,
            finished: 8,
            promoted: 3,
            rolled_back: 4,
            failed: 1,
            deployments_per_day: 0.1,
            change_failure_rate: Some(5.0 / 8.0),
            time_to_restore: TimeToRestore {
                restored: 4,
                not_restored: 1,
                // 20 s, 30 s, 90 s, 240 s.
                median: Some(Duration::from_secs(60)),
                mean: Some(Duration::from_secs(95)),
            },
        };
        assert_eq!(dora, expected);
        assert_eq!(
            dora_json(&dora),
            json!({
                "window": "30d",
                "window_seconds": 2_592_000.0,
                "from": "2024-04-01T10:40:00Z",
                "to": "2024-05-01T10:40:00Z",
                "finished": 8,
                "deployment_frequency": { "promoted": 3, "per_day": 0.1 },
                "change_failure_rate": {
                    "rate": 0.625,
                    "rolled_back": 4,
                    "failed": 1,
                    "finished": 8,
                },
                "time_to_restore": {
                    "restored": 4,
                    "not_restored": 1,
                    "median_seconds": 60.0,
                    "mean_seconds": 95.0,
                },
            })
        );
        let md = dora_markdown(&dora);
        for line in [
            "# DORA figures",
            "Releases that finished from 2024-04-01T10:40:00Z to 2024-05-01T10:40:00Z (30d).",
            "| Deployment frequency | 0.1 per day, 0.7 per week (3 promoted releases) |",
            "| Change failure rate | 62.5% (5 of 8 finished releases rolled back or failed) |",
            "| Time to restore | median 1m, mean 1m 35s (4 rollbacks); 1 failed release not restored |",
            "| Lead time for changes | not measured |",
        ] {
            assert!(has_line(&md, line), "missing `{line}` in:\n{md}");
        }
    }

    #[test]
    fn dora_of_nothing_finished_has_no_rates() {
        let running = [ended(Phase::Running, START - 1_000, None, None)];
        for releases in [&[][..], &running[..]] {
            let dora = dora(releases, START, THIRTY_DAYS);
            assert_eq!(
                dora,
                Dora {
                    window: THIRTY_DAYS,
                    from: START - 30 * DAY,
                    to: START,
                    finished: 0,
                    promoted: 0,
                    rolled_back: 0,
                    failed: 0,
                    deployments_per_day: 0.0,
                    change_failure_rate: None,
                    time_to_restore: TimeToRestore {
                        restored: 0,
                        not_restored: 0,
                        median: None,
                        mean: None,
                    },
                }
            );
            let v = dora_json(&dora);
            assert_eq!(v["change_failure_rate"]["rate"], Value::Null);
            assert_eq!(v["time_to_restore"]["median_seconds"], Value::Null);
            assert_eq!(v["time_to_restore"]["mean_seconds"], Value::Null);
            assert_eq!(v["deployment_frequency"]["per_day"], json!(0.0));
            let md = dora_markdown(&dora);
            for line in [
                "| Deployment frequency | 0 per day, 0 per week (0 promoted releases) |",
                "| Change failure rate | – (no release finished) |",
                "| Time to restore | – (nothing rolled back) |",
            ] {
                assert!(has_line(&md, line), "missing `{line}` in:\n{md}");
            }
        }
        // A window of nothing cannot divide by zero.
        let dora = dora(&[promoted(START)], START, Duration::ZERO);
        assert_eq!((dora.promoted, dora.deployments_per_day), (1, 0.0));
    }

    #[test]
    fn time_to_restore_is_timed_from_the_machines_rollback_decision() {
        // Driven by the machine: the rollback is decided and done at 10:41:30.
        let mut late = rolled_back();
        let decided = late
            .state
            .timeline
            .iter()
            .find(|e| e.message.starts_with("rolling back: "))
            .map(|e| e.at);
        assert_eq!(decided, Some(START + 90_000));
        late.state.finished_at = Some(START + 92_500);
        let dora = dora(&[rolled_back(), late], START + DAY, THIRTY_DAYS);
        assert_eq!(dora.rolled_back, 2);
        let ttr = &dora.time_to_restore;
        assert_eq!(ttr.median, Some(Duration::from_millis(1_250)));
        assert_eq!(ttr.mean, Some(Duration::from_millis(1_250)));
        assert!(dora_markdown(&dora).contains("median 1s 250ms, mean 1s 250ms (2 rollbacks)"));
    }

    #[test]
    fn median_and_mean_of_restore_times() {
        let s = Duration::from_secs;
        let cases: [(&[Duration], Option<Duration>, Option<Duration>); 4] = [
            (&[], None, None),
            (&[s(7)], Some(s(7)), Some(s(7))),
            (
                &[s(1), s(4)],
                Some(Duration::from_millis(2_500)),
                Some(Duration::from_millis(2_500)),
            ),
            (&[s(1), s(2), s(9)], Some(s(2)), Some(s(4))),
        ];
        for (values, expected_median, expected_mean) in cases {
            assert_eq!(median(values), expected_median, "{values:?}");
            assert_eq!(mean(values), expected_mean, "{values:?}");
        }
    }

    #[test]
    fn dora_windows_are_one_hour_to_a_year() {
        for (text, expected) in [
            ("30d", Ok(THIRTY_DAYS)),
            ("1h", Ok(MIN_DORA_WINDOW)),
            ("365d", Ok(MAX_DORA_WINDOW)),
            (" 2weeks ", Ok(Duration::from_secs(14 * 86_400))),
        ] {
            assert_eq!(parse_dora_window(text), expected, "{text}");
        }
        for (text, says) in [
            ("59m", "from 1h to 365d, not 59m"),
            ("366d", "not 366d"),
            ("8761h", "not 8761h"),
            ("0s", "not 0s"),
            ("soon", "`soon` is not a duration"),
            ("", "is not a duration"),
            ("30", "is not a duration"),
        ] {
            let error = parse_dora_window(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn windows_read_as_written() {
        for (window, text) in [
            (THIRTY_DAYS, "30d"),
            (MAX_DORA_WINDOW, "365d"),
            (Duration::from_secs(2 * 3600), "2h"),
            (Duration::from_secs(5400), "1h 30m"),
            (Duration::from_millis(1500), "1s 500ms"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(window_text(window), text);
        }
    }

    #[test]
    fn decimals_drop_trailing_zeros() {
        for (value, places, text) in [
            (0.1, 3, "0.1"),
            (1.0 / 30.0, 3, "0.033"),
            (50.0, 1, "50"),
            (62.5, 1, "62.5"),
            (0.0, 3, "0"),
            (120.0, 0, "120"),
        ] {
            assert_eq!(decimal(value, places), text);
        }
    }
}
