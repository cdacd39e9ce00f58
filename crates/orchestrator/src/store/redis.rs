//! The Redis store, shared by several orchestrator replicas: each release is driven by
//! the one replica holding its lease, and every write of a release is fenced by that
//! lease, so a replica that lost it (paused, partitioned, its lease expired) can no
//! longer overwrite what the new holder stores. Guide: docs/orchestrator.md, "Several
//! orchestrators: Redis and leases".
//!
//! # Key layout
//!
//! Every key shares the hash tag `{sy-orch}`, so the whole orchestrator state lives in
//! one Redis Cluster slot and every script below is legal there (the state is small: a
//! few releases and their history):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{sy-orch}:release:NAME:release` | string | the current [`Release`] as JSON |
//! | `{sy-orch}:release:NAME:lease` | string, with a `PX` expiry | the owner id of the replica driving it |
//! | `{sy-orch}:release:NAME:commands` | list | queued commands ([`Event`] JSON), oldest first |
//! | `{sy-orch}:release:NAME:archived` | set | `created_at` of every archived release of this name |
//! | `{sy-orch}:releases` | set | names of the current releases |
//! | `{sy-orch}:history` | sorted set | archived release JSON, scored by `created_at` |
//!
//! Earlier versions tagged each release's keys by name (`{sy-orch:NAME}:PART`,
//! `sy-orch:releases`, `sy-orch:history`); [`RedisStore::open`] renames those once.
//!
//! # Guarantees (each write is one Lua script, so atomic)
//!
//! - [`StateStore::save`] writes the release only if
//!   1. the lease is held by this store's owner — or there is no lease **and** nothing
//!      is stored under the name: the very first save when a plan is applied (once a
//!      release exists, writing it without the lease is refused, so an expired lease
//!      cannot be written through; a replica that applies a plan may also acquire first
//!      and then save);
//!   2. the stored release (if any) is the same release (same `created_at`: a stale
//!      replica cannot overwrite a newer release of the same name) with a lower
//!      `revision` (a delayed or duplicated save cannot move it backwards);
//!   3. that release was not archived (its `created_at` is not in `:archived`), so an
//!      archived release never comes back.
//!
//!   Otherwise it fails with [`StoreError::LeaseLost`]. Saving exactly the bytes already
//!   stored succeeds without writing, so a save retried after a lost reply is not
//!   mistaken for a lost lease.
//! - [`StateStore::acquire`] sets the lease if there is none (`SET NX PX`), renews it
//!   (`PEXPIRE`) if `owner` holds it, and otherwise leaves it: `true` when `owner` holds it
//!   afterwards. Expiry is judged by the Redis server's clock alone, which is the same
//!   clock that judges the fence in `save` — replicas' clocks never matter.
//! - [`StateStore::release_lease`] deletes the lease only if `owner` holds it.
//! - [`StateStore::take_commands`] reads and deletes the queue in one step: a command is
//!   taken by exactly one caller, in the order pushed.
//! - [`StateStore::archive`] moves the release into history, records its `created_at`
//!   as archived, drops its command queue (commands were meant for it, not for a later
//!   release of the same name) and removes the name from `sy-orch:releases`, all at once.
//!   It leaves the lease alone: a lease names who drives release NAME, so a replica
//!   whose release has finished gives it up with `release_lease`.
//!
//! Durability is what Redis offers: an acknowledged save survives a Redis crash only with
//! `appendonly yes` and `appendfsync always` (with `everysec`, up to a second of saves
//! can be lost); a failover loses no acknowledged save when saves wait for a replica
//! (`--redis-wait-replicas`, docs/redis.md).
//!
//! Reconnects: the connection ([`switchyard_redis::Conn`]) reconnects by itself and
//! follows Cluster redirections and Sentinel failovers. Reads are retried once after a
//! dropped connection; writes never are by this store (their outcome is unknown) — the
//! caller retries a save, which the identical-bytes rule above makes safe.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, RedisResult, Script};
use switchyard_redis::{Conn, Durability, Redis};
use tracing::{debug, warn};

use super::{Release, StateStore, StoreError};
use crate::machine::Event;

/// The set of current release names.
pub const RELEASES: &str = "{sy-orch}:releases";
/// The sorted set of archived releases (JSON), scored by `created_at`.
pub const HISTORY: &str = "{sy-orch}:history";

/// One key of release `name`: `{sy-orch}:release:NAME:PART`.
pub fn release_key(name: &str, part: &str) -> String {
    format!("{{sy-orch}}:release:{name}:{part}")
}

/// Renames the keys of the earlier layout (one hash tag per release) to the current
/// one; returns how many it renamed. Only a single server can hold the earlier layout
/// (its scripts spanned slots), so the `KEYS` scan is one node's.
static MIGRATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local moved = 0
for _, key in ipairs(redis.call('KEYS', '{sy-orch:*}:*')) do
  local name, part = string.match(key, '^{sy%-orch:(.*)}:(%a+)$')
  if name then
    redis.call('RENAME', key, '{sy-orch}:release:' .. name .. ':' .. part)
    moved = moved + 1
  end
end
for i, new in ipairs({KEYS[3], KEYS[4]}) do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], new)
    moved = moved + 1
  end
end
return moved
",
    )
});

/// KEYS: release, lease, archived, releases set. ARGV: owner, revision, created_at,
/// JSON, name. Returns 0 when stored, else why not (see [`refusal`]).
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local holder = redis.call('GET', KEYS[2])
local stored = redis.call('GET', KEYS[1])
if holder then
  if holder ~= ARGV[1] then return 1 end
elseif stored then
  return 2
end
if stored == ARGV[4] then return 0 end
if redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 1 then return 5 end
if stored then
  local current = cjson.decode(stored)
  if current.created_at ~= tonumber(ARGV[3]) then return 4 end
  if current.revision >= tonumber(ARGV[2]) then return 3 end
end
redis.call('SET', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
return 0
",
    )
});

/// Why [`SAVE`] refused, for the log.
fn refusal(code: i64) -> &'static str {
    match code {
        1 => "another owner holds the lease",
        2 => "no lease is held and the release exists",
        3 => "the stored revision is not lower",
        4 => "a different release of that name is stored",
        _ => "that release was archived",
    }
}

/// KEYS: release, commands, archived, releases set, history. ARGV: name.
static ARCHIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stored = redis.call('GET', KEYS[1])
redis.call('SREM', KEYS[4], ARGV[1])
if not stored then return 0 end
local created_at = string.format('%d', cjson.decode(stored).created_at)
redis.call('ZADD', KEYS[5], created_at, stored)
redis.call('SADD', KEYS[3], created_at)
redis.call('DEL', KEYS[1], KEYS[2])
return 1
",
    )
});

/// KEYS: lease. ARGV: owner, ttl in ms. 1 when `owner` holds the lease afterwards.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// KEYS: lease. ARGV: owner. Compare-and-delete.
static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// KEYS: commands. The whole queue, emptied.
static TAKE_COMMANDS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local commands = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return commands
",
    )
});

/// A [`StateStore`] on Redis, writing as one replica (its owner id).
#[derive(Clone)]
pub struct RedisStore {
    /// Reads.
    conn: Conn,
    /// Writes: they wait for the replicas the [`Durability`] names.
    writer: Conn,
    owner: String,
}

impl RedisStore {
    /// Connects to the deployment `url` names (one server, a Cluster or a Sentinel
    /// primary: [`switchyard_redis::Target`]) as replica `owner` (unique per process,
    /// e.g. `hostname:pid:random`), writing with `durability`: saves are fenced by the
    /// leases `owner` holds. Commands fail fast while Redis is unreachable and
    /// reconnect by themselves. Keys of the earlier layout are renamed first.
    pub async fn open(
        url: &str,
        owner: String,
        durability: Durability,
    ) -> Result<RedisStore, StoreError> {
        let redis = Redis::connect(url, durability)
            .await
            .map_err(StoreError::Connect)?;
        let mut conn = redis.conn();
        // Each old key alone (they sit in different slots), then the script on the
        // single server that can hold them.
        let mut old = 0u64;
        for key in ["sy-orch:releases", "sy-orch:history"] {
            old += conn
                .exists::<_, u64>(key)
                .await
                .map_err(StoreError::Redis)?;
        }
        let store = RedisStore {
            writer: redis.writer(),
            conn: conn.clone(),
            owner,
        };
        if old == 0 {
            return Ok(store);
        }
        let moved: u64 = MIGRATE
            .key("sy-orch:releases")
            .key("sy-orch:history")
            .key(RELEASES)
            .key(HISTORY)
            .invoke_async(&mut conn)
            .await
            .map_err(StoreError::Redis)?;
        if moved > 0 {
            tracing::info!(
                keys = moved,
                "renamed the orchestrator's Redis keys to the one-slot layout"
            );
        }
        Ok(store)
    }

    /// This replica's owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs a read, once more if the connection had dropped: the connection manager
    /// reconnects after reporting the failure, and reads are idempotent.
    async fn read<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        match op(self.conn.clone()).await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                op(self.conn.clone()).await.map_err(StoreError::Redis)
            }
            result => result.map_err(StoreError::Redis),
        }
    }
}

fn decode(name: &str, json: &str) -> Result<Release, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
        name: name.to_owned(),
        source,
    })
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl StateStore for RedisStore {
    fn shared(&self) -> bool {
        true
    }

    async fn save(&self, release: &Release) -> Result<(), StoreError> {
        let name = release.name();
        let json = serde_json::to_string(release).map_err(|source| StoreError::Corrupt {
            name: name.to_owned(),
            source,
        })?;
        let code: i64 = SAVE
            .key(release_key(name, "release"))
            .key(release_key(name, "lease"))
            .key(release_key(name, "archived"))
            .key(RELEASES)
            .arg(&self.owner)
            .arg(release.revision)
            .arg(release.created_at)
            .arg(json)
            .arg(name)
            .invoke_async(&mut self.writer.clone())
            .await
            .map_err(StoreError::Redis)?;
        if code == 0 {
            return Ok(());
        }
        debug!(
            release = name,
            revision = release.revision,
            owner = self.owner,
            reason = refusal(code),
            "save refused"
        );
        Err(StoreError::LeaseLost(name.to_owned()))
    }

    async fn archive(&self, name: &str) -> Result<(), StoreError> {
        let _: i64 = ARCHIVE
            .key(release_key(name, "release"))
            .key(release_key(name, "commands"))
            .key(release_key(name, "archived"))
            .key(RELEASES)
            .key(HISTORY)
            .arg(name)
            .invoke_async(&mut self.writer.clone())
            .await
            .map_err(StoreError::Redis)?;
        Ok(())
    }

    async fn releases(&self) -> Result<Vec<Release>, StoreError> {
        let mut names: Vec<String> = self
            .read(|mut conn| async move { conn.smembers(RELEASES).await })
            .await?;
        names.sort();
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.get(release_key(name, "release"));
        }
        let stored: Vec<Option<String>> = self
            .read(|mut conn| {
                let pipe = pipe.clone();
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        // A name archived between the two reads has no release any more: skipped.
        names
            .iter()
            .zip(stored)
            .filter_map(|(name, json)| json.map(|json| decode(name, &json)))
            .collect()
    }

    async fn history(&self) -> Result<Vec<Release>, StoreError> {
        let all: Vec<String> = self
            .read(|mut conn| async move { conn.zrange(HISTORY, 0, -1).await })
            .await?;
        all.iter().map(|json| decode("history", json)).collect()
    }

    async fn load(&self, name: &str) -> Result<Option<Release>, StoreError> {
        let key = release_key(name, "release");
        let json: Option<String> = self
            .read(|mut conn| {
                let key = key.clone();
                async move { conn.get(key).await }
            })
            .await?;
        json.map(|json| decode(name, &json)).transpose()
    }

    async fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let held: i64 = ACQUIRE
            .key(release_key(name, "lease"))
            .arg(owner)
            .arg(millis(ttl))
            .invoke_async(&mut self.writer.clone())
            .await
            .map_err(StoreError::Redis)?;
        Ok(held == 1)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let _: i64 = RELEASE_LEASE
            .key(release_key(name, "lease"))
            .arg(owner)
            .invoke_async(&mut self.writer.clone())
            .await
            .map_err(StoreError::Redis)?;
        Ok(())
    }

    async fn push_command(&self, name: &str, event: &Event) -> Result<(), StoreError> {
        let json = serde_json::to_string(event).map_err(|source| StoreError::Corrupt {
            name: name.to_owned(),
            source,
        })?;
        let mut conn = self.writer.clone();
        let _: i64 = conn
            .rpush(release_key(name, "commands"), json)
            .await
            .map_err(StoreError::Redis)?;
        Ok(())
    }

    async fn take_commands(&self, name: &str) -> Result<Vec<Event>, StoreError> {
        let taken: Vec<String> = TAKE_COMMANDS
            .key(release_key(name, "commands"))
            .invoke_async(&mut self.writer.clone())
            .await
            .map_err(StoreError::Redis)?;
        // They are off the queue now: one a replica cannot read (pushed by a newer
        // version, say) is dropped with a warning rather than taking the others with it.
        Ok(taken
            .iter()
            .filter_map(|json| match serde_json::from_str(json) {
                Ok(event) => Some(event),
                Err(error) => {
                    warn!(release = name, %error, command = json, "dropping an unreadable command");
                    None
                }
            })
            .collect())
    }
}
