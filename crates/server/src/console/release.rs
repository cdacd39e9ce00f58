//! One release, live while it runs: the reason of a rollback at the top, the services
//! in the order they start, per service a chart of the canary's weight and its flags'
//! share over time with the steps marked, per metric a chart of its values against its
//! thresholds with each verdict, the analyses as a table, the timeline, and the
//! commands (approve, pause, resume, abort, promote fully) — each confirmed on a page
//! of its own and sent as the signed-in token's name.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use switchyard_core::release::{
    EntryReport, Phase, PlanOutline, ReleaseReport, ServicePhase, Verdict,
};

use crate::console::chart::{number, Chart, ChartBuilder};
use crate::console::page::{render, Chrome, PageError};
use crate::console::releases::{connected, may_see, now_ms, took, POLL_MS};
use crate::console::session::Viewer;
use crate::orchestrator::Command;
use crate::state::AppState;

/// A service as the page shows it.
pub struct ServiceView {
    name: String,
    phase: &'static str,
    words: &'static str,
    step: String,
    weight: u32,
    failures: u32,
    /// `(key, words)`: `("new-checkout", "new-checkout rule eu")`.
    flags: Vec<(String, String)>,
    router: String,
    /// How it takes over, in words (`canary`, `rolling: batch 25%`).
    strategy: String,
}

/// One measurement in the analyses table.
pub struct AnalysisRow {
    at: String,
    service: String,
    metric: String,
    value: String,
    threshold: String,
    verdict: &'static str,
    explanation: String,
}

/// One timeline entry.
pub struct TimelineRow {
    at: String,
    service: String,
    message: String,
    class: &'static str,
}

#[derive(Template)]
#[template(path = "console/release.html")]
struct ReleasePage {
    chrome: Chrome,
    report: ReleaseReport,
    outcome: &'static str,
    duration: Option<String>,
    groups: Vec<Vec<ServiceView>>,
    weight_charts: Vec<Chart>,
    metric_charts: Vec<Chart>,
    analyses: Vec<AnalysisRow>,
    timeline: Vec<TimelineRow>,
    commands: Vec<(&'static str, &'static str)>,
    notice: Option<String>,
    /// The orchestrator's release notes, when it answers them.
    notes: Option<String>,
}

#[derive(Template)]
#[template(path = "console/release_command.html")]
struct ConfirmPage {
    chrome: Chrome,
    name: String,
    slug: &'static str,
    label: &'static str,
    what: &'static str,
    asks_reason: bool,
}

/// What the page was reached after.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DetailQuery {
    done: String,
}

/// A command as a button says it.
fn label(command: Command) -> &'static str {
    match command {
        Command::Approve => "Approve",
        Command::Pause => "Pause",
        Command::Resume => "Resume",
        Command::Abort => "Abort and roll back",
        Command::PromoteFully => "Promote fully",
    }
}

/// What a command does, for its confirmation.
fn what(command: Command) -> &'static str {
    match command {
        Command::Approve => {
            "Passes the approval step every waiting service is at (or lets a promoted \
             environment go on to the next); the ramp continues at once."
        }
        Command::Pause => {
            "Stops every progressing service at its current weight. Analyses go on; \
             nothing moves until someone resumes or aborts."
        }
        Command::Resume => "Lets every paused service go on from where it stopped.",
        Command::Abort => {
            "Rolls the whole release back now: every started canary to weight 0 and its \
             flags killed, serving what they served before the release."
        }
        Command::PromoteFully => {
            "Skips every remaining step and analysis: each service goes to 100 % of \
             traffic and its flags to 100 % now."
        }
    }
}

/// The commands that may apply to the release as it is (the orchestrator decides).
fn applicable(report: &ReleaseReport) -> Vec<Command> {
    if report.phase != Phase::Running {
        return Vec::new();
    }
    let any = |phase: ServicePhase| report.services.iter().any(|s| s.phase == phase);
    let awaiting_environment = report
        .timeline
        .last()
        .is_some_and(|e| e.message.contains("awaiting approval for"));
    let mut commands = Vec::new();
    if any(ServicePhase::AwaitingApproval) || awaiting_environment {
        commands.push(Command::Approve);
    }
    if any(ServicePhase::Progressing) || any(ServicePhase::AwaitingApproval) {
        commands.push(Command::Pause);
    }
    if any(ServicePhase::Paused) {
        commands.push(Command::Resume);
    }
    commands.extend([Command::PromoteFully, Command::Abort]);
    commands
}

/// The release `name` if the viewer may see it.
async fn visible_report(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
) -> Result<ReleaseReport, PageError> {
    let report = connected(state)?.report(name).await?;
    if !may_see(viewer, &report.environments) {
        return Err(PageError::forbidden(format!(
            "token `{}` may not read the environments of release `{name}` ({})",
            viewer.principal.name,
            report.environments.join(", ")
        )));
    }
    Ok(report)
}

/// `GET /console/releases/{name}`.
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<Response, PageError> {
    let report = visible_report(&state, &viewer, &name).await?;
    let mut chrome = Chrome::new(&state, &viewer, format!("Release {name}"), None);
    if !report.phase.is_terminal() {
        chrome = chrome.polling(POLL_MS);
    }
    let commands = if chrome.can_write {
        applicable(&report)
            .into_iter()
            .map(|c| (c.slug(), label(c)))
            .collect()
    } else {
        Vec::new()
    };
    let notice = Command::from_slug(&query.done).map(|c| {
        format!(
            "{} sent; the timeline shows what the release did.",
            label(c)
        )
    });
    // Notes tell a finished release; the page of a running one polls every 1.5 s and
    // asks nothing more. An orchestrator that cannot give them leaves them out.
    let notes = if report.phase.is_terminal() {
        connected(&state)?.notes(&name).await.ok()
    } else {
        None
    };
    let now = now_ms();
    let (from, to) = span(&report, now);
    let page = ReleasePage {
        chrome,
        outcome: report.phase.outcome(),
        duration: report
            .timeline
            .first()
            .map(|first| took(to.saturating_sub(first.at_ms))),
        groups: groups(&report),
        weight_charts: weight_charts(&report, from, to),
        metric_charts: metric_charts(&report, from, to),
        analyses: analyses(&report),
        timeline: report
            .timeline
            .iter()
            .rev()
            .map(|e| TimelineRow {
                at: e.at.clone(),
                service: e.service.clone().unwrap_or_default(),
                message: e.message.clone(),
                class: entry_class(&e.message),
            })
            .collect(),
        commands,
        notice,
        notes,
        report,
    };
    render(&page)
}

/// The time the charts cover: the first entry to the last (finished) or now.
fn span(report: &ReleaseReport, now: u64) -> (u64, u64) {
    let from = report.timeline.first().map_or(now, |e| e.at_ms);
    let to = if report.phase.is_terminal() {
        report.timeline.last().map_or(now, |e| e.at_ms)
    } else {
        now
    };
    (from, to.max(from))
}

fn entry_class(message: &str) -> &'static str {
    if message.contains("rolling back")
        || message.contains("rolled back")
        || message.contains("failed")
        || message.contains("aborted")
    {
        "fail"
    } else if message.contains(" by ") {
        "person"
    } else {
        ""
    }
}

/// The services grouped as they start (the plan's dependency order).
fn groups(report: &ReleaseReport) -> Vec<Vec<ServiceView>> {
    let outline: &PlanOutline = &report.plan;
    outline
        .groups
        .iter()
        .map(|group| {
            group
                .iter()
                .filter_map(|name| {
                    let s = report.services.iter().find(|s| &s.name == name)?;
                    let planned = outline.services.iter().find(|p| &p.name == name);
                    Some(ServiceView {
                        name: s.name.clone(),
                        phase: service_class(s.phase),
                        words: s.phase.words(),
                        step: s
                            .step
                            .map_or_else(|| "–".to_owned(), |i| format!("{i} of {}", s.steps)),
                        weight: s.weight,
                        failures: s.failures,
                        flags: planned
                            .map(|p| {
                                p.flags
                                    .iter()
                                    .map(|words| {
                                        let key = words.split(" rule ").next().unwrap_or(words);
                                        (key.to_owned(), words.clone())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        router: planned.map(|p| p.router.clone()).unwrap_or_default(),
                        strategy: planned.map(|p| p.strategy.clone()).unwrap_or_default(),
                    })
                })
                .collect()
        })
        .collect()
}

/// A service phase's CSS class (its API name).
fn service_class(phase: ServicePhase) -> &'static str {
    match phase {
        ServicePhase::Pending => "pending",
        ServicePhase::WaitingForDependencies => "waiting_for_dependencies",
        ServicePhase::PreChecks => "pre_checks",
        ServicePhase::AwaitingGate => "awaiting_gate",
        ServicePhase::Progressing => "progressing",
        ServicePhase::AwaitingApproval => "awaiting_approval",
        ServicePhase::Paused => "paused",
        ServicePhase::Promoting => "promoting",
        ServicePhase::Succeeded => "succeeded",
        ServicePhase::RollingBack => "rolling_back",
        ServicePhase::RolledBack => "rolled_back",
        ServicePhase::Cancelled => "cancelled",
        ServicePhase::Failed => "failed",
    }
}

/// Per service: the canary's traffic weight and each flag's share over time, each step
/// and the rollback marked.
fn weight_charts(report: &ReleaseReport, from: u64, to: u64) -> Vec<Chart> {
    report
        .plan
        .services
        .iter()
        .enumerate()
        .map(|(i, service)| {
            let mine: Vec<&EntryReport> = report
                .timeline
                .iter()
                .filter(|e| e.service.as_deref() == Some(service.name.as_str()))
                .collect();
            let mut traffic = vec![(from, 0.0)];
            let mut flags = vec![(from, 0.0)];
            for entry in &mine {
                if let Some(w) = entry.weights {
                    traffic.push((entry.at_ms, f64::from(w.traffic)));
                    flags.push((entry.at_ms, f64::from(w.flags)));
                }
            }
            let mut chart = ChartBuilder::new(
                format!("weights-{i}"),
                format!("{}: canary weight and flag share (%)", service.name),
                from,
                to,
                100.0,
            )
            .steps("canary traffic", &traffic, to);
            for flag in &service.flags {
                chart = chart.steps(format!("{flag} (first variant)"), &flags, to);
            }
            for entry in &mine {
                if let Some(step) = entry
                    .message
                    .strip_prefix("step ")
                    .and_then(|rest| rest.split(':').next())
                    .filter(|_| entry.weights.is_some())
                {
                    chart = chart.marker(entry.at_ms, step, entry.message.clone());
                }
            }
            if let Some(rollback) = report
                .timeline
                .iter()
                .find(|e| e.service.is_none() && e.message.starts_with("rolling back"))
            {
                chart = chart.marker(rollback.at_ms, "rollback", rollback.message.clone());
            }
            chart.build()
        })
        .collect()
}

/// One measured value of a metric, as charted.
struct Reading<'a> {
    at: u64,
    value: f64,
    verdict: Verdict,
    explanation: &'a str,
}

/// Per metric: each measured value over time against its thresholds, each a dot
/// coloured by its verdict (one series per service).
fn metric_charts(report: &ReleaseReport, from: u64, to: u64) -> Vec<Chart> {
    // metric → service → readings
    let mut by_metric: BTreeMap<&str, BTreeMap<&str, Vec<Reading>>> = BTreeMap::new();
    let mut thresholds: BTreeMap<&str, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for entry in &report.timeline {
        for m in &entry.measurements {
            thresholds.entry(&m.metric).or_insert((m.min, m.max));
            let series = by_metric
                .entry(&m.metric)
                .or_default()
                .entry(entry.service.as_deref().unwrap_or("release"))
                .or_default();
            if let Some(value) = m.value.filter(|v| v.is_finite()) {
                series.push(Reading {
                    at: entry.at_ms,
                    value,
                    verdict: m.verdict,
                    explanation: &m.explanation,
                });
            }
        }
    }
    by_metric
        .into_iter()
        .enumerate()
        .map(|(i, (metric, services))| {
            let (min, max) = thresholds.get(metric).copied().unwrap_or_default();
            let highest = services
                .values()
                .flatten()
                .map(|r| r.value)
                .chain(min)
                .chain(max)
                .fold(0.0, f64::max);
            let mut chart = ChartBuilder::new(
                format!("metric-{i}"),
                format!("{metric}: measured values and thresholds"),
                from,
                to,
                if highest > 0.0 { highest * 1.25 } else { 1.0 },
            );
            if let Some(max) = max {
                chart = chart.threshold(max, format!("max {}", number(max)));
            }
            if let Some(min) = min {
                chart = chart.threshold(min, format!("min {}", number(min)));
            }
            for (service, values) in &services {
                let points: Vec<(u64, f64)> = values.iter().map(|r| (r.at, r.value)).collect();
                chart = chart.points(*service, &points);
                for r in values {
                    chart = chart.dot(r.at, r.value, verdict_class(r.verdict), r.explanation);
                }
            }
            chart.build()
        })
        .collect()
}

fn verdict_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Ignored => "ignored",
        Verdict::Invalid => "invalid",
    }
}

/// Every measurement, newest first.
fn analyses(report: &ReleaseReport) -> Vec<AnalysisRow> {
    report
        .timeline
        .iter()
        .rev()
        .flat_map(|e| {
            e.measurements.iter().map(move |m| AnalysisRow {
                at: e.at.clone(),
                service: e.service.clone().unwrap_or_default(),
                metric: m.metric.clone(),
                value: m.value.map_or_else(|| "no data".to_owned(), number),
                threshold: match (m.min, m.max) {
                    (Some(min), Some(max)) => format!("{}..{}", number(min), number(max)),
                    (None, Some(max)) => format!("≤ {}", number(max)),
                    (Some(min), None) => format!("≥ {}", number(min)),
                    (None, None) => "–".to_owned(),
                },
                verdict: verdict_class(m.verdict),
                explanation: m.explanation.clone(),
            })
        })
        .collect()
}

/// The command named in the path, for a viewer who may give commands.
fn command_for(viewer: &Viewer, slug: &str) -> Result<Command, PageError> {
    if !viewer.can_write() {
        return Err(PageError::forbidden(format!(
            "token `{}` is {} token; only admin tokens may steer releases",
            viewer.principal.name,
            crate::auth::with_article(viewer.principal.kind)
        )));
    }
    Command::from_slug(slug).ok_or_else(|| {
        PageError::not_found(format!(
            "no command `{slug}`: {}",
            Command::ALL.map(Command::slug).join(", ")
        ))
    })
}

/// `GET /console/releases/{name}/{command}`: the confirmation.
pub async fn confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let command = command_for(&viewer, &slug)?;
    visible_report(&state, &viewer, &name).await?;
    render(&ConfirmPage {
        chrome: Chrome::new(&state, &viewer, format!("{} {name}?", label(command)), None),
        name,
        slug: command.slug(),
        label: label(command),
        what: what(command),
        asks_reason: command == Command::Abort,
    })
}

/// The confirmation's form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CommandForm {
    reason: String,
}

/// `POST /console/releases/{name}/{command}`: sends it as the signed-in token's name.
pub async fn command(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, slug)): Path<(String, String)>,
    Form(form): Form<CommandForm>,
) -> Result<Response, PageError> {
    let command = command_for(&viewer, &slug)?;
    visible_report(&state, &viewer, &name).await?;
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    connected(&state)?
        .command(&name, command, &viewer.principal.name, reason)
        .await?;
    // A release's name is in the plan's name character set, and it was found above.
    Ok(Redirect::to(&format!("/console/releases/{name}?done={}", command.slug())).into_response())
}
