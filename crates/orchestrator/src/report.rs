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
//! rate, time to restore), with `now` and the window as arguments; [`notes`] renders
//! release notes from the JSON report with a template.

pub mod notes;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use switchyard_core::release::{
    ChangeFailureRate, DeploymentFrequency, DoraReport, EntryReport, HotfixReport,
    MeasurementReport, ReleaseReport, ReleaseSummary, ServiceReport, ServiceSummary,
    TimeToRestoreReport,
};

use crate::machine::{Entry, Millis, Phase, ServicePhase, ServiceState, State};
use crate::plan::Plan;
use crate::store::Release;

/// The release as one document: summary, services, the timeline with every
/// measurement and its explanation, and the plan's outline.
pub fn json(release: &Release) -> ReleaseReport {
    let Release {
        plan,
        state,
        created_at,
        ..
    } = release;
    ReleaseReport {
        name: plan.name.clone(),
        environment: state.environment(plan).to_owned(),
        environments: plan.environments.clone(),
        phase: state.phase,
        reason: state.reason.clone(),
        created_at: timestamp(*created_at),
        started_at: state.started_at.map(timestamp),
        finished_at: state.finished_at.map(timestamp),
        duration_seconds: duration(state).map(|d| d.as_secs_f64()),
        services: state
            .services
            .iter()
            .map(|s| ServiceReport {
                name: s.name.clone(),
                phase: s.phase,
                step: step_number(plan, s),
                steps: plan.steps_of_service(&s.name).len(),
                region: plan.service(&s.name).and_then(|p| p.region.clone()),
                weight: s.weight,
                failures: s.failures,
                last_analysis: s
                    .last_analysis
                    .iter()
                    .map(MeasurementReport::from)
                    .collect(),
            })
            .collect(),
        timeline: state.timeline.iter().map(entry_json).collect(),
        plan: plan.outline(),
    }
}

/// One line per release for listings and the API's `GET /v1/releases`; step numbers
/// are the report's, so listings and reports never disagree.
pub fn summary(release: &Release) -> ReleaseSummary {
    let services = release
        .state
        .services
        .iter()
        .map(|s| ServiceSummary {
            name: s.name.clone(),
            phase: s.phase,
            step: step_number(&release.plan, s),
            steps: release.plan.steps_of_service(&s.name).len(),
            region: release.plan.service(&s.name).and_then(|p| p.region.clone()),
            weight: s.weight,
            flags: release
                .plan
                .service(&s.name)
                .map(|service| crate::plan::flag_keys(&service.flags))
                .unwrap_or_default(),
        })
        .collect();
    ReleaseSummary {
        name: release.plan.name.clone(),
        environment: release.state.environment(&release.plan).to_owned(),
        phase: release.state.phase,
        created_at: release.created_at,
        summary: summary_line(release),
        services,
        environments: release.plan.environments.clone(),
        started_at: release.state.started_at,
        finished_at: release.state.finished_at,
        reason: release.state.reason.clone(),
        time_to_restore_seconds: (release.state.phase == Phase::RolledBack)
            .then(|| restore_time(&release.state))
            .flatten()
            .map(|d| d.as_secs_f64()),
        hotfix: release.plan.hotfix.as_ref().map(|h| h.reason.clone()),
    }
}

/// `- **Environment:** production`, or for a release through several,
/// `- **Environments:** staging → production (now: production)`.
fn environment_line(plan: &Plan, state: &State) -> String {
    let all = &plan.environments;
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
        format!("- **Outcome:** {}", state.phase.outcome()),
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
    if let Some(hotfix) = &plan.hotfix {
        lines.push(format!(
            "- **Hotfix:** {} (the ramp skipped)",
            one_line(&hotfix.reason)
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
        let step = step_number(plan, s).map_or("–".into(), |i| {
            format!("{i}/{}", plan.steps_of_service(&s.name).len())
        });
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
                    plan.steps_of_service(&s.name).len(),
                    s.weight
                ),
                None => format!("{}: {phase}", s.name),
            }
        })
        .collect();
    format!(
        "{}  {}{}  {}",
        plan.name,
        name_of(&state.phase),
        if plan.hotfix.is_some() {
            " (hotfix)"
        } else {
            ""
        },
        services.join("; ")
    )
}

fn entry_json(entry: &Entry) -> EntryReport {
    EntryReport {
        at: timestamp(entry.at),
        at_ms: entry.at,
        service: entry.service.clone(),
        message: entry.message.clone(),
        measurements: entry
            .measurements
            .iter()
            .map(MeasurementReport::from)
            .collect(),
        weights: entry.weights,
    }
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
    reached.then(|| (s.step + 1).min(plan.steps_of_service(&s.name).len()))
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
    /// The hotfixes among the finished releases (counted in the figures above too).
    pub hotfixes: HotfixReport,
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
    let mut hotfixes = HotfixReport::default();
    let mut restores = Vec::new();
    for Release { plan, state, .. } in releases {
        if !state.finished_at.is_some_and(|t| from <= t && t <= now) {
            continue;
        }
        if plan.hotfix.is_some() {
            hotfixes.finished += 1;
            match state.phase {
                Phase::Succeeded => hotfixes.promoted += 1,
                Phase::RolledBack | Phase::Failed => hotfixes.failed += 1,
                Phase::Pending | Phase::Running | Phase::RollingBack => {}
            }
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
    let per_day = |n: usize| if days > 0.0 { n as f64 / days } else { 0.0 };
    hotfixes.per_day = per_day(hotfixes.promoted);
    restores.sort_unstable();
    Dora {
        window,
        from,
        to: now,
        finished,
        promoted,
        rolled_back,
        failed,
        deployments_per_day: per_day(promoted),
        change_failure_rate: (finished > 0)
            .then(|| (rolled_back + failed) as f64 / finished as f64),
        time_to_restore: TimeToRestore {
            restored: restores.len(),
            not_restored: failed,
            median: median(&restores),
            mean: mean(&restores),
        },
        hotfixes,
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
pub fn dora_json(dora: &Dora) -> DoraReport {
    let ttr = &dora.time_to_restore;
    DoraReport {
        window: window_text(dora.window),
        window_seconds: dora.window.as_secs_f64(),
        from: timestamp(dora.from),
        to: timestamp(dora.to),
        finished: dora.finished,
        deployment_frequency: DeploymentFrequency {
            promoted: dora.promoted,
            per_day: dora.deployments_per_day,
        },
        change_failure_rate: ChangeFailureRate {
            rate: dora.change_failure_rate,
            rolled_back: dora.rolled_back,
            failed: dora.failed,
            finished: dora.finished,
        },
        time_to_restore: TimeToRestoreReport {
            restored: ttr.restored,
            not_restored: ttr.not_restored,
            median_seconds: ttr.median.map(|d| d.as_secs_f64()),
            mean_seconds: ttr.mean.map(|d| d.as_secs_f64()),
        },
        hotfixes: dora.hotfixes.clone(),
    }
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
    let hot = &dora.hotfixes;
    let hotfix_words = if hot.finished == 0 {
        "none".to_owned()
    } else {
        format!(
            "{} ({} promoted, {} rolled back or failed; {} promoted per day)",
            plural(hot.finished, "finished hotfix", "finished hotfixes"),
            hot.promoted,
            hot.failed,
            decimal(hot.per_day, 3)
        )
    };
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
        row(&["Hotfixes", &hotfix_words]),
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
        "- **Hotfixes**: releases applied with `--hotfix` (the ramp skipped), a series of \
         their own; they are counted in the figures above too."
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
mod tests;
