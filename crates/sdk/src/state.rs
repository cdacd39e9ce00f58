//! The state a client's handles and its background tasks share: the environment as
//! loaded ([`Loaded`]), the sync status, the change listeners, the metrics and the
//! settings ([`Inner`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use switchyard_core::sync::{ChangeDocument, SnapshotDocument};
use switchyard_core::Snapshot;

use crate::error::{DocumentError, Error};
use crate::metrics::Metrics;

/// One environment at one revision, compiled.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The environment.
    pub environment: String,
    /// Its revision (0 for a bootstrap without one).
    pub revision: u64,
    /// The compiled flags.
    pub snapshot: Snapshot,
}

/// Reads a sync document ([`SnapshotDocument`], [`ChangeDocument`]); the error names
/// the field that is wrong (`flags[2].variants: …`).
pub(crate) fn read_document<'de, T, D>(document: D) -> Result<T, Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de, Error = serde_json::Error>,
{
    serde_path_to_error::deserialize(document).map_err(|e| DocumentError::Shape(e).into())
}

impl Loaded {
    /// Parses an SDK snapshot document `{environment, revision, flags, segments}`.
    pub fn from_document(document: &Value) -> Result<Loaded, Error> {
        Loaded::from_snapshot(read_document(document)?)
    }

    /// Compiles a snapshot document.
    pub fn from_snapshot(document: SnapshotDocument) -> Result<Loaded, Error> {
        let snapshot =
            Snapshot::compile(document.flags, document.segments).map_err(DocumentError::Invalid)?;
        Ok(Loaded {
            environment: document.environment.to_string(),
            revision: document.revision,
            snapshot,
        })
    }

    /// This state with a change applied; at the change's revision when it names one.
    pub fn apply_change(&self, change: &ChangeDocument) -> Result<Loaded, Error> {
        let snapshot = change
            .applied_to(&self.snapshot)
            .map_err(DocumentError::Invalid)?;
        Ok(Loaded {
            environment: self.environment.clone(),
            revision: if change.revision > 0 {
                change.revision
            } else {
                self.revision
            },
            snapshot,
        })
    }
}

/// How the client keeps its flags current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// Server-Sent Events (`/v1/sdk/stream`), falling back to polling while the
    /// stream cannot be opened. The default.
    Sse,
    /// ETag polling of `/v1/sdk/snapshot` only.
    Polling,
    /// gRPC `switchyard.v1.Sync/Stream` (at
    /// [`ClientBuilder::grpc_url`](crate::ClientBuilder::grpc_url), else at the main
    /// URL; `https://` for TLS), falling back to polling while the stream cannot be
    /// opened. The first snapshot and polling use the REST API at the main URL.
    #[cfg(feature = "grpc")]
    Grpc,
    /// No server at all: bootstrap data only.
    Offline,
}

/// Whether the flags are current.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Synced with the server.
    Ready,
    /// Serving the last snapshot; the server has been unreachable since then.
    Stale {
        /// When the connection was lost.
        since: SystemTime,
    },
    /// Not syncing: the server refused the token (the flags held keep being
    /// served, retries are slow), or it was never reached (serving the bootstrap).
    Failed {
        /// Why.
        reason: String,
    },
    /// Built offline from a bootstrap.
    Offline,
}

/// What a change listener is told.
#[derive(Debug, Clone)]
pub struct ChangeNotice {
    /// The new revision.
    pub revision: u64,
    /// Keys of the flags whose answers may have changed, sorted: flags written,
    /// added or deleted, flags whose rules name a changed segment, and flags with a
    /// prerequisite among those. Empty when only unrelated segments changed.
    pub flags: Vec<String>,
}

type Listener = Arc<dyn Fn(&ChangeNotice) + Send + Sync>;

/// The servers a client may sync from: the main URL first, then the fallbacks; the
/// one in use moves on when it cannot be reached. Replicas on one Redis (and relays of
/// one server) share revision numbers, so a client resumes where it was.
#[derive(Debug)]
pub(crate) struct Servers {
    urls: Vec<String>,
    current: std::sync::atomic::AtomicUsize,
}

impl Servers {
    /// `main`, then `fallbacks`, each without a trailing `/`.
    pub(crate) fn new(main: &str, fallbacks: &[String]) -> Self {
        let urls = std::iter::once(main)
            .chain(fallbacks.iter().map(String::as_str))
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect();
        Servers {
            urls,
            current: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The URL in use.
    pub(crate) fn url(&self) -> &str {
        let current = self.current.load(std::sync::atomic::Ordering::Relaxed);
        &self.urls[current % self.urls.len()]
    }

    /// How many there are.
    pub(crate) fn len(&self) -> usize {
        self.urls.len()
    }

    /// All of them, the main one first.
    #[cfg(feature = "grpc")]
    pub(crate) fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The position of the one in use in [`Servers::urls`].
    #[cfg(feature = "grpc")]
    pub(crate) fn index(&self) -> usize {
        self.current.load(std::sync::atomic::Ordering::Relaxed) % self.urls.len()
    }

    /// Moves on from `failed` (when it is still the one in use) to the next server.
    pub(crate) fn fail_over(&self, failed: &str) {
        if self.urls.len() < 2 || self.url() != failed {
            return;
        }
        self.current
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(from = %failed, to = %self.url(), "switchyard: server unreachable, trying the next one");
    }
}

/// Shared by the client handles and the background tasks.
pub(crate) struct Inner {
    pub(crate) servers: Arc<Servers>,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
    pub(crate) state: ArcSwap<Loaded>,
    pub(crate) status: Mutex<Status>,
    pub(crate) listeners: Mutex<Vec<Listener>>,
    pub(crate) metrics: Metrics,
    pub(crate) config: Config,
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
}

/// The builder's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) transport: Transport,
    pub(crate) initial_sync_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) metrics_flush_interval: Duration,
    /// The gRPC API's URL for [`Transport::Grpc`].
    #[cfg(feature = "grpc")]
    pub(crate) grpc_url: Option<String>,
    /// The fallback servers' gRPC APIs, tried in order after `grpc_url`.
    #[cfg(feature = "grpc")]
    pub(crate) grpc_fallbacks: Vec<String>,
    /// The only CA to trust over HTTPS (and gRPC over TLS), instead of the system's.
    pub(crate) ca_file: Option<std::path::PathBuf>,
}

impl Inner {
    /// Installs a new state and tells the listeners.
    pub(crate) fn install(&self, loaded: Loaded, changed: Vec<String>) {
        let notice = ChangeNotice {
            revision: loaded.revision,
            flags: changed,
        };
        self.state.store(Arc::new(loaded));
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        for listener in listeners {
            listener(&notice);
        }
    }

    /// Records whether the server is reachable.
    pub(crate) fn set_status(&self, status: Status) {
        if let Ok(mut current) = self.status.lock() {
            // Stale keeps the time it became stale.
            if matches!(
                (&*current, &status),
                (Status::Stale { .. }, Status::Stale { .. })
            ) {
                return;
            }
            *current = status;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(key: &str) -> Value {
        json!({
            "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": "on"}
        })
    }

    #[test]
    fn a_bootstrap_document_may_omit_environment_and_revision() {
        let loaded = Loaded::from_document(&json!({"flags": [flag("a")]})).expect("reads");
        assert_eq!((loaded.environment.as_str(), loaded.revision), ("", 0));
        assert!(loaded.snapshot.flag("a").is_some());
    }

    #[test]
    fn a_bad_document_is_refused_naming_the_field() {
        let mut bad = flag("b");
        bad["kind"] = json!("colour");
        let document = json!({"environment": "prod", "revision": 3, "flags": [flag("a"), bad]});
        let error = Loaded::from_document(&document).expect_err("bad kind");
        let Error::InvalidDocument(DocumentError::Shape(shape)) = &error else {
            panic!("not a shape error: {error:?}");
        };
        assert_eq!(shape.path().to_string(), "flags[1].kind");
        assert!(
            error
                .to_string()
                .starts_with("invalid flag document: flags[1].kind: unknown variant `colour`"),
            "{error}"
        );
        // The serde error is kept as the cause, not flattened into a string.
        let cause = std::error::Error::source(&error).expect("a source");
        assert!(cause.downcast_ref::<DocumentError>().is_some(), "{cause:?}");
    }

    #[test]
    fn a_flag_that_does_not_validate_keeps_the_validation_errors() {
        let mut bad = flag("b");
        bad["default"] = json!({"variant": "missing"});
        let document = json!({"environment": "prod", "revision": 3, "flags": [bad]});
        let error = Loaded::from_document(&document).expect_err("unknown variant");
        let Error::InvalidDocument(DocumentError::Invalid(errors)) = &error else {
            panic!("not a validation error: {error:?}");
        };
        assert!(!errors.errors().is_empty());
        assert!(error.to_string().contains("missing"), "{error}");
    }

    #[test]
    fn a_change_moves_the_state_to_its_revision() {
        let loaded = Loaded::from_document(
            &json!({"environment": "prod", "revision": 3, "flags": [flag("a")]}),
        )
        .expect("reads");
        let change: ChangeDocument = read_document(json!({
            "environment": "prod", "revision": 4, "flags": [flag("b")], "deleted_flags": ["a"]
        }))
        .expect("a change");
        let next = loaded.apply_change(&change).expect("applies");
        assert_eq!(next.revision, 4);
        let keys: Vec<&str> = next.snapshot.flags().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["b"]);
    }
}
