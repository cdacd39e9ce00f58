//! The background task: the first sync, streaming with reconnection, the polling
//! fallback, polling only, and the status it reports.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use switchyard_core::sync::{self, ChangeDocument, SnapshotDocument};
use switchyard_core::Snapshot;
use tokio::sync::watch;

use super::backoff::Backoff;
use super::endpoint::Endpoint;
use super::incoming::{Incoming, IncomingKind};
use super::stream::Source;
use crate::error::Error;
#[cfg(feature = "grpc")]
use crate::state::Servers;
use crate::state::{read_document, Inner, Loaded, Status, Transport};

/// The first reconnection delay.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest reconnection delay, also the delay after a refused token.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A stream that stayed open this long was healthy: the back-off starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(1);

/// Starts the background sync task (nothing for [`Transport::Offline`]). Fails only
/// for a gRPC URL or token that cannot be used.
pub(crate) fn spawn(inner: Weak<Inner>, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let Some(strong) = inner.upgrade() else {
        return Ok(());
    };
    let endpoint = Endpoint {
        http: strong.http.clone(),
        servers: Arc::clone(&strong.servers),
        token: strong.token.clone(),
    };
    let source = match strong.config.transport {
        Transport::Sse | Transport::Polling => Source::Sse(endpoint.clone()),
        #[cfg(feature = "grpc")]
        Transport::Grpc => {
            let config = &strong.config;
            // Without a gRPC URL, the REST servers' own URLs (main and fallbacks).
            let servers = match &config.grpc_url {
                Some(url) => Servers::new(url, &config.grpc_fallbacks),
                None => {
                    let (main, rest) = strong.servers.urls().split_first().unzip();
                    let fallbacks: Vec<String> = rest
                        .into_iter()
                        .flatten()
                        .chain(&config.grpc_fallbacks)
                        .cloned()
                        .collect();
                    Servers::new(main.map_or("", String::as_str), &fallbacks)
                }
            };
            Source::Grpc(super::grpc::SyncEndpoint::new(
                servers,
                &strong.token,
                config.ca_file.as_deref(),
            )?)
        }
        Transport::Offline => return Ok(()),
    };
    let syncer = Syncer {
        endpoint,
        source,
        poll_interval: strong.config.poll_interval,
        synced: strong
            .status
            .lock()
            .map(|s| *s == Status::Ready)
            .unwrap_or(false),
        refused: None,
        inner,
        shutdown,
        backoff: Backoff::new(BACKOFF_START, BACKOFF_MAX),
    };
    let polling = strong.config.transport == Transport::Polling;
    drop(strong);
    if polling {
        tokio::spawn(syncer.run_polling());
    } else {
        tokio::spawn(syncer.run_stream());
    }
    Ok(())
}

/// Resolves when the client closes or is dropped.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender (owned by the client) is gone: stop as well.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// How an attempt at streaming ended.
enum StreamEnd {
    /// `close()` was called or the client dropped.
    Stop,
    /// The token was refused.
    Refused(String),
    /// The stream could not be opened; `connect` when the server could not be
    /// reached at all (rather than answering with an error status).
    OpenFailed { error: Error, connect: bool },
    /// The stream was open and ended (EOF, a read error, silence, or an event that
    /// could not be used).
    Ended { open_for: Duration },
}

/// The background task's state.
struct Syncer {
    inner: Weak<Inner>,
    /// Snapshots (the first sync, polling, refetches).
    endpoint: Endpoint,
    /// The stream.
    source: Source,
    shutdown: watch::Receiver<bool>,
    poll_interval: Duration,
    backoff: Backoff,
    /// The client holds data from this server (so revisions can be resumed from).
    synced: bool,
    /// Why the server refused the token, until it accepts it again.
    refused: Option<String>,
}

impl Syncer {
    /// Waits `delay`; false when the client stopped meanwhile.
    async fn wait(&mut self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => !*self.shutdown.borrow(),
            () = stopped(&mut self.shutdown) => false,
        }
    }

    fn set_status(&self, status: Status) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let before = inner.status.lock().map(|s| s.clone()).ok();
        let changed = before
            .as_ref()
            .is_none_or(|b| std::mem::discriminant(b) != std::mem::discriminant(&status));
        if changed {
            match &status {
                Status::Ready => {
                    tracing::info!(url = %self.endpoint.url(), "switchyard: flags in sync")
                }
                Status::Stale { .. } => {
                    tracing::warn!(url = %self.endpoint.url(), "switchyard: server unreachable, serving the last flags")
                }
                Status::Failed { reason } => {
                    tracing::warn!(url = %self.endpoint.url(), %reason, "switchyard: cannot sync flags")
                }
                _ => {}
            }
        }
        inner.set_status(status);
    }

    /// In sync with the server.
    fn ready(&mut self) {
        self.synced = true;
        self.refused = None;
        self.set_status(Status::Ready);
    }

    /// The server could not be reached or answered with an error.
    fn unreachable(&mut self, error: &Error) {
        tracing::debug!(url = %self.endpoint.url(), %error, "switchyard: sync attempt failed");
        if self.refused.is_some() {
            // Keep saying why it failed last time the server answered.
        } else if self.synced {
            self.set_status(Status::Stale {
                since: SystemTime::now(),
            });
        } else {
            self.set_status(Status::Failed {
                reason: error.to_string(),
            });
        }
    }

    /// The server refused the token: keep serving, report it, retry slowly.
    fn refused(&mut self, message: String) {
        self.set_status(Status::Failed {
            reason: message.clone(),
        });
        self.refused = Some(message);
    }

    /// The delay after a refused token.
    fn slow_delay(&mut self) -> Duration {
        self.backoff.next = BACKOFF_MAX;
        self.backoff.delay()
    }

    /// Installs a whole snapshot, telling listeners which flags changed (nothing
    /// happens when it is the state already held).
    fn install_snapshot(&self, loaded: Loaded) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let current = inner.state.load();
        let changed = changed_flags(&current.snapshot, &loaded.snapshot);
        if self.synced && changed.is_empty() && current.revision == loaded.revision {
            return;
        }
        drop(current);
        inner.install(loaded, changed);
    }

    /// Polls the snapshot once (conditionally once synced).
    async fn poll(&mut self) -> Result<(), Error> {
        let etag = if self.synced {
            let Some(inner) = self.inner.upgrade() else {
                return Ok(());
            };
            let revision = inner.state.load().revision;
            Some(format!("\"{revision}\""))
        } else {
            None
        };
        let fetched = tokio::select! {
            fetched = self.endpoint.fetch_snapshot(etag.as_deref()) => fetched?,
            () = stopped(&mut self.shutdown) => return Ok(()),
        };
        if let Some(loaded) = fetched {
            self.install_snapshot(loaded);
        }
        self.ready();
        Ok(())
    }

    /// Polling only.
    async fn run_polling(mut self) {
        let mut delay = if self.synced {
            self.poll_interval
        } else {
            self.backoff.delay()
        };
        loop {
            if !self.wait(delay).await || self.inner.strong_count() == 0 {
                return;
            }
            delay = match self.poll().await {
                Ok(()) => {
                    self.backoff.reset();
                    self.poll_interval
                }
                Err(Error::Unauthorized { message, .. }) => {
                    self.refused(message);
                    self.slow_delay().max(self.poll_interval)
                }
                Err(error) => {
                    self.unreachable(&error);
                    if matches!(error, Error::Unreachable { .. }) {
                        let failed = self.endpoint.url().to_owned();
                        self.endpoint.servers.fail_over(&failed);
                    }
                    self.backoff.delay().min(self.poll_interval)
                }
            };
        }
    }

    /// The stream (SSE or gRPC), with reconnection and the polling fallback.
    async fn run_stream(mut self) {
        // When the fallback may poll next.
        let mut next_poll = Instant::now();
        loop {
            let (delay, fallback) = match self.stream_once().await {
                StreamEnd::Stop => return,
                StreamEnd::Refused(message) => {
                    // The slow retry below.
                    self.refused(message);
                    (Duration::ZERO, false)
                }
                StreamEnd::Ended { open_for } => {
                    if open_for >= HEALTHY_AFTER {
                        self.backoff.reset();
                    }
                    (self.backoff.delay(), false)
                }
                StreamEnd::OpenFailed { error, connect } => {
                    tracing::debug!(url = %self.endpoint.url(), %error, "switchyard: the stream did not open");
                    // Nothing answered there: the next server (if any) is tried next.
                    if connect {
                        self.source.fail_over();
                    }
                    // When nothing answers at the REST address, polling it is no use.
                    let fallback = !(connect && self.source.is_rest());
                    if !fallback {
                        self.unreachable(&error);
                    }
                    (self.backoff.delay(), fallback)
                }
            };
            // Until the stream is retried, poll every `poll_interval` if it helps.
            let retry_at = Instant::now() + delay;
            loop {
                let now = Instant::now();
                if now >= retry_at {
                    break;
                }
                if fallback && now >= next_poll {
                    next_poll = now + self.poll_interval;
                    match self.poll().await {
                        Ok(()) => {}
                        Err(Error::Unauthorized { message, .. }) => {
                            self.refused(message);
                            break;
                        }
                        Err(error) => self.unreachable(&error),
                    }
                    continue;
                }
                let until = if fallback {
                    retry_at.min(next_poll)
                } else {
                    retry_at
                };
                if !self.wait(until.saturating_duration_since(now)).await
                    || self.inner.strong_count() == 0
                {
                    return;
                }
            }
            if self.refused.is_some() {
                // Refused (by the stream or a poll): retry slowly.
                let delay = self.slow_delay();
                if !self.wait(delay).await || self.inner.strong_count() == 0 {
                    return;
                }
            }
        }
    }

    /// Opens the stream and applies its events until it ends.
    async fn stream_once(&mut self) -> StreamEnd {
        let last = if self.synced {
            let Some(inner) = self.inner.upgrade() else {
                return StreamEnd::Stop;
            };
            let revision = inner.state.load().revision;
            Some(revision)
        } else {
            None
        };
        let source = self.source.clone();
        let opened = tokio::select! {
            opened = source.open(last) => opened,
            () = stopped(&mut self.shutdown) => return StreamEnd::Stop,
        };
        let mut events = match opened {
            Ok(events) => events,
            Err((Error::Unauthorized { message, .. }, _)) => return StreamEnd::Refused(message),
            Err((error, connect)) => return StreamEnd::OpenFailed { error, connect },
        };
        let opened_at = Instant::now();
        if self.synced {
            // Resuming: the server replays what was missed (or sends a snapshot).
            self.ready();
        }
        loop {
            let next = tokio::select! {
                next = events.next() => next,
                () = stopped(&mut self.shutdown) => return StreamEnd::Stop,
            };
            let incoming = match next {
                Ok(Some(incoming)) => incoming,
                Ok(None) => {
                    tracing::debug!(url = %self.endpoint.url(), "switchyard: stream ended");
                    break;
                }
                Err(problem) => {
                    tracing::debug!(url = %self.endpoint.url(), %problem, "switchyard: stream broke");
                    break;
                }
            };
            match self.handle(incoming).await {
                Ok(()) => {}
                Err(Handled::Stop) => return StreamEnd::Stop,
                Err(Handled::Refused(message)) => return StreamEnd::Refused(message),
                Err(Handled::Failed(error)) => {
                    tracing::warn!(url = %self.endpoint.url(), %error, "switchyard: could not apply a stream event; reconnecting");
                    break;
                }
            }
        }
        StreamEnd::Ended {
            open_for: opened_at.elapsed(),
        }
    }

    /// Applies one stream event.
    async fn handle(&mut self, incoming: Incoming) -> Result<(), Handled> {
        match incoming.kind {
            IncomingKind::Snapshot => {
                let document: SnapshotDocument =
                    read_document(&mut serde_json::Deserializer::from_str(&incoming.document))
                        .map_err(Handled::Failed)?;
                let loaded = Loaded::from_snapshot(document).map_err(Handled::Failed)?;
                self.install_snapshot(loaded);
                self.ready();
                Ok(())
            }
            IncomingKind::Change => match self.apply_change(&incoming) {
                Some(()) => {
                    self.ready();
                    Ok(())
                }
                None => self.refetch().await,
            },
            IncomingKind::Other => Ok(()),
        }
    }

    /// Applies a change that is the next revision; `None` when the snapshot must be
    /// fetched instead.
    fn apply_change(&self, incoming: &Incoming) -> Option<()> {
        let Some(inner) = self.inner.upgrade() else {
            return Some(());
        };
        let change: ChangeDocument = serde_json::from_str(&incoming.document).ok()?;
        let revision = Some(change.revision)
            .filter(|revision| *revision > 0)
            .or(incoming.revision)?;
        let current = inner.state.load_full();
        if !self.synced {
            return None;
        }
        if revision <= current.revision {
            // Already held (a replay overlapping a snapshot).
            return Some(());
        }
        if current.revision.checked_add(1) != Some(revision) {
            tracing::debug!(
                have = current.revision,
                got = revision,
                "switchyard: revision gap, refetching the snapshot"
            );
            return None;
        }
        let mut next = match current.apply_change(&change) {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, revision, "switchyard: change does not apply, refetching the snapshot");
                return None;
            }
        };
        next.revision = revision;
        let changed = changed_flags(&current.snapshot, &next.snapshot);
        inner.install(next, changed);
        Some(())
    }

    /// Replaces the state with a freshly fetched snapshot.
    async fn refetch(&mut self) -> Result<(), Handled> {
        let endpoint = self.endpoint.clone();
        let fetched = tokio::select! {
            fetched = endpoint.fetch_snapshot(None) => fetched,
            () = stopped(&mut self.shutdown) => return Err(Handled::Stop),
        };
        match fetched {
            Ok(Some(loaded)) => {
                self.install_snapshot(loaded);
                self.ready();
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(Error::Unauthorized { message, .. }) => Err(Handled::Refused(message)),
            Err(error) => Err(Handled::Failed(error)),
        }
    }
}

/// Why an event stopped the stream.
enum Handled {
    Stop,
    Refused(String),
    Failed(Error),
}

/// The keys of flags whose answers may differ between `old` and `new`
/// ([`sync::changed_flags`]). Sorted.
pub(crate) fn changed_flags(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    sync::changed_flags(old, new)
        .into_keys()
        .map(|key| key.to_string())
        .collect()
}
