//! Following the upstream: one task per environment reads its SDK stream
//! (`/v1/sdk/stream`, resuming with `Last-Event-ID` = the revision installed here)
//! into [`Environments`]; a supervisor lists the environments now and then (a new
//! one gets a follower), keeps the snapshots on disk, and forwards SDK metrics.
//!
//! A `change` for the next revision is applied from its document; any other
//! revision (a gap) reloads the whole snapshot; a `snapshot` event replaces the
//! environment, published as one change. Reconnects back off with jitter up to
//! [`MAX_BACKOFF`]; a stream silent for [`IDLE_TIMEOUT`] (the upstream sends a
//! heartbeat every 15 s) is dropped and reopened.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use switchyard_core::model::EnvName;
use switchyard_core::sse::{SseEvent, SseParser};
use switchyard_core::sync::{ChangeDocument, SnapshotDocument};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cache;
use super::upstream::UpstreamError;
use super::Relay;
use crate::environments::Environments;
use crate::subscription::shutting_down;

/// A stream silent this long is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the environments are listed again (new ones get a follower).
const LIST_EVERY: Duration = Duration::from_secs(10);
/// How often the environments are listed while the upstream does not answer.
const RELIST_WHILE_DOWN: Duration = Duration::from_secs(1);
/// How often changed snapshots are written to disk.
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// The largest event accepted (a 10 000-flag snapshot is ~5 MB).
const MAX_EVENT_BYTES: usize = 256 * 1024 * 1024;

/// Why a stream ended.
enum End {
    /// The connection broke, went silent or ended: reconnect.
    Lost(String),
    /// The server is shutting down.
    Shutdown,
}

/// Follows one environment until shutdown or until it is gone upstream.
struct Follower {
    relay: Arc<Relay>,
    envs: Arc<Environments>,
    env: EnvName,
    shutdown: watch::Receiver<bool>,
}

impl Follower {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        let mut failing = false;
        loop {
            let after = self.envs.get(self.env.as_str()).map(|state| state.revision);
            match self.relay.upstream.stream(&self.env, after).await {
                Ok(response) => {
                    self.relay.links.set_connected(&self.env, true);
                    if std::mem::take(&mut failing) {
                        tracing::info!(env = %self.env, "following the upstream again");
                    }
                    backoff = Duration::from_millis(100);
                    let end = self.read(response).await;
                    self.relay.links.set_connected(&self.env, false);
                    match end {
                        End::Shutdown => return,
                        End::Lost(why) => {
                            tracing::warn!(env = %self.env, %why, "lost the upstream stream; reconnecting");
                            failing = true;
                        }
                    }
                }
                Err(error) if error.status() == Some(404) => {
                    tracing::info!(env = %self.env, "environment gone upstream; no longer served");
                    if let Err(error) = self.envs.resync(&self.env).await {
                        tracing::warn!(env = %self.env, %error, "could not remove the environment");
                    }
                    self.relay.cache.remove(&self.env);
                    self.relay.links.remove(&self.env);
                    return;
                }
                Err(error) => self.failed(&error, &mut failing),
            }
            let jitter = rand::thread_rng().gen_range(0.5..1.5);
            tokio::select! {
                () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                () = shutting_down(&mut self.shutdown) => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn failed(&self, error: &UpstreamError, failing: &mut bool) {
        self.relay.links.set_connected(&self.env, false);
        if std::mem::replace(failing, true) {
            tracing::debug!(env = %self.env, %error, "upstream still unreachable");
        } else {
            tracing::warn!(env = %self.env, %error, "cannot follow the upstream; serving what is here");
        }
    }

    /// Reads events until the stream ends.
    async fn read(&mut self, response: reqwest::Response) -> End {
        let mut body = response.bytes_stream();
        let mut parser = SseParser::new(MAX_EVENT_BYTES);
        let mut events = Vec::new();
        loop {
            let chunk = tokio::select! {
                chunk = tokio::time::timeout(IDLE_TIMEOUT, body.next()) => chunk,
                () = shutting_down(&mut self.shutdown) => return End::Shutdown,
            };
            let bytes = match chunk {
                Err(_) => return End::Lost(format!("nothing received for {IDLE_TIMEOUT:?}")),
                Ok(None) => return End::Lost("the upstream closed the stream".to_owned()),
                Ok(Some(Err(error))) => return End::Lost(error.to_string()),
                Ok(Some(Ok(bytes))) => bytes,
            };
            self.relay.links.heard(&self.env, None);
            if let Err(why) = parser.feed(&bytes, &mut events) {
                return End::Lost(why.to_owned());
            }
            for event in events.drain(..) {
                if let Err(why) = self.apply(event).await {
                    return End::Lost(why);
                }
            }
        }
    }

    /// Installs one event; an error drops the stream (reopened from what is here).
    async fn apply(&self, event: SseEvent) -> Result<(), String> {
        let revision = event
            .id
            .as_deref()
            .and_then(|id| id.trim().parse::<u64>().ok());
        match event.event.as_str() {
            "snapshot" => {
                let document: SnapshotDocument = serde_json::from_str(&event.data)
                    .map_err(|e| format!("unreadable snapshot: {e}"))?;
                self.relay.links.heard(&self.env, Some(document.revision));
                self.relay.telemetry.snapshots_received.inc();
                self.envs
                    .replace(cache::record(document))
                    .await
                    .map_err(|e| format!("could not install the snapshot: {e}"))
            }
            "change" => {
                let change: ChangeDocument = serde_json::from_str(&event.data)
                    .map_err(|e| format!("unreadable change: {e}"))?;
                let revision = revision.unwrap_or(change.revision);
                self.relay.links.heard(&self.env, Some(revision));
                self.relay.telemetry.changes_received.inc();
                self.envs
                    .apply_remote(&self.env, revision, &change)
                    .await
                    .map(drop)
                    .map_err(|e| format!("could not apply revision {revision}: {e}"))
            }
            _ => Ok(()),
        }
    }
}

/// Runs the relay until shutdown: a follower per environment, the listing, the
/// snapshots on disk and the metrics forwarder.
pub async fn run(relay: Arc<Relay>, envs: Arc<Environments>, shutdown: watch::Receiver<bool>) {
    let forwarder = {
        let relay = Arc::clone(&relay);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let every = relay.config.metrics_every;
            relay
                .forwarder
                .run(relay.upstream.clone(), every, shutdown)
                .await;
        })
    };
    let mut followers: HashMap<EnvName, JoinHandle<()>> = HashMap::new();
    let follow = |env: EnvName, followers: &mut HashMap<EnvName, JoinHandle<()>>| {
        if followers.get(&env).is_some_and(|task| !task.is_finished()) {
            return;
        }
        let follower = Follower {
            relay: Arc::clone(&relay),
            envs: Arc::clone(&envs),
            env: env.clone(),
            shutdown: shutdown.clone(),
        };
        followers.insert(env, tokio::spawn(follower.run()));
    };
    // What was loaded (from the upstream or from disk) is followed at once.
    for env in envs.names() {
        follow(EnvName::new(env), &mut followers);
    }
    let mut persisted: BTreeMap<String, u64> = BTreeMap::new();
    let mut next_list = tokio::time::Instant::now();
    let mut persist = tokio::time::interval(PERSIST_EVERY);
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_list) => {
                let listed = relay.upstream.environments().await;
                relay.links.set_listed(listed.is_ok());
                // Unreachable: asked again soon, so readiness recovers with the upstream.
                next_list = tokio::time::Instant::now()
                    + if listed.is_ok() { LIST_EVERY } else { RELIST_WHILE_DOWN };
                match listed {
                    Ok(listed) => {
                        for env in listed {
                            follow(env, &mut followers);
                        }
                    }
                    Err(error) => tracing::debug!(%error, "could not list the upstream's environments"),
                }
            }
            _ = persist.tick() => persist_changed(&relay, &envs, &mut persisted),
            () = shutting_down(&mut stop) => break,
        }
    }
    for (_, task) in followers {
        let _ = task.await;
    }
    let _ = forwarder.await;
}

/// Writes the snapshot of every environment whose revision changed since the last
/// write.
fn persist_changed(relay: &Relay, envs: &Environments, persisted: &mut BTreeMap<String, u64>) {
    let names = envs.names();
    persisted.retain(|env, _| names.contains(env));
    for name in names {
        let Some(state) = envs.get(&name) else {
            continue;
        };
        if persisted.get(&name) == Some(&state.revision) {
            continue;
        }
        match relay.cache.write(&state.name, state.document()) {
            Ok(()) => {
                persisted.insert(name, state.revision);
            }
            Err(error) => {
                tracing::warn!(env = %name, %error, "could not keep the snapshot on disk")
            }
        }
    }
}
