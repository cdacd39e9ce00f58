//! The in-memory side of every environment: an immutable, compiled [`EnvState`]
//! per environment, swapped atomically on each change, read without a lock by
//! evaluation and streaming; and the one write path that validates a change,
//! commits it to the store and then publishes it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde_json::json;
use switchyard_core::model::EnvName;
use switchyard_core::sync::{
    ChangeDocument, ChangeDocumentRef, FlagWrite, SegmentWrite, SnapshotDocumentRef,
};
use switchyard_core::{Flag, Segment, Snapshot, ValidationErrors};
use tokio::sync::{broadcast, mpsc, Mutex};

use crate::domain::EnvError;
use crate::store::{AuditEntry, Commit, EnvRecord, Schedule, Store, StoreError};
use prometheus_client::metrics::histogram::Histogram;

/// How many past change events each environment keeps for SSE resumption.
pub const HISTORY: usize = 256;

/// One environment at one revision. Never mutated (but for buffer-size hints);
/// replaced whole.
#[derive(Debug)]
pub struct EnvState {
    /// The environment.
    pub name: EnvName,
    /// Its revision.
    pub revision: u64,
    /// Compiled flags and segments, for evaluation.
    pub snapshot: Snapshot,
    /// The SDK snapshot document, written on first use ([`EnvState::document`]).
    document: OnceLock<Bytes>,
    /// The latest change events, oldest first, for clients resuming a stream.
    pub history: VecDeque<Arc<ChangeEvent>>,
    /// Sizes of the last bulk answers at this revision, so the next one's buffer is
    /// allocated once (the only mutable part: hints, never data).
    pub answer_sizes: AnswerSizes,
}

impl EnvState {
    /// The SDK snapshot document `{environment, revision, flags, segments}`, written
    /// once per revision, when first asked for: a write does not pay for a document
    /// nobody may read (streaming clients receive the change), and writing it copies
    /// the JSON each flag and segment has kept since it was compiled.
    pub fn document(&self) -> &Bytes {
        self.document
            .get_or_init(|| document(&self.name, self.revision, &self.snapshot))
    }
}

/// Sizes in bytes of the last bulk answers of an environment (`http::json::sized`).
#[derive(Debug, Default)]
pub struct AnswerSizes {
    /// `POST /v1/evaluate/{env}`.
    pub rest_bulk: std::sync::atomic::AtomicUsize,
    /// `POST /v1/evaluate/{env}/{flag}` (of whichever flag was asked for last).
    pub rest_one: std::sync::atomic::AtomicUsize,
    /// `POST /ofrep/v1/evaluate/flags`.
    pub ofrep_bulk: std::sync::atomic::AtomicUsize,
    /// gRPC `switchyard.v1.Evaluation/EvaluateAll`.
    pub grpc_bulk: std::sync::atomic::AtomicUsize,
}

/// What changed at one revision, as pushed to streaming SDKs.
#[derive(Debug)]
pub struct ChangeEvent {
    /// The environment.
    pub env: EnvName,
    /// The revision it produced.
    pub revision: u64,
    /// `{environment, revision, flags: [..], deleted_flags: [..], segments: [..], deleted_segments: [..]}`.
    pub document: Bytes,
}

/// A change to apply to one environment, computed from its current state.
#[derive(Debug, Default)]
pub struct Change {
    /// Flags written (`Some`) or deleted (`None`).
    pub flags: Vec<FlagWrite>,
    /// Segments written (`Some`) or deleted (`None`).
    pub segments: Vec<SegmentWrite>,
    /// One entry per thing changed.
    pub audit: Vec<AuditEntry>,
    /// The scheduled change this one carries out, as stored once done (see
    /// [`Commit::schedule`]).
    pub schedule: Option<Schedule>,
}

impl Change {
    fn is_empty(&self) -> bool {
        self.flags.is_empty() && self.segments.is_empty() && self.schedule.is_none()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Every environment's current state, plus the write path.
pub struct Environments {
    current: ArcSwap<HashMap<String, Arc<EnvState>>>,
    changes: broadcast::Sender<Arc<ChangeEvent>>,
    /// Change events in revision order, for the task that hands them to `changes`.
    fanout: mpsc::UnboundedSender<Arc<ChangeEvent>>,
    write: Mutex<()>,
    store: Arc<dyn Store>,
    /// `switchyard_snapshot_compile_seconds`.
    compile_seconds: Histogram,
}

/// Writes the snapshot's document from the JSON its flags and segments kept.
fn document(env: &EnvName, revision: u64, snapshot: &Snapshot) -> Bytes {
    // Every part is a string, a number or JSON already: writing them into memory
    // cannot fail (compiling is where a flag that serde cannot write is refused).
    serde_json::to_vec(&SnapshotDocumentRef::new(env, revision, snapshot))
        .map(Bytes::from)
        .unwrap_or_else(|error| {
            tracing::error!(%env, revision, %error, "the snapshot document could not be written");
            Bytes::new()
        })
}

/// `compile()`, timed into `switchyard_snapshot_compile_seconds`.
fn timed<T>(timer: &Histogram, compile: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let compiled = compile();
    timer.observe(start.elapsed().as_secs_f64());
    compiled
}

/// [`Snapshot::compile`], timed.
fn compile(
    timer: &Histogram,
    flags: impl IntoIterator<Item = Flag>,
    segments: impl IntoIterator<Item = Segment>,
) -> Result<Snapshot, ValidationErrors> {
    timed(timer, || Snapshot::compile(flags, segments))
}

/// [`Snapshot::with_writes`] (only the written flags are compiled), timed.
fn compile_change(
    timer: &Histogram,
    snapshot: &Snapshot,
    flags: &[FlagWrite],
    segments: &[SegmentWrite],
) -> Result<Snapshot, ValidationErrors> {
    timed(timer, || {
        snapshot.with_writes(
            flags.iter().map(|(k, f)| (k, f.as_ref())),
            segments.iter().map(|(k, s)| (k, s.as_ref())),
        )
    })
}

/// Compiles an environment read from the store.
fn compile_stored(
    timer: &Histogram,
    record: EnvRecord,
) -> Result<(EnvName, u64, Snapshot), EnvError> {
    let snapshot = compile(timer, record.flags, record.segments).map_err(|e| {
        tracing::error!(env = %record.name, error = %e, "stored environment does not compile");
        EnvError::Invalid(e)
    })?;
    Ok((record.name, record.revision, snapshot))
}

fn state_from(
    name: EnvName,
    revision: u64,
    snapshot: Snapshot,
    history: VecDeque<Arc<ChangeEvent>>,
) -> EnvState {
    EnvState {
        name,
        revision,
        snapshot,
        document: OnceLock::new(),
        history,
        answer_sizes: AnswerSizes::default(),
    }
}

impl Environments {
    /// Loads every environment from the store.
    /// Loads every environment from the store; `compile_seconds` times every
    /// snapshot compile from now on.
    pub async fn load(
        store: Arc<dyn Store>,
        compile_seconds: Histogram,
    ) -> Result<Self, anyhow::Error> {
        let mut map = HashMap::new();
        for record in store.load().await? {
            let name = record.name.to_string();
            let state = compile_stored(&compile_seconds, record)
                .map(|(name, revision, snapshot)| {
                    state_from(name, revision, snapshot, VecDeque::new())
                })
                .map_err(|e| {
                    anyhow::anyhow!("environment `{name}` in the store is invalid: {e}")
                })?;
            map.insert(name, Arc::new(state));
        }
        let (changes, _) = broadcast::channel(1024);
        let fanout = spawn_fanout(changes.clone());
        Ok(Environments {
            current: ArcSwap::from_pointee(map),
            changes,
            fanout,
            write: Mutex::new(()),
            store,
            compile_seconds,
        })
    }

    /// The current state of `env` (lock-free).
    pub fn get(&self, env: &str) -> Option<Arc<EnvState>> {
        self.current.load().get(env).cloned()
    }

    /// Every environment name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.current.load().keys().cloned().collect();
        names.sort();
        names
    }

    /// Receives every change event, of every environment, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.changes.subscribe()
    }

    /// Number of live subscribers (SSE clients and other listeners).
    pub fn subscribers(&self) -> usize {
        self.changes.receiver_count()
    }

    /// The store behind these environments.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates `env` if it does not exist; `Ok(false)` when it did.
    pub async fn create(&self, env: &EnvName, actor: &str) -> Result<bool, EnvError> {
        let _guard = self.write.lock().await;
        let audit = AuditEntry::new(actor, Some(env), "env.create", env.as_str());
        let created = self.store.create_env(env, audit).await?;
        self.resync_locked(env).await?;
        Ok(created)
    }

    /// Deletes `env` with everything in it, if `check` accepts its current state (it
    /// refuses, e.g., an environment that still has flags, or a failed precondition).
    /// The audit entry records every flag and segment it had. Returns that state.
    pub async fn delete<F>(
        &self,
        env: &str,
        actor: &str,
        check: F,
    ) -> Result<Arc<EnvState>, EnvError>
    where
        F: Fn(&EnvState) -> Result<(), EnvError>,
    {
        let _guard = self.write.lock().await;
        let name = EnvName::new(env);
        let current = self
            .get(env)
            .ok_or_else(|| EnvError::NoEnvironment(env.to_string()))?;
        check(&current)?;
        let flags: Vec<&Flag> = current.snapshot.flags().collect();
        let segments: Vec<&Segment> = current.snapshot.segments().collect();
        let mut audit = AuditEntry::new(actor, Some(&name), "env.delete", env);
        audit.before = Some(json!({
            "revision": current.revision, "flags": flags, "segments": segments
        }));
        match self.store.delete_env(&name, current.revision, audit).await {
            Ok(()) => {
                self.uninstall(&name);
                Ok(current)
            }
            Err(StoreError::RevisionConflict { .. }) => {
                // Another replica wrote meanwhile: what was checked is stale.
                self.resync_locked(&name).await?;
                Err(EnvError::Conflict(format!(
                    "environment `{env}` changed while it was being deleted; nothing was \
                     deleted; check it again and retry"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn uninstall(&self, env: &EnvName) {
        self.current.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(env.as_str());
            map
        });
    }

    fn install(&self, state: Arc<EnvState>) {
        self.current.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(state.name.to_string(), Arc::clone(&state));
            map
        });
    }

    /// Applies the change `plan` computes from the environment's current state:
    /// validates the resulting flag set, commits it atomically with its audit
    /// entries, then swaps in the new state and publishes the change. Returns the
    /// new state (the current one, unchanged, when the plan changes nothing).
    pub async fn apply<F>(&self, env: &str, mut plan: F) -> Result<Arc<EnvState>, EnvError>
    where
        F: FnMut(&EnvState) -> Result<Change, EnvError>,
    {
        let _guard = self.write.lock().await;
        let name = EnvName::new(env);
        let mut current = self
            .get(env)
            .ok_or_else(|| EnvError::NoEnvironment(env.to_string()))?;
        for _attempt in 0..3 {
            let change = plan(&current)?;
            if change.is_empty() {
                return Ok(current);
            }
            // Validate the whole environment as it would be, before writing anything;
            // the snapshot compiled to validate it is the one installed after the commit.
            let snapshot = compile_change(
                &self.compile_seconds,
                &current.snapshot,
                &change.flags,
                &change.segments,
            )?;
            let document =
                change_document(&name, current.revision + 1, &change.flags, &change.segments)?;
            let commit = Commit {
                env: name.clone(),
                expected_revision: current.revision,
                flags: change.flags,
                segments: change.segments,
                audit: change.audit,
                event: document.clone(),
                schedule: change.schedule,
            };
            match self.store.commit(commit).await {
                Ok(revision) => return self.publish(&current, revision, snapshot, document),
                // Another replica wrote first: start again from what it wrote.
                Err(StoreError::RevisionConflict { .. }) => {
                    self.resync_locked(&name).await?;
                    current = self
                        .get(env)
                        .ok_or_else(|| EnvError::NoEnvironment(env.to_string()))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EnvError::Conflict(format!(
            "environment `{env}` kept changing during the write; retry"
        )))
    }

    /// Applies a change another replica committed and announced: the next revision
    /// is applied from its change document; anything else (a gap, an unknown
    /// environment) reloads the environment from the store.
    pub async fn apply_remote(
        &self,
        env: &EnvName,
        revision: u64,
        change: &ChangeDocument,
    ) -> Result<Remote, EnvError> {
        let _guard = self.write.lock().await;
        let Some(current) = self.get(env.as_str()) else {
            self.resync_locked(env).await?;
            return Ok(Remote::Resynced);
        };
        if revision <= current.revision {
            return Ok(Remote::AlreadyHad);
        }
        if revision == current.revision + 1 {
            let snapshot = timed(&self.compile_seconds, || {
                change.applied_to(&current.snapshot)
            })?;
            let document = serde_json::to_vec(change).map_err(EnvError::Encode)?;
            self.publish(&current, revision, snapshot, Bytes::from(document))?;
            return Ok(Remote::Applied);
        }
        self.resync_locked(env).await?;
        Ok(Remote::Resynced)
    }

    /// Reloads `env` from the store if its revision differs from the one in memory,
    /// publishing the difference as one change event.
    pub async fn resync(&self, env: &EnvName) -> Result<(), EnvError> {
        let _guard = self.write.lock().await;
        self.resync_locked(env).await
    }

    async fn resync_locked(&self, env: &EnvName) -> Result<(), EnvError> {
        let record = self.store.load_env(env).await?;
        self.install_record(env, record)
    }

    /// Reloads `env` from the store and publishes whatever differs from what is
    /// here, even at the same revision: after a Redis failover a write this replica
    /// applied may have been lost and its revision number reused by another write.
    pub async fn reload(&self, env: &EnvName) -> Result<(), EnvError> {
        let _guard = self.write.lock().await;
        let record = self.store.load_env(env).await?;
        match (self.get(env.as_str()), record) {
            (Some(current), Some(record)) if current.revision == record.revision => {
                let (flags, segments) = differences(&current, &record);
                if flags.is_empty() && segments.is_empty() {
                    return Ok(());
                }
                tracing::warn!(%env, revision = record.revision, "this replica held a write the store lost; replaced it with the store's");
                self.publish_differences(&current, &record, &flags, &segments)
            }
            (_, record) => self.install_record(env, record),
        }
    }

    /// Installs `record` (a whole environment another server sent: a relay's
    /// upstream), publishing the difference from what is here as one change event.
    pub async fn replace(&self, record: EnvRecord) -> Result<(), EnvError> {
        let _guard = self.write.lock().await;
        let name = record.name.clone();
        self.install_record(&name, Some(record))
    }

    /// Makes `env` what `record` says: gone when `None`; otherwise the difference from
    /// what is here is published as one change event.
    fn install_record(&self, env: &EnvName, record: Option<EnvRecord>) -> Result<(), EnvError> {
        let Some(record) = record else {
            // Deleted (by another replica), or never there.
            self.uninstall(env);
            return Ok(());
        };
        match self.get(env.as_str()) {
            Some(current) if current.revision == record.revision => Ok(()),
            Some(current) => {
                let (flags, segments) = differences(&current, &record);
                self.publish_differences(&current, &record, &flags, &segments)
            }
            None => {
                let (name, revision, snapshot) = compile_stored(&self.compile_seconds, record)?;
                let state = state_from(name, revision, snapshot, VecDeque::new());
                self.install(Arc::new(state));
                Ok(())
            }
        }
    }

    /// Publishes `target`, which differs from `current` by `flags` and `segments`
    /// ([`differences`]), compiling only those.
    fn publish_differences(
        &self,
        current: &EnvState,
        target: &EnvRecord,
        flags: &[FlagWrite],
        segments: &[SegmentWrite],
    ) -> Result<(), EnvError> {
        let document = change_document(&target.name, target.revision, flags, segments)?;
        let snapshot = compile_change(&self.compile_seconds, &current.snapshot, flags, segments)
            .map_err(|e| {
                tracing::error!(env = %target.name, error = %e, "stored environment does not compile");
                EnvError::Invalid(e)
            })?;
        self.publish(current, target.revision, snapshot, document)
            .map(drop)
    }

    fn publish(
        &self,
        previous: &EnvState,
        revision: u64,
        snapshot: Snapshot,
        document: Bytes,
    ) -> Result<Arc<EnvState>, EnvError> {
        let event = Arc::new(ChangeEvent {
            env: previous.name.clone(),
            revision,
            document,
        });
        let mut history = previous.history.clone();
        if history.len() >= HISTORY {
            history.pop_front();
        }
        history.push_back(Arc::clone(&event));
        let state = Arc::new(state_from(
            previous.name.clone(),
            revision,
            snapshot,
            history,
        ));
        self.install(Arc::clone(&state));
        // The fan-out task wakes every stream (10 000 wake-ups take milliseconds)
        // after this write has answered; streams skip revisions they already have.
        // It only stops with these environments.
        let _ = self.fanout.send(event);
        Ok(state)
    }
}

/// Starts the task that hands change events, in the order they come, to `changes`'
/// subscribers; it ends when the returned sender is dropped.
fn spawn_fanout(
    changes: broadcast::Sender<Arc<ChangeEvent>>,
) -> mpsc::UnboundedSender<Arc<ChangeEvent>> {
    let (fanout, mut events) = mpsc::unbounded_channel::<Arc<ChangeEvent>>();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            // No subscriber is fine: nobody is streaming.
            let _ = changes.send(event);
        }
    });
    fanout
}

/// What [`Environments::apply_remote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    /// The change was applied from its document.
    Applied,
    /// This replica already had that revision (e.g. it made the write).
    AlreadyHad,
    /// The environment was reloaded from the store (a gap, or a new environment).
    Resynced,
}

/// The SDK change document of `flags` and `segments` written (`Some`) or deleted
/// (`None`), serialised straight from them.
fn change_document(
    env: &EnvName,
    revision: u64,
    flags: &[FlagWrite],
    segments: &[SegmentWrite],
) -> Result<Bytes, EnvError> {
    serde_json::to_vec(&ChangeDocumentRef::new(env, revision, flags, segments))
        .map(Bytes::from)
        .map_err(EnvError::Encode)
}

/// The writes that make `current` into `target`.
fn differences(current: &EnvState, target: &EnvRecord) -> (Vec<FlagWrite>, Vec<SegmentWrite>) {
    let flag_keys: HashSet<&str> = target.flags.iter().map(|f| f.key.as_str()).collect();
    let mut flags: Vec<FlagWrite> = target
        .flags
        .iter()
        .filter(|f| current.snapshot.flag(f.key.as_str()) != Some(*f))
        .map(|f| (f.key.clone(), Some(f.clone())))
        .collect();
    flags.extend(
        current
            .snapshot
            .flags()
            .filter(|old| !flag_keys.contains(old.key.as_str()))
            .map(|old| (old.key.clone(), None)),
    );
    let segment_keys: HashSet<&str> = target.segments.iter().map(|s| s.key.as_str()).collect();
    let old_segments: HashMap<&str, &Segment> = current
        .snapshot
        .segments()
        .map(|s| (s.key.as_str(), s))
        .collect();
    let mut segments: Vec<SegmentWrite> = target
        .segments
        .iter()
        .filter(|s| old_segments.get(s.key.as_str()) != Some(s))
        .map(|s| (s.key.clone(), Some(s.clone())))
        .collect();
    segments.extend(
        current
            .snapshot
            .segments()
            .filter(|old| !segment_keys.contains(old.key.as_str()))
            .map(|old| (old.key.clone(), None)),
    );
    (flags, segments)
}
