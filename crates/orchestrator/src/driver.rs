//! The driver: runs releases by performing the machine's actions through the router,
//! flag and metric traits and feeding the outcomes back as events.
//!
//! One task per running release. It performs the outbox's first action, feeds the
//! outcome to [`machine::step`], stores the new state, and only then moves on — so a
//! crash at any point resumes from a stored state whose outbox says what is left to do
//! (re-performing an action is harmless: they are absolute and idempotent). Between
//! actions it takes people's commands and, every poll interval, ticks the machine and
//! looks for ramped flags killed by someone else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::analysis::health::Health;
use crate::analysis::prometheus::Prometheus;
use crate::analysis::{error_chain, judge, judge_health, MetricSource};
use crate::flags::FlagControl;
use crate::machine::{self, Action, Event, Millis, Outcome, Phase, Refusal, ServicePhase, State};
use crate::plan::{Plan, Service};
use crate::routers::{self, TrafficRouter};
use crate::store::{Release, StateStore, StoreError};

/// What the driver works with.
pub struct Config {
    /// Where releases are stored.
    pub store: Arc<dyn StateStore>,
    /// The flag server.
    pub flags: Arc<dyn FlagControl>,
    /// For metric queries and health checks.
    pub http: reqwest::Client,
    /// How often a running release is ticked and its flags are looked at.
    pub poll: Duration,
    /// Attempts for a router or flag change before it counts as failed.
    pub attempts: u32,
}

/// Runs releases; cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    shared: Arc<Shared>,
    releases: Arc<Mutex<HashMap<String, Handle>>>,
    tasks: Arc<std::sync::Mutex<JoinSet<()>>>,
}

struct Shared {
    config: Config,
    clock: Clock,
}

struct Handle {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<Release>,
}

struct Command {
    event: Event,
    reply: oneshot::Sender<Result<Release, CommandError>>,
}

/// Why a plan was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A release of that name is running with a different plan.
    #[error("release `{0}` is running with a different plan; abort it or wait for it to finish")]
    Running(String),
    /// It could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No release has that name.
    #[error("no release named `{0}`")]
    NotFound(String),
    /// The release is not in a state where the command applies.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Wall-clock milliseconds that follow tokio's clock, so tests with paused time move
/// the machine's `now` too.
struct Clock {
    wall: Millis,
    start: tokio::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis);
        Clock {
            wall,
            start: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> Millis {
        self.wall + self.start.elapsed().as_millis() as Millis
    }

    fn instant(&self, at: Millis) -> tokio::time::Instant {
        self.start + Duration::from_millis(at.saturating_sub(self.wall))
    }
}

impl Orchestrator {
    /// Loads the stored releases and resumes every unfinished one.
    pub async fn open(config: Config) -> Result<Orchestrator, StoreError> {
        let stored = config.store.releases().await?;
        let orchestrator = Orchestrator {
            shared: Arc::new(Shared {
                config,
                clock: Clock::new(),
            }),
            releases: Arc::default(),
            tasks: Arc::default(),
        };
        let mut releases = orchestrator.releases.lock().await;
        for release in stored {
            if !release.state.phase.is_terminal() {
                info!(
                    release = release.name(),
                    revision = release.revision,
                    "resuming release"
                );
            }
            let name = release.name().to_owned();
            let handle = orchestrator.spawn(release);
            releases.insert(name, handle);
        }
        drop(releases);
        Ok(orchestrator)
    }

    /// Starts a release. Applying the plan of a release that is already running is a
    /// no-op (so a CI job may retry); `Ok((release, created))`.
    pub async fn apply(&self, plan: Plan) -> Result<(Release, bool), ApplyError> {
        let mut releases = self.releases.lock().await;
        if let Some(handle) = releases.get(&plan.name) {
            let current = handle.state.borrow().clone();
            if !current.state.phase.is_terminal() {
                if current.plan == plan {
                    return Ok((current, false));
                }
                return Err(ApplyError::Running(plan.name));
            }
            self.shared.config.store.archive(&plan.name).await?;
        }
        let now = self.shared.clock.now();
        let pending = State::new(&plan);
        let (state, _) = machine::step(&plan, &pending, Event::Start, now);
        let release = Release {
            plan,
            state,
            created_at: now,
            revision: 1,
        };
        self.shared.config.store.save(&release).await?;
        info!(release = release.name(), "release applied");
        let handle = self.spawn(release.clone());
        releases.insert(release.name().to_owned(), handle);
        Ok((release, true))
    }

    /// A release's current state.
    pub async fn get(&self, name: &str) -> Option<Release> {
        let releases = self.releases.lock().await;
        releases.get(name).map(|h| h.state.borrow().clone())
    }

    /// Every current release.
    pub async fn list(&self) -> Vec<Release> {
        let releases = self.releases.lock().await;
        let mut all: Vec<Release> = releases
            .values()
            .map(|h| h.state.borrow().clone())
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        all
    }

    /// A receiver that sees every stored transition of a release.
    pub async fn watch(&self, name: &str) -> Option<watch::Receiver<Release>> {
        let releases = self.releases.lock().await;
        releases.get(name).map(|h| h.state.clone())
    }

    /// Hands a person's command (approve, pause, resume, abort, promote) to a release.
    pub async fn command(&self, name: &str, event: Event) -> Result<Release, CommandError> {
        let (commands, state) = {
            let releases = self.releases.lock().await;
            let handle = releases
                .get(name)
                .ok_or_else(|| CommandError::NotFound(name.to_owned()))?;
            (handle.commands.clone(), handle.state.clone())
        };
        let (reply, answer) = oneshot::channel();
        if commands
            .send(Command {
                event: event.clone(),
                reply,
            })
            .await
            .is_err()
        {
            // The task has ended: the release is over.
            let release = state.borrow().clone();
            machine::check(&release.state, &event)?;
            return Ok(release);
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(CommandError::Refused(Refusal("the release is over".into()))),
        }
    }

    /// Stops every release task and waits until they are gone (their stored states
    /// are where a later `open` resumes). Used on shutdown.
    pub async fn shutdown(&self) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        tasks.shutdown().await;
    }

    fn spawn(&self, release: Release) -> Handle {
        let (commands_tx, commands) = mpsc::channel(16);
        let (publish, state) = watch::channel(release.clone());
        let routers = release
            .plan
            .services
            .iter()
            .map(|s| routers::build(&s.canary))
            .collect();
        let runner = Runner {
            shared: self.shared.clone(),
            release,
            routers,
            publish,
            commands,
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.spawn(runner.run());
        Handle {
            commands: commands_tx,
            state,
        }
    }
}

struct Runner {
    shared: Arc<Shared>,
    release: Release,
    routers: Vec<Arc<dyn TrafficRouter>>,
    publish: watch::Sender<Release>,
    commands: mpsc::Receiver<Command>,
}

impl Runner {
    async fn run(mut self) {
        loop {
            if let Some(action) = self.release.state.outbox.first().cloned() {
                let outcome = self.perform(&action).await;
                self.advance(Event::Performed { action, outcome }).await;
                while let Ok(command) = self.commands.try_recv() {
                    self.command(command).await;
                }
                continue;
            }
            if self.release.state.phase.is_terminal() {
                return;
            }
            let clock = &self.shared.clock;
            let poll = clock.now() + self.shared.config.poll.as_millis() as Millis;
            let wake = self
                .release
                .state
                .next_wakeup(&self.release.plan)
                .map_or(poll, |w| w.min(poll));
            let deadline = clock.instant(wake);
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => return,
                },
                () = tokio::time::sleep_until(deadline) => {
                    self.watch_flags().await;
                    self.advance(Event::Tick).await;
                }
            }
        }
    }

    async fn command(&mut self, command: Command) {
        let result = match machine::check(&self.release.state, &command.event) {
            Ok(()) => {
                self.advance(command.event).await;
                Ok(self.release.clone())
            }
            Err(refusal) => Err(refusal.into()),
        };
        let _ = command.reply.send(result);
    }

    /// Steps the machine and stores the result before anything acts on it.
    async fn advance(&mut self, event: Event) {
        let now = self.shared.clock.now();
        let plan = &self.release.plan;
        let (state, _) = machine::step(plan, &self.release.state, event, now);
        if state == self.release.state {
            return;
        }
        let mut next = Release {
            state,
            ..self.release.clone()
        };
        next.revision += 1;
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = self.shared.config.store.save(&next).await {
            // Acting on an unstored transition could repeat it after a crash; wait.
            warn!(release = next.name(), error = %error_chain(&e), "cannot store the release; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        for entry in &next.state.timeline[self.release.state.timeline.len()..] {
            info!(
                release = next.name(),
                service = entry.service.as_deref().unwrap_or("-"),
                "{}",
                entry.message
            );
        }
        self.release = next;
        self.publish.send_replace(self.release.clone());
    }

    async fn perform(&self, action: &Action) -> Outcome {
        let plan = &self.release.plan;
        let Some(index) = plan
            .services
            .iter()
            .position(|s| s.name == action.service())
        else {
            return Outcome::Failed {
                error: format!("no service `{}` in the plan", action.service()),
            };
        };
        let service = &plan.services[index];
        let router = &self.routers[index];
        let config = &self.shared.config;
        let env = plan.environment.as_str();
        match action {
            Action::PreCheck { .. } => {
                let result = async {
                    Health::new(service.health.clone(), config.http.clone())
                        .check_all()
                        .await
                        .map_err(|e| error_chain(&e))?;
                    config
                        .flags
                        .check(env, &service.flags)
                        .await
                        .map_err(|e| error_chain(&e))?;
                    router.weight().await.map_err(|e| error_chain(&e))?;
                    Ok::<_, String>(())
                }
                .await;
                done_or_failed(result)
            }
            Action::SetWeight { weight, .. } => {
                let weight = *weight;
                let result = self
                    .retrying(|| async {
                        router
                            .set_weight(weight)
                            .await
                            .map_err(|e| error_chain(&e))?;
                        config
                            .flags
                            .set_weight(env, &service.flags, weight)
                            .await
                            .map_err(|e| error_chain(&e))
                    })
                    .await;
                done_or_failed(result)
            }
            Action::Analyse { .. } => Outcome::Measured {
                measurements: self.analyse(service).await,
            },
            Action::Rollback { .. } => {
                let reason = format!(
                    "release {} rolled back: {}",
                    plan.name,
                    self.release.state.reason.as_deref().unwrap_or("aborted")
                );
                let result = self
                    .retrying(|| async {
                        router.set_weight(0).await.map_err(|e| error_chain(&e))?;
                        config
                            .flags
                            .kill(env, &service.flags, &reason)
                            .await
                            .map_err(|e| error_chain(&e))
                    })
                    .await;
                done_or_failed(result)
            }
        }
    }

    async fn analyse(&self, service: &Service) -> Vec<crate::analysis::Measurement> {
        let http = &self.shared.config.http;
        let mut measurements = Vec::new();
        for metric in &self.release.plan.analysis.metrics {
            if !metric.applies_to(&service.name) {
                continue;
            }
            let Some(query) = &metric.prometheus else {
                continue;
            };
            let source = Prometheus::new(query.clone(), http.clone());
            measurements.push(judge(metric, source.measure(&service.name).await));
        }
        if !service.health.is_empty() {
            let health = Health::new(service.health.clone(), http.clone());
            measurements.push(judge_health(health.check_all().await));
        }
        measurements
    }

    async fn retrying<F, Fut>(&self, mut f: F) -> Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let attempts = self.shared.config.attempts.max(1);
        let mut attempt = 1;
        loop {
            match f().await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= attempts => {
                    return Err(format!("{e} (after {attempt} attempts)"))
                }
                Err(e) => {
                    warn!(release = self.release.name(), error = %e, attempt, "retrying");
                    tokio::time::sleep(Duration::from_millis(250) * attempt).await;
                    attempt += 1;
                }
            }
        }
    }

    /// A ramped flag killed by someone else aborts the release.
    async fn watch_flags(&mut self) {
        if self.release.state.phase != Phase::Running {
            return;
        }
        let plan = &self.release.plan;
        let live: Vec<(&str, &str)> = plan
            .services
            .iter()
            .zip(&self.release.state.services)
            .filter(|(_, s)| {
                matches!(
                    s.phase,
                    ServicePhase::Progressing
                        | ServicePhase::AwaitingApproval
                        | ServicePhase::Paused
                        | ServicePhase::Promoting
                        | ServicePhase::Succeeded
                )
            })
            .flat_map(|(service, _)| {
                service
                    .flags
                    .iter()
                    .map(move |f| (f.key.as_str(), service.name.as_str()))
            })
            .collect();
        if live.is_empty() {
            return;
        }
        let keys: Vec<&str> = live.iter().map(|(k, _)| *k).collect();
        let killed = match self
            .shared
            .config
            .flags
            .killed(&plan.environment, &keys)
            .await
        {
            Ok(killed) => killed,
            Err(e) => {
                warn!(release = plan.name, error = %error_chain(&e), "cannot read the flags");
                return;
            }
        };
        let events: Vec<Event> = live
            .iter()
            .filter(|(key, _)| killed.iter().any(|k| k == key))
            .map(|(flag, service)| Event::FlagKilled {
                flag: (*flag).to_owned(),
                service: (*service).to_owned(),
            })
            .collect();
        for event in events {
            self.advance(event).await;
        }
    }
}

fn done_or_failed(result: Result<(), String>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(error) => Outcome::Failed { error },
    }
}
