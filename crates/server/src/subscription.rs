//! One client's stream of an environment, whatever carries it (SSE in `http/sdk.rs`,
//! gRPC `switchyard.v1.Sync` in `grpc/sync.rs`): a snapshot first, or the changes it
//! missed when it resumes; then one change per revision; a fresh snapshot after a lag
//! or a gap; the end when the server shuts down, or when the token that opened it
//! stops being accepted (revoked, expired, a rotated secret past its grace).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use switchyard_core::model::EnvName;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::Duration;

use crate::auth::{Principal, Tokens};
use crate::environments::{now_ms, ChangeEvent, EnvState};
use crate::error::ApiError;
use crate::limits::StreamPermit;
use crate::scope::env_state;
use crate::state::AppState;
use crate::telemetry::{StreamGuard, StreamProtocol};

/// What a stream sends (over SSE here, and over gRPC `switchyard.v1.Sync`).
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// The whole environment.
    Snapshot(Arc<EnvState>),
    /// One revision's change.
    Change(Arc<ChangeEvent>),
}

impl Outgoing {
    /// The revision the client has after this event.
    pub fn revision(&self) -> u64 {
        match self {
            Outgoing::Snapshot(state) => state.revision,
            Outgoing::Change(change) => change.revision,
        }
    }

    /// The JSON document: the snapshot document or the change document.
    pub fn document(&self) -> &Bytes {
        match self {
            Outgoing::Snapshot(state) => state.document(),
            Outgoing::Change(change) => &change.document,
        }
    }
}

/// The change events after `last` up to the current revision, when the history
/// still holds every one of them (none when `last` is current); `None` when the
/// client must start again from a snapshot.
fn missed_changes(current: &EnvState, last: u64) -> Option<Vec<Arc<ChangeEvent>>> {
    if last >= current.revision {
        return (last == current.revision).then(Vec::new);
    }
    let missed: Vec<Arc<ChangeEvent>> = current
        .history
        .iter()
        .filter(|change| change.revision > last)
        .cloned()
        .collect();
    let expected = current.revision - last;
    let complete = u64::try_from(missed.len()).is_ok_and(|n| n == expected)
        && missed
            .iter()
            .zip(last + 1..)
            .all(|(change, revision)| change.revision == revision);
    complete.then_some(missed)
}

/// Resolves once the server shuts down; never when it cannot any more (the
/// shutdown sender is gone without having signalled).
pub(crate) async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The token a stream was opened with, watched so the stream ends when it is no
/// longer accepted.
pub(crate) struct Holder {
    principal: Principal,
    tokens: Arc<Tokens>,
    changes: watch::Receiver<u64>,
}

impl Holder {
    /// Watches `principal`'s token; `None` for a principal without a stored token
    /// (the bootstrap token, a relayed one), which nothing here can revoke.
    pub(crate) fn of(state: &AppState, principal: &Principal) -> Option<Holder> {
        principal.credential.as_ref()?;
        Some(Holder {
            principal: principal.clone(),
            tokens: Arc::clone(&state.tokens),
            changes: state.tokens.watch(),
        })
    }

    /// Resolves when the credential stops being accepted: at its `until` time, or at
    /// a change of the token set that revokes it.
    async fn ended(&mut self) {
        loop {
            let until = self.principal.credential.as_ref().and_then(|c| c.until_ms);
            let expiry = async {
                match until {
                    Some(until) => {
                        let left = until.saturating_sub(now_ms());
                        tokio::time::sleep(Duration::from_millis(left)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = expiry => {}
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        // The token set is gone (the server is stopping): only the
                        // expiry can end the stream now.
                        self.changes.mark_unchanged();
                        std::future::pending::<()>().await;
                    }
                }
            }
            match self.tokens.standing(&self.principal, now_ms()) {
                Some(until) => {
                    if let Some(credential) = &mut self.principal.credential {
                        credential.until_ms = until;
                    }
                }
                None => return,
            }
        }
    }
}

/// Resolves when `holder`'s credential ends; never without a holder.
pub(crate) async fn holder_ended(holder: &mut Option<Holder>) {
    match holder {
        Some(holder) => holder.ended().await,
        None => std::future::pending().await,
    }
}

/// What ends a stream: the server shutting down, or the token that opened it no
/// longer being accepted.
type Ending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Resolves when `shutdown` signals or `holder`'s credential ends.
fn ending(mut shutdown: watch::Receiver<bool>, mut holder: Option<Holder>) -> Ending {
    Box::pin(async move {
        tokio::select! {
            () = shutting_down(&mut shutdown) => {}
            () = holder_ended(&mut holder) => {}
        }
    })
}

/// One client's stream: a snapshot first, or the missed changes when resuming; then
/// one change per revision, a fresh snapshot after a lag or a gap; the end when the
/// server shuts down or the token that opened it is no longer accepted.
pub struct Subscription {
    state: AppState,
    env: EnvName,
    changes: broadcast::Receiver<Arc<ChangeEvent>>,
    /// Resolves when the stream must end ([`ending`]); made once and polled across
    /// events (made per event, its two watch registrations cost more than the
    /// event); `None` once it has resolved.
    ended: Option<Ending>,
    /// The newest revision the client has (from a snapshot or a change).
    sent: u64,
    /// Events to send before listening for changes.
    pending: VecDeque<Outgoing>,
    /// Counts the stream in `switchyard_streams` under its protocol.
    client: Option<StreamGuard>,
    /// Its place under the token's cap of open streams.
    _permit: Option<StreamPermit>,
}

impl Subscription {
    /// Follows `env` for a client that already has revision `after` (`None`: it has
    /// nothing): the missed changes come first when the history still holds them all,
    /// otherwise a snapshot. 404 when the environment does not exist.
    pub fn start(state: &AppState, env: &str, after: Option<u64>) -> Result<Self, ApiError> {
        // Subscribe before reading the current state, so no change falls in between.
        let changes = state.envs.subscribe();
        let current = env_state(state, env)?;
        let pending: VecDeque<Outgoing> =
            match after.and_then(|after| missed_changes(&current, after)) {
                Some(missed) => missed.into_iter().map(Outgoing::Change).collect(),
                None => VecDeque::from([Outgoing::Snapshot(Arc::clone(&current))]),
            };
        Ok(Subscription {
            env: current.name.clone(),
            changes,
            ended: Some(ending(state.shutdown.clone(), None)),
            sent: current.revision,
            pending,
            client: None,
            _permit: None,
            state: state.clone(),
        })
    }

    /// Counts the stream against `principal`'s cap of open streams (429 when it is
    /// full) and ends it when the token stops being accepted (revoked, expired, or a
    /// rotated secret past its grace period).
    pub fn held_by(mut self, principal: &Principal) -> Result<Self, ApiError> {
        self._permit = Some(self.state.limits.open_stream(principal)?);
        let holder = Holder::of(&self.state, principal);
        self.ended = Some(ending(self.state.shutdown.clone(), holder));
        Ok(self)
    }

    /// Counts this stream in `switchyard_streams` under `protocol` (SDK SSE and OFREP
    /// also in `switchyard_sse_clients`) until it ends.
    pub fn counted_as(mut self, protocol: StreamProtocol) -> Self {
        self.client = Some(self.state.telemetry.stream_opened(protocol));
        self
    }

    /// A fresh snapshot, if the environment is newer than what the client has.
    fn resync(&mut self) -> Option<Outgoing> {
        let current = self.state.envs.get(self.env.as_str())?;
        (current.revision > self.sent).then(|| {
            self.sent = current.revision;
            Outgoing::Snapshot(current)
        })
    }

    /// The next event to send; `None` ends the stream.
    pub async fn next(&mut self) -> Option<Outgoing> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        loop {
            let ended = self.ended.as_mut()?;
            tokio::select! {
                biased;
                () = ended => {
                    self.ended = None;
                    return None;
                }
                received = self.changes.recv() => match received {
                    Ok(change) => {
                        if change.env != self.env || change.revision <= self.sent {
                            continue;
                        }
                        if self.sent.checked_add(1) == Some(change.revision) {
                            self.sent = change.revision;
                            return Some(Outgoing::Change(change));
                        }
                        // A revision went by without an event here: resynchronise.
                        if let Some(event) = self.resync() {
                            return Some(event);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        if let Some(event) = self.resync() {
                            return Some(event);
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environments::Change;
    use crate::Server;
    use serde_json::json;
    use switchyard_core::model::FlagKey;
    use switchyard_core::Flag;

    /// A server state whose `prod` environment is at revision `revisions`.
    async fn state_at(dir: &std::path::Path, revisions: u64) -> AppState {
        let server = Server::open_embedded(dir, Some("admin"))
            .await
            .expect("server loads");
        let state = server.state.clone();
        let prod = EnvName::new("prod");
        state.envs.create(&prod, "test").await.expect("env created");
        for n in 0..revisions {
            let key = format!("flag-{n}");
            let flag: Flag = serde_json::from_value(json!({
                "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
                "off_variant": "off", "default": {"variant": "off"}
            }))
            .expect("flag");
            state
                .envs
                .apply("prod", |_| {
                    Ok(Change {
                        flags: vec![(FlagKey::new(key.as_str()), Some(flag.clone()))],
                        ..Change::default()
                    })
                })
                .await
                .expect("write");
        }
        state
    }

    fn change(env: &str, revision: u64) -> Arc<ChangeEvent> {
        Arc::new(ChangeEvent {
            env: EnvName::new(env),
            revision,
            document: Bytes::from(format!("{{\"revision\":{revision}}}")),
        })
    }

    fn subscription(
        state: &AppState,
        changes: broadcast::Receiver<Arc<ChangeEvent>>,
        shutdown: watch::Receiver<bool>,
        sent: u64,
    ) -> Subscription {
        Subscription {
            state: state.clone(),
            env: EnvName::new("prod"),
            changes,
            ended: Some(ending(shutdown, None)),
            sent,
            pending: VecDeque::new(),
            client: Some(state.telemetry.stream_opened(StreamProtocol::Sse)),
            _permit: None,
        }
    }

    async fn next(subscription: &mut Subscription) -> Option<(&'static str, u64)> {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next())
            .await
            .expect("an event in time");
        next.map(|outgoing| match outgoing {
            Outgoing::Snapshot(state) => ("snapshot", state.revision),
            Outgoing::Change(change) => ("change", change.revision),
        })
    }

    #[tokio::test]
    async fn skips_other_envs_and_old_revisions_and_resyncs_after_a_gap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state_at(dir.path(), 3).await;
        let (tx, rx) = broadcast::channel(16);
        let (_stop, shutdown) = watch::channel(false);
        let mut sub = subscription(&state, rx, shutdown.clone(), 1);
        for event in [change("dev", 2), change("prod", 1), change("prod", 2)] {
            tx.send(event).expect("sent");
        }
        assert_eq!(next(&mut sub).await, Some(("change", 2)));
        assert_eq!(sub.sent, 2);

        // Revision 2 never reached this subscriber: a snapshot (at the current 3)
        // covers it, and what it covers is not sent again.
        let mut gap = subscription(&state, tx.subscribe(), shutdown, 1);
        for revision in [3, 2, 3, 4] {
            tx.send(change("prod", revision)).expect("sent");
        }
        assert_eq!(next(&mut gap).await, Some(("snapshot", 3)));
        assert_eq!(next(&mut gap).await, Some(("change", 4)));
    }

    #[tokio::test]
    async fn a_lagged_receiver_gets_a_fresh_snapshot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state_at(dir.path(), 2).await;
        let (tx, rx) = broadcast::channel(2);
        let (_stop, shutdown) = watch::channel(false);
        let mut sub = subscription(&state, rx, shutdown, 0);
        for revision in 1..=4 {
            tx.send(change("prod", revision)).expect("sent");
        }
        // 1 and 2 were overwritten: the client gets the current state instead.
        assert_eq!(next(&mut sub).await, Some(("snapshot", 2)));
        assert_eq!(next(&mut sub).await, Some(("change", 3)));
        assert_eq!(next(&mut sub).await, Some(("change", 4)));
    }

    #[tokio::test]
    async fn shutdown_or_a_closed_channel_ends_the_stream_and_the_gauge_follows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state_at(dir.path(), 0).await;
        let (tx, rx) = broadcast::channel(4);
        let (stop, shutdown) = watch::channel(false);
        let mut sub = subscription(&state, rx, shutdown, 0);
        let sse_streams = state
            .telemetry
            .streams
            .get_or_create(&crate::telemetry::StreamLabels { protocol: "sse" })
            .clone();
        assert_eq!(state.telemetry.sse_clients.get(), 1);
        assert_eq!(sse_streams.get(), 1);
        stop.send(true).expect("sent");
        assert_eq!(next(&mut sub).await, None);

        // A dropped shutdown sender is not a shutdown; a closed change channel ends it.
        let mut other = subscription(&state, tx.subscribe(), watch::channel(false).1, 0);
        tx.send(change("prod", 1)).expect("sent");
        assert_eq!(next(&mut other).await, Some(("change", 1)));
        drop(tx);
        assert_eq!(next(&mut other).await, None);
        drop((sub, other));
        assert_eq!(state.telemetry.sse_clients.get(), 0);
        assert_eq!(sse_streams.get(), 0);
    }
}
