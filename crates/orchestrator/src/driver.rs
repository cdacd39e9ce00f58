//! The driver: runs releases by performing the machine's actions through the router,
//! flag and metric traits and feeding the outcomes back as events.
//!
//! One task per running release. It performs the outbox's first action, feeds the
//! outcome to [`machine::step`], stores the new state, and only then moves on — so a
//! crash at any point resumes from a stored state whose outbox says what is left to do
//! (re-performing an action is harmless: they are absolute and idempotent). Between
//! actions it takes people's commands and, every poll interval, ticks the machine and
//! looks for ramped flags killed by someone else.
//!
//! Several orchestrators may share one store (Redis): a release is driven only by the
//! holder of its lease, renewed every third of the lease period, and every save is
//! fenced by the lease in the store. Each orchestrator scans the store every half lease
//! period and takes the lease of any unfinished release nobody holds — so when the
//! driving replica dies, another carries on within about one lease period, from the
//! stored state. Reads and commands work on any replica: commands for a release
//! driven elsewhere are queued in the store and taken by its driver.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio::task::JoinSet;
use tracing::{info, warn};

mod action_error;

pub use action_error::ActionError;

use crate::analysis::health::Health;
use crate::analysis::{error_chain, Measurement, MetricRequest, MetricSources, WeightWindow};
use crate::flags::FlagControl;
use crate::gates;
use crate::machine::{
    self, Action, Entry, Event, Millis, Outcome, Phase, Refusal, ServicePhase, State,
};
use crate::plan::{Plan, PlanError, Problem, RegionFailure, Service, StepKind};
use crate::routers::{self, TrafficRouter};
use crate::store::{Release, StateStore, StoreError};
use crate::telemetry::Telemetry;

/// What the driver works with.
pub struct Config {
    /// Where releases are stored.
    pub store: Arc<dyn StateStore>,
    /// The flag server.
    pub flags: Arc<dyn FlagControl>,
    /// For gates, notifications and the pre-checks' health checks.
    pub http: reqwest::Client,
    /// What each kind of metric is measured with at an analysis.
    pub metrics: MetricSources,
    /// How often a running release is ticked and its flags are looked at.
    pub poll: Duration,
    /// Attempts for a router or flag change before it counts as failed.
    pub attempts: u32,
    /// This orchestrator's identity in leases.
    pub owner: String,
    /// How long a lease lasts unless renewed.
    pub lease: Duration,
    /// How long after its promotion a release may still be rolled back.
    pub rollback_window: Duration,
}

/// How long after its promotion a release may be rolled back unless configured.
pub const DEFAULT_ROLLBACK_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

impl Config {
    /// A configuration with the standard metric sources, default timings (poll 1 s, 3
    /// attempts, lease 10 s, a 24 h rollback window) and a random owner id.
    pub fn new(store: Arc<dyn StateStore>, flags: Arc<dyn FlagControl>) -> Config {
        let http = reqwest::Client::new();
        Config {
            metrics: MetricSources::standard(&http, flags.admin()),
            store,
            flags,
            http,
            poll: Duration::from_secs(1),
            attempts: 3,
            owner: owner_id(),
            lease: Duration::from_secs(10),
            rollback_window: DEFAULT_ROLLBACK_WINDOW,
        }
    }
}

/// `host:pid:random`, unique per process.
pub fn owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
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
    telemetry: Telemetry,
}

struct Handle {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<Release>,
}

impl Handle {
    /// Whether its task still drives the release (it ends when the release does or
    /// when the lease is lost).
    fn is_live(&self) -> bool {
        !self.commands.is_closed()
    }
}

/// How long a command for a release driven elsewhere waits to see its effect.
const REMOTE_COMMAND_WAIT: Duration = Duration::from_secs(5);

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
    /// The plan does not fit the flag server (e.g. an environment it does not have).
    #[error(transparent)]
    Invalid(PlanError),
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
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// Loads the stored releases, resumes every unfinished one whose lease it gets, and
    /// keeps looking for releases left without a driver.
    pub async fn open(config: Config) -> Result<Orchestrator, StoreError> {
        let orchestrator = Orchestrator {
            shared: Arc::new(Shared {
                config,
                clock: Clock::new(),
                telemetry: Telemetry::default(),
            }),
            releases: Arc::default(),
            tasks: Arc::default(),
        };
        orchestrator.adopt_orphans().await?;
        // Promoted blue-green releases whose previous version is still kept.
        for release in orchestrator.shared.config.store.releases().await? {
            if retirement_due(&orchestrator.shared, &release).is_some() {
                let shared = orchestrator.shared.clone();
                let name = release.name().to_owned();
                orchestrator.spawn_task(retire_when_due(shared, name));
            }
        }
        if !orchestrator.shared.config.store.shared() {
            // Only this process uses the store: nothing can be orphaned later.
            return Ok(orchestrator);
        }
        let scanner = orchestrator.clone();
        let every = (orchestrator.shared.config.lease / 2).max(Duration::from_millis(50));
        orchestrator.spawn_task(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = scanner.adopt_orphans().await {
                    warn!(error = %error_chain(&e), "cannot scan the store for releases");
                }
            }
        });
        Ok(orchestrator)
    }

    /// Starts driving every unfinished stored release that is not driven here and
    /// whose lease this orchestrator gets.
    async fn adopt_orphans(&self) -> Result<(), StoreError> {
        let config = &self.shared.config;
        for stored in config.store.releases().await? {
            if stored.state.phase.is_terminal() {
                continue;
            }
            let name = stored.name().to_owned();
            let mut releases = self.releases.lock().await;
            if releases.get(&name).is_some_and(Handle::is_live) {
                continue;
            }
            if !config
                .store
                .acquire(&name, &config.owner, config.lease)
                .await?
            {
                continue;
            }
            // Reread under the lease: the previous driver may have saved since.
            let Some(release) = config.store.load(&name).await? else {
                continue;
            };
            info!(release = %name, revision = release.revision, "driving release");
            let handle = self.spawn(release, true);
            releases.insert(name, handle);
        }
        Ok(())
    }

    /// Starts a release. Applying the plan of a release that is already running is a
    /// no-op (so a CI job may retry); `Ok((release, created))`.
    pub async fn apply(&self, plan: Plan) -> Result<(Release, bool), ApplyError> {
        let config = &self.shared.config;
        self.check_environments(&plan).await?;
        let mut releases = self.releases.lock().await;
        if let Some(current) = self.current(&releases, &plan.name).await? {
            if !current.state.phase.is_terminal() {
                if current.plan == plan {
                    return Ok((current, false));
                }
                return Err(ApplyError::Running(plan.name));
            }
            config.store.archive(&plan.name).await?;
        }
        if !config
            .store
            .acquire(&plan.name, &config.owner, config.lease)
            .await?
        {
            // Another orchestrator is creating a release of that name right now.
            return Err(ApplyError::Running(plan.name));
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
        config.store.save(&release).await?;
        info!(release = release.name(), "release applied");
        let handle = self.spawn(release.clone(), false);
        releases.insert(release.name().to_owned(), handle);
        Ok((release, true))
    }

    /// Refuses a plan for environments the flag server does not have: it could never
    /// pass its pre-checks, and is no release to count. When the flag server cannot be
    /// asked, the release starts and its pre-checks find out.
    async fn check_environments(&self, plan: &Plan) -> Result<(), ApplyError> {
        let envs: Vec<&str> = plan.environments.iter().map(String::as_str).collect();
        let missing = match self.shared.config.flags.missing_environments(&envs).await {
            Ok(missing) => missing,
            Err(e) => {
                warn!(release = plan.name, error = %error_chain(&e), "cannot list the flag server's environments");
                return Ok(());
            }
        };
        if missing.is_empty() {
            return Ok(());
        }
        let problems = missing
            .iter()
            .map(|env| Problem {
                path: plan
                    .environment_path(plan.environments.iter().position(|e| e == env).unwrap_or(0)),
                message: format!("environment `{env}` does not exist on the flag server"),
            })
            .collect();
        Err(ApplyError::Invalid(PlanError::Invalid(problems)))
    }

    /// The release as this orchestrator drives it, or as stored when it is driven
    /// elsewhere (or finished).
    async fn current(
        &self,
        releases: &HashMap<String, Handle>,
        name: &str,
    ) -> Result<Option<Release>, StoreError> {
        match releases.get(name) {
            Some(handle) if handle.is_live() => Ok(Some(handle.state.borrow().clone())),
            _ => self.shared.config.store.load(name).await,
        }
    }

    /// A release's current state.
    pub async fn get(&self, name: &str) -> Option<Release> {
        let releases = self.releases.lock().await;
        match self.current(&releases, name).await {
            Ok(found) => found,
            Err(e) => {
                warn!(release = name, error = %error_chain(&e), "cannot read the release");
                releases.get(name).map(|h| h.state.borrow().clone())
            }
        }
    }

    /// Every current release, newest first.
    pub async fn list(&self) -> Vec<Release> {
        let stored = match self.shared.config.store.releases().await {
            Ok(stored) => stored,
            Err(e) => {
                warn!(error = %error_chain(&e), "cannot list the stored releases");
                Vec::new()
            }
        };
        let mut all = self.with_live_states(stored).await;
        all.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        all
    }

    /// The stored current releases, each replaced by its driver's state when it is
    /// driven here (that state may be ahead of the store by a transition in flight),
    /// plus releases driven here that are not stored yet.
    async fn with_live_states(&self, stored: Vec<Release>) -> Vec<Release> {
        let releases = self.releases.lock().await;
        let mut all: HashMap<String, Release> = stored
            .into_iter()
            .map(|r| (r.name().to_owned(), r))
            .collect();
        for (name, handle) in releases.iter() {
            if handle.is_live() || !all.contains_key(name) {
                all.insert(name.clone(), handle.state.borrow().clone());
            }
        }
        all.into_values().collect()
    }

    /// The Prometheus text of [`Telemetry`]: what this process performed, the current
    /// releases by phase and the releases whose lease it holds.
    pub async fn metrics(&self) -> String {
        let phases: Vec<Phase> = self.list().await.iter().map(|r| r.state.phase).collect();
        let leased: Vec<String> = {
            let releases = self.releases.lock().await;
            let mut names: Vec<String> = releases
                .iter()
                .filter(|(_, h)| h.is_live())
                .map(|(name, _)| name.clone())
                .collect();
            names.sort();
            names
        };
        self.shared.telemetry.encode(phases, &leased)
    }

    /// A receiver that sees every stored transition of a release driven here.
    pub async fn watch(&self, name: &str) -> Option<watch::Receiver<Release>> {
        let releases = self.releases.lock().await;
        releases.get(name).map(|h| h.state.clone())
    }

    /// Hands a person's command (approve, pause, resume, abort, promote) to a release,
    /// here or — through the store — to the orchestrator driving it.
    pub async fn command(&self, name: &str, event: Event) -> Result<Release, CommandError> {
        let local = {
            let releases = self.releases.lock().await;
            releases
                .get(name)
                .filter(|h| h.is_live())
                .map(|h| h.commands.clone())
        };
        if let Some(commands) = local {
            let (reply, answer) = oneshot::channel();
            let sent = commands
                .send(Command {
                    event: event.clone(),
                    reply,
                })
                .await;
            if sent.is_ok() {
                if let Ok(result) = answer.await {
                    return result;
                }
            }
        }
        self.remote_command(name, event).await
    }

    async fn remote_command(&self, name: &str, event: Event) -> Result<Release, CommandError> {
        let store = &self.shared.config.store;
        let release = store
            .load(name)
            .await?
            .ok_or_else(|| CommandError::NotFound(name.to_owned()))?;
        machine::check(&release.state, &event)?;
        store.push_command(name, &event).await?;
        // Wait (bounded) for the driver to take it, so the answer shows its effect.
        let deadline = tokio::time::Instant::now() + REMOTE_COMMAND_WAIT;
        loop {
            let now = store.load(name).await?.unwrap_or_else(|| release.clone());
            if now.revision > release.revision || tokio::time::Instant::now() >= deadline {
                return Ok(now);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Rolls a promoted release back (a person's `rollback`): canary weights 0 and
    /// every flag it ramped back to its pre-release serve and killed. Refused outside
    /// the rollback window or when the release is not promoted.
    pub async fn rollback(
        &self,
        name: &str,
        by: String,
        reason: String,
    ) -> Result<Release, CommandError> {
        let config = &self.shared.config;
        let mut releases = self.releases.lock().await;
        let release = self
            .current(&releases, name)
            .await?
            .ok_or_else(|| CommandError::NotFound(name.to_owned()))?;
        let event = Event::Rollback { by, reason };
        machine::check(&release.state, &event)?;
        let now = self.shared.clock.now();
        let promoted = release
            .state
            .promoted_at
            .or(release.state.finished_at)
            .unwrap_or(now);
        let since = Duration::from_millis(now.saturating_sub(promoted));
        // A blue-green release keeps its previous version for `keep_previous`.
        let (window, setting) = match release.plan.keep_previous() {
            Some(keep) => (keep, "the plan's `keep_previous`"),
            None => (config.rollback_window, "`serve --rollback-window`"),
        };
        if since > window {
            let since = Duration::from_secs(since.as_secs());
            return Err(Refusal(format!(
                "release `{name}` was promoted {} ago, outside the rollback window of {} \
                 ({setting}); roll it back by hand or release the previous version",
                humantime::format_duration(since),
                humantime::format_duration(window)
            ))
            .into());
        }
        if !config
            .store
            .acquire(name, &config.owner, config.lease)
            .await?
        {
            return Err(Refusal(format!(
                "another orchestrator holds release `{name}`; try again"
            ))
            .into());
        }
        // Reread under the lease, then store the transition before anything acts on it.
        let release = config.store.load(name).await?.unwrap_or(release);
        machine::check(&release.state, &event)?;
        let (state, _) = machine::step(&release.plan, &release.state, event, now);
        let release = Release {
            state,
            revision: release.revision + 1,
            ..release
        };
        config.store.save(&release).await?;
        info!(release = name, "promoted release rolling back");
        let handle = self.spawn(release.clone(), false);
        releases.insert(name.to_owned(), handle);
        Ok(release)
    }

    /// Stops every release task and waits until they are gone (their stored states
    /// are where a later `open` resumes), then gives up their leases so another
    /// orchestrator takes over at once. Used on shutdown.
    pub async fn shutdown(&self) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        tasks.shutdown().await;
        let config = &self.shared.config;
        let releases = self.releases.lock().await;
        for (name, handle) in releases.iter() {
            if handle.state.borrow().state.phase.is_terminal() {
                continue;
            }
            if let Err(e) = config.store.release_lease(name, &config.owner).await {
                warn!(release = %name, error = %error_chain(&e), "cannot give the lease up");
            }
        }
    }

    fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.spawn(task);
    }

    /// Starts driving `release`; `adopted` when it is taken up from the store rather
    /// than just applied here.
    fn spawn(&self, release: Release, adopted: bool) -> Handle {
        let (commands_tx, commands) = mpsc::channel(16);
        let (publish, state) = watch::channel(release.clone());
        let routers = release
            .plan
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| routers::build(&s.name, &s.canary, release.plan.strategy_of(i)))
            .collect();
        let runner = Runner {
            shared: self.shared.clone(),
            release,
            routers,
            publish,
            commands,
            renewed: None,
            lost: false,
            adopted,
        };
        self.spawn_task(runner.run());
        Handle {
            commands: commands_tx,
            state,
        }
    }

    /// Every release in the store, current and archived, newest first — whoever
    /// drove it and however often orchestrators restarted since.
    pub async fn history(&self) -> Result<Vec<Release>, StoreError> {
        let store = &self.shared.config.store;
        let current = store.releases().await?;
        let archived = store.history().await?;
        let mut all = self.with_live_states(current).await;
        // Stable: on equal times, current before archived and archives newest first.
        all.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        all.extend(archived.into_iter().rev());
        all.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(all)
    }
}

struct Runner {
    shared: Arc<Shared>,
    release: Release,
    routers: Vec<Arc<dyn TrafficRouter>>,
    publish: watch::Sender<Release>,
    commands: mpsc::Receiver<Command>,
    /// When the lease was last renewed.
    renewed: Option<tokio::time::Instant>,
    /// The lease went to another orchestrator: stop acting.
    lost: bool,
    /// Taken up from the store: the timeline says so before anything else happens.
    adopted: bool,
}

/// When the previous version of `release`'s blue-green services is to be retired: its
/// promotion plus `keep_previous` (or the rollback window), if it is promoted, has
/// such a service with a router, and has not retired it yet.
fn retirement_due(shared: &Shared, release: &Release) -> Option<Millis> {
    let state = &release.state;
    if state.phase != Phase::Succeeded
        || state.retired_at.is_some()
        || release.plan.retiring().is_empty()
    {
        return None;
    }
    let promoted = state.promoted_at.or(state.finished_at)?;
    let keep = release
        .plan
        .keep_previous()
        .unwrap_or(shared.config.rollback_window);
    Some(promoted.saturating_add(keep.as_millis() as Millis))
}

/// Waits until the previous version of release `name` is due to be retired, then,
/// under the release's lease and if it is still promoted and not retired (a person may
/// have rolled it back meanwhile; another orchestrator may have retired it), has each
/// blue-green service's router drop it and records that in the timeline. A router
/// that fails is logged and tried again the next time an orchestrator opens the store.
async fn retire_when_due(shared: Arc<Shared>, name: String) {
    let config = &shared.config;
    let Ok(Some(release)) = config.store.load(&name).await else {
        return;
    };
    let Some(due) = retirement_due(&shared, &release) else {
        return;
    };
    tokio::time::sleep_until(shared.clock.instant(due)).await;
    match config
        .store
        .acquire(&name, &config.owner, config.lease)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            warn!(release = %name, error = %error_chain(&e), "cannot retire the previous version: no lease");
            return;
        }
    }
    if let Err(e) = retire(&shared, &name).await {
        warn!(release = %name, error = %e, "cannot retire the previous version");
    }
    let _ = config.store.release_lease(&name, &config.owner).await;
}

/// [`retire_when_due`]'s work under the lease.
async fn retire(shared: &Shared, name: &str) -> Result<(), String> {
    let config = &shared.config;
    let release = match config.store.load(name).await {
        Ok(Some(release)) => release,
        Ok(None) => return Ok(()),
        Err(e) => return Err(error_chain(&e)),
    };
    let now = shared.clock.now();
    if retirement_due(shared, &release).is_none_or(|due| due > now) {
        return Ok(());
    }
    let plan = &release.plan;
    let (keep, setting) = match plan.keep_previous() {
        Some(keep) => (keep, "`keep_previous`"),
        None => (config.rollback_window, "the rollback window"),
    };
    let mut state = release.state.clone();
    for i in plan.retiring() {
        let service = &plan.services[i];
        let router = routers::build(&service.name, &service.canary, plan.strategy_of(i));
        router
            .retire_previous()
            .await
            .map_err(|e| format!("{}: {}", service.name, error_chain(&e)))?;
        state.timeline.push(Entry {
            at: now,
            service: Some(service.name.clone()),
            message: format!(
                "previous version retired: {setting} ({}) passed since the promotion",
                humantime::format_duration(keep)
            ),
            measurements: Vec::new(),
            weights: None,
        });
    }
    state.retired_at = Some(now);
    let retired = Release {
        state,
        revision: release.revision + 1,
        ..release
    };
    config
        .store
        .save(&retired)
        .await
        .map_err(|e| error_chain(&e))?;
    info!(release = name, "previous version retired");
    Ok(())
}

impl Runner {
    async fn run(mut self) {
        let name = self.release.name().to_owned();
        self.drive().await;
        if self.lost {
            warn!(release = %name, "lease lost: another orchestrator drives this release now");
        } else if self.release.state.phase.is_terminal() {
            let config = &self.shared.config;
            let _ = config.store.release_lease(&name, &config.owner).await;
            // A promoted blue-green release keeps its previous version for a while; this
            // task waits for it without its commands and state (the release is read
            // from the store again).
            let shared = self.shared.clone();
            drop(self);
            retire_when_due(shared, name).await;
        }
    }

    /// Renews the lease when a third of it has passed; false once it is lost.
    async fn hold_lease(&mut self) -> bool {
        let config = &self.shared.config;
        let due = self
            .renewed
            .is_none_or(|at| at.elapsed() >= config.lease / 3);
        if !due {
            return true;
        }
        let name = self.release.name().to_owned();
        let mut backoff = Duration::from_millis(100);
        loop {
            match config
                .store
                .acquire(&name, &config.owner, config.lease)
                .await
            {
                Ok(true) => {
                    self.renewed = Some(tokio::time::Instant::now());
                    return true;
                }
                Ok(false) => {
                    self.lost = true;
                    return false;
                }
                Err(e) => {
                    // Without a confirmed lease nothing may be done: another
                    // orchestrator may already drive the release.
                    warn!(release = %name, error = %error_chain(&e), "cannot renew the lease; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// People's commands queued in the store by other orchestrators.
    async fn take_stored_commands(&mut self) {
        let store = self.shared.config.store.clone();
        match store.take_commands(self.release.name()).await {
            Ok(events) => {
                for event in events {
                    if machine::check(&self.release.state, &event).is_ok() {
                        self.advance(event).await;
                    }
                }
            }
            Err(e) => {
                warn!(release = self.release.name(), error = %error_chain(&e), "cannot read queued commands")
            }
        }
    }

    async fn drive(&mut self) {
        if self.adopted && self.hold_lease().await {
            let by = self.shared.config.owner.clone();
            self.advance(Event::Adopted { by }).await;
        }
        loop {
            if self.lost || !self.hold_lease().await {
                return;
            }
            if let Some(action) = self.release.state.outbox.first().cloned() {
                let outcome = self.perform(&action).await;
                self.shared.telemetry.performed(&action, &outcome);
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
                    if !self.hold_lease().await {
                        return;
                    }
                    self.take_stored_commands().await;
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
        if self.lost {
            return;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.shared.config.store.save(&next).await {
                Ok(()) => break,
                Err(StoreError::LeaseLost(_)) => {
                    self.lost = true;
                    return;
                }
                Err(e) => {
                    // Acting on an unstored transition could repeat it after a crash.
                    warn!(release = next.name(), error = %error_chain(&e), "cannot store the release; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
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
        let config = &self.shared.config;
        let env = self.release.state.environment(plan);
        match action {
            Action::Gate { service, step } => {
                let written = service
                    .as_deref()
                    .and_then(|name| plan.services.iter().position(|s| s.name == name))
                    .zip(*step)
                    .and_then(|(i, step)| plan.steps_of(i).get(step));
                let gates = match step {
                    Some(_) => written.map_or(&[][..], |s| &s.gates[..]),
                    None => &plan.gates.pre[..],
                };
                let context = serde_json::json!({
                    "release": plan.name,
                    "environment": env,
                    "service": service,
                    "step": step.map(|s| s + 1),
                    "weight": written.and_then(|s| s.weight),
                });
                for gate in gates {
                    if let Err(error) = gates::run(gate, &context, &config.http).await {
                        return failed(error.into());
                    }
                }
                return Outcome::Done;
            }
            Action::Notify {
                event,
                service,
                message,
            } => {
                let notice = gates::Notice {
                    release: &plan.name,
                    environment: env,
                    event: *event,
                    service: service.as_deref(),
                    message,
                    at: self.shared.clock.now(),
                };
                let notified = gates::notify(&plan.notify, &notice, &config.http).await;
                return done_or_failed(notified.map_err(ActionError::from));
            }
            _ => {}
        }
        let name = action.service().unwrap_or_default();
        let Some(index) = plan.services.iter().position(|s| s.name == name) else {
            return failed(ActionError::UnknownService(name.to_owned()));
        };
        let service = &plan.services[index];
        let router = &self.routers[index];
        let kill_reason = || {
            format!(
                "release {} rolled back: {}",
                plan.name,
                self.release.state.reason.as_deref().unwrap_or("aborted")
            )
        };
        let result = match action {
            Action::PreCheck { .. } => {
                let checked = async {
                    Health::new(service.health.clone(), config.http.clone())
                        .check_all()
                        .await?;
                    let first_weight = if self.release.state.full_promotion {
                        100
                    } else {
                        plan.first_weight(index)
                    };
                    let flags = config
                        .flags
                        .check(env, &service.flags, first_weight)
                        .await?;
                    router.weight().await?;
                    Ok::<_, ActionError>(flags)
                }
                .await;
                return match checked {
                    Ok(flags) => Outcome::Checked { flags },
                    Err(error) => failed(error),
                };
            }
            Action::SetWeight { weight, .. } => {
                let weight = *weight;
                // A hotfix's flag writes say so in the flag server's audit log.
                let reason = plan
                    .hotfix
                    .as_ref()
                    .map(|h| format!("release {}: hotfix: {}", plan.name, h.reason));
                self.retrying(|| async {
                    router.set_weight(weight).await?;
                    let flags = &config.flags;
                    flags
                        .set_weight(env, &service.flags, weight, reason.as_deref())
                        .await?;
                    Ok(())
                })
                .await
            }
            Action::Analyse { .. } => {
                return Outcome::Measured {
                    measurements: self.analyse(service, env).await,
                }
            }
            // An instant rollback moves the traffic first, then kills the flags; a
            // gradual one kills the flags first and steps the traffic down later. The
            // flags go back to their pre-release serve in every environment the
            // release ramped them in (the router's weight is not per environment).
            Action::Rollback { .. } | Action::KillFlags { .. } => {
                let reason = kill_reason();
                let traffic_too = matches!(action, Action::Rollback { .. });
                let before = &self.release.state.flags_before;
                let mut envs = vec![env];
                for prior in before {
                    let ours = service
                        .flags
                        .iter()
                        .any(|f| prior.is_of(&prior.environment, f));
                    if ours && !envs.contains(&prior.environment.as_str()) {
                        envs.push(&prior.environment);
                    }
                }
                // A region rolling back alone puts its rules' serves back instead: a
                // kill would switch the flag off in the regions that stay promoted.
                let alone = service.region.is_some()
                    && plan
                        .regions
                        .as_ref()
                        .is_some_and(|r| r.on_failure == RegionFailure::Region);
                self.retrying(|| async {
                    if traffic_too {
                        router.set_weight(0).await?;
                    }
                    for env in &envs {
                        let flags = &config.flags;
                        if alone {
                            flags.put_back(env, &service.flags, before).await?;
                        } else {
                            flags.kill(env, &service.flags, before, &reason).await?;
                        }
                    }
                    Ok(())
                })
                .await
            }
            Action::SetTraffic { weight, .. } => {
                let weight = *weight;
                self.retrying(|| async { Ok(router.set_weight(weight).await?) })
                    .await
            }
            Action::Gate { .. } | Action::Notify { .. } => Ok(()),
        };
        done_or_failed(result)
    }

    /// Measures each of the plan's metrics that applies to `service`, then its health
    /// checks, with the sources of the driver's [`MetricSources`].
    async fn analyse(&self, service: &Service, env: &str) -> Vec<Measurement> {
        let sources = &self.shared.config.metrics;
        let plan = &self.release.plan;
        let index = plan.services.iter().position(|s| s.name == service.name);
        let weight = index.and_then(|i| {
            let s = self.release.state.services.get(i)?;
            Some(WeightWindow {
                since: s.weight_since?,
                share: f64::from(s.weight) / 100.0,
                weight_steps: (0..plan.steps_of(i).len())
                    .filter(|&step| matches!(plan.step(i, step), Some(StepKind::Weight(..))))
                    .count(),
            })
        });
        let request = |metric| MetricRequest {
            metric,
            service,
            environment: env,
            weight,
        };
        let mut measurements = Vec::new();
        for metric in &self.release.plan.analysis.metrics {
            if metric.applies_to(service.written_name()) {
                measurements.push(sources.measure(request(Some(metric))).await);
            }
        }
        if !service.health.is_empty() {
            measurements.push(sources.measure(request(None)).await);
        }
        measurements
    }

    /// Runs `f` until it succeeds or the configured attempts are used up.
    async fn retrying<F, Fut>(&self, mut f: F) -> Result<(), ActionError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), ActionError>>,
    {
        let attempts = self.shared.config.attempts.max(1);
        let mut attempt = 1;
        loop {
            match f().await {
                Ok(()) => return Ok(()),
                Err(last) if attempt >= attempts => {
                    return Err(ActionError::Retried {
                        attempts: attempt,
                        last: Box::new(last),
                    })
                }
                Err(e) => {
                    warn!(release = self.release.name(), error = %e.describe(), attempt, "retrying");
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
        let env = self.release.state.environment(plan);
        let killed = match self.shared.config.flags.killed(env, &keys).await {
            Ok(killed) => killed,
            Err(e) => {
                warn!(release = plan.name, error = %error_chain(&e), "cannot read the flags");
                return;
            }
        };
        let events: Vec<Event> = live
            .iter()
            .filter_map(|(key, service)| {
                let kill = killed.iter().find(|k| k.key == *key)?;
                Some(Event::FlagKilled {
                    flag: (*key).to_owned(),
                    service: (*service).to_owned(),
                    why: kill.why.clone(),
                })
            })
            .collect();
        for event in events {
            self.advance(event).await;
        }
    }
}

fn done_or_failed(result: Result<(), ActionError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(error) => failed(error),
    }
}

/// The machine's record of a failed action: its words for the timeline.
fn failed(error: ActionError) -> Outcome {
    Outcome::Failed {
        error: error.describe(),
    }
}
