//! The embedded store: one `redb` database file in the data directory. Every
//! write is one redb transaction committed with immediate durability (fsync), so an
//! acknowledged write survives `kill -9` and a half-done one never shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use switchyard_core::model::{EnvName, FlagKey};
use switchyard_core::{Flag, Segment};

use super::{
    decode, decode_audit, encode, AuditEntry, AuditQuery, Commit, EnvRecord, MetricsBatch,
    Schedule, ScheduleState, Store, StoreError, TokenRecord, UnitsRecord, UsageOf, VariantCounts,
    UNITS_RETENTION_MS,
};

/// env → revision
const ENVS: TableDefinition<&str, u64> = TableDefinition::new("envs");
/// (env, flag key) → flag JSON
const FLAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("flags");
/// (env, segment key) → segment JSON
const SEGMENTS: TableDefinition<(&str, &str), &str> = TableDefinition::new("segments");
/// token name → token JSON
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
/// id → audit entry JSON
const AUDIT: TableDefinition<u64, &str> = TableDefinition::new("audit");
/// (env, flag, minute, variant, event or "" for exposures) → count
const METRICS: TableDefinition<(&str, &str, u64, &str, &str), u64> =
    TableDefinition::new("metrics");
/// (env, flag, start ms, id) → a `UnitsRecord` as JSON
const UNITS: TableDefinition<(&str, &str, u64, u64), &str> = TableDefinition::new("units");
/// (env, flag key) → when it was last evaluated, and ("", token name) → when it was
/// last used (ms since the epoch; no environment is named "")
const USAGE: TableDefinition<(&str, &str), u64> = TableDefinition::new("usage");

/// The first part of a [`USAGE`] key.
fn usage_scope(of: UsageOf<'_>) -> String {
    match of {
        UsageOf::Flags(env) => env.to_string(),
        UsageOf::Tokens => String::new(),
    }
}
/// (env, schedule id) → a `Schedule` as JSON
const SCHEDULES: TableDefinition<(&str, &str), &str> = TableDefinition::new("schedules");

/// A redb-backed [`Store`].
#[derive(Clone)]
pub struct EmbeddedStore {
    handle: Arc<Handle>,
}

/// The database file and the open database. redb refuses every operation after an
/// I/O error (a full disk) until it is opened again, so such an error drops it and
/// the next operation reopens it — which works once there is space again.
struct Handle {
    path: PathBuf,
    db: Mutex<Option<Arc<Database>>>,
}

impl Handle {
    /// The open database, reopened if an I/O error closed it.
    fn database(&self) -> Result<Arc<Database>, StoreError> {
        let mut slot = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = &*slot {
            return Ok(Arc::clone(db));
        }
        let db = Arc::new(Database::create(&self.path).map_err(unavailable)?);
        tracing::info!(path = %self.path.display(), "embedded store reopened after an I/O error");
        *slot = Some(Arc::clone(&db));
        Ok(db)
    }

    /// Closes `failed` (when it is still the open one) so the next operation reopens.
    fn discard(&self, failed: &Arc<Database>) {
        let mut slot = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|db| Arc::ptr_eq(db, failed)) {
            *slot = None;
        }
    }
}

/// The redb storage error inside any of redb's error types, if there is one.
fn storage_error<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e redb::StorageError> {
    if let Some(e) = error.downcast_ref::<redb::StorageError>() {
        return Some(e);
    }
    match error.downcast_ref::<redb::CommitError>() {
        Some(redb::CommitError::Storage(e)) => return Some(e),
        Some(_) => return None,
        None => {}
    }
    match error.downcast_ref::<redb::TransactionError>() {
        Some(redb::TransactionError::Storage(e)) => return Some(e),
        Some(_) => return None,
        None => {}
    }
    match error.downcast_ref::<redb::TableError>() {
        Some(redb::TableError::Storage(e)) => return Some(e),
        Some(_) => return None,
        None => {}
    }
    match error.downcast_ref::<redb::DatabaseError>() {
        Some(redb::DatabaseError::Storage(e)) => Some(e),
        _ => None,
    }
}

/// Whether an I/O error (or redb's refusal after one) is inside `error`: the
/// database must be opened again.
fn io_failed(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<std::io::Error>().is_some()
        || matches!(
            storage_error(error),
            Some(redb::StorageError::Io(_) | redb::StorageError::PreviousIo)
        )
}

fn is_disk_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let full = |io: &std::io::Error| {
        io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28)
    };
    error.downcast_ref::<std::io::Error>().is_some_and(full)
        || matches!(storage_error(error), Some(redb::StorageError::Io(io)) if full(io))
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    if is_disk_full(&e) {
        return StoreError::DiskFull(Box::new(e));
    }
    StoreError::Unavailable(Box::new(e))
}

impl EmbeddedStore {
    /// Opens (or creates) `switchyard.redb` in `dir`, creating the directory.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        let db = Database::create(dir.join("switchyard.redb")).map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(ENVS).map_err(unavailable)?;
        txn.open_table(FLAGS).map_err(unavailable)?;
        txn.open_table(SEGMENTS).map_err(unavailable)?;
        txn.open_table(TOKENS).map_err(unavailable)?;
        txn.open_table(AUDIT).map_err(unavailable)?;
        txn.open_table(METRICS).map_err(unavailable)?;
        txn.open_table(UNITS).map_err(unavailable)?;
        txn.open_table(SCHEDULES).map_err(unavailable)?;
        txn.open_table(USAGE).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        Ok(EmbeddedStore {
            handle: Arc::new(Handle {
                path: dir.join("switchyard.redb"),
                db: Mutex::new(Some(Arc::new(db))),
            }),
        })
    }

    /// Runs blocking database work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let handle = Arc::clone(&self.handle);
        tokio::task::spawn_blocking(move || {
            let db = handle.database()?;
            let result = work(&db);
            if let Err(StoreError::DiskFull(error) | StoreError::Unavailable(error)) = &result {
                if io_failed(error.as_ref()) {
                    handle.discard(&db);
                }
            }
            result
        })
        .await
        .map_err(unavailable)?
    }
}

fn append_audit(
    txn: &WriteTransaction,
    entries: Vec<AuditEntry>,
    revision: Option<u64>,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(AUDIT).map_err(unavailable)?;
    let first = table
        .last()
        .map_err(unavailable)?
        .map_or(1, |(id, _)| id.value() + 1);
    for (id, mut entry) in (first..).zip(entries) {
        entry.id = id;
        if revision.is_some() {
            entry.revision = revision;
        }
        table
            .insert(id, encode(&entry).as_str())
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Whether schedule `id` of `env` is stored and pending.
fn pending(
    schedules: &redb::Table<(&str, &str), &str>,
    env: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let Some(stored) = schedules.get((env, id)).map_err(unavailable)? else {
        return Ok(false);
    };
    let stored: Schedule = decode(format!("schedule {env}/{id}"), stored.value())?;
    Ok(stored.state == ScheduleState::Pending)
}

/// `env`'s revision, if it is `expected` (the compare of every compare-and-set write).
fn at_revision(envs: &redb::Table<&str, u64>, env: &str, expected: u64) -> Result<u64, StoreError> {
    let actual = envs
        .get(env)
        .map_err(unavailable)?
        .map(|v| v.value())
        .ok_or_else(|| StoreError::NoSuchEnvironment(env.to_owned()))?;
    if actual != expected {
        return Err(StoreError::RevisionConflict {
            env: env.to_owned(),
            expected,
            actual,
        });
    }
    Ok(actual)
}

fn read_env(db: &Database, env: &str) -> Result<Option<EnvRecord>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let envs = txn.open_table(ENVS).map_err(unavailable)?;
    let Some(revision) = envs.get(env).map_err(unavailable)?.map(|v| v.value()) else {
        return Ok(None);
    };
    let mut record = EnvRecord {
        name: EnvName::new(env),
        revision,
        flags: Vec::new(),
        segments: Vec::new(),
    };
    let flags = txn.open_table(FLAGS).map_err(unavailable)?;
    for item in flags.range((env, "")..).map_err(unavailable)? {
        let (key, value) = item.map_err(unavailable)?;
        let (e, k) = key.value();
        if e != env {
            break;
        }
        record
            .flags
            .push(decode::<Flag>(format!("flag {env}/{k}"), value.value())?);
    }
    let segments = txn.open_table(SEGMENTS).map_err(unavailable)?;
    for item in segments.range((env, "")..).map_err(unavailable)? {
        let (key, value) = item.map_err(unavailable)?;
        let (e, k) = key.value();
        if e != env {
            break;
        }
        record.segments.push(decode::<Segment>(
            format!("segment {env}/{k}"),
            value.value(),
        )?);
    }
    Ok(Some(record))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn load(&self) -> Result<Vec<EnvRecord>, StoreError> {
        self.blocking(|db| {
            let names: Vec<String> = {
                let txn = db.begin_read().map_err(unavailable)?;
                let envs = txn.open_table(ENVS).map_err(unavailable)?;
                let mut names = Vec::new();
                for item in envs.iter().map_err(unavailable)? {
                    names.push(item.map_err(unavailable)?.0.value().to_owned());
                }
                names
            };
            let mut records = Vec::new();
            for name in names {
                records.extend(read_env(db, &name)?);
            }
            Ok(records)
        })
        .await
    }

    async fn load_env(&self, env: &EnvName) -> Result<Option<EnvRecord>, StoreError> {
        let env = env.to_string();
        self.blocking(move |db| read_env(db, &env)).await
    }

    async fn create_env(&self, env: &EnvName, audit: AuditEntry) -> Result<bool, StoreError> {
        let env = env.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut envs = txn.open_table(ENVS).map_err(unavailable)?;
                if envs.get(env.as_str()).map_err(unavailable)?.is_some() {
                    return Ok(false);
                }
                envs.insert(env.as_str(), 0).map_err(unavailable)?;
            }
            append_audit(&txn, vec![audit], Some(0))?;
            txn.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn commit(&self, commit: Commit) -> Result<u64, StoreError> {
        self.blocking(move |db| {
            let env = commit.env.as_str();
            let txn = db.begin_write().map_err(unavailable)?;
            let revision = {
                let mut envs = txn.open_table(ENVS).map_err(unavailable)?;
                let actual = at_revision(&envs, env, commit.expected_revision)?;
                envs.insert(env, actual + 1).map_err(unavailable)?;
                actual + 1
            };
            if let Some(schedule) = &commit.schedule {
                let mut schedules = txn.open_table(SCHEDULES).map_err(unavailable)?;
                if !pending(&schedules, env, &schedule.id)? {
                    return Err(StoreError::ScheduleSettled(schedule.id.clone()));
                }
                schedules
                    .insert((env, schedule.id.as_str()), encode(schedule).as_str())
                    .map_err(unavailable)?;
            }
            {
                let mut flags = txn.open_table(FLAGS).map_err(unavailable)?;
                for (key, flag) in &commit.flags {
                    match flag {
                        Some(flag) => flags.insert((env, key.as_str()), encode(flag).as_str()),
                        None => flags.remove((env, key.as_str())).map(|_| None),
                    }
                    .map_err(unavailable)?;
                }
                let mut segments = txn.open_table(SEGMENTS).map_err(unavailable)?;
                for (key, segment) in &commit.segments {
                    match segment {
                        Some(segment) => {
                            segments.insert((env, key.as_str()), encode(segment).as_str())
                        }
                        None => segments.remove((env, key.as_str())).map(|_| None),
                    }
                    .map_err(unavailable)?;
                }
            }
            append_audit(&txn, commit.audit, Some(revision))?;
            txn.commit().map_err(unavailable)?;
            Ok(revision)
        })
        .await
    }

    async fn delete_env(
        &self,
        env: &EnvName,
        expected_revision: u64,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let env = env.to_string();
        self.blocking(move |db| {
            let env = env.as_str();
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut envs = txn.open_table(ENVS).map_err(unavailable)?;
                at_revision(&envs, env, expected_revision)?;
                envs.remove(env).map_err(unavailable)?;
                // Keys of one environment sort together: ("env", "") up to ("env\0", "")
                // is exactly this environment's range.
                let end = format!("{env}\0");
                let range = (env, "")..(end.as_str(), "");
                txn.open_table(FLAGS)
                    .map_err(unavailable)?
                    .retain_in(range.clone(), |_, _| false)
                    .map_err(unavailable)?;
                txn.open_table(SEGMENTS)
                    .map_err(unavailable)?
                    .retain_in(range, |_, _| false)
                    .map_err(unavailable)?;
            }
            append_audit(&txn, vec![audit], Some(expected_revision))?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(TOKENS).map_err(unavailable)?;
            let mut tokens = Vec::new();
            for item in table.iter().map_err(unavailable)? {
                let (name, json) = item.map_err(unavailable)?;
                tokens.push(decode(format!("token {}", name.value()), json.value())?);
            }
            Ok(tokens)
        })
        .await
    }

    async fn create_token(&self, token: TokenRecord, audit: AuditEntry) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(TOKENS).map_err(unavailable)?;
                if table
                    .get(token.name.as_str())
                    .map_err(unavailable)?
                    .is_some()
                {
                    return Err(StoreError::DuplicateToken(token.name));
                }
                table
                    .insert(token.name.as_str(), encode(&token).as_str())
                    .map_err(unavailable)?;
            }
            append_audit(&txn, vec![audit], None)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn delete_token(
        &self,
        name: &str,
        audit: AuditEntry,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let name = name.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let removed = {
                let mut table = txn.open_table(TOKENS).map_err(unavailable)?;
                let removed = table.remove(name.as_str()).map_err(unavailable)?;
                match removed {
                    Some(json) => Some(decode::<TokenRecord>(
                        format!("token {name}"),
                        json.value(),
                    )?),
                    None => None,
                }
            };
            if removed.is_none() {
                return Ok(None);
            }
            append_audit(&txn, vec![audit], None)?;
            txn.commit().map_err(unavailable)?;
            Ok(removed)
        })
        .await
    }

    async fn replace_token(
        &self,
        expected_hash: &str,
        token: TokenRecord,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let expected_hash = expected_hash.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(TOKENS).map_err(unavailable)?;
                let stored = match table.get(token.name.as_str()).map_err(unavailable)? {
                    Some(json) => {
                        decode::<TokenRecord>(format!("token {}", token.name), json.value())?
                    }
                    None => return Ok(false),
                };
                if stored.hash != expected_hash {
                    return Ok(false);
                }
                table
                    .insert(token.name.as_str(), encode(&token).as_str())
                    .map_err(unavailable)?;
            }
            append_audit(&txn, vec![audit], None)?;
            txn.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn record_usage(
        &self,
        of: UsageOf<'_>,
        seen: &[(String, u64)],
    ) -> Result<(), StoreError> {
        let scope = usage_scope(of);
        let seen = seen.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(USAGE).map_err(unavailable)?;
                for (name, at) in &seen {
                    let key = (scope.as_str(), name.as_str());
                    let last = table.get(key).map_err(unavailable)?.map(|v| v.value());
                    if last.is_none_or(|last| last < *at) {
                        table.insert(key, *at).map_err(unavailable)?;
                    }
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn usage(&self, of: UsageOf<'_>) -> Result<Vec<(String, u64)>, StoreError> {
        let scope = usage_scope(of);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(USAGE).map_err(unavailable)?;
            let end = format!("{scope}\0");
            let mut found = Vec::new();
            for row in table
                .range((scope.as_str(), "")..(end.as_str(), ""))
                .map_err(unavailable)?
            {
                let (key, at) = row.map_err(unavailable)?;
                found.push((key.value().1.to_owned(), at.value()));
            }
            Ok(found)
        })
        .await
    }

    async fn put_schedule(&self, schedule: &Schedule, audit: AuditEntry) -> Result<(), StoreError> {
        let schedule = schedule.clone();
        self.blocking(move |db| {
            let env = schedule.env.as_str();
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let envs = txn.open_table(ENVS).map_err(unavailable)?;
                if envs.get(env).map_err(unavailable)?.is_none() {
                    return Err(StoreError::NoSuchEnvironment(env.to_owned()));
                }
                txn.open_table(SCHEDULES)
                    .map_err(unavailable)?
                    .insert((env, schedule.id.as_str()), encode(&schedule).as_str())
                    .map_err(unavailable)?;
            }
            append_audit(&txn, vec![audit], None)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn schedules(&self, env: Option<&EnvName>) -> Result<Vec<Schedule>, StoreError> {
        let env = env.map(ToString::to_string);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(SCHEDULES).map_err(unavailable)?;
            let mut found = Vec::new();
            for row in table.iter().map_err(unavailable)? {
                let (key, value) = row.map_err(unavailable)?;
                let (at, id) = key.value();
                if env.as_deref().is_none_or(|e| e == at) {
                    found.push(decode(format!("schedule {at}/{id}"), value.value())?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn settle_schedule(
        &self,
        schedule: &Schedule,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let schedule = schedule.clone();
        self.blocking(move |db| {
            let env = schedule.env.as_str();
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut schedules = txn.open_table(SCHEDULES).map_err(unavailable)?;
                if !pending(&schedules, env, &schedule.id)? {
                    return Ok(false);
                }
                schedules
                    .insert((env, schedule.id.as_str()), encode(&schedule).as_str())
                    .map_err(unavailable)?;
            }
            append_audit(&txn, vec![audit], None)?;
            txn.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let query = query.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(AUDIT).map_err(unavailable)?;
            let mut entries = Vec::new();
            for item in table.iter().map_err(unavailable)?.rev() {
                let (id, json) = item.map_err(unavailable)?;
                let entry = decode_audit(id.value(), json.value());
                if query.since_ms.is_some_and(|since| entry.at_ms < since) {
                    // Ids follow time, so everything further is older; a degraded
                    // entry whose time cannot be read says nothing about the rest.
                    if entry.error.is_some() {
                        continue;
                    }
                    break;
                }
                if query.admits(&entry) {
                    entries.push(entry);
                    if entries.len() >= query.limit {
                        break;
                    }
                }
            }
            Ok(entries)
        })
        .await
    }

    async fn record_metrics(
        &self,
        env: &EnvName,
        minute: u64,
        batch: &MetricsBatch,
    ) -> Result<(), StoreError> {
        let env = env.to_string();
        let batch = batch.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(METRICS).map_err(unavailable)?;
                let mut add = |flag: &str, variant: &str, event: &str, count: u64| {
                    let key = (env.as_str(), flag, minute, variant, event);
                    let current = table
                        .get(key)
                        .map_err(unavailable)?
                        .map_or(0, |v| v.value());
                    table
                        .insert(key, current.saturating_add(count))
                        .map_err(unavailable)
                        .map(drop)
                };
                for e in &batch.exposures {
                    add(e.flag.as_str(), &e.variant, "", e.count)?;
                }
                for e in &batch.events {
                    add(e.flag.as_str(), &e.variant, &e.event, e.count)?;
                }
            }
            {
                let mut table = txn.open_table(UNITS).map_err(unavailable)?;
                for (flag, record) in &batch.units {
                    let json = encode(record);
                    table
                        .insert(
                            (env.as_str(), flag.as_str(), record.start_ms, record.id),
                            json.as_str(),
                        )
                        .map_err(unavailable)?;
                    // Records past the retention go as new ones arrive.
                    let cutoff = record.start_ms.saturating_sub(UNITS_RETENTION_MS);
                    let old: Vec<(u64, u64)> = table
                        .range(
                            (env.as_str(), flag.as_str(), 0, 0)
                                ..(env.as_str(), flag.as_str(), cutoff, 0),
                        )
                        .map_err(unavailable)?
                        .map(|item| item.map(|(k, _)| (k.value().2, k.value().3)))
                        .collect::<Result<_, _>>()
                        .map_err(unavailable)?;
                    for (start, id) in old {
                        table
                            .remove((env.as_str(), flag.as_str(), start, id))
                            .map_err(unavailable)?;
                    }
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn flag_units(
        &self,
        env: &EnvName,
        flag: &FlagKey,
        since_ms: u64,
    ) -> Result<Vec<UnitsRecord>, StoreError> {
        let (env, flag) = (env.to_string(), flag.to_string());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(UNITS).map_err(unavailable)?;
            let range = (env.as_str(), flag.as_str(), since_ms, 0)
                ..=(env.as_str(), flag.as_str(), u64::MAX, u64::MAX);
            let mut records = Vec::new();
            for item in table.range(range).map_err(unavailable)? {
                let (_, json) = item.map_err(unavailable)?;
                records.push(decode(
                    format!("units of flag `{flag}` in `{env}`"),
                    json.value(),
                )?);
            }
            Ok(records)
        })
        .await
    }

    async fn flag_metrics(
        &self,
        env: &EnvName,
        flag: &FlagKey,
        from_minute: u64,
        to_minute: u64,
    ) -> Result<BTreeMap<String, VariantCounts>, StoreError> {
        let (env, flag) = (env.to_string(), flag.to_string());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(METRICS).map_err(unavailable)?;
            let mut counts: BTreeMap<String, VariantCounts> = BTreeMap::new();
            let start = (env.as_str(), flag.as_str(), from_minute, "", "");
            for item in table.range(start..).map_err(unavailable)? {
                let (key, count) = item.map_err(unavailable)?;
                let (e, f, minute, variant, event) = key.value();
                if e != env || f != flag || minute > to_minute {
                    break;
                }
                let slot = counts.entry(variant.to_owned()).or_default();
                // Saturating: each minute's count may already be saturated.
                let total = if event.is_empty() {
                    &mut slot.exposures
                } else {
                    slot.events.entry(event.to_owned()).or_default()
                };
                *total = total.saturating_add(count.value());
            }
            Ok(counts)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventCount, ExposureCount, MetricsBatch};

    /// Counts saturate per minute when recorded, so summing a window must saturate
    /// too (it overflowed: a 500 in debug builds, a wrapped count in release).
    #[tokio::test]
    async fn window_sums_saturate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path()).expect("opens");
        let env = EnvName::new("e");
        let flag = FlagKey::new("f");
        let batch = MetricsBatch {
            exposures: vec![ExposureCount {
                flag: flag.clone(),
                variant: "on".to_owned(),
                count: u64::MAX,
                units: None,
            }],
            events: vec![EventCount {
                event: "click".to_owned(),
                flag: flag.clone(),
                variant: "on".to_owned(),
                count: u64::MAX,
                units: None,
                values: None,
            }],
            units: Vec::new(),
        };
        for minute in [1, 2] {
            store
                .record_metrics(&env, minute, &batch)
                .await
                .expect("records");
        }
        let counts = store.flag_metrics(&env, &flag, 1, 2).await.expect("reads");
        assert_eq!(counts["on"].exposures, u64::MAX);
        assert_eq!(counts["on"].events["click"], u64::MAX);
    }
}
