//! Keeping a replica in step with the others through the shared Redis store.
//!
//! Every write is announced on the Redis channel by the same script that makes it
//! ([`crate::store::redis`]). Each replica subscribes, applies the next revision
//! from the announced change document, and reloads an environment from Redis
//! whenever it sees a gap. After (re)subscribing, and every [`RESYNC_EVERY`], it
//! compares every environment's revision with Redis and reloads what differs, so a
//! dropped connection or a lost message is repaired without a restart. While Redis
//! is unreachable the replica is marked degraded and keeps serving from memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use switchyard_core::model::EnvName;
use tokio::sync::watch;

use crate::auth::Tokens;
use crate::environments::Environments;
use crate::store::redis::{Announcement, RedisStore, CHANNEL};
use crate::store::{Store, StoreError};

/// How often revisions are compared with Redis even when no message arrives.
pub const RESYNC_EVERY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What the subscriber works on.
pub struct Replication {
    /// The shared store.
    pub store: RedisStore,
    /// The replica's environments.
    pub envs: Arc<Environments>,
    /// The replica's tokens.
    pub tokens: Arc<Tokens>,
    /// Set while Redis is unreachable.
    pub degraded: Arc<AtomicBool>,
}

impl Replication {
    /// Runs until `shutdown` turns true: subscribe, resync, follow; on failure mark
    /// the replica degraded and retry with jittered exponential back-off.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(50);
        let mut recovering = false;
        loop {
            match self.session(&mut shutdown, recovering).await {
                Ok(()) => return,
                Err(error) => {
                    recovering = true;
                    if self.degraded.swap(true, Ordering::AcqRel) {
                        tracing::debug!(%error, "shared store still unreachable");
                    } else {
                        tracing::warn!(%error, "lost the shared store; serving from memory");
                    }
                }
            }
            let jitter = rand::thread_rng().gen_range(0.5..1.5);
            tokio::select! {
                () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One subscription; `Ok` only on shutdown. When `recovering` from a lost one,
    /// every environment is compared by content, not only by revision: a failover
    /// may have lost a write announced here and reused its revision.
    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        recovering: bool,
    ) -> Result<(), StoreError> {
        if *shutdown.borrow() {
            return Ok(());
        }
        let unavailable = |e: redis::RedisError| StoreError::Unavailable(Box::new(e));
        // Also wakes the command connection, which reconnects after a failure.
        self.store.ping().await?;
        let mut pubsub = self.store.redis().pubsub().await.map_err(unavailable)?;
        pubsub.subscribe(CHANNEL).await.map_err(unavailable)?;
        // Subscribed first, then compared: nothing written in between is missed.
        if recovering {
            self.reload_all().await?;
        } else {
            self.resync_all().await?;
        }
        if self.degraded.swap(false, Ordering::AcqRel) {
            tracing::info!("shared store reachable again; replica converged");
        }
        let mut messages = pubsub.on_message();
        let mut tick = tokio::time::interval(RESYNC_EVERY);
        tick.reset();
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => self.handle(message.get_payload_bytes()).await?,
                    None => {
                        return Err(StoreError::Unavailable("subscription to the shared store ended".into()));
                    }
                },
                _ = tick.tick() => self.resync_all().await?,
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    async fn handle(&self, payload: &[u8]) -> Result<(), StoreError> {
        let announcement: Announcement = match serde_json::from_slice(payload) {
            Ok(announcement) => announcement,
            Err(error) => {
                tracing::warn!(%error, "unreadable announcement; resynchronising");
                return self.resync_all().await;
            }
        };
        match announcement {
            Announcement::Commit {
                env,
                revision,
                change,
            } => {
                if let Err(error) = self.envs.apply_remote(&env, revision, &change).await {
                    tracing::warn!(%env, revision, %error, "could not apply a replicated change");
                }
            }
            Announcement::EnvCreated { env } | Announcement::EnvDeleted { env } => {
                self.resync(&env).await
            }
            Announcement::Tokens => self.tokens.replace(self.store.tokens().await?),
        }
        Ok(())
    }

    async fn resync(&self, env: &EnvName) {
        if let Err(error) = self.envs.resync(env).await {
            tracing::warn!(%env, %error, "could not resynchronise an environment");
        }
    }

    /// Reloads every environment and the tokens, publishing what differs.
    async fn reload_all(&self) -> Result<(), StoreError> {
        let revisions = self.store.revisions().await?;
        let names = revisions.keys().cloned().chain(self.envs.names());
        for env in names.collect::<std::collections::BTreeSet<_>>() {
            let env = EnvName::new(env.as_str());
            if let Err(error) = self.envs.reload(&env).await {
                tracing::warn!(%env, %error, "could not reload an environment");
            }
        }
        self.tokens.replace(self.store.tokens().await?);
        Ok(())
    }

    /// Reloads every environment whose revision differs from Redis, and the tokens.
    async fn resync_all(&self) -> Result<(), StoreError> {
        let revisions = self.store.revisions().await?;
        for (env, revision) in &revisions {
            let local = self.envs.get(env).map(|state| state.revision);
            if local != Some(*revision) {
                self.resync(&EnvName::new(env.as_str())).await;
            }
        }
        // Environments another replica deleted.
        for env in self.envs.names() {
            if !revisions.contains_key(&env) {
                self.resync(&EnvName::new(env)).await;
            }
        }
        self.tokens.replace(self.store.tokens().await?);
        Ok(())
    }
}
