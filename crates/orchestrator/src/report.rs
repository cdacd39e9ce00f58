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
        "environment": plan.environment,
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
        format!("- **Environment:** {}", one_line(&plan.environment)),
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
fn step_number(plan: &Plan, s: &ServiceState) -> Option<usize> {
    use ServicePhase::*;
    let reached = match s.phase {
        Progressing | AwaitingApproval | Paused | Promoting | Succeeded => true,
        RollingBack | RolledBack | Failed => s.step_since.is_some() || s.step > 0,
        Pending | WaitingForDependencies | PreChecks | Cancelled => false,
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
fn outcome(phase: Phase) -> &'static str {
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
                        }],
                    }
                }
                Action::Rollback { .. } if self.rollback_fails => Outcome::Failed {
                    error: "router unreachable".into(),
                },
                Action::PreCheck { .. } | Action::SetWeight { .. } | Action::Rollback { .. } => {
                    Outcome::Done
                }
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
                "| auth | analysis failed (1 of 2 allowed): error-rate 0.2 > max 0.01 |",
                breach
            ),
            "{md}"
        );
        assert!(
            follows(
                "| auth | analysis failed (2 of 2 allowed): error-rate 0.2 > max 0.01 |",
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
                "message": "analysis failed (2 of 2 allowed): error-rate 0.2 > max 0.01",
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
}
