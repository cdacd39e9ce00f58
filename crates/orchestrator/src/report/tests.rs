use serde_json::{json, Value};

use super::*;
use crate::analysis::{Measurement, Verdict};
use crate::machine::{step, Action, Event, Outcome};
use crate::plan::{
    Analysis, Canary, FlagRef, HaproxyCanary, Hotfix, Metric, OnFailure, OnNoData, Service, Step,
};

/// A document as the API writes it.
fn as_value(document: impl serde::Serialize) -> Value {
    serde_json::to_value(document).expect("serialises")
}

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
                        guard: None,
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
        strategy: None,
        steps: vec![],
        region: None,
    };
    Plan {
        name: "checkout-v3".into(),
        environments: vec!["production".into()],
        services: vec![
            Service {
                // A router that names the versions (the machine's actions are answered by
                // `World`, so nothing is contacted).
                canary: Canary::Haproxy(HaproxyCanary {
                    address: "127.0.0.1:9999".into(),
                    backend: "auth".into(),
                    stable: "v2".into(),
                    canary: "v3".into(),
                }),
                ..service("auth", &[])
            },
            service("payments", &["auth"]),
        ],
        steps: [10, 25, 50]
            .map(|w| Step {
                weight: Some(w),
                hold: None,
                approve: false,
                gates: vec![],
                ramp: None,
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
            on_invalid: OnFailure::Pause,
        },
        on_failure: OnFailure::default(),
        gates: Default::default(),
        notify: vec![],
        strategy: Default::default(),
        hotfix: None,
        regions: None,
    }
    .with_steps()
}

impl Plan {
    fn with_steps(mut self) -> Plan {
        self.expand_steps();
        self
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
            as_value(json(&release))["phase"],
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
    let v = as_value(json(&release));
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
    let v = as_value(json(&release));
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
        weights: None,
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
    let hotfix = |mut release: Release| {
        release.plan.hotfix = Some(Hotfix {
            reason: "CVE-2024-0001".into(),
            bake: None,
        });
        release
    };
    vec![
        hotfix(promoted(START - DAY)),
        hotfix(promoted(START + 1)), // after the window: not counted
        promoted(from),              // on the window's start: counted
        promoted(START),             // on its end: counted
        promoted(from - 1),
        hotfix(restored(START - 2 * DAY, 30_000)),
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
        hotfixes: HotfixReport {
            finished: 2,
            promoted: 1,
            failed: 1,
            per_day: 1.0 / 30.0,
        },
    };
    assert_eq!(dora, expected);
    assert_eq!(
        as_value(dora_json(&dora)),
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
            "hotfixes": { "finished": 2, "promoted": 1, "failed": 1, "per_day": 1.0 / 30.0 },
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
        "| Hotfixes | 2 finished hotfixes (1 promoted, 1 rolled back or failed; 0.033 promoted per day) |",
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
                hotfixes: HotfixReport::default(),
            }
        );
        let v = as_value(dora_json(&dora));
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

/// Compares with a golden file in `testdata/`; `SWITCHYARD_UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, text: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    if std::env::var_os("SWITCHYARD_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).expect("write the golden file");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (SWITCHYARD_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert_eq!(
        text,
        expected,
        "{} differs (SWITCHYARD_UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[test]
fn release_notes_match_the_golden_files() {
    let promoted = release(World::default(), |s| s.phase == Phase::Succeeded);
    assert_eq!(promoted.state.phase, Phase::Succeeded);
    let notes = notes::render(&json(&promoted), notes::DEFAULT_TEMPLATE).expect("renders");
    golden("notes-promoted.md", &notes);
    let notes = notes::render(&json(&rolled_back()), notes::DEFAULT_TEMPLATE).expect("renders");
    golden("notes-rolled-back.md", &notes);
}

#[test]
fn a_users_template_renders_and_a_broken_one_names_its_line() {
    let report = json(&rolled_back());
    let mine = "{{ release.name }}: {{ outcome }}{% for s in services %}, {{ s.name }} {{ s.versions }}{% endfor %}";
    assert_eq!(
        notes::render(&report, mine).expect("renders"),
        "checkout-v3: Rolled back, auth v2 → v3, payments –"
    );
    let broken = "line one\n{{ release.nmae }}";
    let error = notes::render(&report, broken)
        .expect_err("an undefined name")
        .to_string();
    assert!(error.contains("line 2"), "{error}");
    let error = notes::render(&report, "{% for %}")
        .expect_err("bad syntax")
        .to_string();
    assert!(
        error.starts_with("release notes template: line 1"),
        "{error}"
    );
}
