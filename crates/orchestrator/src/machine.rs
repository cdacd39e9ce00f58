//! The release state machine: `step(&Plan, &State, Event, now) -> (State, Vec<Action>)`.
//!
//! *Architecture Invariant*: this module is pure — no clock, no I/O, no randomness. The
//! driver feeds it events (commands, ticks, and the outcome of each action) and performs
//! the actions it queues. The queue lives in the [`State`] (its *outbox*), so one stored
//! `State` is everything needed to resume after a crash: the driver re-performs the
//! outbox's first action, which is safe because every action is idempotent (absolute
//! weights, kills, read-only checks).
//!
//! Release: pending → running → succeeded, or running → rolling back → rolled back /
//! failed; a person may roll a succeeded release back (`Event::Rollback`; the driver
//! checks the rollback window): succeeded → rolling back. Service: pending → waiting for dependencies → pre-checks → progressing (step
//! i) ⇄ paused / awaiting approval → promoting → succeeded; or rolling back → rolled
//! back / failed.

use serde::{Deserialize, Serialize};

use crate::analysis::verdict::{Measurement, Verdict};
use crate::dag;
use crate::flags::prior::PriorServe;
use crate::plan::{NotifyEvent, OnFailure, Plan, RegionFailure, Rollback, StepKind, Strategy};

pub use switchyard_core::release::{Millis, Phase, ServicePhase, Weights};

/// The state of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The service's name.
    pub name: String,
    /// Where it is.
    pub phase: ServicePhase,
    /// The current step's index.
    pub step: usize,
    /// The weight last confirmed by the router and the flag server.
    pub weight: u32,
    /// When the current step's weight was confirmed (its hold starts then).
    pub step_since: Option<Millis>,
    /// When the current weight was confirmed; unlike `step_since` it stays through an
    /// approval step and a pause (a guard counts the units served since then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_since: Option<Millis>,
    /// When the next analysis is due.
    pub next_analysis: Option<Millis>,
    /// Failed analyses so far (reset when a person resumes).
    pub failures: u32,
    /// Passed analyses since the current step's weight was confirmed.
    pub passed_in_step: u32,
    /// The latest analysis.
    pub last_analysis: Vec<Measurement>,
    /// Whether the current step's gates have passed.
    #[serde(default)]
    pub gate_passed: bool,
    /// When a gradual rollback next lowers the weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rollback: Option<Millis>,
}

/// The state of a release: everything needed to resume it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Where the release is.
    pub phase: Phase,
    /// Each service, in plan order.
    pub services: Vec<ServiceState>,
    /// Actions queued and not yet confirmed; the first is performed next.
    pub outbox: Vec<Action>,
    /// Set by `promote --full`: remaining steps are skipped.
    pub full_promotion: bool,
    /// Why the release rolled back or failed.
    pub reason: Option<String>,
    /// When it started.
    pub started_at: Option<Millis>,
    /// When it ended.
    pub finished_at: Option<Millis>,
    /// Every decision with its cause, oldest first.
    pub timeline: Vec<Entry>,
    /// The index (in `Plan::environments`) of the environment being released.
    #[serde(default)]
    pub environment: usize,
    /// Every service is promoted in the current environment and the next one waits
    /// for `approve`.
    #[serde(default)]
    pub awaiting_environment: bool,
    /// What each ramped flag served before this release first touched it (recorded
    /// by its service's pre-checks, stored before the first ramp), per environment: a
    /// rollback writes it back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags_before: Vec<PriorServe>,
    /// When every service was promoted, if ever (kept when a person rolls the
    /// promoted release back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Millis>,
    /// When the driver retired the previous version of the promoted release's
    /// blue-green services (`keep_previous` after the promotion), if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<Millis>,
}

/// One decision in a release's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When.
    pub at: Millis,
    /// The service concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What happened and why.
    pub message: String,
    /// The measurements behind an analysis decision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// The shares this decision left its service at, when it moved them (what the
    /// console charts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Run the service's health checks.
    PreCheck {
        /// The service.
        service: String,
    },
    /// Set the canary's traffic weight and the flags' first-variant share.
    SetWeight {
        /// The service.
        service: String,
        /// Percent.
        weight: u32,
    },
    /// Measure the service's metrics.
    Analyse {
        /// The service.
        service: String,
    },
    /// Canary weight 0, then kill the service's flags, putting their pre-release
    /// serves back.
    Rollback {
        /// The service.
        service: String,
    },
    /// Kill the service's flags, putting their pre-release serves back (first move of
    /// a gradual rollback).
    KillFlags {
        /// The service.
        service: String,
    },
    /// Set only the canary's traffic weight (the steps of a gradual rollback).
    SetTraffic {
        /// The service.
        service: String,
        /// Percent.
        weight: u32,
    },
    /// Run gates: the plan's `gates.pre` (no service), or a service's step's gates.
    Gate {
        /// The service whose step is gated; none for the pre-release gates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// The step's index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<usize>,
    },
    /// Tell the notification targets that want `event`.
    Notify {
        /// What happened.
        event: NotifyEvent,
        /// The service concerned, if one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// The timeline's words for it.
        message: String,
    },
}

impl Action {
    /// The service the action concerns, if one.
    pub fn service(&self) -> Option<&str> {
        match self {
            Action::PreCheck { service }
            | Action::SetWeight { service, .. }
            | Action::Analyse { service }
            | Action::Rollback { service }
            | Action::KillFlags { service }
            | Action::SetTraffic { service, .. } => Some(service),
            Action::Gate { service, .. } | Action::Notify { service, .. } => service.as_deref(),
        }
    }
}

/// How an action went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Done (weights set and confirmed, checks passed, rollback complete).
    Done,
    /// Pre-checks passed; what the service's flags serve now (before the release).
    Checked {
        /// One per ramped flag.
        flags: Vec<PriorServe>,
    },
    /// An analysis's measurements.
    Measured {
        /// One per metric.
        measurements: Vec<Measurement>,
    },
    /// Failed after the driver's retries.
    Failed {
        /// Why.
        error: String,
    },
}

/// What happens to a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Begin.
    Start,
    /// Time passed.
    Tick,
    /// The outbox's first action finished.
    Performed {
        /// The action (must be the outbox's first).
        action: Action,
        /// How it went.
        outcome: Outcome,
    },
    /// A person approved the awaiting services (one, or all when `service` is absent).
    Approve {
        /// Limit to this service.
        service: Option<String>,
        /// Who.
        by: String,
    },
    /// A person paused the release.
    Pause {
        /// Who.
        by: String,
    },
    /// A person resumed the paused services.
    Resume {
        /// Who.
        by: String,
    },
    /// A person aborted the release: roll back.
    Abort {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// A person skipped the remaining steps: promote every service.
    PromoteFull {
        /// Who.
        by: String,
    },
    /// A person rolled a promoted release back: canary weights 0, flags back to their
    /// pre-release serve and killed. (The driver checks the rollback window.)
    Rollback {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// A ramped flag was killed by someone other than this release.
    FlagKilled {
        /// The flag.
        flag: String,
        /// The service ramping it.
        service: String,
        /// Who killed it and why, as the flag server's audit log says (when it says).
        #[serde(default)]
        why: Option<String>,
    },
    /// An orchestrator took the release up from its stored state (after a restart, or
    /// from a driver that stopped renewing its lease).
    Adopted {
        /// The orchestrator now driving it.
        by: String,
    },
}

/// Why a command does not apply to a release in its current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

impl State {
    /// A new release, not started.
    pub fn new(plan: &Plan) -> State {
        State {
            phase: Phase::Pending,
            services: plan
                .services
                .iter()
                .map(|s| State::new_service(s.name.clone()))
                .collect(),
            outbox: Vec::new(),
            full_promotion: false,
            reason: None,
            started_at: None,
            finished_at: None,
            timeline: Vec::new(),
            environment: 0,
            awaiting_environment: false,
            flags_before: Vec::new(),
            promoted_at: None,
            retired_at: None,
        }
    }

    fn new_service(name: String) -> ServiceState {
        ServiceState {
            name,
            phase: ServicePhase::Pending,
            step: 0,
            weight: 0,
            step_since: None,
            weight_since: None,
            next_analysis: None,
            failures: 0,
            passed_in_step: 0,
            last_analysis: Vec::new(),
            gate_passed: false,
            next_rollback: None,
        }
    }

    /// The environment being released.
    pub fn environment<'p>(&self, plan: &'p Plan) -> &'p str {
        let all = &plan.environments;
        all.get(self.environment)
            .or(all.last())
            .map_or("", String::as_str)
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceState> {
        self.services.iter().find(|s| s.name == name)
    }

    /// When the machine next needs a `Tick` (a hold ending or an analysis due), if ever.
    pub fn next_wakeup(&self, plan: &Plan) -> Option<Millis> {
        if self.phase == Phase::RollingBack {
            return self.services.iter().filter_map(|s| s.next_rollback).min();
        }
        if self.phase != Phase::Running {
            return None;
        }
        // A region rolling back alone does so while the release runs.
        let rollback = self.services.iter().filter_map(|s| s.next_rollback).min();
        let analysed = |i: usize| !has_analysis(plan, i) || self.services[i].passed_in_step > 0;
        self.services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.phase {
                ServicePhase::Progressing | ServicePhase::AwaitingApproval => {
                    // A hold ends a step only once an analysis in it has passed.
                    let hold_end = match (plan.step(i, s.step), s.step_since) {
                        (Some(StepKind::Weight(_, hold)), Some(since))
                            if s.phase == ServicePhase::Progressing && analysed(i) =>
                        {
                            Some(since + hold.as_millis() as u64)
                        }
                        _ => None,
                    };
                    let analysis = s.next_analysis.filter(|_| has_analysis(plan, i));
                    [hold_end, analysis].into_iter().flatten().min()
                }
                _ => None,
            })
            .chain(rollback)
            .min()
    }
}

/// Whether a person's command applies now; the daemon answers 409 with the reason when
/// it does not. Internal events always apply.
pub fn check(state: &State, event: &Event) -> Result<(), Refusal> {
    let refuse = |m: &str| Err(Refusal(m.to_owned()));
    let any = |phases: &[ServicePhase]| state.services.iter().any(|s| phases.contains(&s.phase));
    if let Event::Rollback { .. } = event {
        return match state.phase {
            Phase::Succeeded => Ok(()),
            Phase::RolledBack => refuse("the release is already rolled back"),
            Phase::Failed => {
                refuse("the release's rollback failed; look at its services and flags by hand")
            }
            Phase::Pending | Phase::Running | Phase::RollingBack => {
                refuse("the release is not promoted; `abort` rolls back a running release")
            }
        };
    }
    if state.phase.is_terminal() {
        return refuse("the release is over");
    }
    match event {
        Event::Start if state.phase != Phase::Pending => refuse("the release has started"),
        Event::Approve { service: None, .. } if state.awaiting_environment => Ok(()),
        Event::Approve { service, .. } => {
            let awaiting = state.services.iter().any(|s| {
                s.phase == ServicePhase::AwaitingApproval
                    && service.as_ref().is_none_or(|n| n == &s.name)
            });
            if awaiting {
                Ok(())
            } else {
                refuse("no service awaits approval")
            }
        }
        Event::Pause { .. }
            if state.phase != Phase::Running
                || !any(&[ServicePhase::Progressing, ServicePhase::AwaitingApproval]) =>
        {
            refuse("nothing is progressing")
        }
        Event::Resume { .. } if !any(&[ServicePhase::Paused]) => refuse("nothing is paused"),
        Event::Abort { .. } | Event::PromoteFull { .. } if state.phase != Phase::Running => {
            refuse("the release is not running")
        }
        _ => Ok(()),
    }
}

/// Advances a release by one event. Pure: the same inputs give the same outputs.
/// Returns the new state and the actions it queued (already in its outbox).
pub fn step(plan: &Plan, state: &State, event: Event, now: Millis) -> (State, Vec<Action>) {
    let mut m = Machine {
        plan,
        state: state.clone(),
        now,
        queued: Vec::new(),
    };
    // A finished release still confirms its last actions (its final notification).
    let applies = matches!(event, Event::Performed { .. }) || check(state, &event).is_ok();
    if applies {
        m.handle(event);
        m.settle();
    }
    let queued = m.queued;
    (m.state, queued)
}

/// Whether service `i` has anything to analyse (metrics or health checks).
fn has_analysis(plan: &Plan, i: usize) -> bool {
    let service = &plan.services[i];
    !service.health.is_empty()
        || plan
            .analysis
            .metrics
            .iter()
            .any(|m| m.applies_to(service.written_name()))
}

struct Machine<'a> {
    plan: &'a Plan,
    state: State,
    now: Millis,
    queued: Vec<Action>,
}

impl Machine<'_> {
    fn handle(&mut self, event: Event) {
        match event {
            Event::Start => {
                self.state.phase = Phase::Running;
                self.state.started_at = Some(self.now);
                self.start_environment();
            }
            Event::Tick => self.tick(),
            Event::Performed { action, outcome } => self.performed(action, outcome),
            Event::Approve { service: None, by } if self.state.awaiting_environment => {
                self.state.awaiting_environment = false;
                self.state.environment += 1;
                let env = self.state.environment(self.plan).to_owned();
                self.log(None, format!("approved by {by}: on to `{env}`"));
                for s in &mut self.state.services {
                    let name = std::mem::take(&mut s.name);
                    *s = State::new_service(name);
                }
                self.start_environment();
            }
            Event::Approve { service, by } => {
                for i in self.indices(ServicePhase::AwaitingApproval) {
                    if service
                        .as_ref()
                        .is_none_or(|n| n == &self.state.services[i].name)
                    {
                        self.log(Some(i), format!("approved by {by}"));
                        let next = self.state.services[i].step + 1;
                        self.enter_step(i, next);
                    }
                }
            }
            Event::Pause { by } => {
                for phase in [ServicePhase::Progressing, ServicePhase::AwaitingApproval] {
                    for i in self.indices(phase) {
                        self.pause(i, format!("paused by {by}"));
                    }
                }
            }
            Event::Resume { by } => {
                for i in self.indices(ServicePhase::Paused) {
                    self.log(Some(i), format!("resumed by {by}"));
                    self.state.services[i].failures = 0;
                    self.resume(i);
                }
            }
            Event::Abort { by, reason } => {
                self.roll_back(format!("aborted by {by}: {reason}"));
            }
            Event::Rollback { by, reason } => {
                self.state.phase = Phase::RollingBack;
                self.state.finished_at = None;
                self.state.reason = Some(format!("rolled back after promotion by {by}: {reason}"));
                self.log(
                    None,
                    format!("rolling back the promoted release (by {by}): {reason}"),
                );
                self.roll_back_services();
            }
            Event::PromoteFull { by } => {
                self.state.full_promotion = true;
                self.log(None, format!("full promotion requested by {by}"));
                for phase in [
                    ServicePhase::Progressing,
                    ServicePhase::AwaitingApproval,
                    ServicePhase::AwaitingGate,
                    ServicePhase::Paused,
                ] {
                    for i in self.indices(phase) {
                        self.promote(i);
                    }
                }
            }
            Event::FlagKilled { flag, service, why } => {
                if self.index(&service).is_some() {
                    // Everyone is off the flag now, in every region: the whole release
                    // rolls back, whatever `region_failure` says.
                    let why = why.map_or_else(String::new, |why| format!(" ({why})"));
                    self.roll_back(format!(
                        "{service}: flag `{flag}` was killed outside this release{why}"
                    ));
                }
            }
            Event::Adopted { by } => self.log(
                None,
                format!(
                    "resumed after restart: orchestrator `{by}` took the release up where its \
                     stored state left off"
                ),
            ),
        }
    }

    /// Begins the release in the current environment: pre-release gates, then the
    /// services without dependencies.
    fn start_environment(&mut self) {
        let env = self.state.environment(self.plan).to_owned();
        let message = match &self.plan.hotfix {
            Some(hotfix) => format!(
                "hotfix started in `{env}`: {} (the ramp is skipped: one step at 100 after \
                 the gates and pre-checks, held and analysed before promotion)",
                hotfix.reason
            ),
            None => format!("release started in `{env}`"),
        };
        self.log(None, message.clone());
        self.notify(NotifyEvent::Started, None, message);
        if self.plan.gates.pre.is_empty() {
            self.release_services();
        } else {
            self.queue(Action::Gate {
                service: None,
                step: None,
            });
        }
    }

    fn release_services(&mut self) {
        for s in &mut self.state.services {
            s.phase = ServicePhase::WaitingForDependencies;
        }
    }

    fn tick(&mut self) {
        match self.state.phase {
            // A region rolling back alone does so while the release runs.
            Phase::Running => self.tick_rollback(),
            Phase::RollingBack => return self.tick_rollback(),
            _ => return,
        }
        for i in 0..self.state.services.len() {
            let s = &self.state.services[i];
            let analysing = self.in_outbox(i, |a| matches!(a, Action::Analyse { .. }));
            match s.phase {
                ServicePhase::Progressing if !self.applying(i) && !analysing => {
                    let Some(StepKind::Weight(_, hold)) = self.plan.step(i, s.step) else {
                        continue;
                    };
                    let held = s
                        .step_since
                        .is_some_and(|since| self.now >= since + hold.as_millis() as u64);
                    let analysed = !self.has_analysis(i) || s.passed_in_step > 0;
                    if held && analysed {
                        let next = s.step + 1;
                        self.enter_step(i, next);
                    } else if self.analysis_due(i) {
                        self.queue(Action::Analyse {
                            service: s.name.clone(),
                        });
                    }
                }
                ServicePhase::AwaitingApproval if !analysing && self.analysis_due(i) => {
                    self.queue(Action::Analyse {
                        service: s.name.clone(),
                    });
                }
                _ => {}
            }
        }
    }

    /// A gradual rollback lowers each service's weight by its step, every interval.
    fn tick_rollback(&mut self) {
        let OnFailure::Rollback(Rollback::Gradual { step, .. }) = self.plan.on_failure else {
            return;
        };
        for i in self.indices(ServicePhase::RollingBack) {
            let s = &self.state.services[i];
            let due = s.next_rollback.is_some_and(|t| self.now >= t);
            if due && !self.in_outbox(i, |_| true) {
                let weight = s.weight.saturating_sub(step);
                let service = s.name.clone();
                self.state.services[i].next_rollback = None;
                self.queue(Action::SetTraffic { service, weight });
            }
        }
    }

    fn performed(&mut self, action: Action, outcome: Outcome) {
        // Only the outbox's first action is ever performed; anything else is a stale
        // report (e.g. from before a crash) and changes nothing.
        if self.state.outbox.first() != Some(&action) {
            return;
        }
        self.state.outbox.remove(0);
        let i = action.service().and_then(|name| self.index(name));
        match (action, i, outcome) {
            (Action::Notify { .. }, _, Outcome::Failed { error }) => {
                self.log(i, format!("notification failed: {error}"));
            }
            (Action::Notify { .. }, _, _) => {}
            (Action::Gate { service: None, .. }, _, Outcome::Failed { error }) => {
                self.roll_back(format!("pre-release gate failed: {error}"));
            }
            (Action::Gate { service: None, .. }, _, _) => {
                self.log(None, "pre-release gates passed".into());
                self.release_services();
            }
            (_, None, _) => {}
            (_, Some(i), Outcome::Failed { error })
                if self.state.services[i].phase == ServicePhase::RollingBack =>
            {
                self.state.services[i].phase = ServicePhase::Failed;
                self.state.services[i].next_rollback = None;
                self.log(Some(i), format!("rollback failed: {error}"));
            }
            (Action::Gate { step, .. }, Some(i), outcome) => self.gated(i, step, outcome),
            (Action::PreCheck { .. }, Some(i), Outcome::Failed { error }) => {
                self.roll_back_from(i, format!("pre-checks failed: {error}"));
            }
            (Action::SetWeight { weight, .. }, Some(i), Outcome::Failed { error }) => {
                self.roll_back_from(i, format!("setting weight {weight} failed: {error}"));
            }
            (Action::PreCheck { .. }, Some(i), outcome) => {
                if self.state.services[i].phase == ServicePhase::PreChecks {
                    if let Outcome::Checked { flags } = outcome {
                        self.record(flags);
                    }
                    self.log(Some(i), "pre-checks passed".into());
                    let first = if self.state.full_promotion {
                        self.plan.steps_of(i).len()
                    } else {
                        0
                    };
                    self.enter_step(i, first);
                }
            }
            (Action::SetWeight { weight, .. }, Some(i), _) => self.weight_applied(i, weight),
            (Action::Analyse { .. }, Some(i), Outcome::Measured { measurements }) => {
                self.analysed(i, measurements)
            }
            (Action::Analyse { .. }, Some(_), _) => {}
            (Action::Rollback { .. }, Some(i), _) => self.rolled_back(i),
            (Action::KillFlags { .. }, Some(i), _) => {
                if !self.plan.services[i].flags.is_empty() {
                    let traffic = self.state.services[i].weight;
                    self.log_weights(i, "flags killed".into(), traffic, 0);
                }
            }
            (Action::SetTraffic { weight, .. }, Some(i), _) => {
                if self.state.services[i].phase != ServicePhase::RollingBack {
                    return;
                }
                self.state.services[i].weight = weight;
                if weight == 0 {
                    self.rolled_back(i);
                } else {
                    let interval = match self.plan.on_failure {
                        OnFailure::Rollback(Rollback::Gradual { interval, .. }) => interval,
                        _ => std::time::Duration::ZERO,
                    };
                    self.state.services[i].next_rollback =
                        Some(self.now + interval.as_millis() as u64);
                    self.log_weights(i, format!("rolling back: weight {weight}"), weight, 0);
                }
            }
        }
    }

    fn rolled_back(&mut self, i: usize) {
        let s = &mut self.state.services[i];
        if s.phase == ServicePhase::RollingBack {
            s.phase = ServicePhase::RolledBack;
            s.weight = 0;
            s.next_rollback = None;
            let message = if self.plan.services[i].flags.is_empty() {
                "rolled back: weight 0"
            } else {
                "rolled back: weight 0, flags killed"
            };
            self.log_weights(i, message.into(), 0, 0);
        }
    }

    /// Keeps what each flag served before the release first touched it: a record
    /// already made (in this environment) wins.
    fn record(&mut self, flags: Vec<PriorServe>) {
        for prior in flags {
            let known = self.state.flags_before.iter().any(|p| {
                p.environment == prior.environment && p.flag == prior.flag && p.rule == prior.rule
            });
            if !known {
                self.state.flags_before.push(prior);
            }
        }
    }

    fn gated(&mut self, i: usize, step: Option<usize>, outcome: Outcome) {
        let s = &self.state.services[i];
        if s.phase != ServicePhase::AwaitingGate || Some(s.step) != step {
            return;
        }
        let number = s.step + 1;
        match outcome {
            Outcome::Failed { error } => {
                self.pause(i, format!("step {number}: gate failed: {error}"));
            }
            _ => {
                self.log(Some(i), format!("step {number}: gates passed"));
                self.state.services[i].gate_passed = true;
                self.begin_step(i);
            }
        }
    }

    fn weight_applied(&mut self, i: usize, weight: u32) {
        let now = self.now;
        let interval = self.interval();
        let s = &mut self.state.services[i];
        match s.phase {
            ServicePhase::Progressing | ServicePhase::Paused | ServicePhase::AwaitingApproval => {
                s.weight = weight;
                s.step_since = Some(now);
                s.weight_since = Some(now);
                s.passed_in_step = 0;
                s.next_analysis = Some(now + interval);
                let message = format!("step {}: weight {weight}", s.step + 1);
                self.log_weights(i, message.clone(), weight, weight);
                self.notify(NotifyEvent::Step, Some(i), message);
            }
            ServicePhase::Promoting if weight == 100 => {
                s.weight = weight;
                s.phase = ServicePhase::Succeeded;
                s.next_analysis = None;
                self.log_weights(i, "promoted: weight 100".into(), 100, 100);
            }
            _ => {}
        }
    }

    fn analysed(&mut self, i: usize, measurements: Vec<Measurement>) {
        let interval = self.interval();
        let s = &mut self.state.services[i];
        s.next_analysis = Some(self.now + interval);
        s.last_analysis = measurements.clone();
        if !matches!(
            s.phase,
            ServicePhase::Progressing | ServicePhase::AwaitingApproval
        ) {
            self.log_measured(
                i,
                "analysis (ignored: no longer progressing)".into(),
                measurements,
            );
            return;
        }
        let invalid: Vec<String> = measurements
            .iter()
            .filter(|m| m.verdict == Verdict::Invalid)
            .map(Measurement::explain)
            .collect();
        if !invalid.is_empty() {
            // A broken measurement says nothing about the release: it is not counted
            // against the failure limit; `on_invalid` (default pause) decides.
            let why = invalid.join("; ");
            self.log_measured(i, format!("analysis invalid: {why}"), measurements);
            match self.plan.analysis.on_invalid {
                OnFailure::Rollback(_) => {
                    self.roll_back_from(i, format!("invalid analysis: {why}"))
                }
                OnFailure::Pause => self.pause(i, format!("paused after invalid analysis: {why}")),
            }
            return;
        }
        let s = &mut self.state.services[i];
        let failed: Vec<String> = measurements
            .iter()
            .filter(|m| m.verdict == Verdict::Fail)
            .map(Measurement::explain)
            .collect();
        if failed.is_empty() {
            s.passed_in_step += 1;
            self.log_measured(i, "analysis passed".into(), measurements);
            return;
        }
        s.failures += 1;
        let failures = s.failures;
        let limit = self.plan.analysis.failure_limit;
        let why = failed.join("; ");
        // A blue-green service switches back on its first failed analysis, whatever
        // `on_failure` and `failure_limit` say: all traffic is on the new version (or,
        // in the preview, about to be) and the whole previous version is still there.
        if matches!(self.plan.strategy_of(i), Strategy::BlueGreen(_)) {
            self.log_measured(i, format!("analysis failed: {why}"), measurements);
            return self.roll_back_from(
                i,
                format!("blue-green switches back on a failed analysis: {why}"),
            );
        }
        self.log_measured(
            i,
            format!("analysis failed ({failures} so far, {limit} tolerated): {why}"),
            measurements,
        );
        if failures > limit {
            match self.plan.on_failure {
                OnFailure::Rollback(_) => self.roll_back_from(
                    i,
                    format!("{failures} failed analyses (limit {limit}): {why}"),
                ),
                OnFailure::Pause => self.pause(i, format!("paused after failed analysis: {why}")),
            }
        }
    }

    /// Moves service `i` to step `index` (its gates first), or promotes it past the
    /// last step.
    fn enter_step(&mut self, i: usize, index: usize) {
        if self.state.full_promotion || self.plan.step(i, index).is_none() {
            return self.promote(i);
        }
        let s = &mut self.state.services[i];
        s.step = index;
        s.step_since = None;
        s.passed_in_step = 0;
        s.gate_passed = self.plan.steps_of(i)[index].gates.is_empty();
        if s.gate_passed {
            return self.begin_step(i);
        }
        s.phase = ServicePhase::AwaitingGate;
        let service = Some(s.name.clone());
        self.queue(Action::Gate {
            service,
            step: Some(index),
        });
    }

    /// Starts the current step of service `i` once its gates have passed.
    fn begin_step(&mut self, i: usize) {
        let index = self.state.services[i].step;
        match self.plan.step(i, index) {
            None => self.promote(i),
            Some(StepKind::Approve) => {
                self.state.services[i].phase = ServicePhase::AwaitingApproval;
                let message = format!("step {}: awaiting approval", index + 1);
                self.log(Some(i), message.clone());
                self.notify(NotifyEvent::AwaitingApproval, Some(i), message);
            }
            Some(StepKind::Weight(weight, _)) => {
                let s = &mut self.state.services[i];
                s.phase = ServicePhase::Progressing;
                let service = s.name.clone();
                self.queue(Action::SetWeight { service, weight });
            }
        }
    }

    /// Resumes service `i` at its current step: re-runs the step's gates if they had
    /// not passed, re-applies its weight if it was never confirmed, else holds it again.
    fn resume(&mut self, i: usize) {
        let now = self.now;
        let interval = self.interval();
        let index = self.state.services[i].step;
        let applying = self.applying(i);
        let s = &mut self.state.services[i];
        if !s.gate_passed {
            return self.enter_step(i, index);
        }
        match self.plan.step(i, index) {
            Some(StepKind::Approve) => s.phase = ServicePhase::AwaitingApproval,
            _ if s.step_since.is_none() && !applying => self.begin_step(i),
            _ => {
                s.phase = ServicePhase::Progressing;
                if s.step_since.is_some() {
                    s.step_since = Some(now);
                }
                s.passed_in_step = 0;
                s.next_analysis = Some(now + interval);
            }
        }
    }

    fn promote(&mut self, i: usize) {
        let s = &mut self.state.services[i];
        s.phase = ServicePhase::Promoting;
        s.step = self.plan.steps_of(i).len();
        s.next_analysis = None;
        let service = s.name.clone();
        // A step's weight or gate still queued is overtaken by 100.
        self.drop_queued(i, |a| {
            matches!(
                a,
                Action::Analyse { .. } | Action::SetWeight { .. } | Action::Gate { .. }
            )
        });
        self.log(Some(i), "promoting to 100".into());
        self.queue(Action::SetWeight {
            service,
            weight: 100,
        });
    }

    fn pause(&mut self, i: usize, message: String) {
        self.state.services[i].phase = ServicePhase::Paused;
        self.state.services[i].next_analysis = None;
        self.drop_queued(i, |a| matches!(a, Action::Analyse { .. }));
        self.log(Some(i), message.clone());
        self.notify(NotifyEvent::Paused, Some(i), message);
    }

    /// Rolls back after service `i` failed: the whole release, or only `i`'s region
    /// when the plan says so (`region_failure: region`).
    fn roll_back_from(&mut self, i: usize, reason: String) {
        let name = self.state.services[i].name.clone();
        let reason = format!("{name}: {reason}");
        let region_only = self
            .plan
            .regions
            .as_ref()
            .is_some_and(|r| r.on_failure == RegionFailure::Region);
        match &self.plan.services[i].region {
            Some(region) if region_only && self.state.phase == Phase::Running => {
                let region = region.clone();
                self.roll_back_region(&region, reason);
            }
            _ => self.roll_back(reason),
        }
    }

    /// Rolls back the services of `region` only; the release goes on elsewhere.
    fn roll_back_region(&mut self, region: &str, reason: String) {
        let members: Vec<usize> = (0..self.plan.services.len())
            .filter(|&j| self.plan.services[j].region.as_deref() == Some(region))
            .collect();
        if self.state.reason.is_none() {
            self.state.reason = Some(format!("region `{region}` rolled back: {reason}"));
        }
        let message = format!("rolling back region `{region}`: {reason}");
        self.log(None, message.clone());
        self.notify(NotifyEvent::RolledBack, None, message);
        let names: Vec<String> = members
            .iter()
            .map(|&j| self.state.services[j].name.clone())
            .collect();
        self.state
            .outbox
            .retain(|a| a.service().is_none_or(|s| !names.iter().any(|n| n == s)));
        self.roll_back_services_where(|j| members.contains(&j));
    }

    /// Rolls back every started service, the latest dependency group first.
    fn roll_back(&mut self, reason: String) {
        if self.state.phase != Phase::Running {
            return;
        }
        self.state.phase = Phase::RollingBack;
        self.state.awaiting_environment = false;
        self.state.reason = Some(reason.clone());
        self.log(None, format!("rolling back: {reason}"));
        // Work queued for progress is obsolete; a half-performed weight change is
        // overwritten by the rollback's weights. A region already rolling back keeps
        // its rollback.
        let rolling_back: Vec<String> = self
            .state
            .services
            .iter()
            .filter(|s| s.phase == ServicePhase::RollingBack)
            .map(|s| s.name.clone())
            .collect();
        self.state.outbox.retain(|a| {
            a.service()
                .is_some_and(|n| rolling_back.iter().any(|r| r == n))
        });
        self.roll_back_services();
    }

    /// Queues the rollback of every started service, the latest dependency group
    /// first.
    fn roll_back_services(&mut self) {
        self.roll_back_services_where(|_| true);
    }

    /// Queues the rollback of the started services `chosen` picks, the latest
    /// dependency group first. A blue-green service switches back at once whatever
    /// the plan's rollback.
    fn roll_back_services_where(&mut self, chosen: impl Fn(usize) -> bool) {
        let groups = dag::groups(&self.plan.services).unwrap_or_default();
        for group in groups.iter().rev() {
            for &i in group.iter().filter(|&&i| chosen(i)) {
                let gradual = match (self.plan.on_failure, self.plan.strategy_of(i)) {
                    (_, Strategy::BlueGreen(_)) => None,
                    (OnFailure::Rollback(Rollback::Gradual { step, .. }), _) => Some(step),
                    _ => None,
                };
                let s = &mut self.state.services[i];
                match s.phase {
                    // Already out of the release.
                    phase if phase.is_undone() => {}
                    // Nothing was applied before the pre-checks passed.
                    ServicePhase::Pending
                    | ServicePhase::WaitingForDependencies
                    | ServicePhase::PreChecks => {
                        s.phase = ServicePhase::Cancelled;
                    }
                    _ => {
                        s.phase = ServicePhase::RollingBack;
                        s.next_analysis = None;
                        let service = s.name.clone();
                        match gradual {
                            None => self.queue(Action::Rollback { service }),
                            Some(step) => {
                                let weight = s.weight.saturating_sub(step);
                                self.queue(Action::KillFlags {
                                    service: service.clone(),
                                });
                                self.queue(Action::SetTraffic { service, weight });
                            }
                        }
                    }
                }
            }
        }
    }

    /// Starts services whose dependencies are promoted and ends a finished release.
    fn settle(&mut self) {
        match self.state.phase {
            Phase::Running if !self.state.awaiting_environment => {
                // A service waiting for one that was rolled back never starts.
                for i in self.indices(ServicePhase::WaitingForDependencies) {
                    let gone = self.plan.services[i]
                        .depends_on
                        .iter()
                        .find(|d| self.state.service(d).is_some_and(|s| s.phase.is_undone()));
                    if let Some(gone) = gone.cloned() {
                        self.state.services[i].phase = ServicePhase::Cancelled;
                        self.log(Some(i), format!("cancelled: `{gone}` was rolled back"));
                    }
                }
                for i in self.indices(ServicePhase::WaitingForDependencies) {
                    let deps = &self.plan.services[i].depends_on;
                    let ready = deps.iter().all(|d| {
                        self.state
                            .service(d)
                            .is_some_and(|s| s.phase == ServicePhase::Succeeded)
                    });
                    if ready {
                        self.state.services[i].phase = ServicePhase::PreChecks;
                        let service = self.state.services[i].name.clone();
                        self.queue(Action::PreCheck { service });
                    }
                }
                let done = self
                    .state
                    .services
                    .iter()
                    .all(|s| s.phase == ServicePhase::Succeeded);
                if !done {
                    return self.settle_partial();
                }
                let env = self.state.environment(self.plan).to_owned();
                match self.plan.environments.get(self.state.environment + 1) {
                    Some(next) => {
                        let message =
                            format!("promoted in `{env}`; awaiting approval for `{next}`");
                        self.state.awaiting_environment = true;
                        self.log(None, message.clone());
                        self.notify(NotifyEvent::Promoted, None, message.clone());
                        self.notify(NotifyEvent::AwaitingApproval, None, message);
                    }
                    None => {
                        self.finish(Phase::Succeeded, format!("release promoted in `{env}`"));
                        let message = self.state.timeline.last().map(|e| e.message.clone());
                        self.notify(NotifyEvent::Promoted, None, message.unwrap_or_default());
                    }
                }
            }
            Phase::RollingBack => {
                let done = self
                    .state
                    .services
                    .iter()
                    .all(|s| s.phase.is_over() && s.phase != ServicePhase::Succeeded);
                if done {
                    self.finish_rollback(String::new());
                }
            }
            _ => {}
        }
    }

    /// Ends a release of which some services are over without being promoted (a
    /// region rolled back alone) once every service is over: rolled back, or failed
    /// if a rollback failed; the promoted regions stay promoted.
    fn settle_partial(&mut self) {
        if !self.state.services.iter().all(|s| s.phase.is_over()) {
            return;
        }
        let promoted: Vec<&str> = self
            .state
            .services
            .iter()
            .filter(|s| s.phase == ServicePhase::Succeeded)
            .map(|s| s.name.as_str())
            .collect();
        let kept = if promoted.is_empty() {
            String::new()
        } else {
            format!("; promoted and kept: {}", promoted.join(", "))
        };
        self.finish_rollback(kept);
    }

    /// Ends a rolled-back release: failed if a service's rollback failed; `kept` ends
    /// the last entry (the services that stay promoted).
    fn finish_rollback(&mut self, kept: String) {
        let failed = self
            .state
            .services
            .iter()
            .any(|s| s.phase == ServicePhase::Failed);
        let reason = self.state.reason.clone().unwrap_or_default();
        if failed {
            self.finish(Phase::Failed, format!("rollback failed{kept}"));
        } else {
            self.finish(Phase::RolledBack, format!("release rolled back{kept}"));
        }
        self.notify(NotifyEvent::RolledBack, None, reason);
    }

    fn finish(&mut self, phase: Phase, message: String) {
        if phase == Phase::Succeeded {
            self.state.promoted_at = Some(self.now);
        }
        self.state.phase = phase;
        self.state.finished_at = Some(self.now);
        self.log(None, message);
    }

    /// Queues a notification if some target wants `event`.
    fn notify(&mut self, event: NotifyEvent, i: Option<usize>, message: String) {
        let wanted = self
            .plan
            .notify
            .iter()
            .any(|n| n.events.is_empty() || n.events.contains(&event));
        if wanted {
            let service = i.map(|i| self.state.services[i].name.clone());
            self.queue(Action::Notify {
                event,
                service,
                message,
            });
        }
    }

    fn analysis_due(&self, i: usize) -> bool {
        self.has_analysis(i)
            && self.state.services[i]
                .next_analysis
                .is_some_and(|t| self.now >= t)
    }

    fn has_analysis(&self, i: usize) -> bool {
        has_analysis(self.plan, i)
    }

    fn applying(&self, i: usize) -> bool {
        self.in_outbox(i, |a| matches!(a, Action::SetWeight { .. }))
    }

    fn in_outbox(&self, i: usize, what: impl Fn(&Action) -> bool) -> bool {
        let name = &self.state.services[i].name;
        self.state
            .outbox
            .iter()
            .any(|a| a.service() == Some(name.as_str()) && what(a))
    }

    fn drop_queued(&mut self, i: usize, what: impl Fn(&Action) -> bool) {
        // The driver performs one action at a time and handles events in between, so
        // nothing queued is in flight here.
        let name = self.state.services[i].name.clone();
        self.state
            .outbox
            .retain(|a| a.service() != Some(name.as_str()) || !what(a));
    }

    fn queue(&mut self, action: Action) {
        self.state.outbox.push(action.clone());
        self.queued.push(action);
    }

    fn interval(&self) -> Millis {
        self.plan.analysis.interval.as_millis() as u64
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.state.services.iter().position(|s| s.name == name)
    }

    fn indices(&self, phase: ServicePhase) -> Vec<usize> {
        (0..self.state.services.len())
            .filter(|&i| self.state.services[i].phase == phase)
            .collect()
    }

    fn log(&mut self, i: Option<usize>, message: String) {
        self.log_measured_opt(i, message, Vec::new());
    }

    fn log_measured(&mut self, i: usize, message: String, measurements: Vec<Measurement>) {
        self.log_measured_opt(Some(i), message, measurements);
    }

    fn log_measured_opt(
        &mut self,
        i: Option<usize>,
        message: String,
        measurements: Vec<Measurement>,
    ) {
        self.state.timeline.push(Entry {
            at: self.now,
            service: i.map(|i| self.state.services[i].name.clone()),
            message,
            measurements,
            weights: None,
        });
    }

    /// Logs a decision that moved service `i`'s shares to `traffic` and `flags`.
    fn log_weights(&mut self, i: usize, message: String, traffic: u32, flags: u32) {
        self.log(Some(i), message);
        if let Some(entry) = self.state.timeline.last_mut() {
            entry.weights = Some(Weights { traffic, flags });
        }
    }
}

#[cfg(test)]
mod tests;
