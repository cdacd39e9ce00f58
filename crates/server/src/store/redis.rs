//! The Redis store, shared by many replicas. Key layout (docs/redis.md):
//!
//! - per environment, all under one hash tag so one environment lives in one Redis
//!   Cluster slot: `sy:{env:NAME}:rev` (integer), `…:flags` and `…:segments` (hashes key →
//!   JSON), `…:audit` (list of `id\tJSON`), `…:metrics:FLAG:MINUTE` (hash
//!   `variant\x1fevent` → count, expiring after 32 days);
//! - global, under the hash tag `{sy}`: `sy:{sy}:envs` (set of names), `sy:{sy}:tokens`
//!   (hash name → JSON), `sy:{sy}:token-use` (hash name → last used, ms),
//!   `sy:{sy}:audit` (token changes);
//! - pub/sub channel `sy:changes`: one message per write, published by the same Lua
//!   script that makes the write, so no write goes unannounced.
//!
//! Every write is one Lua script: compare the revision, apply, bump the revision,
//! append audit entries, publish — atomically.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use redis::{AsyncCommands, Script};
use serde_json::value::RawValue;
use switchyard_core::model::{EnvName, FlagKey};
use switchyard_core::sync::ChangeDocument;
use switchyard_core::{Flag, Segment};
use switchyard_redis::{Conn, Durability, Redis};

use super::{
    decode, decode_audit, encode, AuditEntry, AuditQuery, Commit, EnvRecord, MetricsBatch,
    Schedule, Store, StoreError, TokenRecord, UnitsRecord, UsageOf, VariantCounts,
    UNITS_RETENTION_MS,
};

/// The pub/sub channel announcing every write.
pub const CHANNEL: &str = "sy:changes";
const ENVS: &str = "sy:{sy}:envs";
const TOKENS: &str = "sy:{sy}:tokens";
/// Hash token name → when it was last used (ms since the epoch).
const TOKEN_USE: &str = "sy:{sy}:token-use";

/// The hash of last-use times of `of`.
fn usage_key(of: UsageOf<'_>) -> String {
    match of {
        UsageOf::Flags(env) => env_key(env.as_str(), "usage"),
        UsageOf::Tokens => TOKEN_USE.to_owned(),
    }
}
const GLOBAL_AUDIT: &str = "sy:{sy}:audit";
/// Names of deleted environments, whose audit lists are kept and still read.
const DELETED_ENVS: &str = "sy:{sy}:deleted-envs";
/// How many audit entries of one list a query reads at most (newest first).
const AUDIT_SCAN: isize = 10_000;
const METRICS_TTL_SECS: i64 = 32 * 86_400;

/// The keys of one environment.
pub fn env_key(env: &str, part: &str) -> String {
    format!("sy:{{env:{env}}}:{part}")
}

const COMMIT: &str = r"
local rev = redis.call('GET', KEYS[1])
if not rev then return {2, 0} end
rev = tonumber(rev)
if rev ~= tonumber(ARGV[1]) then return {1, rev} end
if ARGV[5] ~= '' then
  local stored = redis.call('HGET', KEYS[5], ARGV[5])
  if not stored or cjson.decode(stored).state ~= 'pending' then return {3, 0} end
  redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
end
local i = 7
for _ = 1, tonumber(ARGV[4]) do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[2], ARGV[i]) else redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
local segments = tonumber(ARGV[i]); i = i + 1
for _ = 1, segments do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[3], ARGV[i]) else redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
local new = redis.call('INCR', KEYS[1])
local n = redis.call('LLEN', KEYS[4])
while i <= #ARGV do
  n = n + 1
  redis.call('RPUSH', KEYS[4], n .. '\t' .. ARGV[i])
  i = i + 1
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return {0, new}
";

const CREATE_ENV: &str = r"
if not redis.call('SET', KEYS[1], 0, 'NX') then return 0 end
local n = redis.call('LLEN', KEYS[2]) + 1
redis.call('RPUSH', KEYS[2], n .. '\t' .. ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

const DELETE_ENV: &str = r"
local rev = redis.call('GET', KEYS[1])
if not rev then return {2, 0} end
rev = tonumber(rev)
if rev ~= tonumber(ARGV[1]) then return {1, rev} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local n = redis.call('LLEN', KEYS[4]) + 1
redis.call('RPUSH', KEYS[4], n .. '\t' .. ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {0, rev}
";

/// Moves a name from the set of environments to the set of deleted ones.
const FORGET_ENV: &str = r"
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
";

/// Raises each `flag → ms` pair of the usage hash to at least `ms`.
const RECORD_USAGE: &str = r"
for i = 1, #ARGV, 2 do
  local last = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if last < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
";

/// Stores a pending schedule in an existing environment, with its audit entry; 2
/// when one with its id is there already (the same script retried after a lost reply).
const PUT_SCHEDULE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 2 end
local n = redis.call('LLEN', KEYS[3]) + 1
redis.call('RPUSH', KEYS[3], n .. '\t' .. ARGV[3])
return 1
";

/// Replaces a pending schedule, with its audit entry; 0 when it is not pending.
const SETTLE_SCHEDULE: &str = r"
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored or cjson.decode(stored).state ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local n = redis.call('LLEN', KEYS[2]) + 1
redis.call('RPUSH', KEYS[2], n .. '\t' .. ARGV[3])
return 1
";

const CREATE_TOKEN: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local n = redis.call('LLEN', KEYS[2]) + 1
redis.call('RPUSH', KEYS[2], n .. '\t' .. ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
";

/// Replaces a token whose stored hash is still ARGV[2]; 0 when it is not.
const REPLACE_TOKEN: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old or cjson.decode(old).hash ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local n = redis.call('LLEN', KEYS[2]) + 1
redis.call('RPUSH', KEYS[2], n .. '\t' .. ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
";

const DELETE_TOKEN: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
local n = redis.call('LLEN', KEYS[2]) + 1
redis.call('RPUSH', KEYS[2], n .. '\t' .. ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return old
";

/// A message on [`CHANNEL`]. Replicas read it with the change typed
/// (`Announcement<ChangeDocument>`, the default); the writer embeds the change
/// document it already serialised (`Announcement<&RawValue>`, see [`commit_message`]).
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Announcement<C = ChangeDocument> {
    /// An environment moved to `revision`; `change` is its SDK change document.
    Commit {
        /// The environment.
        env: EnvName,
        /// Its new revision.
        revision: u64,
        /// `{environment, revision, flags, deleted_flags, segments, deleted_segments}`.
        change: C,
    },
    /// An environment was created.
    EnvCreated {
        /// The environment.
        env: EnvName,
    },
    /// An environment was deleted.
    EnvDeleted {
        /// The environment.
        env: EnvName,
    },
    /// Tokens were created or deleted.
    Tokens,
}

/// An announcement as the writer encodes it.
type Written<'a> = Announcement<&'a RawValue>;

/// The announcement of a commit of `env` at `revision`, embedding its change
/// document `change` (the SDK change event's bytes) as it is: checked to be JSON,
/// neither decoded nor re-encoded.
pub fn commit_message(env: &EnvName, revision: u64, change: &[u8]) -> Result<String, StoreError> {
    let change: &RawValue =
        serde_json::from_slice(change).map_err(|source| StoreError::Corrupt {
            what: format!("change document of {env}@{revision}"),
            source,
        })?;
    let announcement = Written::Commit {
        env: env.clone(),
        revision,
        change,
    };
    Ok(encode(&announcement))
}

/// A [`Store`] on Redis.
#[derive(Clone)]
pub struct RedisStore {
    redis: Redis,
    /// Reads, and writes whose loss costs little (usage times, metrics).
    conn: Conn,
    /// Writes of state: they wait for the replicas [`Durability`] names.
    writer: Conn,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// The answer `{status, value}` of a compare-and-set script (COMMIT, DELETE_ENV): 0 done
/// (`value` the new revision), 1 at another revision (`value` it), 2 no such environment,
/// 3 the commit's schedule (`schedule`) is not pending.
fn compared(
    env: &str,
    expected: u64,
    (status, value): (i64, u64),
    schedule: Option<&str>,
) -> Result<u64, StoreError> {
    match status {
        0 => Ok(value),
        1 => Err(StoreError::RevisionConflict {
            env: env.to_owned(),
            expected,
            actual: value,
        }),
        3 => Err(StoreError::ScheduleSettled(
            schedule.unwrap_or_default().to_owned(),
        )),
        _ => Err(StoreError::NoSuchEnvironment(env.to_owned())),
    }
}

/// `id\tJSON` → entry with its id (degraded when the JSON cannot be decoded).
fn audit_line(line: &str) -> AuditEntry {
    let (id, json) = line.split_once('\t').unwrap_or(("0", line));
    let id = id.parse().unwrap_or(0);
    let mut entry = decode_audit(id, json);
    entry.id = id;
    entry
}

impl RedisStore {
    /// A token write: `script` over the tokens hash and the global audit list with
    /// `args`, then the audit entry and the announcement that tokens changed (the
    /// scripts' last three arguments).
    async fn write_tokens<T: redis::FromRedisValue>(
        &self,
        script: &str,
        args: &[&str],
        audit: &AuditEntry,
    ) -> Result<T, StoreError> {
        let script = Script::new(script);
        let mut invocation = script.prepare_invoke();
        invocation.key(TOKENS).key(GLOBAL_AUDIT);
        for arg in args {
            invocation.arg(*arg);
        }
        invocation
            .arg(encode(audit))
            .arg(CHANNEL)
            .arg(encode(&Written::Tokens));
        let mut conn = self.writer.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// Connects to the deployment `url` names (one server, a Cluster or a Sentinel
    /// primary: [`switchyard_redis::Target`]), writing with `durability`. Commands
    /// fail fast while Redis is unreachable (so writes answer 503 promptly) and
    /// reconnect by themselves.
    pub async fn connect(url: &str, durability: Durability) -> Result<Self, StoreError> {
        let redis = Redis::connect(url, durability)
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let conn = redis.conn();
        let writer = redis.writer();
        Ok(RedisStore {
            redis,
            conn,
            writer,
        })
    }

    /// The deployment, for the replication subscriber's own connection.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Runs a read, once more if the connection had dropped: the connection
    /// manager reconnects after reporting the failure, and reads are idempotent.
    /// (Writes are never retried: the outcome of a dropped write is unknown.)
    async fn read<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match op(self.conn.clone()).await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                op(self.conn.clone()).await.map_err(unavailable)
            }
            result => result.map_err(unavailable),
        }
    }

    /// Every environment's current revision.
    pub async fn revisions(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let names: Vec<String> = self
            .read(|mut conn| async move { conn.smembers(ENVS).await })
            .await?;
        // One GET each: the environments live in different Cluster slots.
        let revs: Vec<Option<u64>> = futures_util::future::try_join_all(names.iter().map(|name| {
            let key = env_key(name, "rev");
            self.read(move |mut conn| {
                let key = key.clone();
                async move { conn.get(key).await }
            })
        }))
        .await?;
        Ok(names
            .into_iter()
            .zip(revs)
            .filter_map(|(name, rev)| rev.map(|rev| (name, rev)))
            .collect())
    }

    /// Checks the connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await
        .map(drop)
    }

    async fn read_env(&self, env: &str) -> Result<Option<EnvRecord>, StoreError> {
        // One MULTI/EXEC so revision, flags and segments are read at one instant.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .get(env_key(env, "rev"))
            .hgetall(env_key(env, "flags"))
            .hgetall(env_key(env, "segments"));
        type Fields = Vec<(String, String)>;
        let (rev, flags, segments): (Option<u64>, Fields, Fields) = self
            .read(|mut conn| {
                let pipe = pipe.clone();
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        let Some(revision) = rev else {
            return Ok(None);
        };
        let mut record = EnvRecord {
            name: EnvName::new(env),
            revision,
            flags: Vec::with_capacity(flags.len()),
            segments: Vec::with_capacity(segments.len()),
        };
        for (key, json) in flags {
            record
                .flags
                .push(decode::<Flag>(format!("flag {env}/{key}"), &json)?);
        }
        for (key, json) in segments {
            record
                .segments
                .push(decode::<Segment>(format!("segment {env}/{key}"), &json)?);
        }
        record.flags.sort_by(|a, b| a.key.cmp(&b.key));
        record.segments.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Some(record))
    }

    async fn audit_list(&self, key: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let lines: Vec<String> = conn
            .lrange(key, -AUDIT_SCAN, -1)
            .await
            .map_err(unavailable)?;
        Ok(lines.iter().map(|line| audit_line(line)).collect())
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn load(&self) -> Result<Vec<EnvRecord>, StoreError> {
        let mut names: Vec<String> = self
            .read(|mut conn| async move { conn.smembers(ENVS).await })
            .await?;
        names.sort();
        let mut records = Vec::new();
        for name in names {
            records.extend(self.read_env(&name).await?);
        }
        Ok(records)
    }

    async fn load_env(&self, env: &EnvName) -> Result<Option<EnvRecord>, StoreError> {
        self.read_env(env.as_str()).await
    }

    async fn create_env(&self, env: &EnvName, mut audit: AuditEntry) -> Result<bool, StoreError> {
        let mut conn = self.writer.clone();
        // The set first: a crash in between leaves a name without keys, which `load` skips.
        let _: i64 = conn.sadd(ENVS, env.as_str()).await.map_err(unavailable)?;
        audit.revision = Some(0);
        let message = encode(&Written::EnvCreated { env: env.clone() });
        let created: i64 = Script::new(CREATE_ENV)
            .key(env_key(env.as_str(), "rev"))
            .key(env_key(env.as_str(), "audit"))
            .arg(encode(&audit))
            .arg(CHANNEL)
            .arg(message)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(created == 1)
    }

    async fn commit(&self, commit: Commit) -> Result<u64, StoreError> {
        let env = commit.env.as_str();
        let revision = commit.expected_revision + 1;
        let message = commit_message(&commit.env, revision, &commit.event)?;
        let script = Script::new(COMMIT);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(env_key(env, "rev"))
            .key(env_key(env, "flags"))
            .key(env_key(env, "segments"))
            .key(env_key(env, "audit"))
            .key(env_key(env, "schedules"))
            .arg(commit.expected_revision)
            .arg(CHANNEL)
            .arg(message)
            .arg(commit.flags.len())
            .arg(commit.schedule.as_ref().map_or("", |s| s.id.as_str()))
            .arg(commit.schedule.as_ref().map(encode).unwrap_or_default());
        for (key, flag) in &commit.flags {
            invocation
                .arg(key.as_str())
                .arg(flag.as_ref().map(encode).unwrap_or_default());
        }
        invocation.arg(commit.segments.len());
        for (key, segment) in &commit.segments {
            invocation
                .arg(key.as_str())
                .arg(segment.as_ref().map(encode).unwrap_or_default());
        }
        for mut entry in commit.audit {
            entry.revision = Some(revision);
            invocation.arg(encode(&entry));
        }
        let mut conn = self.writer.clone();
        let answer: (i64, u64) = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let schedule = commit.schedule.as_ref().map(|s| s.id.as_str());
        compared(env, commit.expected_revision, answer, schedule)
    }

    async fn delete_env(
        &self,
        env: &EnvName,
        expected_revision: u64,
        mut audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let name = env.as_str();
        audit.revision = Some(expected_revision);
        let message = encode(&Written::EnvDeleted { env: env.clone() });
        let mut conn = self.writer.clone();
        let (status, actual): (i64, u64) = Script::new(DELETE_ENV)
            .key(env_key(name, "rev"))
            .key(env_key(name, "flags"))
            .key(env_key(name, "segments"))
            .key(env_key(name, "audit"))
            .arg(expected_revision)
            .arg(encode(&audit))
            .arg(CHANNEL)
            .arg(message)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        compared(name, expected_revision, (status, actual), None)?;
        // The names live in another hash slot than the environment's keys, so they
        // change after the script; a crash in between leaves a name without keys,
        // which `load` skips, as after a crash in `create_env`.
        Script::new(FORGET_ENV)
            .key(ENVS)
            .key(DELETED_ENVS)
            .arg(name)
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let all: Vec<(String, String)> = self
            .read(|mut conn| async move { conn.hgetall(TOKENS).await })
            .await?;
        all.iter()
            .map(|(name, json)| decode(format!("token {name}"), json))
            .collect()
    }

    async fn create_token(&self, token: TokenRecord, audit: AuditEntry) -> Result<(), StoreError> {
        let created: i64 = self
            .write_tokens(CREATE_TOKEN, &[&token.name, &encode(&token)], &audit)
            .await?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError::DuplicateToken(token.name))
        }
    }

    async fn delete_token(
        &self,
        name: &str,
        audit: AuditEntry,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let old: Option<String> = self.write_tokens(DELETE_TOKEN, &[name], &audit).await?;
        old.map(|json| decode(format!("token {name}"), &json))
            .transpose()
    }

    async fn replace_token(
        &self,
        expected_hash: &str,
        token: TokenRecord,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let replaced: i64 = self
            .write_tokens(
                REPLACE_TOKEN,
                &[&token.name, expected_hash, &encode(&token)],
                &audit,
            )
            .await?;
        Ok(replaced == 1)
    }

    async fn record_usage(
        &self,
        of: UsageOf<'_>,
        seen: &[(String, u64)],
    ) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let script = Script::new(RECORD_USAGE);
        let mut invocation = script.prepare_invoke();
        invocation.key(usage_key(of));
        for (name, at) in seen {
            invocation.arg(name).arg(*at);
        }
        let mut conn = self.conn.clone();
        let _: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn usage(&self, of: UsageOf<'_>) -> Result<Vec<(String, u64)>, StoreError> {
        let key = usage_key(of);
        let found: HashMap<String, u64> = self
            .read(|mut conn| {
                let key = key.clone();
                async move { conn.hgetall(key).await }
            })
            .await?;
        Ok(found.into_iter().collect())
    }

    async fn put_schedule(&self, schedule: &Schedule, audit: AuditEntry) -> Result<(), StoreError> {
        let env = schedule.env.as_str();
        let mut conn = self.writer.clone();
        let stored: i64 = Script::new(PUT_SCHEDULE)
            .key(env_key(env, "rev"))
            .key(env_key(env, "schedules"))
            .key(env_key(env, "audit"))
            .arg(&schedule.id)
            .arg(encode(schedule))
            .arg(encode(&audit))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if stored == 0 {
            Err(StoreError::NoSuchEnvironment(env.to_owned()))
        } else {
            Ok(())
        }
    }

    async fn schedules(&self, env: Option<&EnvName>) -> Result<Vec<Schedule>, StoreError> {
        let names: Vec<String> = match env {
            Some(env) => vec![env.to_string()],
            None => {
                self.read(|mut conn| async move { conn.smembers(ENVS).await })
                    .await?
            }
        };
        let mut found = Vec::new();
        for name in names {
            let key = env_key(&name, "schedules");
            let values: Vec<String> = self
                .read(|mut conn| {
                    let key = key.clone();
                    async move { conn.hvals(key).await }
                })
                .await?;
            for value in values {
                found.push(decode(format!("schedule in {name}"), &value)?);
            }
        }
        Ok(found)
    }

    async fn settle_schedule(
        &self,
        schedule: &Schedule,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let env = schedule.env.as_str();
        let mut conn = self.writer.clone();
        let settled: i64 = Script::new(SETTLE_SCHEDULE)
            .key(env_key(env, "schedules"))
            .key(env_key(env, "audit"))
            .arg(&schedule.id)
            .arg(encode(schedule))
            .arg(encode(&audit))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(settled == 1)
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        // (list, the environment it belongs to)
        let mut lists = Vec::new();
        match &query.env {
            Some(env) => lists.push((env_key(env.as_str(), "audit"), Some(env.clone()))),
            None => {
                lists.push((GLOBAL_AUDIT.to_owned(), None));
                let mut conn = self.conn.clone();
                let names: Vec<String> = conn
                    .sunion(&[ENVS, DELETED_ENVS])
                    .await
                    .map_err(unavailable)?;
                lists.extend(
                    names
                        .into_iter()
                        .map(|n| (env_key(&n, "audit"), Some(EnvName::new(n)))),
                );
            }
        }
        let mut entries = Vec::new();
        for (list, list_env) in lists {
            for mut entry in self.audit_list(&list).await? {
                // A degraded entry whose environment cannot be read is in its list's.
                if entry.error.is_some() && entry.env.is_none() {
                    entry.env.clone_from(&list_env);
                }
                if query.admits(&entry) {
                    entries.push(entry);
                }
            }
        }
        // Newest first: by time, then by position within a list.
        entries.sort_by_key(|e| std::cmp::Reverse((e.at_ms, e.id)));
        entries.truncate(query.limit);
        Ok(entries)
    }

    async fn record_metrics(
        &self,
        env: &EnvName,
        minute: u64,
        batch: &MetricsBatch,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        let mut add = |flag: &str, variant: &str, event: &str, count: u64| {
            let key = env_key(env.as_str(), &format!("metrics:{flag}:{minute}"));
            pipe.hincr(&key, format!("{variant}\x1f{event}"), count)
                .ignore()
                .expire(&key, METRICS_TTL_SECS)
                .ignore();
        };
        for e in &batch.exposures {
            add(e.flag.as_str(), &e.variant, "", e.count);
        }
        for e in &batch.events {
            add(e.flag.as_str(), &e.variant, &e.event, e.count);
        }
        // Unit records: a sorted set per flag scored by start; past the retention they
        // are trimmed as new ones arrive, and the key expires when none do.
        for (flag, record) in &batch.units {
            let key = env_key(env.as_str(), &format!("units:{flag}"));
            let json = encode(record);
            let cutoff = record.start_ms.saturating_sub(UNITS_RETENTION_MS);
            pipe.zadd(&key, json, record.start_ms)
                .ignore()
                .zrembyscore(&key, 0, cutoff)
                .ignore()
                .pexpire(&key, UNITS_RETENTION_MS as i64)
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.atomic()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn flag_units(
        &self,
        env: &EnvName,
        flag: &FlagKey,
        since_ms: u64,
    ) -> Result<Vec<UnitsRecord>, StoreError> {
        let key = env_key(env.as_str(), &format!("units:{flag}"));
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn
            .zrangebyscore(&key, since_ms, "+inf")
            .await
            .map_err(unavailable)?;
        members
            .iter()
            .map(|json| decode(format!("units of flag `{flag}` in `{env}`"), json))
            .collect()
    }

    async fn flag_metrics(
        &self,
        env: &EnvName,
        flag: &FlagKey,
        from_minute: u64,
        to_minute: u64,
    ) -> Result<BTreeMap<String, VariantCounts>, StoreError> {
        let mut pipe = redis::pipe();
        for minute in from_minute..=to_minute {
            pipe.hgetall(env_key(env.as_str(), &format!("metrics:{flag}:{minute}")));
        }
        let mut conn = self.conn.clone();
        let minutes: Vec<Vec<(String, u64)>> =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let mut counts: BTreeMap<String, VariantCounts> = BTreeMap::new();
        for (field, count) in minutes.into_iter().flatten() {
            let (variant, event) = field.split_once('\x1f').unwrap_or((field.as_str(), ""));
            let slot = counts.entry(variant.to_owned()).or_default();
            // Saturating: each minute's count may already be saturated.
            let total = if event.is_empty() {
                &mut slot.exposures
            } else {
                slot.events.entry(event.to_owned()).or_default()
            };
            *total = total.saturating_add(count);
        }
        Ok(counts)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.ping().await
    }
}
