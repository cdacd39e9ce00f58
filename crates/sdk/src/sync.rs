//! Keeping the client's flags current.
//!
//! One background task per client ([`spawn`]) runs the configured transport:
//!
//! - [`Transport::Sse`]: `GET /v1/sdk/stream`. A `snapshot` event is installed
//!   whole; a `change` event is applied to the current state when it is the next
//!   revision, and anything else (a gap, a change that does not apply) refetches the
//!   snapshot. When the stream ends or fails, the task reconnects after a jittered
//!   exponential back-off (100 ms doubling to 30 s, ±50 %), resuming with
//!   `Last-Event-ID: <revision>` so the server replays only what was missed. While
//!   the stream cannot be opened (an error answer, not an event stream), the
//!   snapshot is polled with `If-None-Match` every `poll_interval` between stream
//!   attempts, so a proxy that refuses streams still leaves the client current.
//!   When nothing answers at all, polling the same address is skipped.
//! - `Transport::Grpc` (feature `grpc`, `crate::grpc`): the same documents from
//!   `switchyard.v1.Sync/Stream`, with the same reconnection and resumption
//!   (`after_revision`); the REST snapshot is polled while the gRPC API cannot be
//!   reached.
//! - [`Transport::Polling`]: `GET /v1/sdk/snapshot` with `If-None-Match` every
//!   `poll_interval`; after a failure sooner, with the back-off, up to the interval.
//!
//! Status: `Ready` while connected or after a successful poll; `Stale { since }`
//! when the server becomes unreachable after a sync (the last snapshot keeps being
//! served); `Failed` when the token is refused (then retries are slow) or while the
//! server was never reached. The evaluation path never waits for any of this: the
//! task only swaps a new `Arc<Loaded>` into the client's `ArcSwap`.
//!
//! The task holds the client weakly while it waits on the network, so dropping
//! every handle (or `close()`) ends it.

use std::collections::VecDeque;
use std::sync::Weak;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use rand::Rng;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, IF_NONE_MATCH};
use reqwest::StatusCode;
use serde_json::Value;
use switchyard_core::sync::{self, ChangeDocument, SnapshotDocument};
use switchyard_core::Snapshot;
use tokio::sync::watch;

use crate::client::{read_document, Inner, Loaded, Status, Transport};
use crate::error::Error;

/// The first reconnection delay.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest reconnection delay, also the delay after a refused token.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A stream that stayed open this long was healthy: the back-off starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(1);
/// How long opening the stream may take (up to the response headers).
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream silent this long is dead (the server sends a heartbeat every 15 s).
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one snapshot request may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest SSE event accepted (a snapshot of a very large environment).
pub(crate) const MAX_EVENT_BYTES: usize = 256 * 1024 * 1024;
/// The header a resuming SSE client sends.
const LAST_EVENT_ID: &str = "last-event-id";

/// Fetches the snapshot; `Ok(None)` when it is unchanged since `etag`.
pub(crate) async fn fetch_snapshot(
    inner: &Inner,
    etag: Option<&str>,
) -> Result<Option<Loaded>, Error> {
    let endpoint = Endpoint {
        http: inner.http.clone(),
        url: inner.url.clone(),
        token: inner.token.clone(),
    };
    endpoint.fetch_snapshot(etag).await
}

/// Where the flags come from.
#[derive(Clone)]
struct Endpoint {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Endpoint {
    fn unreachable(&self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Unreachable {
            url: self.url.clone(),
            source: source.into(),
        }
    }

    /// `Unauthorized` for 401/403, `Unreachable` for any other unsuccessful status.
    async fn check(&self, response: reqwest::Response) -> Result<reqwest::Response, Error> {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Unauthorized {
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(self.unreachable(format!(
                "unexpected status {status}: {}",
                error_message(&body)
            )));
        }
        Ok(response)
    }

    /// `GET /v1/sdk/snapshot`; `Ok(None)` on 304.
    async fn fetch_snapshot(&self, etag: Option<&str>) -> Result<Option<Loaded>, Error> {
        let mut request = self
            .http
            .get(format!("{}/v1/sdk/snapshot", self.url))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .timeout(SNAPSHOT_TIMEOUT);
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let response = self.check(response).await?;
        let body = response.bytes().await.map_err(|e| self.unreachable(e))?;
        let document: SnapshotDocument =
            read_document(&mut serde_json::Deserializer::from_slice(&body))?;
        Loaded::from_snapshot(document).map(Some)
    }

    /// `GET /v1/sdk/stream`, resuming after `last` when given. The error's flag says
    /// whether nothing answered at all (rather than an error status).
    async fn open_stream(&self, last: Option<u64>) -> Result<reqwest::Response, (Error, bool)> {
        let mut request = self
            .http
            .get(format!("{}/v1/sdk/stream", self.url))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(ACCEPT, "text/event-stream");
        if let Some(last) = last {
            request = request.header(LAST_EVENT_ID, last.to_string());
        }
        let response = match tokio::time::timeout(OPEN_TIMEOUT, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err((self.unreachable(error), true)),
            Err(_) => {
                let message = format!("the stream did not open within {OPEN_TIMEOUT:?}");
                return Err((self.unreachable(message), true));
            }
        };
        let response = self.check(response).await.map_err(|error| (error, false))?;
        let is_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !is_stream {
            return Err((self.unreachable("the answer is not an event stream"), false));
        }
        Ok(response)
    }
}

/// The message of a `{"error": {"message"}}` body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.trim().to_owned())
}

/// Starts the background sync task (nothing for [`Transport::Offline`]). Fails only
/// for a gRPC URL or token that cannot be used.
pub(crate) fn spawn(inner: Weak<Inner>, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let Some(strong) = inner.upgrade() else {
        return Ok(());
    };
    let endpoint = Endpoint {
        http: strong.http.clone(),
        url: strong.url.clone(),
        token: strong.token.clone(),
    };
    let source = match strong.config.transport {
        Transport::Sse | Transport::Polling => Source::Sse(endpoint.clone()),
        #[cfg(feature = "grpc")]
        Transport::Grpc => {
            let url = strong.config.grpc_url.as_deref().unwrap_or(&strong.url);
            Source::Grpc(crate::grpc::SyncEndpoint::new(url, &strong.token)?)
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

/// Where the stream comes from.
#[derive(Clone)]
enum Source {
    /// `GET /v1/sdk/stream`.
    Sse(Endpoint),
    /// `switchyard.v1.Sync/Stream`.
    #[cfg(feature = "grpc")]
    Grpc(crate::grpc::SyncEndpoint),
}

impl Source {
    /// Whether the stream comes from the REST API (the address snapshots are polled at).
    fn is_rest(&self) -> bool {
        matches!(self, Source::Sse(_))
    }

    /// Opens the stream, resuming after `last`. The error's flag says whether nothing
    /// answered at all (rather than an error answer).
    async fn open(&self, last: Option<u64>) -> Result<Events, (Error, bool)> {
        match self {
            Source::Sse(endpoint) => {
                let response = endpoint.open_stream(last).await?;
                Ok(Events::Sse {
                    body: Box::pin(response.bytes_stream()),
                    parser: SseParser::default(),
                    pending: VecDeque::new(),
                })
            }
            #[cfg(feature = "grpc")]
            Source::Grpc(endpoint) => endpoint.open(last).await.map(Events::Grpc),
        }
    }
}

/// The kind of a stream event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncomingKind {
    /// The whole environment.
    Snapshot,
    /// One revision's change.
    Change,
    /// Something this client does not know.
    Other,
}

/// One event of a stream, whatever the transport.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub(crate) kind: IncomingKind,
    /// The revision the event announces, when it says (the document says too).
    pub(crate) revision: Option<u64>,
    /// The JSON document.
    pub(crate) document: String,
}

impl From<SseEvent> for Incoming {
    fn from(event: SseEvent) -> Self {
        let kind = match event.event.as_str() {
            "snapshot" => IncomingKind::Snapshot,
            "change" => IncomingKind::Change,
            _ => IncomingKind::Other,
        };
        Incoming {
            kind,
            revision: event.id.as_deref().and_then(|id| id.trim().parse().ok()),
            document: event.data,
        }
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open stream.
enum Events {
    Sse {
        body: ByteStream,
        parser: SseParser,
        pending: VecDeque<SseEvent>,
    },
    #[cfg(feature = "grpc")]
    Grpc(crate::grpc::SyncStream),
}

impl Events {
    /// The next event; `Ok(None)` when the stream ended, `Err` when it broke or went
    /// silent.
    async fn next(&mut self) -> Result<Option<Incoming>, String> {
        match self {
            Events::Sse {
                body,
                parser,
                pending,
            } => loop {
                if let Some(event) = pending.pop_front() {
                    return Ok(Some(Incoming::from(event)));
                }
                // Any bytes (heartbeats included) prove the connection alive.
                let chunk = tokio::time::timeout(STREAM_IDLE_TIMEOUT, body.next())
                    .await
                    .map_err(|_| format!("nothing received for {STREAM_IDLE_TIMEOUT:?}"))?;
                let bytes = match chunk {
                    None => return Ok(None),
                    Some(chunk) => chunk.map_err(|e| e.to_string())?,
                };
                let mut parsed = Vec::new();
                parser.feed(&bytes, &mut parsed)?;
                pending.extend(parsed);
            },
            #[cfg(feature = "grpc")]
            Events::Grpc(stream) => stream.next().await,
        }
    }
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

/// A jittered exponential back-off.
#[derive(Debug)]
struct Backoff {
    start: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(start: Duration, max: Duration) -> Self {
        Backoff {
            start,
            max,
            next: start,
        }
    }

    /// The next delay (the current step ±50 %), doubling the step up to the maximum.
    fn delay(&mut self) -> Duration {
        let step = self.next;
        self.next = step.saturating_mul(2).min(self.max);
        step.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }

    fn reset(&mut self) {
        self.next = self.start;
    }
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
                    tracing::info!(url = %self.endpoint.url, "switchyard: flags in sync")
                }
                Status::Stale { .. } => {
                    tracing::warn!(url = %self.endpoint.url, "switchyard: server unreachable, serving the last flags")
                }
                Status::Failed { reason } => {
                    tracing::warn!(url = %self.endpoint.url, %reason, "switchyard: cannot sync flags")
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
        tracing::debug!(url = %self.endpoint.url, %error, "switchyard: sync attempt failed");
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
                    tracing::debug!(url = %self.endpoint.url, %error, "switchyard: the stream did not open");
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
                    tracing::debug!(url = %self.endpoint.url, "switchyard: stream ended");
                    break;
                }
                Err(problem) => {
                    tracing::debug!(url = %self.endpoint.url, %problem, "switchyard: stream broke");
                    break;
                }
            };
            match self.handle(incoming).await {
                Ok(()) => {}
                Err(Handled::Stop) => return StreamEnd::Stop,
                Err(Handled::Refused(message)) => return StreamEnd::Refused(message),
                Err(Handled::Failed(error)) => {
                    tracing::warn!(url = %self.endpoint.url, %error, "switchyard: could not apply a stream event; reconnecting");
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

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SseEvent {
    /// `event:` (`message` when absent).
    event: String,
    /// The `data:` lines joined with `\n`.
    data: String,
    /// The `id:` field, when the event had one.
    id: Option<String>,
}

/// An incremental `text/event-stream` parser (the WHATWG rules: lines end with
/// CRLF, LF or CR; `:` starts a comment; a blank line dispatches; an event without
/// data is not dispatched).
#[derive(Debug, Default)]
struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended with CR: a leading LF belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    /// Parses `bytes`, appending complete events to `out`.
    fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), &'static str> {
        if self.after_cr {
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
            self.after_cr = false;
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&bytes[..end]);
            let line = std::mem::take(&mut self.line);
            self.line(&line, out);
            let terminator = bytes[end];
            bytes = &bytes[end + 1..];
            if terminator == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err("an event exceeds the size limit");
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            let event = self.event.take();
            let id = self.id.take();
            let data = std::mem::take(&mut self.data);
            if std::mem::take(&mut self.has_data) {
                out.push(SseEvent {
                    event: event.unwrap_or_else(|| "message".to_owned()),
                    data,
                    id,
                });
            }
            return;
        }
        if line.first() == Some(&b':') {
            return; // a comment (heartbeat)
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out).expect("parses");
        }
        out
    }

    fn event(name: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: name.to_owned(),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    #[test]
    fn parses_events_comments_and_multiline_data() {
        let text = b":heartbeat\n\nevent: snapshot\nid: 3\ndata: {\"a\":\ndata: 1}\n\n:heartbeat\n\ndata:plain\n\n";
        assert_eq!(
            parse_chunks(&[text]),
            vec![
                event("snapshot", "{\"a\":\n1}", Some("3")),
                event("message", "plain", None)
            ]
        );
    }

    #[test]
    fn any_chunking_and_line_ending_gives_the_same_events() {
        let lf = "event: change\nid: 7\ndata: {\"revision\":7, \"é\": \"ü\"}\n\nevent: snapshot\ndata: x\n\n";
        let expected = parse_chunks(&[lf.as_bytes()]);
        assert_eq!(expected.len(), 2);
        for ending in ["\n", "\r\n", "\r"] {
            let text = lf.replace('\n', ending);
            let bytes = text.as_bytes();
            // Every split point, including inside CRLF and inside a UTF-8 character.
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                assert_eq!(
                    parse_chunks(&[a, b]),
                    expected,
                    "ending {ending:?} split at {split}"
                );
            }
            // One byte at a time.
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(
                parse_chunks(&singles),
                expected,
                "ending {ending:?} bytewise"
            );
        }
    }

    #[test]
    fn events_without_data_are_not_dispatched_and_fields_reset() {
        assert_eq!(
            parse_chunks(&[b"event: change\nid: 1\n\ndata: d\n\n"]),
            vec![event("message", "d", None)]
        );
        assert_eq!(
            parse_chunks(&[b"data\n\n"]),
            vec![event("message", "", None)]
        );
        // An incomplete event is held back.
        assert!(parse_chunks(&[b"event: change\ndata: x\n"]).is_empty());
    }

    #[test]
    fn backoff_doubles_to_the_maximum_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut step = Duration::from_millis(100);
        for _ in 0..20 {
            let delay = backoff.delay();
            assert!(
                delay >= step / 2 && delay <= step.mul_f64(1.5),
                "{delay:?} for step {step:?}"
            );
            step = (step * 2).min(Duration::from_secs(30));
        }
        assert_eq!(backoff.next, Duration::from_secs(30));
        backoff.reset();
        assert!(backoff.delay() <= Duration::from_millis(150));
    }

    #[test]
    fn error_messages_come_from_the_error_body() {
        assert_eq!(
            error_message(r#"{"error": {"code": "unauthorized", "message": "invalid token"}}"#),
            "invalid token"
        );
        assert_eq!(error_message(" plain \n"), "plain");
    }
}
