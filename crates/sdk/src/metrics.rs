//! Exposure and tracked-event counts, aggregated in memory and flushed to
//! `POST /v1/sdk/metrics`.
//!
//! # The hot path
//!
//! Every `is_enabled` counts an exposure, so counting must cost about as little as
//! the evaluation: no allocation, no lock, no shared write other than the counter.
//!
//! - Counts live in fixed-size open-addressing tables of `Slot { key: OnceLock<[Box<str>;
//!   N]>, count: AtomicU64 }`, looked up by the borrowed `&str` parts (FxHash of the
//!   parts, linear probing). A slot's key is written once and never removed, so a
//!   lookup is a few atomic loads and string compares; counting is a `fetch_add`.
//! - Only the first sighting of a key in a table allocates (its boxed names), through
//!   `OnceLock::get_or_init`: concurrent first sightings of the same key agree on one
//!   slot, and a table never holds a key twice.
//! - There are [`STRIPES`](table::STRIPES) tables per kind, and each thread counts
//!   into "its" stripe (assigned round-robin on first use), so threads serving the
//!   same flag do not bounce one counter's cache line between cores.
//! - A stripe's table sits behind an `ArcSwap`. When it is three-quarters full it is
//!   replaced by one twice the size holding the same keys (on the inserting thread,
//!   under a per-stripe mutex that the hot path never takes).
//!
//! # Flushing
//!
//! A flush replaces every stripe's table with a fresh one, pre-populated with the keys
//! that were counted since the previous flush (so active keys never allocate again,
//! and keys that went idle — deleted flags, old event names — are evicted). Tables
//! that were replaced, by a flush or a growth, are *retired*: each flush swaps their
//! counters to zero (`AtomicU64::swap`, so an increment racing the flush is either in
//! this flush or the next, never lost and never sent twice), and a retired table is
//! dropped only after a final sweep once no thread holds it any more
//! (`Arc::try_unwrap`, whose acquire ordering makes every increment made through it
//! visible; `ArcSwap::swap` converts the readers' borrowed guards into counted
//! references before it returns).
//!
//! The counts are then POSTed in batches of at most [`MAX_BATCH_ENTRIES`] entries and
//! [`MAX_BATCH_BYTES`] bytes. A batch that fails for a reason that may pass (no
//! connection, timeout, 408, 429, 5xx) is kept, with the batches not yet tried, and
//! added to the next flush; one the server refuses for good (other 4xx) is dropped.
//! Flushes are serialised by an async mutex (the interval flusher and `close`).
//!
//! # Units
//!
//! With a targeting key, an exposure also records the unit, and `track` /
//! `track_value` record the unit (and value) per event and variant ([`units`]): a
//! small exact set per key that becomes a 16 KiB HyperLogLog sketch past
//! [`units::EXACT_UNITS`] units. They travel as `units` (and `values`) on the same
//! entries as the counts, with the body's `window_ms` — how long its counts took to
//! accumulate, from the previous flush or, for counts held back after a failed POST,
//! from when those began — so the server can date them. Failed batches keep their
//! units; merging sketches is idempotent.
//!
//! # Unknown flags
//!
//! A key evaluated that the snapshot does not have (`FLAG_NOT_FOUND`) is noted once
//! per flush, at most [`MAX_UNKNOWN_FLAGS`] distinct keys (further keys, and names the
//! server would refuse, go to the `dropped` counter). It is a rare path (a typo, a
//! deleted flag), so a plain mutex guards the set. A flush sends the keys in a POST
//! of their own, `{"unknown_flags": [..]}`, after the counts: a server too old to know
//! the field refuses only that body, never the counts. Keys whose POST may pass later
//! are kept for the next flush, within the same cap.
//!
//! # Bounded memory
//!
//! Each stripe's table holds at most [`MAX_KEYS`] distinct keys per kind (pairs for
//! exposures, triples for events); counts for further keys, and for names the server
//! would refuse (empty, over 256 bytes, control characters), go to a `dropped` counter
//! and are logged once. The counts held back after failed POSTs are bounded the same
//! way.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

mod batch;
pub(crate) mod flush;
mod table;
#[cfg(test)]
mod tests;
mod units;

use batch::{batches, held, Batch, Held};
use table::Counters;
use units::{Recorded, Units};

/// Distinct keys one stripe counts per kind (and unsent keys held per kind).
pub(crate) const MAX_KEYS: usize = 10_000;
/// Entries (exposures plus events) in one POST: the server's limit.
pub(crate) const MAX_BATCH_ENTRIES: usize = 10_000;
/// Bytes in one POST body; the server accepts up to 1 MiB.
pub(crate) const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Distinct unknown flag keys kept per flush (the server accepts up to 1 000).
pub(crate) const MAX_UNKNOWN_FLAGS: usize = 100;

/// A key: `[flag, variant]` or `[event, flag, variant]`.
type Key<const N: usize> = [Box<str>; N];

/// The limits; the defaults are the constants above, tests shrink them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_keys: usize,
    pub(crate) batch_entries: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) max_unknown: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_keys: MAX_KEYS,
            batch_entries: MAX_BATCH_ENTRIES,
            batch_bytes: MAX_BATCH_BYTES,
            max_unknown: MAX_UNKNOWN_FLAGS,
        }
    }
}

/// Counts since the last flush, and counts a failed flush could not deliver.
pub(crate) struct Metrics {
    exposures: Counters<2>,
    events: Counters<3>,
    exposure_units: Units<2>,
    event_units: Units<3>,
    unsent: tokio::sync::Mutex<Unsent>,
    /// Keys evaluated that the snapshot does not have, since the last flush (and those
    /// a failed flush kept).
    unknown: Mutex<HashSet<Box<str>>>,
    dropped: AtomicU64,
    warned: AtomicBool,
    limits: Limits,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_limits(Limits::default())
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("dropped", &self.dropped())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Counts held back after a failed POST.
#[derive(Default)]
struct Unsent {
    exposures: HashMap<Key<2>, u64>,
    events: HashMap<Key<3>, u64>,
    exposure_units: HashMap<Key<2>, Recorded>,
    event_units: HashMap<Key<3>, Recorded>,
    /// When the counts held here (and those counted since) began to accumulate.
    began: Option<std::time::Instant>,
}

/// What became of one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The server recorded the batch.
    Accepted,
    /// It may pass later (no connection, timeout, 408, 429, 5xx): keep the counts.
    Retry(String),
    /// The server refused it for good: drop the counts.
    Rejected(String),
}

impl Metrics {
    pub(crate) fn with_limits(limits: Limits) -> Self {
        Metrics {
            exposures: Counters::new(limits.max_keys),
            events: Counters::new(limits.max_keys),
            exposure_units: Units::new(limits.max_keys),
            event_units: Units::new(limits.max_keys),
            unsent: tokio::sync::Mutex::new(Unsent {
                began: Some(std::time::Instant::now()),
                ..Unsent::default()
            }),
            unknown: Mutex::new(HashSet::new()),
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            limits,
        }
    }

    /// Counts one exposure of `variant` of `flag`.
    #[inline]
    pub(crate) fn exposure(&self, flag: &str, variant: &str) {
        if !self.exposures.add([flag, variant]) {
            self.note_dropped(1, "exposure");
        }
    }

    /// Counts one `event` attributed to `variant` of `flag`.
    #[inline]
    pub(crate) fn event(&self, event: &str, flag: &str, variant: &str) {
        if !self.events.add([event, flag, variant]) {
            self.note_dropped(1, "event");
        }
    }

    /// Records `unit` (a targeting key) as served `variant` of `flag`.
    pub(crate) fn exposure_unit(&self, flag: &str, variant: &str, unit: &str) {
        if !self.exposure_units.add([flag, variant], unit, None) {
            self.note_dropped(1, "unit");
        }
    }

    /// Records that `unit`, served `variant` of `flag`, had `event` (with `value`).
    pub(crate) fn event_unit(
        &self,
        event: &str,
        flag: &str,
        variant: &str,
        unit: &str,
        value: Option<f64>,
    ) {
        if !self.event_units.add([event, flag, variant], unit, value) {
            self.note_dropped(1, "unit");
        }
    }

    /// Notes `flag` as evaluated but missing from the snapshot; a key already noted
    /// costs a lookup, no allocation.
    pub(crate) fn unknown_flag(&self, flag: &str) {
        let mut unknown = self.unknown.lock().unwrap_or_else(PoisonError::into_inner);
        if unknown.contains(flag) {
            return;
        }
        if unknown.len() >= self.limits.max_unknown || !table::valid_name(flag) {
            drop(unknown);
            self.note_dropped(1, "unknown flag");
            return;
        }
        unknown.insert(flag.into());
    }

    /// Counts (and unknown flag sightings) that were not kept: over the key cap,
    /// invalid names, or refused by the server.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    #[cold]
    fn note_dropped(&self, count: u64, what: &str) {
        self.dropped.fetch_add(count, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_keys = self.limits.max_keys,
                "switchyard metrics: dropping {what} counts (too many distinct keys held, a \
                 name the server would refuse, or a batch the server refused); this is \
                 logged once"
            );
        }
    }

    /// Takes every count, sends it in batches through `send`, and keeps what could
    /// not be delivered (bounded) for the next call.
    pub(crate) async fn flush_with<F, Fut>(&self, mut send: F)
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = Delivery>,
    {
        let mut unsent = self.unsent.lock().await;
        let now = std::time::Instant::now();
        self.exposures.drain_into(&mut unsent.exposures);
        self.events.drain_into(&mut unsent.events);
        self.exposure_units.drain_into(&mut unsent.exposure_units);
        self.event_units.drain_into(&mut unsent.event_units);
        let began = unsent.began.replace(now).unwrap_or(now);
        let unknown =
            std::mem::take(&mut *self.unknown.lock().unwrap_or_else(PoisonError::into_inner));
        if unsent.exposures.is_empty()
            && unsent.events.is_empty()
            && unsent.exposure_units.is_empty()
            && unsent.event_units.is_empty()
        {
            if !unknown.is_empty() {
                self.send_unknown(unknown, false, &mut send).await;
            }
            return;
        }
        let window_ms = u64::try_from(now.duration_since(began).as_millis()).unwrap_or(u64::MAX);
        let exposures = held(
            std::mem::take(&mut unsent.exposures),
            std::mem::take(&mut unsent.exposure_units),
        );
        let events = held(
            std::mem::take(&mut unsent.events),
            std::mem::take(&mut unsent.event_units),
        );
        let mut failed = false;
        for batch in batches(exposures, events, window_ms, self.limits) {
            let Batch {
                body,
                exposures,
                events,
            } = batch;
            let outcome = if failed {
                // The server is unreachable: keep the rest for the next flush.
                Delivery::Retry(String::new())
            } else {
                send(body).await
            };
            match outcome {
                Delivery::Accepted => {}
                Delivery::Retry(why) => {
                    if !failed {
                        tracing::warn!("switchyard metrics: flush failed, will retry: {why}");
                    }
                    failed = true;
                    let Unsent {
                        exposures: exposure_counts,
                        events: event_counts,
                        exposure_units,
                        event_units,
                        ..
                    } = &mut *unsent;
                    merge_all(exposure_counts, exposure_units, exposures);
                    merge_all(event_counts, event_units, events);
                }
                Delivery::Rejected(why) => {
                    tracing::warn!("switchyard metrics: the server refused a batch: {why}");
                    let lost = total(&exposures).saturating_add(total(&events));
                    self.note_dropped(lost, "refused");
                }
            }
        }
        if failed {
            // What is held back began when this flush's counts did.
            unsent.began = Some(began);
        }
        if !unknown.is_empty() {
            self.send_unknown(unknown, failed, &mut send).await;
        }
        let max = self.limits.max_keys;
        let lost = trim(&mut unsent.exposures, max, |c| *c)
            .saturating_add(trim(&mut unsent.events, max, |c| *c))
            .saturating_add(trim(&mut unsent.exposure_units, max, |_| 1))
            .saturating_add(trim(&mut unsent.event_units, max, |_| 1));
        if lost > 0 {
            self.note_dropped(lost, "unsent");
        }
    }
}

impl Metrics {
    /// POSTs `{"unknown_flags": [..]}`; keeps the keys (within the cap) when it may
    /// pass later, or without trying when the server is `unreachable`.
    async fn send_unknown<F, Fut>(
        &self,
        unknown: HashSet<Box<str>>,
        unreachable: bool,
        send: &mut F,
    ) where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = Delivery>,
    {
        let mut keys: Vec<&str> = unknown.iter().map(AsRef::as_ref).collect();
        keys.sort_unstable();
        let outcome = if unreachable {
            Delivery::Retry(String::new())
        } else {
            match serde_json::to_vec(&serde_json::json!({ "unknown_flags": keys })) {
                Ok(body) => send(body).await,
                Err(error) => Delivery::Rejected(error.to_string()),
            }
        };
        match outcome {
            Delivery::Accepted => {}
            Delivery::Retry(why) => {
                if !unreachable {
                    tracing::warn!(
                        "switchyard metrics: sending unknown flags failed, will retry: {why}"
                    );
                }
                let mut held = self.unknown.lock().unwrap_or_else(PoisonError::into_inner);
                let mut lost = 0u64;
                for key in unknown {
                    if held.len() < self.limits.max_unknown || held.contains(&key) {
                        held.insert(key);
                    } else {
                        lost += 1;
                    }
                }
                drop(held);
                if lost > 0 {
                    self.note_dropped(lost, "unknown flag");
                }
            }
            Delivery::Rejected(why) => {
                tracing::warn!("switchyard metrics: the server refused the unknown flags: {why}");
                self.note_dropped(
                    u64::try_from(unknown.len()).unwrap_or(u64::MAX),
                    "unknown flag",
                );
            }
        }
    }
}

fn merge_all<const N: usize>(
    counts: &mut HashMap<Key<N>, u64>,
    units: &mut HashMap<Key<N>, Recorded>,
    entries: Vec<Held<N>>,
) {
    for (key, count, recorded) in entries {
        if let Some(recorded) = recorded {
            units.entry(key.clone()).or_default().merge(recorded);
        }
        if count > 0 {
            let slot = counts.entry(key).or_default();
            *slot = slot.saturating_add(count);
        }
    }
}

fn total<const N: usize>(entries: &[Held<N>]) -> u64 {
    entries
        .iter()
        .fold(0u64, |sum, (_, count, _)| sum.saturating_add(*count))
}

/// Drops entries beyond `max` (arbitrary ones); returns what they weighed (their
/// counts, or one per key of units).
fn trim<const N: usize, V>(
    map: &mut HashMap<Key<N>, V>,
    max: usize,
    weight: impl Fn(&V) -> u64,
) -> u64 {
    if map.len() <= max {
        return 0;
    }
    let excess: Vec<Key<N>> = map.keys().skip(max).cloned().collect();
    excess.iter().fold(0u64, |sum, key| {
        sum.saturating_add(map.remove(key).map(|v| weight(&v)).unwrap_or_default())
    })
}
