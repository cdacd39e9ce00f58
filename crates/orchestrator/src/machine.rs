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
//! failed. Service: pending → waiting for dependencies → pre-checks → progressing (step
//! i) ⇄ paused / awaiting approval → promoting → succeeded; or rolling back → rolled
//! back / failed.

use serde::{Deserialize, Serialize};

use crate::analysis::{Measurement, Verdict};
use crate::dag;
use crate::plan::{OnFailure, Plan, StepKind};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// Where a whole release is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Stored, not started.
    Pending,
    /// Services are being released.
    Running,
    /// A failure or an abort: every started service is being rolled back.
    RollingBack,
    /// Every service promoted.
    Succeeded,
    /// Every started service is back at weight 0 with its flags killed.
    RolledBack,
    /// A rollback action itself failed; a person must look.
    Failed,
}

impl Phase {
    /// Whether the release is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::RolledBack | Phase::Failed)
    }
}

/// Where one service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServicePhase {
    /// The release has not started.
    Pending,
    /// Some of its dependencies are not promoted yet.
    WaitingForDependencies,
    /// Its health checks run before the first step.
    PreChecks,
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
    /// When the next analysis is due.
    pub next_analysis: Option<Millis>,
    /// Failed analyses so far (reset when a person resumes).
    pub failures: u32,
    /// Passed analyses since the current step's weight was confirmed.
    pub passed_in_step: u32,
    /// The latest analysis.
    pub last_analysis: Vec<Measurement>,
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
    /// Canary weight 0, then kill the service's flags.
    Rollback {
        /// The service.
        service: String,
    },
}

impl Action {
    /// The service the action concerns.
    pub fn service(&self) -> &str {
        match self {
            Action::PreCheck { service }
            | Action::SetWeight { service, .. }
            | Action::Analyse { service }
            | Action::Rollback { service } => service,
        }
    }
}

/// How an action went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Done (weights set and confirmed, checks passed, rollback complete).
    Done,
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
    /// A ramped flag was killed by someone other than this release.
    FlagKilled {
        /// The flag.
        flag: String,
        /// The service ramping it.
        service: String,
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
                .map(|s| ServiceState {
                    name: s.name.clone(),
                    phase: ServicePhase::Pending,
                    step: 0,
                    weight: 0,
                    step_since: None,
                    next_analysis: None,
                    failures: 0,
                    passed_in_step: 0,
                    last_analysis: Vec::new(),
                })
                .collect(),
            outbox: Vec::new(),
            full_promotion: false,
            reason: None,
            started_at: None,
            finished_at: None,
            timeline: Vec::new(),
        }
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceState> {
        self.services.iter().find(|s| s.name == name)
    }

    /// When the machine next needs a `Tick` (a hold ending or an analysis due), if ever.
    pub fn next_wakeup(&self, plan: &Plan) -> Option<Millis> {
        if self.phase != Phase::Running {
            return None;
        }
        let analysed = |i: usize| !has_analysis(plan, i) || self.services[i].passed_in_step > 0;
        self.services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.phase {
                ServicePhase::Progressing | ServicePhase::AwaitingApproval => {
                    // A hold ends a step only once an analysis in it has passed.
                    let hold_end = match (plan.step(s.step), s.step_since) {
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
            .min()
    }
}

/// Whether a person's command applies now; the daemon answers 409 with the reason when
/// it does not. Internal events always apply.
pub fn check(state: &State, event: &Event) -> Result<(), Refusal> {
    let refuse = |m: &str| Err(Refusal(m.to_owned()));
    let any = |phases: &[ServicePhase]| state.services.iter().any(|s| phases.contains(&s.phase));
    if state.phase.is_terminal() {
        return refuse("the release is over");
    }
    match event {
        Event::Start if state.phase != Phase::Pending => refuse("the release has started"),
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
    if !m.state.phase.is_terminal() && check(state, &event).is_ok() {
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
            .any(|m| m.applies_to(&service.name))
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
                self.log(
                    None,
                    format!("release started in `{}`", self.plan.environment),
                );
                for i in 0..self.state.services.len() {
                    self.state.services[i].phase = ServicePhase::WaitingForDependencies;
                }
            }
            Event::Tick => self.tick(),
            Event::Performed { action, outcome } => self.performed(action, outcome),
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
                for i in self.indices(ServicePhase::Progressing) {
                    self.pause(i, format!("paused by {by}"));
                }
                for i in self.indices(ServicePhase::AwaitingApproval) {
                    self.pause(i, format!("paused by {by}"));
                }
            }
            Event::Resume { by } => {
                for i in self.indices(ServicePhase::Paused) {
                    self.log(Some(i), format!("resumed by {by}"));
                    let s = &mut self.state.services[i];
                    s.failures = 0;
                    let step = s.step;
                    self.resume_step(i, step);
                }
            }
            Event::Abort { by, reason } => {
                self.roll_back(format!("aborted by {by}: {reason}"));
            }
            Event::PromoteFull { by } => {
                self.state.full_promotion = true;
                self.log(None, format!("full promotion requested by {by}"));
                for phase in [
                    ServicePhase::Progressing,
                    ServicePhase::AwaitingApproval,
                    ServicePhase::Paused,
                ] {
                    for i in self.indices(phase) {
                        self.promote(i);
                    }
                }
            }
            Event::FlagKilled { flag, service } => {
                if self.state.phase == Phase::Running {
                    let i = self.index(&service);
                    self.roll_back_from(
                        i,
                        format!("flag `{flag}` was killed outside this release"),
                    );
                }
            }
        }
    }

    fn tick(&mut self) {
        if self.state.phase != Phase::Running {
            return;
        }
        for i in 0..self.state.services.len() {
            let s = &self.state.services[i];
            let analysing = self.in_outbox(i, |a| matches!(a, Action::Analyse { .. }));
            match s.phase {
                ServicePhase::Progressing if !self.applying(i) && !analysing => {
                    let Some(StepKind::Weight(_, hold)) = self.plan.step(s.step) else {
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

    fn performed(&mut self, action: Action, outcome: Outcome) {
        // Only the outbox's first action is ever performed; anything else is a stale
        // report (e.g. from before a crash) and changes nothing.
        if self.state.outbox.first() != Some(&action) {
            return;
        }
        self.state.outbox.remove(0);
        let i = self.index(action.service());
        match (action, outcome) {
            (_, Outcome::Failed { error })
                if self.state.services[i].phase == ServicePhase::RollingBack =>
            {
                self.state.services[i].phase = ServicePhase::Failed;
                self.log(Some(i), format!("rollback failed: {error}"));
            }
            (Action::PreCheck { .. }, Outcome::Failed { error }) => {
                self.roll_back_from(i, format!("pre-checks failed: {error}"));
            }
            (Action::SetWeight { weight, .. }, Outcome::Failed { error }) => {
                self.roll_back_from(i, format!("setting weight {weight} failed: {error}"));
            }
            (Action::PreCheck { .. }, _) => {
                if self.state.services[i].phase == ServicePhase::PreChecks {
                    self.log(Some(i), "pre-checks passed".into());
                    let first = if self.state.full_promotion {
                        self.plan.steps.len()
                    } else {
                        0
                    };
                    self.enter_step(i, first);
                }
            }
            (Action::SetWeight { weight, .. }, _) => self.weight_applied(i, weight),
            (Action::Analyse { .. }, Outcome::Measured { measurements }) => {
                self.analysed(i, measurements)
            }
            (Action::Analyse { .. }, _) => {}
            (Action::Rollback { .. }, _) => {
                let s = &mut self.state.services[i];
                if s.phase == ServicePhase::RollingBack {
                    s.phase = ServicePhase::RolledBack;
                    s.weight = 0;
                    self.log(Some(i), "rolled back: weight 0, flags killed".into());
                }
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
                s.passed_in_step = 0;
                s.next_analysis = Some(now + interval);
                let step = s.step;
                self.log(Some(i), format!("step {}: weight {weight}", step + 1));
            }
            ServicePhase::Promoting if weight == 100 => {
                s.weight = weight;
                s.phase = ServicePhase::Succeeded;
                s.next_analysis = None;
                self.log(Some(i), "promoted: weight 100".into());
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
        self.log_measured(
            i,
            format!(
                "analysis failed ({failures} of {} allowed): {why}",
                limit + 1
            ),
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

    /// Moves service `i` to step `index`, or promotes it past the last step.
    fn enter_step(&mut self, i: usize, index: usize) {
        if self.state.full_promotion {
            return self.promote(i);
        }
        match self.plan.step(index) {
            None => self.promote(i),
            Some(StepKind::Approve) => {
                let s = &mut self.state.services[i];
                s.phase = ServicePhase::AwaitingApproval;
                s.step = index;
                self.log(Some(i), format!("step {}: awaiting approval", index + 1));
            }
            Some(StepKind::Weight(weight, _)) => {
                let s = &mut self.state.services[i];
                s.phase = ServicePhase::Progressing;
                s.step = index;
                s.step_since = None;
                s.passed_in_step = 0;
                let service = s.name.clone();
                self.queue(Action::SetWeight { service, weight });
            }
        }
    }

    /// Resumes service `i` at its current step without re-applying its weight.
    fn resume_step(&mut self, i: usize, index: usize) {
        let now = self.now;
        let interval = self.interval();
        let s = &mut self.state.services[i];
        match self.plan.step(index) {
            Some(StepKind::Approve) => s.phase = ServicePhase::AwaitingApproval,
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
        s.step = self.plan.steps.len();
        s.next_analysis = None;
        let service = s.name.clone();
        // A step's weight still queued is overtaken by 100.
        self.drop_queued(i, |a| {
            matches!(a, Action::Analyse { .. } | Action::SetWeight { .. })
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
        self.log(Some(i), message);
    }

    fn roll_back_from(&mut self, i: usize, reason: String) {
        let name = self.state.services[i].name.clone();
        self.roll_back(format!("{name}: {reason}"));
    }

    /// Rolls back every started service, the latest dependency group first.
    fn roll_back(&mut self, reason: String) {
        if self.state.phase != Phase::Running {
            return;
        }
        self.state.phase = Phase::RollingBack;
        self.state.reason = Some(reason.clone());
        self.log(None, format!("rolling back: {reason}"));
        // Work queued for progress is obsolete; a half-performed weight change is
        // overwritten by the rollback's weight 0.
        self.state.outbox.clear();
        let groups = dag::groups(&self.plan.services).unwrap_or_default();
        for group in groups.iter().rev() {
            for &i in group {
                let s = &mut self.state.services[i];
                match s.phase {
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
                        self.queue(Action::Rollback { service });
                    }
                }
            }
        }
    }

    /// Starts services whose dependencies are promoted and ends a finished release.
    fn settle(&mut self) {
        match self.state.phase {
            Phase::Running => {
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
                if done {
                    self.finish(Phase::Succeeded, "release promoted".into());
                }
            }
            Phase::RollingBack => {
                let done = self.state.services.iter().all(|s| {
                    matches!(
                        s.phase,
                        ServicePhase::RolledBack | ServicePhase::Cancelled | ServicePhase::Failed
                    )
                });
                if done {
                    let failed = self
                        .state
                        .services
                        .iter()
                        .any(|s| s.phase == ServicePhase::Failed);
                    if failed {
                        self.finish(Phase::Failed, "rollback failed".into());
                    } else {
                        self.finish(Phase::RolledBack, "release rolled back".into());
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, phase: Phase, message: String) {
        self.state.phase = phase;
        self.state.finished_at = Some(self.now);
        self.log(None, message);
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
            .any(|a| a.service() == name && what(a))
    }

    fn drop_queued(&mut self, i: usize, what: impl Fn(&Action) -> bool) {
        // The driver performs one action at a time and handles events in between, so
        // nothing queued is in flight here.
        let name = self.state.services[i].name.clone();
        self.state
            .outbox
            .retain(|a| a.service() != name || !what(a));
    }

    fn queue(&mut self, action: Action) {
        self.state.outbox.push(action.clone());
        self.queued.push(action);
    }

    fn interval(&self) -> Millis {
        self.plan.analysis.interval.as_millis() as u64
    }

    fn index(&self, name: &str) -> usize {
        self.state
            .services
            .iter()
            .position(|s| s.name == name)
            .unwrap_or(0)
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
        });
    }
}

#[cfg(test)]
mod tests;
