//! Release notes: Markdown rendered from a release's report with a template — the
//! default one (`templates/release-notes.md`), or the user's (`report NAME --notes
//! --template FILE`), a minijinja template over the same context:
//!
//! - `release`: the whole [`ReleaseReport`] (name, environments, phase, reason, times,
//!   services, timeline, plan);
//! - `outcome` (`promoted`, `rolled back`, …) and `duration` (`12m 30s`), in words;
//! - `services`: per service `name`, `versions` (`v2 → v3`, where the router names
//!   them), `router`, `outcome`, `flags` (each flag with its final first-variant share);
//! - `approvals` and `decisions`: timeline entries (`at`, `service`, `message`): who
//!   approved, and every decision that is not a routine analysis.
//!
//! The filter `cell` keeps a value inside a Markdown table cell.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use switchyard_core::release::{EntryReport, Phase, ReleaseReport, Verdict};

use super::name_of;

/// The template `--notes` uses unless given another.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../templates/release-notes.md");

/// Why notes could not be rendered: the template's problem, with its line.
#[derive(Debug, thiserror::Error)]
#[error("release notes template: {0}")]
pub struct NotesError(String);

#[derive(Serialize)]
struct Context<'a> {
    release: &'a ReleaseReport,
    outcome: String,
    duration: Option<String>,
    services: Vec<ServiceNotes>,
    approvals: Vec<&'a EntryReport>,
    decisions: Vec<&'a EntryReport>,
}

#[derive(Serialize)]
struct ServiceNotes {
    name: String,
    versions: String,
    router: String,
    outcome: String,
    flags: String,
}

/// The notes of `report`, rendered with `template`.
pub fn render(report: &ReleaseReport, template: &str) -> Result<String, NotesError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_filter("cell", |value: String| {
        value
            .split(['\r', '\n'])
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    });
    env.add_template("notes", template)
        .map_err(|e| NotesError(describe(&e)))?;
    let context = context(report);
    env.get_template("notes")
        .and_then(|t| t.render(&context))
        .map_err(|e| NotesError(describe(&e)))
}

/// A template error with where it is.
fn describe(error: &minijinja::Error) -> String {
    match error.line() {
        Some(line) => format!("line {line}: {error}"),
        None => error.to_string(),
    }
}

fn context(report: &ReleaseReport) -> Context<'_> {
    let services = report
        .services
        .iter()
        .map(|service| {
            let outline = report.plan.services.iter().find(|s| s.name == service.name);
            let versions = match outline.map(|o| (&o.stable, &o.canary)) {
                Some((Some(stable), Some(canary))) => format!("{stable} → {canary}"),
                _ => "–".to_owned(),
            };
            // The flags' share as last set for this service.
            let share = report
                .timeline
                .iter()
                .rev()
                .filter(|e| e.service.as_deref() == Some(&service.name))
                .find_map(|e| e.weights.map(|w| w.flags));
            let flags = outline
                .map(|o| {
                    o.flags
                        .iter()
                        .map(|flag| match share {
                            Some(share) => format!("{flag}: {share} %"),
                            None => format!("{flag} (not ramped)"),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|flags| !flags.is_empty())
                .unwrap_or_else(|| "–".to_owned());
            ServiceNotes {
                name: service.name.clone(),
                versions,
                router: outline.map_or_else(String::new, |o| o.router.clone()),
                outcome: name_of(&service.phase).replace('_', " "),
                flags,
            }
        })
        .collect();
    let approvals = report
        .timeline
        .iter()
        .filter(|e| e.message.starts_with("approved by"))
        .collect();
    // Routine analyses are measurements that passed; everything else was decided.
    let decisions = report
        .timeline
        .iter()
        .filter(|e| {
            e.measurements.is_empty() || e.measurements.iter().any(|m| m.verdict != Verdict::Pass)
        })
        .collect();
    Context {
        release: report,
        outcome: outcome(report.phase).to_owned(),
        duration: report.duration_seconds.map(words),
        services,
        approvals,
        decisions,
    }
}

fn outcome(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Not started",
        Phase::Running => "Running",
        Phase::RollingBack => "Rolling back",
        Phase::Succeeded => "Promoted",
        Phase::RolledBack => "Rolled back",
        Phase::Failed => "Failed (a rollback action failed)",
    }
}

/// `750.0` → `12m 30s`.
fn words(seconds: f64) -> String {
    // Release durations are far below u64's range; negative or NaN is 0.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total = seconds.max(0.0).round() as u64;
    match (total / 3600, total % 3600 / 60, total % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}
