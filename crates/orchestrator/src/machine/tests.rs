//! The machine run against a simulated world: scenario tests and property tests.

use std::collections::BTreeMap;

use proptest::prelude::{
    any, prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig,
};
use proptest::strategy::Strategy as _;
use switchyard_core::model::Serve;

use super::*;
use crate::analysis::Measurement;
use crate::plan::{
    Analysis, Batch, BlueGreen, Canary, FlagRef, Gate, GateCheck, HaproxyCanary, Hotfix, Metric,
    Notify, NotifyEvent, NotifyFormat, OnFailure, OnNoData, PrometheusQuery, Region, RegionFailure,
    Regions, Rollback, Rolling, Servers, Service, Step, Strategy, Waves,
};

/// What the actions did to the outside world.
#[derive(Debug, Clone, Default, PartialEq)]
struct World {
    /// Canary weight per service.
    weight: BTreeMap<String, u32>,
    /// Every weight ever set per service, in order.
    history: BTreeMap<String, Vec<u32>>,
    killed: BTreeMap<String, bool>,
    /// Analyses performed per service.
    analyses: BTreeMap<String, usize>,
    /// Index in `history` where each service's rollback began.
    rollback_from: BTreeMap<String, usize>,
    /// Notifications sent, in order.
    notified: Vec<(NotifyEvent, Option<String>)>,
    /// What each flag (`env/key`) serves; `off` until the release ramps it.
    serve: BTreeMap<String, Serve>,
}

/// Where the world keeps what `flag`'s ramped serve (its rule's, in a region plan) is.
fn serve_key(env: &str, flag: &FlagRef) -> String {
    format!(
        "{env}/{}/{}",
        flag.key,
        flag.rule.as_deref().unwrap_or("default")
    )
}

/// What every flag serves before the release.
fn pre_release() -> Serve {
    Serve::Variant("off".into())
}

/// How the world answers.
#[derive(Debug, Clone)]
struct Failing {
    service: String,
    from_weight: u32,
    until: Millis,
}

fn failing(service: &str, from_weight: u32) -> Failing {
    Failing {
        service: service.into(),
        from_weight,
        until: Millis::MAX,
    }
}

const START: Millis = 1_000_000;

#[derive(Debug, Clone, Default)]
struct Script {
    /// Analyses of `service` fail while its weight is at least `from_weight` and the
    /// simulated time (from the start) is before `until`: a function of the world,
    /// so re-measuring after a crash answers the same.
    failing: Vec<Failing>,
    /// Analyses that are invalid (a guard's sample-ratio mismatch), the same way.
    invalid: Vec<Failing>,
    /// Services whose pre-checks fail.
    unhealthy: Vec<String>,
    /// Person commands at simulated times.
    commands: Vec<(Millis, Event)>,
    /// Person commands arriving after `n` confirmed actions, while more are queued
    /// (the driver takes commands between any two actions).
    between: Vec<(usize, Event)>,
    /// Gates (pre-release: `None`, or a step's) that fail before `until` (simulated
    /// time from the start).
    failing_gates: Vec<(Option<usize>, Millis)>,
}

impl World {
    fn serve_of(&self, env: &str, flag: &FlagRef) -> Serve {
        let key = serve_key(env, flag);
        self.serve.get(&key).cloned().unwrap_or_else(pre_release)
    }

    /// What the driver does to a service's flags: ramps them, records them at the
    /// pre-checks, and on a rollback writes the recorded serve back.
    fn flags(&mut self, action: &Action, plan: &Plan, state: &State, env: &str) -> Vec<PriorServe> {
        let Some(service) = action.service().and_then(|name| plan.service(name)) else {
            return Vec::new();
        };
        let mut checked = Vec::new();
        for flag in &service.flags {
            let key = serve_key(env, flag);
            match action {
                Action::PreCheck { .. } => checked.push(PriorServe {
                    environment: env.to_owned(),
                    flag: flag.key.clone(),
                    rule: flag.rule.clone(),
                    serve: self.serve_of(env, flag),
                    enabled: true,
                }),
                Action::SetWeight { weight, .. } => {
                    self.serve
                        .insert(key, Serve::Variant(format!("on at {weight}")));
                }
                Action::Rollback { .. } | Action::KillFlags { .. } => {
                    if let Some(prior) = state.flags_before.iter().find(|p| p.is_of(env, flag)) {
                        self.serve.insert(key, prior.serve.clone());
                    }
                }
                _ => {}
            }
        }
        checked
    }

    fn perform(
        &mut self,
        action: &Action,
        script: &Script,
        now: Millis,
        (plan, state): (&Plan, &State),
    ) -> Outcome {
        let env = state.environment(plan).to_owned();
        let checked = self.flags(action, plan, state, &env);
        // Keyed by environment too: each environment has its own flags.
        let name = format!("{env}/{}", action.service().unwrap_or("-"));
        // A script names a service as written (every region's) or one region's.
        let written = action
            .service()
            .and_then(|n| plan.service(n))
            .map(Service::written_name);
        let named = |u: &str| Some(u) == action.service() || Some(u) == written;
        let unhealthy = script.unhealthy.iter().any(|u| named(u));
        match action {
            Action::Gate { step, .. } => {
                let fails = script
                    .failing_gates
                    .iter()
                    .any(|(s, until)| s == step && now < START.saturating_add(*until));
                if fails {
                    Outcome::Failed {
                        error: "webhook answered 503".into(),
                    }
                } else {
                    Outcome::Done
                }
            }
            Action::Notify { event, service, .. } => {
                self.notified.push((*event, service.clone()));
                Outcome::Done
            }
            Action::KillFlags { .. } => {
                let at = self.history.get(&name).map_or(0, Vec::len);
                self.rollback_from.entry(name.clone()).or_insert(at);
                self.killed.insert(name, true);
                Outcome::Done
            }
            Action::SetTraffic { weight, .. } => {
                self.weight.insert(name.clone(), *weight);
                self.history.entry(name).or_default().push(*weight);
                Outcome::Done
            }
            Action::PreCheck { .. } if unhealthy => Outcome::Failed {
                error: "connection refused".into(),
            },
            Action::PreCheck { .. } => Outcome::Checked { flags: checked },
            Action::SetWeight { weight, .. } => {
                self.weight.insert(name.clone(), *weight);
                self.history.entry(name).or_default().push(*weight);
                Outcome::Done
            }
            Action::Analyse { .. } => {
                *self.analyses.entry(name.clone()).or_default() += 1;
                let weight = self.weight.get(&name).copied().unwrap_or(0);
                let applies = |f: &Failing| {
                    named(&f.service)
                        && weight >= f.from_weight
                        && now < START.saturating_add(f.until)
                };
                let fail = script.failing.iter().any(applies);
                let invalid = script.invalid.iter().any(applies);
                Outcome::Measured {
                    measurements: vec![Measurement {
                        metric: "error-rate".into(),
                        value: Some(if fail { 0.5 } else { 0.001 }),
                        min: None,
                        max: Some(0.01),
                        verdict: match (invalid, fail) {
                            (true, _) => Verdict::Invalid,
                            (false, true) => Verdict::Fail,
                            (false, false) => Verdict::Pass,
                        },
                        error: None,
                        detail: None,
                        guard: None,
                    }],
                }
            }
            Action::Rollback { .. } => {
                let history = self.history.entry(name.clone()).or_default();
                self.rollback_from
                    .entry(name.clone())
                    .or_insert(history.len());
                history.push(0);
                self.weight.insert(name.clone(), 0);
                self.killed.insert(name, true);
                Outcome::Done
            }
        }
    }
}

/// Runs a release to its end (or until nothing more can happen), crashing once after
/// `crash_at` transitions when given: the action is performed but its outcome lost, and
/// the state is restored from its stored (JSON) form.
fn run(plan: &Plan, script: &Script, crash_at: Option<usize>) -> (State, World) {
    let mut state = State::new(plan);
    let mut world = World::default();
    let mut now: Millis = START;
    let mut commands = script.commands.clone();
    commands.sort_by_key(|(t, _)| *t);
    let mut commands = commands.into_iter().map(|(t, e)| (t + START, e)).peekable();
    let mut transitions = 0;
    let mut advance = |state: &State, event: Event, now: Millis| {
        let (next, _) = step(plan, state, event, now);
        transitions += 1;
        (next, transitions)
    };
    (state, _) = advance(&state, Event::Start, now);
    let mut between = script.between.clone();
    let mut confirmed = 0;
    for _ in 0..2_000 {
        if let Some(action) = state.outbox.first().cloned() {
            if let Some(k) = between.iter().position(|(n, _)| *n == confirmed) {
                let (_, event) = between.remove(k);
                (state, _) = advance(&state, event, now);
                continue;
            }
            let outcome = world.perform(&action, script, now, (plan, &state));
            let (next, n) = advance(&state, Event::Performed { action, outcome }, now);
            if Some(n) == crash_at {
                // The outcome is lost; the state stored before it is what remains.
                let stored = serde_json::to_string(&state).unwrap();
                state = serde_json::from_str(&stored).unwrap();
                continue;
            }
            state = next;
            confirmed += 1;
            continue;
        }
        if state.phase.is_terminal() {
            break;
        }
        let wake = state.next_wakeup(plan);
        match (commands.peek(), wake) {
            (Some((t, _)), w) if w.is_none_or(|w| *t <= w) => {
                let (t, event) = commands.next().unwrap();
                now = now.max(t);
                (state, _) = advance(&state, event, now);
            }
            (_, Some(w)) => {
                now = now.max(w);
                (state, _) = advance(&state, Event::Tick, now);
            }
            (None, None) => break,
            (Some(_), None) => unreachable!(),
        }
    }
    (state, world)
}

fn service(name: &str, deps: &[&str]) -> Service {
    Service {
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
    }
}

fn plan(
    services: Vec<Service>,
    steps: &[Option<u32>],
    on_failure: OnFailure,
    failure_limit: u32,
) -> Plan {
    Plan {
        name: "r".into(),
        environments: vec!["production".into()],
        services,
        steps: steps
            .iter()
            .map(|w| Step {
                weight: *w,
                hold: None,
                approve: w.is_none(),
                gates: vec![],
                ramp: None,
            })
            .collect(),
        analysis: Analysis {
            interval: std::time::Duration::from_secs(30),
            failure_limit,
            metrics: vec![Metric {
                name: "error-rate".into(),
                prometheus: Some(PrometheusQuery {
                    url: "http://127.0.0.1:9090".into(),
                    query: "q".into(),
                }),
                guard: None,
                min: None,
                max: Some(0.01),
                on_no_data: OnNoData::Fail,
                services: None,
            }],
            on_invalid: OnFailure::Pause,
        },
        on_failure,
        gates: Default::default(),
        notify: vec![],
        strategy: Strategy::Canary,
        hotfix: None,
        regions: None,
    }
    .expanded()
}

impl Plan {
    /// The plan with every service's steps made again (after a test changed it).
    fn expanded(mut self) -> Plan {
        self.expand_steps();
        self
    }
}

fn phases(state: &State) -> Vec<(&str, ServicePhase, u32)> {
    state
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.phase, s.weight))
        .collect()
}

#[test]
fn a_healthy_release_ramps_step_by_step_and_promotes() {
    let plan = plan(
        vec![service("auth", &[])],
        &[Some(5), Some(25), Some(50)],
        OnFailure::default(),
        0,
    );
    let (state, world) = run(&plan, &Script::default(), None);
    assert_eq!(state.phase, Phase::Succeeded);
    assert_eq!(phases(&state), vec![("auth", ServicePhase::Succeeded, 100)]);
    assert_eq!(world.history["production/auth"], vec![5, 25, 50, 100]);
    // One passing analysis per step, each an interval after the step's weight.
    assert_eq!(world.analyses["production/auth"], 3);
    assert!(state.outbox.is_empty());
}

#[test]
fn a_breach_rolls_everything_back_and_says_why() {
    let plan = plan(
        vec![service("auth", &[])],
        &[Some(5), Some(25), Some(50)],
        OnFailure::default(),
        1,
    );
    let script = Script {
        failing: vec![failing("auth", 25)],
        ..Script::default()
    };
    let (state, world) = run(&plan, &script, None);
    assert_eq!(state.phase, Phase::RolledBack);
    assert_eq!(world.history["production/auth"], vec![5, 25, 0]);
    assert_eq!(world.killed.get("production/auth"), Some(&true));
    assert_eq!(
        state.reason.as_deref(),
        Some("auth: 2 failed analyses (limit 1): error-rate 0.5 > max 0.01")
    );
    let failed = state
        .timeline
        .iter()
        .find(|e| {
            e.message
                .starts_with("analysis failed (1 so far, 1 tolerated)")
        })
        .expect("the first failure is in the timeline");
    assert_eq!(failed.measurements[0].value, Some(0.5));
}

#[test]
fn dependencies_go_in_order_and_roll_back_in_reverse() {
    let plan = plan(
        vec![
            service("web", &["payments"]),
            service("payments", &["auth"]),
            service("auth", &[]),
            service("search", &[]),
        ],
        &[Some(10), Some(50)],
        OnFailure::default(),
        0,
    );
    let script = Script {
        failing: vec![failing("web", 50)],
        ..Script::default()
    };
    let (state, world) = run(&plan, &script, None);
    assert_eq!(state.phase, Phase::RolledBack);
    // auth and search were promoted before payments started, payments before web.
    let order: Vec<_> = state
        .timeline
        .iter()
        .filter(|e| e.message.starts_with("promoted"))
        .map(|e| e.service.clone().unwrap())
        .collect();
    assert_eq!(order, ["auth", "search", "payments"]);
    let rolled: Vec<_> = state
        .timeline
        .iter()
        .filter(|e| e.message.starts_with("rolled back:"))
        .map(|e| e.service.clone().unwrap())
        .collect();
    assert_eq!(rolled, ["web", "payments", "auth", "search"]);
    assert!(world.weight.values().all(|w| *w == 0));
}

#[test]
fn approval_pause_resume_and_full_promotion() {
    let mut p = plan(
        vec![service("auth", &[])],
        &[Some(5), None, Some(50), Some(80)],
        OnFailure::default(),
        0,
    );
    p.analysis.metrics.clear();
    let script = Script {
        commands: vec![(
            1,
            Event::Approve {
                service: None,
                by: "ana".into(),
            },
        )],
        ..Script::default()
    };
    // Approved before it awaits: refused, so the release waits at the approval step.
    let (state, _) = run(&p, &script, None);
    assert_eq!(
        phases(&state),
        vec![("auth", ServicePhase::AwaitingApproval, 5)]
    );
    assert_eq!(check(&state, &Event::Pause { by: "x".into() }), Ok(()));
    let (paused, _) = step(&p, &state, Event::Pause { by: "ana".into() }, 2_000_000);
    assert_eq!(paused.services[0].phase, ServicePhase::Paused);
    assert_eq!(
        check(
            &paused,
            &Event::Approve {
                service: None,
                by: "x".into()
            }
        ),
        Err(Refusal("no service awaits approval".into()))
    );
    let (resumed, _) = step(&p, &paused, Event::Resume { by: "ana".into() }, 2_000_001);
    assert_eq!(resumed.services[0].phase, ServicePhase::AwaitingApproval);
    let (approved, actions) = step(
        &p,
        &resumed,
        Event::Approve {
            service: Some("auth".into()),
            by: "ana".into(),
        },
        2_000_002,
    );
    assert_eq!(
        actions,
        vec![Action::SetWeight {
            service: "auth".into(),
            weight: 50
        }]
    );
    let (full, actions) = step(
        &p,
        &approved,
        Event::PromoteFull { by: "ana".into() },
        2_000_003,
    );
    // The queued 50 is overtaken by 100.
    assert_eq!(
        actions,
        vec![Action::SetWeight {
            service: "auth".into(),
            weight: 100
        }]
    );
    assert_eq!(full.services[0].phase, ServicePhase::Promoting);
    assert_eq!(full.outbox, actions);
}

#[test]
fn pause_on_failure_waits_for_a_person() {
    let plan = plan(
        vec![service("auth", &[])],
        &[Some(5), Some(50)],
        OnFailure::Pause,
        0,
    );
    let script = Script {
        failing: vec![Failing {
            service: "auth".into(),
            from_weight: 5,
            until: 5_000_000,
        }],
        commands: vec![(10_000_000, Event::Resume { by: "ana".into() })],
        ..Script::default()
    };
    let (state, world) = run(&plan, &script, None);
    assert_eq!(state.phase, Phase::Succeeded);
    assert_eq!(world.history["production/auth"], vec![5, 50, 100]);
    assert!(state
        .timeline
        .iter()
        .any(|e| e.message.starts_with("paused after failed analysis")));
}

#[test]
fn an_invalid_analysis_pauses_by_default_without_counting_as_a_failure() {
    let mut plan = plan(
        vec![service("auth", &[])],
        &[Some(5), Some(50)],
        OnFailure::default(),
        0,
    );
    let script = Script {
        invalid: vec![failing("auth", 5)],
        ..Script::default()
    };
    let (state, world) = run(&plan, &script, None);
    assert_eq!(state.phase, Phase::Running, "{:#?}", state.timeline);
    assert_eq!(state.services[0].phase, ServicePhase::Paused);
    assert_eq!(state.services[0].failures, 0);
    assert_eq!(world.history["production/auth"], vec![5]);
    assert!(state
        .timeline
        .iter()
        .any(|e| e.message.starts_with("paused after invalid analysis")));

    // Resumed once the counting is fixed, it goes on.
    let script = Script {
        invalid: vec![Failing {
            until: 5_000_000,
            ..failing("auth", 5)
        }],
        commands: vec![(10_000_000, Event::Resume { by: "ana".into() })],
        ..Script::default()
    };
    let (state, _) = run(&plan, &script, None);
    assert_eq!(state.phase, Phase::Succeeded);

    // `on_invalid: rollback` rolls back instead.
    plan.analysis.on_invalid = OnFailure::Rollback(Rollback::Instant);
    let script = Script {
        invalid: vec![failing("auth", 5)],
        ..Script::default()
    };
    let (state, _) = run(&plan, &script, None);
    assert_eq!(state.phase, Phase::RolledBack);
    let reason = state.reason.unwrap();
    assert!(reason.contains("invalid analysis"), "{reason}");
}

#[test]
fn a_flag_killed_by_a_person_aborts_and_a_failed_pre_check_rolls_back() {
    let plan = plan(
        vec![service("auth", &[]), service("pay", &["auth"])],
        &[Some(5), Some(50)],
        OnFailure::default(),
        0,
    );
    let killed = Script {
        commands: vec![(
            40_000,
            Event::FlagKilled {
                flag: "auth-flag".into(),
                service: "auth".into(),
                why: Some("killed by on-call: error spike".into()),
            },
        )],
        ..Script::default()
    };
    let (state, world) = run(&plan, &killed, None);
    assert_eq!(state.phase, Phase::RolledBack);
    assert_eq!(
        phases(&state),
        vec![
            ("auth", ServicePhase::RolledBack, 0),
            ("pay", ServicePhase::Cancelled, 0)
        ]
    );
    assert_eq!(world.weight["production/auth"], 0);
    assert_eq!(
        state.reason.as_deref(),
        Some(
            "auth: flag `auth-flag` was killed outside this release (killed by on-call: error \
             spike)"
        )
    );

    let unhealthy = Script {
        unhealthy: vec!["pay".into()],
        ..Script::default()
    };
    let (state, world) = run(&plan, &unhealthy, None);
    assert_eq!(state.phase, Phase::RolledBack);
    assert_eq!(world.history["production/auth"], vec![5, 50, 100, 0]);
    assert_eq!(
        state.reason.as_deref(),
        Some("pay: pre-checks failed: connection refused")
    );
    // Nothing was applied to pay, so nothing is undone there (its flags stay alive).
    assert_eq!(phases(&state)[1], ("pay", ServicePhase::Cancelled, 0));
    assert_eq!(world.killed.get("production/pay"), None);
}

#[test]
fn commands_on_a_finished_release_are_refused() {
    let plan = plan(
        vec![service("auth", &[])],
        &[Some(50)],
        OnFailure::default(),
        0,
    );
    let (state, _) = run(&plan, &Script::default(), None);
    for event in [
        Event::Abort {
            by: "a".into(),
            reason: "r".into(),
        },
        Event::Pause { by: "a".into() },
        Event::Start,
    ] {
        assert_eq!(
            check(&state, &event),
            Err(Refusal("the release is over".into()))
        );
        assert_eq!(step(&plan, &state, event, 9_999_999_999).0, state);
    }
}

fn gate() -> Gate {
    Gate {
        check: GateCheck::Webhook("http://127.0.0.1:9/gate".into()),
        timeout: std::time::Duration::from_secs(1),
        retries: 0,
    }
}

#[test]
fn a_failing_pre_release_gate_stops_the_release_before_anything_changes() {
    let mut p = plan(
        vec![service("auth", &[])],
        &[Some(50)],
        OnFailure::default(),
        0,
    );
    p.gates.pre.push(gate());
    let script = Script {
        failing_gates: vec![(None, Millis::MAX)],
        ..Script::default()
    };
    let (state, world) = run(&p, &script, None);
    assert_eq!(state.phase, Phase::RolledBack);
    assert_eq!(phases(&state), vec![("auth", ServicePhase::Cancelled, 0)]);
    assert!(world.history.is_empty() && world.killed.is_empty());
    assert_eq!(
        state.reason.as_deref(),
        Some("pre-release gate failed: webhook answered 503")
    );
}

#[test]
fn a_failing_step_gate_pauses_and_resume_runs_it_again() {
    let mut p = plan(
        vec![service("auth", &[])],
        &[Some(10), Some(50)],
        OnFailure::default(),
        0,
    );
    p.analysis.metrics.clear();
    p.steps[1].gates.push(gate());
    let p = p.expanded();
    let script = Script {
        // Fails until 100 s in; the person resumes at 200 s.
        failing_gates: vec![(Some(1), 100_000)],
        commands: vec![(200_000, Event::Resume { by: "ana".into() })],
        ..Script::default()
    };
    let (state, world) = run(&p, &script, None);
    assert_eq!(state.phase, Phase::Succeeded);
    assert_eq!(world.history["production/auth"], vec![10, 50, 100]);
    let messages: Vec<&str> = state.timeline.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.contains(&"step 2: gate failed: webhook answered 503"),
        "{messages:?}"
    );
    assert!(messages.contains(&"step 2: gates passed"), "{messages:?}");
}

#[test]
fn a_gradual_rollback_kills_the_flags_then_steps_the_weight_down() {
    let p = plan(
        vec![service("auth", &[])],
        &[Some(20), Some(70)],
        OnFailure::Rollback(Rollback::Gradual {
            step: 30,
            interval: std::time::Duration::from_secs(10),
        }),
        0,
    );
    let script = Script {
        failing: vec![failing("auth", 70)],
        ..Script::default()
    };
    let (state, world) = run(&p, &script, None);
    assert_eq!(state.phase, Phase::RolledBack);
    assert_eq!(world.history["production/auth"], vec![20, 70, 40, 10, 0]);
    assert_eq!(
        world.rollback_from["production/auth"], 2,
        "flags killed before the first decrease"
    );
    let decreases: Vec<Millis> = state
        .timeline
        .iter()
        .filter(|e| e.message.starts_with("rolling back: weight"))
        .map(|e| e.at)
        .collect();
    assert_eq!(decreases.len(), 2);
    assert_eq!(decreases[1] - decreases[0], 10_000);
}

#[test]
fn blue_green_switches_back_on_its_first_failed_analysis_whatever_the_plan_tolerates() {
    // `on_failure: pause` and two failures tolerated: a canary would pause or go on;
    // a blue-green service has all traffic on the new version and switches back.
    for on_failure in [
        OnFailure::Pause,
        OnFailure::Rollback(Rollback::Gradual {
            step: 30,
            interval: std::time::Duration::from_secs(10),
        }),
    ] {
        let mut p = plan(vec![service("checkout", &[])], &[], on_failure, 2);
        p.strategy = Strategy::BlueGreen(BlueGreen {
            preview: None,
            bake: Some(std::time::Duration::from_secs(300)),
            keep_previous: None,
        });
        let p = p.expanded();
        let script = Script {
            failing: vec![failing("checkout", 100)],
            ..Script::default()
        };
        let (state, world) = run(&p, &script, None);
        assert_eq!(state.phase, Phase::RolledBack, "{:#?}", state.timeline);
        assert_eq!(
            world.history["production/checkout"],
            vec![100, 0],
            "switched back in one move"
        );
        assert_eq!(world.analyses["production/checkout"], 1);
        assert_eq!(world.killed.get("production/checkout"), Some(&true));
        let reason = state.reason.unwrap();
        assert!(
            reason.contains("checkout: blue-green switches back on a failed analysis"),
            "{reason}"
        );
        assert!(!state
            .timeline
            .iter()
            .any(|e| e.message.starts_with("paused")));
        // The switch back came one analysis interval after the switch.
        let at = |prefix: &str| {
            state
                .timeline
                .iter()
                .find(|e| e.message.starts_with(prefix))
                .map(|e| e.at)
                .unwrap()
        };
        assert_eq!(at("rolled back") - at("step 1: weight 100"), 30_000);
    }

    // A failed preview (weight 0) never switches: the flags are killed, traffic stays.
    let mut p = plan(vec![service("checkout", &[])], &[], OnFailure::Pause, 2);
    p.strategy = Strategy::BlueGreen(BlueGreen {
        preview: Some(std::time::Duration::from_secs(120)),
        bake: None,
        keep_previous: None,
    });
    let p = p.expanded();
    let script = Script {
        failing: vec![failing("checkout", 0)],
        ..Script::default()
    };
    let (state, world) = run(&p, &script, None);
    assert_eq!(state.phase, Phase::RolledBack);
    assert_eq!(world.history["production/checkout"], vec![0, 0]);
    assert_eq!(world.killed.get("production/checkout"), Some(&true));

    // A canary in the same plan keeps the plan's `pause`.
    let mut p = plan(
        vec![service("checkout", &[]), service("auth", &[])],
        &[Some(10), Some(50)],
        OnFailure::Pause,
        0,
    );
    p.services[0].strategy = Some(Strategy::BlueGreen(BlueGreen::default()));
    let p = p.expanded();
    let script = Script {
        failing: vec![failing("auth", 10)],
        ..Script::default()
    };
    let (state, _) = run(&p, &script, None);
    assert_eq!(state.phase, Phase::Running);
    assert_eq!(state.services[1].phase, ServicePhase::Paused);
}

#[test]
fn environments_run_in_order_with_an_approval_between_them() {
    let mut p = plan(
        vec![service("auth", &[])],
        &[Some(50)],
        OnFailure::default(),
        0,
    );
    p.environments = vec!["staging".into(), "production".into()];
    p.notify.push(Notify {
        webhook: "http://127.0.0.1:9/hook".into(),
        format: NotifyFormat::Slack,
        events: vec![
            NotifyEvent::Started,
            NotifyEvent::Promoted,
            NotifyEvent::AwaitingApproval,
        ],
    });
    let waiting = run(&p, &Script::default(), None).0;
    assert_eq!(waiting.phase, Phase::Running);
    assert!(waiting.awaiting_environment);
    assert_eq!(waiting.environment(&p), "staging");
    assert_eq!(
        check(
            &waiting,
            &Event::Approve {
                service: Some("auth".into()),
                by: "a".into()
            }
        ),
        Err(Refusal("no service awaits approval".into()))
    );

    let script = Script {
        commands: vec![(
            500_000,
            Event::Approve {
                service: None,
                by: "ana".into(),
            },
        )],
        ..Script::default()
    };
    let (state, world) = run(&p, &script, None);
    assert_eq!(state.phase, Phase::Succeeded);
    assert_eq!(state.environment(&p), "production");
    assert_eq!(world.history["staging/auth"], vec![50, 100]);
    assert_eq!(world.history["production/auth"], vec![50, 100]);
    let events: Vec<NotifyEvent> = world.notified.iter().map(|n| n.0).collect();
    assert_eq!(
        events,
        [
            NotifyEvent::Started,
            NotifyEvent::Promoted,
            NotifyEvent::AwaitingApproval,
            NotifyEvent::Started,
            NotifyEvent::Promoted
        ]
    );
}

/// Performs the outbox until it is empty.
fn settle(plan: &Plan, mut state: State, world: &mut World, now: Millis) -> State {
    while let Some(action) = state.outbox.first().cloned() {
        let outcome = world.perform(&action, &Script::default(), now, (plan, &state));
        state = step(plan, &state, Event::Performed { action, outcome }, now).0;
    }
    state
}

#[test]
fn a_rollback_puts_back_what_each_flag_served_before_the_release() {
    let mut auth = service("auth", &[]);
    auth.flags.push(FlagRef {
        key: "auth-rule".into(),
        rule: Some("eu".into()),
    });
    let mut edge = service("edge", &[]);
    edge.flags.clear();
    let plan = plan(
        vec![auth, edge],
        &[Some(10), Some(50)],
        OnFailure::default(),
        0,
    );
    let script = Script {
        failing: vec![failing("auth", 50)],
        ..Script::default()
    };
    let (state, world) = run(&plan, &script, None);
    assert_eq!(state.phase, Phase::RolledBack);
    let recorded: Vec<_> = state
        .flags_before
        .iter()
        .map(|p| (p.flag.as_str(), p.rule.as_deref()))
        .collect();
    assert_eq!(recorded, [("auth-flag", None), ("auth-rule", Some("eu"))]);
    for flag in &plan.services[0].flags {
        assert_eq!(world.serve_of("production", flag), pre_release());
    }
    let said = |service: &str, message: &str| {
        state
            .timeline
            .iter()
            .any(|e| e.service.as_deref() == Some(service) && e.message == message)
    };
    assert!(said("auth", "rolled back: weight 0, flags killed"));
    // A service without flags has none to kill.
    assert!(said("edge", "rolled back: weight 0"));
    assert!(!state
        .timeline
        .iter()
        .any(|e| e.service.as_deref() == Some("edge") && e.message.contains("flags killed")));
}

#[test]
fn a_promoted_release_rolls_back_on_request() {
    let mut edge = service("edge", &["auth"]);
    edge.flags.clear();
    let plan = plan(
        vec![service("auth", &[]), edge],
        &[Some(10), Some(50)],
        OnFailure::default(),
        0,
    );
    let (promoted, mut world) = run(&plan, &Script::default(), None);
    assert_eq!(promoted.phase, Phase::Succeeded);
    let promoted_at = promoted.promoted_at.expect("promotion time kept");
    let flag = &plan.services[0].flags[0];
    assert_eq!(
        world.serve_of("production", flag),
        Serve::Variant("on at 100".into())
    );

    // Other commands stay refused on a finished release; rollback is not.
    let abort = Event::Abort {
        by: "ana".into(),
        reason: "r".into(),
    };
    assert_eq!(
        check(&promoted, &abort).unwrap_err().0,
        "the release is over"
    );
    let rollback = Event::Rollback {
        by: "ana".into(),
        reason: "p99 doubled".into(),
    };
    let now = promoted_at + 60_000;
    let (state, _) = step(&plan, &promoted, rollback.clone(), now);
    assert_eq!(state.phase, Phase::RollingBack);
    // The dependent service first.
    assert_eq!(
        state.outbox,
        vec![
            Action::Rollback {
                service: "edge".into()
            },
            Action::Rollback {
                service: "auth".into()
            }
        ]
    );
    let state = settle(&plan, state, &mut world, now);
    assert_eq!(state.phase, Phase::RolledBack);
    assert_eq!(state.finished_at, Some(now));
    assert_eq!(state.promoted_at, Some(promoted_at));
    assert_eq!(
        state.reason.as_deref(),
        Some("rolled back after promotion by ana: p99 doubled")
    );
    assert!(state
        .timeline
        .iter()
        .any(|e| e.message == "rolling back the promoted release (by ana): p99 doubled"));
    assert_eq!(world.weight["production/auth"], 0);
    assert_eq!(world.weight["production/edge"], 0);
    assert_eq!(world.serve_of("production", flag), pre_release());
    assert_eq!(
        check(&state, &rollback).unwrap_err().0,
        "the release is already rolled back"
    );
    assert_eq!(step(&plan, &state, rollback, now).0, state);
}

#[test]
fn only_a_promoted_release_can_be_rolled_back() {
    let plan = plan(
        vec![service("auth", &[])],
        &[Some(10)],
        OnFailure::default(),
        0,
    );
    let state = step(&plan, &State::new(&plan), Event::Start, START).0;
    let rollback = Event::Rollback {
        by: "ana".into(),
        reason: "r".into(),
    };
    assert_eq!(
        check(&state, &rollback).unwrap_err().0,
        "the release is not promoted; `abort` rolls back a running release"
    );
    assert_eq!(step(&plan, &state, rollback, START).0, state);
}

fn arb_plan() -> impl proptest::strategy::Strategy<Value = Plan> {
    (
        1usize..=3,
        proptest::collection::vec(any::<bool>(), 3),
        proptest::collection::vec(
            prop_oneof![3 => (1u32..=100).prop_map(Some), 1 => Just(None)],
            1..=5,
        ),
        0u8..3,
        0u32..=2,
        (
            any::<bool>(),
            proptest::collection::vec(0usize..5, 0..2),
            any::<bool>(),
            1usize..=2,
        ),
        (0u8..5, 0u8..3, any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                n,
                dep_bits,
                mut steps,
                failure,
                limit,
                (pre_gate, step_gates, notify, envs),
                (strategy, shape, region_alone, parallel),
            )| {
                let names = ["a", "b", "c"];
                let services = (0..n)
                    .map(|i| {
                        let deps: Vec<&str> = (0..i)
                            .filter(|&j| dep_bits[i * (i - 1) / 2 + j])
                            .map(|j| names[j])
                            .collect();
                        service(names[i], &deps)
                    })
                    .collect();
                // Weights never decrease.
                let mut weights: Vec<u32> = steps.iter().flatten().copied().collect();
                weights.sort_unstable();
                let mut sorted = weights.into_iter();
                for s in steps.iter_mut().filter(|s| s.is_some()) {
                    *s = sorted.next();
                }
                let on_failure = match failure {
                    0 => OnFailure::default(),
                    1 => OnFailure::Pause,
                    _ => OnFailure::Rollback(Rollback::Gradual {
                        step: 30,
                        interval: std::time::Duration::from_secs(10),
                    }),
                };
                let mut plan = plan(services, &steps, on_failure, limit);
                let gate = || Gate {
                    check: GateCheck::Webhook("http://127.0.0.1:9/gate".into()),
                    timeout: std::time::Duration::from_secs(1),
                    retries: 0,
                };
                if pre_gate {
                    plan.gates.pre.push(gate());
                }
                for i in step_gates {
                    if let Some(step) = plan.steps.get_mut(i) {
                        step.gates.push(gate());
                    }
                }
                if notify {
                    plan.notify.push(Notify {
                        webhook: "http://127.0.0.1:9/hook".into(),
                        format: NotifyFormat::Json,
                        events: vec![],
                    });
                }
                if envs == 2 {
                    plan.environments = vec!["staging".into(), "production".into()];
                }
                // The strategy: the plan's, or (4) blue-green for the last service only.
                let rolling = Strategy::Rolling(Rolling {
                    batch: Batch::Percent(25),
                    max_unavailable: Batch::Count(0),
                    hold: None,
                });
                let blue_green = |preview| {
                    Strategy::BlueGreen(BlueGreen {
                        preview,
                        bake: Some(std::time::Duration::from_secs(40)),
                        keep_previous: None,
                    })
                };
                match strategy {
                    1 => plan.strategy = blue_green(None),
                    2 => plan.strategy = blue_green(Some(std::time::Duration::from_secs(20))),
                    3 => {
                        plan.strategy = rolling;
                        for s in &mut plan.services {
                            s.canary = four_servers();
                        }
                    }
                    4 => plan.services.last_mut().unwrap().strategy = Some(blue_green(None)),
                    _ => {}
                }
                match shape {
                    1 => {
                        plan.hotfix = Some(Hotfix {
                            reason: "h".into(),
                            bake: None,
                        })
                    }
                    2 => {
                        let region =
                            |name: &str, max_weight, services: Option<Vec<String>>| Region {
                                name: name.into(),
                                primary: name == "r1",
                                max_weight,
                                services,
                                routers: BTreeMap::new(),
                                flag_rule: None,
                            };
                        let regions = Regions {
                            list: vec![
                                region("r2", 10, None),
                                region("r1", 100, None),
                                region("r3", 5, Some(vec!["a".into()])),
                            ],
                            waves: if parallel {
                                Waves::Parallel
                            } else {
                                Waves::InOrder
                            },
                            on_failure: if region_alone {
                                RegionFailure::Region
                            } else {
                                RegionFailure::All
                            },
                            services: std::mem::take(&mut plan.services),
                        };
                        plan.services = regions.expand();
                        plan.regions = Some(regions);
                    }
                    _ => {}
                }
                plan.expanded()
            },
        )
}

fn four_servers() -> Canary {
    let servers = |prefix: &str| Servers((1..=4).map(|i| format!("{prefix}{i}")).collect());
    Canary::Haproxy(HaproxyCanary {
        address: "127.0.0.1:1".into(),
        backend: "web".into(),
        stable: servers("old"),
        canary: servers("new"),
    })
}

fn arb_script() -> impl proptest::strategy::Strategy<Value = Script> {
    let names = ["a", "b", "c"];
    let command = prop_oneof![
        Just(Event::Approve {
            service: None,
            by: "p".into()
        }),
        Just(Event::Pause { by: "p".into() }),
        Just(Event::Resume { by: "p".into() }),
        Just(Event::Abort {
            by: "p".into(),
            reason: "r".into()
        }),
        Just(Event::PromoteFull { by: "p".into() }),
        (0usize..3).prop_map(move |i| Event::FlagKilled {
            flag: "f".into(),
            service: names[i].into(),
            why: None,
        }),
        Just(Event::Adopted { by: "o2".into() }),
    ];
    (
        proptest::collection::vec(
            (
                0usize..5,
                1u32..=100,
                prop_oneof![Just(Millis::MAX), 0u64..600_000],
            ),
            0..4,
        ),
        proptest::collection::vec(0usize..3, 0..2),
        proptest::collection::vec((0u64..600_000, command.clone()), 0..8),
        proptest::collection::vec((0usize..12, command), 0..3),
        proptest::collection::vec(
            (
                prop_oneof![Just(None), (0usize..5).prop_map(Some)],
                0u64..400_000,
            ),
            0..2,
        ),
    )
        .prop_map(
            move |(failing, unhealthy, commands, between, failing_gates)| Script {
                failing: failing
                    .into_iter()
                    .map(|(s, from_weight, until)| Failing {
                        service: ["a", "b", "c", "a@r2", "b@r3"][s].into(),
                        from_weight,
                        until,
                    })
                    .collect(),
                invalid: Vec::new(),
                unhealthy: unhealthy.into_iter().map(|s| names[s].into()).collect(),
                commands,
                between,
                failing_gates,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn weights_ramp_monotonically_and_rollbacks_end_at_zero_with_flags_killed(plan in arb_plan(), script in arb_script()) {
        let (state, world) = run(&plan, &script, None);
        let env = state.environment(&plan).to_owned();
        for (service, history) in &world.history {
            // Before its promotion, a service never exceeds its own steps (a region's
            // cap, a blue-green preview at 0, a rolling batch).
            let name = service.split_once('/').map_or(&service[..], |(_, n)| n);
            let max = plan.steps_of_service(name).iter().filter_map(|s| s.weight).max().unwrap_or(0);
            let from = world.rollback_from.get(service).copied().unwrap_or(history.len());
            let (ramp, rollback) = history.split_at(from.min(history.len()));
            let mut previous = 0;
            for &w in ramp {
                prop_assert!(w >= previous, "{service}: weight went down outside a rollback: {history:?}");
                prop_assert!(w <= max || w == 100, "{service}: {w} exceeds the plan's {max} before promotion");
                previous = w;
            }
            for pair in rollback.windows(2) {
                prop_assert!(pair[1] <= pair[0], "{service}: weight went up during its rollback: {history:?}");
            }
            if !rollback.is_empty() {
                prop_assert_eq!(world.killed.get(service), Some(&true), "{} rolled back with live flags", service);
            }
        }
        // A blue-green service never pauses after a failed analysis (it switches back).
        for e in &state.timeline {
            let blue_green = e.service.as_deref().and_then(|n| plan.services.iter().position(|s| s.name == n))
                .is_some_and(|i| matches!(plan.strategy_of(i), Strategy::BlueGreen(_)));
            prop_assert!(!(blue_green && e.message.starts_with("paused after failed analysis")), "{e:?}");
        }
        let key = |s: &ServiceState| format!("{env}/{}", s.name);
        // One record per flag and environment, made before the release changed it.
        for (n, prior) in state.flags_before.iter().enumerate() {
            prop_assert_eq!(&prior.serve, &pre_release(), "{:?}", prior);
            prop_assert!(!state.flags_before[..n].iter().any(|p| p.environment == prior.environment && p.flag == prior.flag && p.rule == prior.rule), "{:?} twice", prior);
        }
        if state.phase.is_terminal() {
            prop_assert!(state.outbox.is_empty(), "a finished release left {:?}", state.outbox);
        }
        match state.phase {
            Phase::RolledBack => {
                // A region rolled back alone leaves the others promoted.
                let alone = plan.regions.as_ref().is_some_and(|r| r.on_failure == RegionFailure::Region);
                for s in &state.services {
                    prop_assert!(matches!(s.phase, ServicePhase::RolledBack | ServicePhase::Cancelled)
                        || (alone && s.phase == ServicePhase::Succeeded), "{s:?}");
                    if s.phase == ServicePhase::RolledBack {
                        prop_assert_eq!(world.weight.get(&key(s)), Some(&0));
                        prop_assert_eq!(world.killed.get(&key(s)), Some(&true));
                        // Its flags serve what they served before the release.
                        for flag in &plan.service(&s.name).unwrap().flags {
                            prop_assert_eq!(world.serve_of(&env, flag), pre_release(), "{} after rolling back {}", flag.key, s.name);
                        }
                    }
                }
                prop_assert!(state.reason.is_some());
                if !plan.notify.is_empty() {
                    prop_assert_eq!(world.notified.last().map(|n| n.0), Some(NotifyEvent::RolledBack));
                }
            }
            Phase::Succeeded => {
                prop_assert_eq!(state.environment + 1, plan.environments.len());
                for s in &state.services {
                    prop_assert_eq!(world.weight.get(&key(s)), Some(&100));
                    prop_assert_eq!(s.weight, 100);
                }
                if !plan.notify.is_empty() {
                    prop_assert_eq!(world.notified.last().map(|n| n.0), Some(NotifyEvent::Promoted));
                }
            }
            // Waiting for a person (approval or resume) that the script never gave.
            // (Analysis goes on meanwhile, so the run stops at its iteration bound.)
            Phase::Running => prop_assert!(
                state.awaiting_environment
                    || state.services.iter().any(|s| matches!(s.phase, ServicePhase::AwaitingApproval | ServicePhase::Paused)),
                "stuck without waiting for a person: {:?}", phases(&state)
            ),
            other => prop_assert!(false, "unexpected end {other:?}"),
        }
    }

    #[test]
    fn a_crash_at_any_transition_reaches_the_same_end(plan in arb_plan(), script in arb_script(), crash in 1usize..60) {
        let (expected, world) = run(&plan, &script, None);
        let (resumed, resumed_world) = run(&plan, &script, Some(crash));
        prop_assert_eq!(resumed.phase, expected.phase);
        prop_assert_eq!(phases(&resumed), phases(&expected));
        prop_assert_eq!(&resumed_world.weight, &world.weight);
        prop_assert_eq!(&resumed_world.killed, &world.killed);
        prop_assert_eq!(&resumed_world.serve, &world.serve);
        prop_assert_eq!(resumed.reason, expected.reason);
    }
}

#[test]
fn an_adopted_release_says_so_in_its_timeline_and_changes_nothing_else() {
    let plan = plan(
        vec![service("auth", &[])],
        &[Some(5), Some(50)],
        OnFailure::default(),
        0,
    );
    let (started, _) = step(&plan, &State::new(&plan), Event::Start, 1_000);
    let (adopted, actions) = step(
        &plan,
        &started,
        Event::Adopted {
            by: "orchestrator-2".into(),
        },
        9_000,
    );
    assert!(actions.is_empty());
    let entry = adopted.timeline.last().expect("an entry");
    assert_eq!((entry.at, entry.service.as_deref()), (9_000, None));
    assert!(
        entry
            .message
            .starts_with("resumed after restart: orchestrator `orchestrator-2`"),
        "{}",
        entry.message
    );
    let mut without = adopted.clone();
    without.timeline.pop();
    assert_eq!(without, started);
}

/// The machine is pure: it imports only modules that are plain data (no HTTP client, no
/// error type carrying one), so nothing with I/O can creep into its state.
#[test]
fn the_machine_imports_only_modules_without_io() {
    let pure = [
        (
            "crate::analysis::verdict",
            include_str!("../analysis/verdict.rs"),
        ),
        ("crate::dag", include_str!("../dag.rs")),
        ("crate::flags::prior", include_str!("../flags/prior.rs")),
        ("crate::plan", include_str!("../plan.rs")),
        ("crate::plan", include_str!("../plan/schema.rs")),
    ];
    for import in include_str!("../machine.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("use crate::"))
    {
        assert!(
            pure.iter()
                .any(|(module, _)| format!("crate::{import}").starts_with(module)),
            "machine.rs imports `crate::{import}`, which is not a plain-data module"
        );
    }
    for (module, source) in pure {
        for io in [
            "reqwest::",
            "switchyard_sdk",
            "tokio",
            "async_trait",
            "axum",
        ] {
            assert!(
                !source.contains(io),
                "{module} mentions `{io}`: the machine's imports must stay free of I/O"
            );
        }
    }
}
