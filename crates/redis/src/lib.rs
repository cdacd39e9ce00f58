//! One Redis connection for Switchyard's stores, whatever the deployment: a single
//! `redis-server`, a Redis Cluster or a primary managed by Sentinels — chosen by the
//! URL ([`Target`]) — with optional `WAIT`-backed durability ([`Durability`]).
//!
//! The stores keep every key of one unit of atomicity (an environment, the token set,
//! the orchestrator's state) under one hash tag, so each Lua script touches one
//! Cluster slot; this crate only routes. Guide: docs/redis.md.

mod target;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, Cmd, ConnectionInfo, ErrorKind, Pipeline, RedisError, RedisFuture, Value};

pub use target::{BadUrl, Target};

/// How long connecting may take before a command fails (so writes answer 503 promptly).
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one command may wait for its answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A write is acknowledged only once `replicas` replicas of the primary that took it
/// have it too (Redis `WAIT`), or fails after `timeout` naming how many did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// Replicas that must have the write (0: acknowledged by the primary alone).
    pub replicas: u32,
    /// How long to wait for them.
    pub timeout: Duration,
}

impl Default for Durability {
    fn default() -> Self {
        Durability {
            replicas: 0,
            timeout: Duration::from_secs(1),
        }
    }
}

/// What connecting could not do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not name a Redis deployment.
    #[error(transparent)]
    BadUrl(#[from] BadUrl),
    /// No connection could be made.
    #[error("cannot reach Redis at {target}: {source}")]
    Unreachable {
        /// The deployment, as [`Target::describe`] says it.
        target: String,
        /// Why.
        #[source]
        source: RedisError,
    },
}

/// A connected deployment: [`Redis::conn`] for commands (cheap to clone, reconnects by
/// itself, follows Cluster redirections and Sentinel failovers), [`Redis::pubsub`] for
/// a subscription.
#[derive(Clone)]
pub struct Redis {
    target: Arc<Target>,
    conn: Conn,
}

impl Redis {
    /// Parses `url` ([`Target`]) and connects, writing with `durability`.
    pub async fn connect(url: &str, durability: Durability) -> Result<Redis, ConnectError> {
        let target: Target = url.parse()?;
        let unreachable = |source| ConnectError::Unreachable {
            target: target.describe(),
            source,
        };
        let inner = match &target {
            Target::Single(info) => {
                Inner::Single(manager(info.clone()).await.map_err(unreachable)?)
            }
            Target::Cluster(seeds) => Inner::Cluster(
                ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(CONNECTION_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .build()
                    .map_err(unreachable)?
                    .get_async_connection()
                    .await
                    .map_err(unreachable)?,
            ),
            Target::Sentinel {
                sentinels,
                master,
                node,
            } => Inner::Sentinel(Arc::new(
                Failover::start(sentinels.clone(), master.clone(), node.clone())
                    .await
                    .map_err(unreachable)?,
            )),
        };
        Ok(Redis {
            target: Arc::new(target),
            conn: Conn { inner, durability },
        })
    }

    /// The connection for reads: it never waits for replicas.
    pub fn conn(&self) -> Conn {
        Conn {
            inner: self.conn.inner.clone(),
            durability: Durability::default(),
        }
    }

    /// The connection for writes: each single command (a script, `SADD`, …) waits
    /// for the replicas the [`Durability`] given to [`Redis::connect`] names.
    pub fn writer(&self) -> Conn {
        self.conn.clone()
    }

    /// The deployment, for logs and errors (no password).
    pub fn describe(&self) -> String {
        self.target.describe()
    }

    /// A new subscription connection. Published messages reach every node of a
    /// Cluster and every replica of a primary, so one node is enough: the first of
    /// the seeds that answers, or the primary the Sentinels name now.
    pub async fn pubsub(&self) -> redis::RedisResult<PubSub> {
        match &*self.target {
            Target::Single(info) => Client::open(info.clone())?.get_async_pubsub().await,
            Target::Cluster(seeds) => {
                let mut last = None;
                for seed in seeds {
                    match Client::open(seed.clone())?.get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(error) => last = Some(error),
                    }
                }
                Err(last.unwrap_or_else(|| (ErrorKind::ClientError, "no seed nodes").into()))
            }
            Target::Sentinel { .. } => {
                let Inner::Sentinel(failover) = &self.conn.inner else {
                    unreachable!("a Sentinel target has a Sentinel connection")
                };
                failover.client().await?.get_async_pubsub().await
            }
        }
    }
}

/// A connection to the deployment. From [`Redis::writer`], single commands (a script,
/// `SADD`, `RPUSH`, …) wait for [`Durability::replicas`] replicas; pipelines do not.
#[derive(Clone)]
pub struct Conn {
    inner: Inner,
    durability: Durability,
}

#[derive(Clone)]
enum Inner {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<Failover>),
}

async fn manager(info: ConnectionInfo) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_max_delay(200)
        .set_connection_timeout(CONNECTION_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT);
    ConnectionManager::new_with_config(Client::open(info)?, config).await
}

impl Inner {
    async fn command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match self {
            Inner::Single(conn) => conn.req_packed_command(cmd).await,
            Inner::Cluster(conn) => conn.req_packed_command(cmd).await,
            Inner::Sentinel(failover) => failover.command(cmd).await,
        }
    }

    async fn pipeline(
        &mut self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        match self {
            Inner::Single(conn) => conn.req_packed_commands(pipe, offset, count).await,
            Inner::Cluster(conn) => conn.req_packed_commands(pipe, offset, count).await,
            Inner::Sentinel(failover) => failover.pipeline(pipe, offset, count).await,
        }
    }
}

/// The command's name (`EVALSHA`, `SADD`, …).
fn name(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// Whether `cmd` is `SCRIPT …` (loading a script goes to every primary of a Cluster,
/// so it is sent alone).
fn is_script_admin(cmd: &Cmd) -> bool {
    name(cmd) == "SCRIPT"
}

impl Conn {
    /// Sends `cmd` followed by `WAIT` in one pipeline (so both go over the same
    /// connection to the node that owns the key), and fails if too few replicas
    /// confirmed. The write itself is not undone: the error says so.
    async fn durable(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let Durability { replicas, timeout } = self.durability;
        let mut pipe = Pipeline::new();
        pipe.add_command(cmd.clone())
            .cmd("WAIT")
            .arg(replicas)
            .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        let mut answers = self.inner.pipeline(&pipe, 0, 2).await?.into_iter();
        let (Some(answer), Some(confirmed)) = (answers.next(), answers.next()) else {
            return Err((ErrorKind::ClientError, "WAIT pipeline answered too little").into());
        };
        if let Value::ServerError(error) = answer {
            return Err(error.into());
        }
        let confirmed: i64 = redis::from_redis_value(&confirmed)?;
        if confirmed < i64::from(replicas) {
            return Err(RedisError::from((
                ErrorKind::ResponseError,
                "write not confirmed by enough replicas",
                format!(
                    "{} applied on the primary but held by {confirmed} of {replicas} replicas after {timeout:?}; it may not survive a failover",
                    name(cmd)
                ),
            )));
        }
        Ok(answer)
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            if self.durability.replicas == 0 || is_script_admin(cmd) {
                self.inner.command(cmd).await
            } else {
                self.durable(cmd).await
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipe: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.inner.pipeline(pipe, offset, count))
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Single(conn) => conn.get_db(),
            Inner::Cluster(conn) => conn.get_db(),
            Inner::Sentinel(failover) => failover.db(),
        }
    }
}

/// The primary the Sentinels name, followed across failovers: when a command fails
/// in a way a failover explains (connection lost or refused, `READONLY` from a demoted
/// primary), the Sentinels are asked again and later commands go to the primary they
/// name. The failed command is not retried: its outcome is unknown.
struct Failover {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// (generation, connection to the primary as last named)
    current: RwLock<(u64, ConnectionManager)>,
    db: i64,
}

impl Failover {
    async fn start(
        sentinels: Vec<ConnectionInfo>,
        master: String,
        node: redis::RedisConnectionInfo,
    ) -> redis::RedisResult<Failover> {
        let db = node.db;
        let mut sentinel = SentinelClient::build(
            sentinels,
            master,
            Some(SentinelNodeConnectionInfo {
                tls_mode: None,
                redis_connection_info: Some(node),
            }),
            SentinelServerType::Master,
        )?;
        let client = sentinel.async_get_client().await?;
        let conn = manager(client.get_connection_info().clone()).await?;
        Ok(Failover {
            sentinel: tokio::sync::Mutex::new(sentinel),
            current: RwLock::new((0, conn)),
            db,
        })
    }

    fn db(&self) -> i64 {
        self.db
    }

    fn current(&self) -> (u64, ConnectionManager) {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A client for the primary the Sentinels name now.
    async fn client(&self) -> redis::RedisResult<Client> {
        self.sentinel.lock().await.async_get_client().await
    }

    async fn command(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let (generation, mut conn) = self.current();
        let result = conn.req_packed_command(cmd).await;
        self.after(generation, &result).await;
        result
    }

    async fn pipeline(
        &self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        let (generation, mut conn) = self.current();
        let result = conn.req_packed_commands(pipe, offset, count).await;
        self.after(generation, &result).await;
        result
    }

    /// Asks the Sentinels for the primary again after a failure a failover explains,
    /// unless another caller already did since `generation`.
    async fn after<T>(&self, generation: u64, result: &redis::RedisResult<T>) {
        let Err(error) = result else { return };
        let failover = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || error.kind() == ErrorKind::ReadOnly;
        if !failover {
            return;
        }
        let mut sentinel = self.sentinel.lock().await;
        if self.current().0 != generation {
            return;
        }
        let named = match sentinel.async_get_client().await {
            Ok(client) => client.get_connection_info().clone(),
            Err(error) => {
                tracing::warn!(%error, "the Sentinels name no primary yet");
                return;
            }
        };
        match manager(named.clone()).await {
            Ok(conn) => {
                tracing::info!(primary = %named.addr, "following the primary the Sentinels name");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (generation + 1, conn);
            }
            Err(error) => {
                tracing::warn!(%error, primary = %named.addr, "cannot reach the primary the Sentinels name")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_loads_are_told_from_writes() {
        assert!(is_script_admin(
            redis::cmd("SCRIPT").arg("LOAD").arg("return 1")
        ));
        assert!(!is_script_admin(redis::cmd("EVALSHA").arg("abc").arg(0)));
        assert!(!is_script_admin(redis::cmd("SADD").arg("k").arg("v")));
    }
}
