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
//! - There are [`STRIPES`] tables per kind, and each thread counts into "its" stripe
//!   (assigned round-robin on first use), so threads serving the same flag do not
//!   bounce one counter's cache line between cores.
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
//! # Bounded memory
//!
//! Each stripe's table holds at most [`MAX_KEYS`] distinct keys per kind (pairs for
//! exposures, triples for events); counts for further keys, and for names the server
//! would refuse (empty, over 256 bytes, control characters), go to a `dropped` counter
//! and are logged once. The counts held back after failed POSTs are bounded the same
//! way.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;

use crate::client::{Inner, Transport};

/// Distinct keys one stripe counts per kind (and unsent keys held per kind).
pub(crate) const MAX_KEYS: usize = 10_000;
/// Entries (exposures plus events) in one POST: the server's limit.
pub(crate) const MAX_BATCH_ENTRIES: usize = 10_000;
/// Bytes in one POST body; the server accepts up to 1 MiB.
pub(crate) const MAX_BATCH_BYTES: usize = 512 * 1024;
/// The longest name the server accepts in a metrics entry.
const MAX_NAME_LEN: usize = 256;
/// Tables per kind; threads are spread over them.
const STRIPES: usize = 4;
/// The smallest table.
const MIN_SLOTS: usize = 16;
/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A key: `[flag, variant]` or `[event, flag, variant]`.
type Key<const N: usize> = [Box<str>; N];

/// The limits; the defaults are the constants above, tests shrink them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_keys: usize,
    pub(crate) batch_entries: usize,
    pub(crate) batch_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_keys: MAX_KEYS,
            batch_entries: MAX_BATCH_ENTRIES,
            batch_bytes: MAX_BATCH_BYTES,
        }
    }
}

/// Counts since the last flush, and counts a failed flush could not deliver.
pub(crate) struct Metrics {
    exposures: Counters<2>,
    events: Counters<3>,
    unsent: tokio::sync::Mutex<Unsent>,
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
            unsent: tokio::sync::Mutex::new(Unsent::default()),
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

    /// Counts that were not kept: over the key cap, invalid names, or refused by the
    /// server.
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
        self.exposures.drain_into(&mut unsent.exposures);
        self.events.drain_into(&mut unsent.events);
        if unsent.exposures.is_empty() && unsent.events.is_empty() {
            return;
        }
        let exposures: Vec<(Key<2>, u64)> = unsent.exposures.drain().collect();
        let events: Vec<(Key<3>, u64)> = unsent.events.drain().collect();
        let mut failed = false;
        for batch in batches(exposures, events, self.limits) {
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
                    merge_all(&mut unsent.exposures, exposures);
                    merge_all(&mut unsent.events, events);
                }
                Delivery::Rejected(why) => {
                    tracing::warn!("switchyard metrics: the server refused a batch: {why}");
                    let lost = total(&exposures).saturating_add(total(&events));
                    self.note_dropped(lost, "refused");
                }
            }
        }
        let lost = trim(&mut unsent.exposures, self.limits.max_keys)
            .saturating_add(trim(&mut unsent.events, self.limits.max_keys));
        if lost > 0 {
            self.note_dropped(lost, "unsent");
        }
    }
}

fn merge_all<const N: usize>(into: &mut HashMap<Key<N>, u64>, entries: Vec<(Key<N>, u64)>) {
    for (key, count) in entries {
        let slot = into.entry(key).or_default();
        *slot = slot.saturating_add(count);
    }
}

fn total<const N: usize>(entries: &[(Key<N>, u64)]) -> u64 {
    entries
        .iter()
        .fold(0u64, |sum, (_, count)| sum.saturating_add(*count))
}

/// Drops entries beyond `max` (arbitrary ones); returns the counts dropped.
fn trim<const N: usize>(map: &mut HashMap<Key<N>, u64>, max: usize) -> u64 {
    if map.len() <= max {
        return 0;
    }
    let excess: Vec<Key<N>> = map.keys().skip(max).cloned().collect();
    excess.iter().fold(0u64, |sum, key| {
        sum.saturating_add(map.remove(key).unwrap_or_default())
    })
}

// ---------------------------------------------------------------------------
// Batches

/// One POST body and the entries it carries (kept to retry).
struct Batch {
    body: Vec<u8>,
    exposures: Vec<(Key<2>, u64)>,
    events: Vec<(Key<3>, u64)>,
}

#[derive(Serialize)]
struct ExposureEntry<'a> {
    flag: &'a str,
    variant: &'a str,
    count: u64,
}

#[derive(Serialize)]
struct EventEntry<'a> {
    event: &'a str,
    flag: &'a str,
    variant: &'a str,
    count: u64,
}

const BODY_START: &[u8] = br#"{"exposures":["#;
const BODY_MIDDLE: &[u8] = br#"],"events":["#;
const BODY_END: &[u8] = br#"]}"#;

/// Accumulates one batch.
#[derive(Default)]
struct Builder {
    exposure_json: Vec<u8>,
    event_json: Vec<u8>,
    batch_exposures: Vec<(Key<2>, u64)>,
    batch_events: Vec<(Key<3>, u64)>,
}

impl Builder {
    fn entries(&self) -> usize {
        self.batch_exposures.len() + self.batch_events.len()
    }

    fn size(&self) -> usize {
        BODY_START.len()
            + self.exposure_json.len()
            + BODY_MIDDLE.len()
            + self.event_json.len()
            + BODY_END.len()
    }

    /// Whether an entry of `len` JSON bytes still fits.
    fn fits(&self, len: usize, limits: Limits) -> bool {
        self.entries() == 0
            || (self.entries() < limits.batch_entries
                && self.size() + 1 + len <= limits.batch_bytes)
    }

    fn finish(self) -> Batch {
        let mut body = Vec::with_capacity(self.size());
        body.extend_from_slice(BODY_START);
        body.extend_from_slice(&self.exposure_json);
        body.extend_from_slice(BODY_MIDDLE);
        body.extend_from_slice(&self.event_json);
        body.extend_from_slice(BODY_END);
        Batch {
            body,
            exposures: self.batch_exposures,
            events: self.batch_events,
        }
    }
}

fn append(json: &mut Vec<u8>, entry: &[u8]) {
    if !json.is_empty() {
        json.push(b',');
    }
    json.extend_from_slice(entry);
}

/// Splits the counts into POST bodies within the entry and byte limits.
fn batches(
    exposures: Vec<(Key<2>, u64)>,
    events: Vec<(Key<3>, u64)>,
    limits: Limits,
) -> Vec<Batch> {
    let mut done = Vec::new();
    let mut current = Builder::default();
    for (key, count) in exposures {
        let [flag, variant] = &key;
        let Ok(entry) = serde_json::to_vec(&ExposureEntry {
            flag,
            variant,
            count,
        }) else {
            continue;
        };
        if !current.fits(entry.len(), limits) {
            done.push(std::mem::take(&mut current).finish());
        }
        append(&mut current.exposure_json, &entry);
        current.batch_exposures.push((key, count));
    }
    for (key, count) in events {
        let [event, flag, variant] = &key;
        let Ok(entry) = serde_json::to_vec(&EventEntry {
            event,
            flag,
            variant,
            count,
        }) else {
            continue;
        };
        if !current.fits(entry.len(), limits) {
            done.push(std::mem::take(&mut current).finish());
        }
        append(&mut current.event_json, &entry);
        current.batch_events.push((key, count));
    }
    if current.entries() > 0 {
        done.push(current.finish());
    }
    done
}

// ---------------------------------------------------------------------------
// Sending

/// Sends what is held (and what earlier flushes could not deliver).
pub(crate) async fn flush(inner: &Inner) {
    if inner.config.transport == Transport::Offline {
        // An offline client contacts no server.
        return;
    }
    let url = format!("{}/v1/sdk/metrics", inner.url);
    inner
        .metrics
        .flush_with(|body| {
            let request = inner
                .http
                .post(&url)
                .bearer_auth(&inner.token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(REQUEST_TIMEOUT)
                .body(body);
            async move { delivery(request.send().await).await }
        })
        .await;
}

async fn delivery(result: Result<reqwest::Response, reqwest::Error>) -> Delivery {
    let response = match result {
        Ok(response) => response,
        Err(error) => return Delivery::Retry(error.to_string()),
    };
    let status = response.status();
    if status.is_success() {
        return Delivery::Accepted;
    }
    let text = response.text().await.unwrap_or_default();
    let why = format!("{status}: {text}");
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Delivery::Retry(why)
    } else {
        Delivery::Rejected(why)
    }
}

/// Flushes on the configured interval until shutdown (`close` sends the rest).
pub(crate) fn spawn_flusher(inner: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            let Some(interval) = inner.upgrade().map(|i| i.config.metrics_flush_interval) else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            let Some(strong) = inner.upgrade() else {
                return;
            };
            flush(&strong).await;
        }
    });
}

// ---------------------------------------------------------------------------
// The counters

/// The stripe this thread counts into.
#[inline]
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE
        .try_with(|stripe| {
            let mut index = stripe.get();
            if index == usize::MAX {
                index = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
                stripe.set(index);
            }
            index
        })
        .unwrap_or(0)
        % STRIPES
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these mutexes stays consistent whatever panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the server would accept `name` in a metrics entry.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

/// Counts per key of `N` names, striped across threads.
struct Counters<const N: usize> {
    stripes: [Stripe<N>; STRIPES],
    /// Tables replaced since they were last swept with no reader left.
    retired: Mutex<Vec<Arc<Table<N>>>>,
    max_keys: usize,
}

struct Stripe<const N: usize> {
    current: ArcSwap<Table<N>>,
    /// Taken to replace `current` (growth, flush); never on the hot path.
    replace: Mutex<()>,
}

impl<const N: usize> Counters<N> {
    fn new(max_keys: usize) -> Self {
        Counters {
            stripes: std::array::from_fn(|_| Stripe {
                current: ArcSwap::from_pointee(Table::with_slots(MIN_SLOTS)),
                replace: Mutex::new(()),
            }),
            retired: Mutex::new(Vec::new()),
            max_keys,
        }
    }

    /// Counts one for `parts`; false when the count was dropped.
    #[inline]
    fn add(&self, parts: [&str; N]) -> bool {
        let hash = hash_parts(&parts);
        let stripe = &self.stripes[stripe_index()];
        let table = stripe.current.load();
        if let Some(count) = table.find(&parts, hash) {
            count.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.add_new(stripe, parts, hash)
    }

    /// The first sighting of `parts` in this stripe's table.
    #[cold]
    fn add_new(&self, stripe: &Stripe<N>, parts: [&str; N], hash: u64) -> bool {
        if !parts.iter().all(|part| valid_name(part)) {
            return false;
        }
        loop {
            let table = stripe.current.load_full();
            match table.insert(&parts, hash, self.max_keys) {
                Insert::Counter(count) => {
                    count.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Insert::Full => return false,
                Insert::Grow => self.grow(stripe, &table),
            }
        }
    }

    /// Replaces `seen` with a table twice its size holding the same keys, unless it
    /// was replaced meanwhile.
    fn grow(&self, stripe: &Stripe<N>, seen: &Arc<Table<N>>) {
        let _replacing = lock(&stripe.replace);
        if !Arc::ptr_eq(&stripe.current.load(), seen) {
            return;
        }
        let bigger = Table::with_slots(seen.slots.len() * 2);
        for slot in seen.slots.iter() {
            if let Some(key) = slot.key.get() {
                bigger.insert_owned(key.clone());
            }
        }
        let old = stripe.current.swap(Arc::new(bigger));
        lock(&self.retired).push(old);
    }

    /// Moves every count into `out`, replacing each stripe's table with a fresh one
    /// that holds the keys counted since the last drain.
    fn drain_into(&self, out: &mut HashMap<Key<N>, u64>) {
        for stripe in &self.stripes {
            let _replacing = lock(&stripe.replace);
            let fresh = {
                let current = stripe.current.load();
                let active: Vec<&Key<N>> = current
                    .slots
                    .iter()
                    .filter(|slot| slot.count.load(Ordering::Relaxed) > 0)
                    .filter_map(|slot| slot.key.get())
                    .collect();
                let fresh = Table::with_slots(slots_for(active.len()));
                for key in active {
                    fresh.insert_owned(key.clone());
                }
                fresh
            };
            let old = stripe.current.swap(Arc::new(fresh));
            lock(&self.retired).push(old);
        }
        let retired = std::mem::take(&mut *lock(&self.retired));
        let mut still_held = Vec::new();
        for table in retired {
            match Arc::try_unwrap(table) {
                // No thread holds it any more: this sweep is its last.
                Ok(table) => table.sweep_into(out),
                Err(table) => {
                    table.sweep_into(out);
                    still_held.push(table);
                }
            }
        }
        lock(&self.retired).extend(still_held);
    }
}

/// A power of two with room for `keys` at three-quarters load.
fn slots_for(keys: usize) -> usize {
    (keys.saturating_mul(4) / 3 + 1)
        .max(MIN_SLOTS)
        .next_power_of_two()
}

fn hash_parts<const N: usize>(parts: &[&str; N]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    for part in parts {
        hasher.write(part.as_bytes());
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

fn same<const N: usize>(key: &Key<N>, parts: &[&str; N]) -> bool {
    key.iter().zip(parts).all(|(a, b)| **a == **b)
}

struct Slot<const N: usize> {
    key: OnceLock<Key<N>>,
    count: AtomicU64,
}

/// An open-addressing table that never holds more than three-quarters of its slots,
/// so every probe meets an empty slot.
struct Table<const N: usize> {
    slots: Box<[Slot<N>]>,
    /// `64 - log2(slots)`: the start slot is the hash's top bits (Fibonacci hashing).
    shift: u32,
    /// Slots taken or reserved.
    len: AtomicUsize,
}

enum Insert<'t> {
    Counter(&'t AtomicU64),
    Grow,
    Full,
}

impl<const N: usize> Table<N> {
    /// `slots` is a power of two.
    fn with_slots(slots: usize) -> Self {
        let slots = slots.max(MIN_SLOTS).next_power_of_two();
        Table {
            slots: (0..slots)
                .map(|_| Slot {
                    key: OnceLock::new(),
                    count: AtomicU64::new(0),
                })
                .collect(),
            shift: 64 - slots.trailing_zeros(),
            len: AtomicUsize::new(0),
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn start(&self, hash: u64) -> usize {
        // The top `log2(slots)` bits; `shift` is at most 60.
        (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize & self.mask()
    }

    /// The counter of `parts`, if the table holds it.
    #[inline]
    fn find(&self, parts: &[&str; N], hash: u64) -> Option<&AtomicU64> {
        let mut i = self.start(hash);
        for _ in 0..self.slots.len() {
            let slot = &self.slots[i];
            match slot.key.get() {
                None => return None,
                Some(key) if same(key, parts) => return Some(&slot.count),
                Some(_) => i = (i + 1) & self.mask(),
            }
        }
        None
    }

    /// The counter of `parts`, taking a slot for it if needed.
    fn insert(&self, parts: &[&str; N], hash: u64, max_keys: usize) -> Insert<'_> {
        let mut reserved = false;
        let mut i = self.start(hash);
        for _ in 0..self.slots.len() {
            let slot = &self.slots[i];
            let key = match slot.key.get() {
                Some(key) => key,
                None => {
                    if !reserved {
                        let taken = self.len.fetch_add(1, Ordering::Relaxed);
                        if taken >= max_keys || taken >= self.slots.len() / 4 * 3 {
                            self.len.fetch_sub(1, Ordering::Relaxed);
                            return if taken >= max_keys {
                                Insert::Full
                            } else {
                                Insert::Grow
                            };
                        }
                        reserved = true;
                    }
                    let mut mine = false;
                    let key = slot.key.get_or_init(|| {
                        mine = true;
                        parts.map(Box::from)
                    });
                    if mine {
                        return Insert::Counter(&slot.count);
                    }
                    // Another thread took this slot first.
                    key
                }
            };
            if same(key, parts) {
                if reserved {
                    self.len.fetch_sub(1, Ordering::Relaxed);
                }
                return Insert::Counter(&slot.count);
            }
            i = (i + 1) & self.mask();
        }
        if reserved {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        Insert::Full
    }

    /// Adds a key to a table no other thread sees yet.
    fn insert_owned(&self, key: Key<N>) {
        let parts: [&str; N] = std::array::from_fn(|i| &*key[i]);
        let mut i = self.start(hash_parts(&parts));
        for _ in 0..self.slots.len() {
            let slot = &self.slots[i];
            match slot.key.get() {
                None => {
                    let _ = slot.key.set(key);
                    self.len.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(existing) if same(existing, &parts) => return,
                Some(_) => i = (i + 1) & self.mask(),
            }
        }
    }

    /// Moves the counts into `out`.
    fn sweep_into(&self, out: &mut HashMap<Key<N>, u64>) {
        for slot in self.slots.iter() {
            let Some(key) = slot.key.get() else {
                continue;
            };
            let count = slot.count.swap(0, Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            match out.get_mut(key) {
                Some(sum) => *sum = sum.saturating_add(count),
                None => {
                    out.insert(key.clone(), count);
                }
            }
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.slots.iter().filter(|s| s.key.get().is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex as StdMutex;

    use serde_json::Value;

    use super::*;

    type Sums = BTreeMap<Vec<String>, u64>;

    /// Adds a body's entries to `exposures` and `events`, checking the body's shape.
    fn add_body(body: &[u8], exposures: &mut Sums, events: &mut Sums) -> usize {
        let value: Value = serde_json::from_slice(body).expect("a JSON body");
        let mut entries = 0;
        for e in value["exposures"].as_array().expect("exposures") {
            let key = vec![
                e["flag"].as_str().expect("flag").to_owned(),
                e["variant"].as_str().expect("variant").to_owned(),
            ];
            let count = e["count"].as_u64().expect("count");
            assert!(count > 0, "counts are positive: {e}");
            *exposures.entry(key).or_default() += count;
            entries += 1;
        }
        for e in value["events"].as_array().expect("events") {
            let key = vec![
                e["event"].as_str().expect("event").to_owned(),
                e["flag"].as_str().expect("flag").to_owned(),
                e["variant"].as_str().expect("variant").to_owned(),
            ];
            let count = e["count"].as_u64().expect("count");
            assert!(count > 0, "counts are positive: {e}");
            *events.entry(key).or_default() += count;
            entries += 1;
        }
        entries
    }

    /// A sender that accepts everything and records the bodies.
    #[derive(Default, Clone)]
    struct Recorder {
        bodies: Arc<StdMutex<Vec<Vec<u8>>>>,
    }

    impl Recorder {
        fn send(&self) -> impl FnMut(Vec<u8>) -> std::future::Ready<Delivery> + '_ {
            |body| {
                self.bodies.lock().expect("lock").push(body);
                std::future::ready(Delivery::Accepted)
            }
        }

        fn sums(&self) -> (Sums, Sums) {
            let (mut exposures, mut events) = (Sums::new(), Sums::new());
            for body in self.bodies.lock().expect("lock").iter() {
                add_body(body, &mut exposures, &mut events);
            }
            (exposures, events)
        }
    }

    fn key(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| (*p).to_owned()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_racing_flushes_sum_exactly() {
        let metrics = Arc::new(Metrics::default());
        let recorder = Recorder::default();
        const THREADS: usize = 8;
        const ROUNDS: u64 = 20_000;
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let metrics = Arc::clone(&metrics);
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        metrics.exposure("checkout", if round % 3 == 0 { "on" } else { "off" });
                        // Many distinct keys, so tables grow while flushes run.
                        let flag = format!("flag-{}", round % 300);
                        metrics.exposure(&flag, "v");
                        if round % 2 == 0 {
                            metrics.event("purchase", "checkout", "on");
                        }
                        if t == 0 {
                            metrics.event("error", &flag, "v");
                        }
                    }
                })
            })
            .collect();
        // Flush over and over while the threads count.
        let mut flushes = 0;
        while !workers.iter().all(|w| w.is_finished()) {
            metrics.flush_with(recorder.send()).await;
            flushes += 1;
            tokio::task::yield_now().await;
        }
        for worker in workers {
            worker.join().expect("worker");
        }
        metrics.flush_with(recorder.send()).await;
        assert!(flushes > 0);

        let (exposures, events) = recorder.sums();
        let threads = THREADS as u64;
        let on = (0..ROUNDS).filter(|r| r % 3 == 0).count() as u64;
        assert_eq!(exposures[&key(&["checkout", "on"])], threads * on);
        assert_eq!(
            exposures[&key(&["checkout", "off"])],
            threads * (ROUNDS - on)
        );
        for i in 0..300u64 {
            let per_flag = (0..ROUNDS).filter(|r| r % 300 == i).count() as u64;
            let flag = format!("flag-{i}");
            assert_eq!(exposures[&key(&[&flag, "v"])], threads * per_flag, "{flag}");
            assert_eq!(events[&key(&["error", &flag, "v"])], per_flag, "{flag}");
        }
        assert_eq!(exposures.len(), 302);
        assert_eq!(
            events[&key(&["purchase", "checkout", "on"])],
            threads * ROUNDS / 2
        );
        assert_eq!(events.len(), 301);
        assert_eq!(metrics.dropped(), 0);
        // Nothing is left to send.
        let before = recorder.bodies.lock().expect("lock").len();
        metrics.flush_with(recorder.send()).await;
        assert_eq!(recorder.bodies.lock().expect("lock").len(), before);
    }

    #[tokio::test]
    async fn keys_beyond_the_cap_and_invalid_names_are_dropped_and_counted() {
        let metrics = Metrics::with_limits(Limits {
            max_keys: 5,
            ..Limits::default()
        });
        // One thread: one stripe, so the cap applies to these keys exactly.
        for _ in 0..3 {
            for i in 0..8 {
                metrics.exposure(&format!("flag-{i}"), "on");
            }
            for i in 0..7 {
                metrics.event(&format!("event-{i}"), "checkout", "on");
            }
        }
        assert_eq!(metrics.dropped(), 3 * 3 + 2 * 3);
        let long = "x".repeat(MAX_NAME_LEN + 1);
        metrics.event("", "checkout", "on");
        metrics.event(&long, "checkout", "on");
        metrics.event("bad\nname", "checkout", "on");
        metrics.exposure("checkout", &long);
        assert_eq!(metrics.dropped(), 15 + 4);
        let recorder = Recorder::default();
        metrics.flush_with(recorder.send()).await;
        let (exposures, events) = recorder.sums();
        assert_eq!(exposures.len(), 5);
        assert!(exposures.values().all(|&count| count == 3), "{exposures:?}");
        assert_eq!(events.len(), 5);
        assert!(events.values().all(|&count| count == 3), "{events:?}");

        // The counted keys stay held while active: a new one is still over the cap.
        metrics.event("event-new", "checkout", "on");
        assert_eq!(metrics.dropped(), 20);
        // An interval without them evicts them; then there is room, and a name of
        // exactly the limit is accepted.
        metrics.flush_with(Recorder::default().send()).await;
        let at_limit = "y".repeat(MAX_NAME_LEN);
        metrics.event(&at_limit, "checkout", "on");
        let recorder = Recorder::default();
        metrics.flush_with(recorder.send()).await;
        let (_, events) = recorder.sums();
        assert_eq!(events[&key(&[&at_limit, "checkout", "on"])], 1);
        assert_eq!(metrics.dropped(), 20);
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_the_counts_for_the_next_one() {
        let metrics = Metrics::default();
        for _ in 0..5 {
            metrics.exposure("checkout", "on");
            metrics.event("purchase", "checkout", "on");
        }
        let mut attempts = 0;
        metrics
            .flush_with(|_| {
                attempts += 1;
                std::future::ready(Delivery::Retry("connection refused".to_owned()))
            })
            .await;
        assert_eq!(attempts, 1);
        // More counts arrive before the next flush, which succeeds.
        for _ in 0..2 {
            metrics.exposure("checkout", "on");
            metrics.exposure("checkout", "off");
        }
        let recorder = Recorder::default();
        metrics.flush_with(recorder.send()).await;
        let (exposures, events) = recorder.sums();
        assert_eq!(exposures[&key(&["checkout", "on"])], 7);
        assert_eq!(exposures[&key(&["checkout", "off"])], 2);
        assert_eq!(events[&key(&["purchase", "checkout", "on"])], 5);
        assert_eq!(metrics.dropped(), 0);
        // Delivered once: nothing is sent again.
        let again = Recorder::default();
        metrics.flush_with(again.send()).await;
        assert!(again.bodies.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_refused_batch_is_dropped_not_retried() {
        let metrics = Metrics::default();
        metrics.exposure("checkout", "on");
        metrics
            .flush_with(|_| std::future::ready(Delivery::Rejected("403".to_owned())))
            .await;
        assert_eq!(metrics.dropped(), 1);
        let recorder = Recorder::default();
        metrics.flush_with(recorder.send()).await;
        assert!(recorder.bodies.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn after_a_failure_the_remaining_batches_wait_and_unsent_counts_are_bounded() {
        let metrics = Metrics::with_limits(Limits {
            max_keys: 6,
            batch_entries: 2,
            batch_bytes: MAX_BATCH_BYTES,
        });
        for i in 0..6 {
            metrics.exposure(&format!("flag-{i}"), "on");
        }
        let mut attempts = 0;
        metrics
            .flush_with(|_| {
                attempts += 1;
                std::future::ready(Delivery::Retry("503".to_owned()))
            })
            .await;
        assert_eq!(
            attempts, 1,
            "after a failure the other batches are not tried"
        );
        // Another failed flush: the six keys, idle for an interval, leave the table
        // (their counts stay unsent).
        metrics
            .flush_with(|_| std::future::ready(Delivery::Retry("503".to_owned())))
            .await;
        // Six more keys fit in the table, but make twelve unsent keys: bounded to six.
        for i in 6..12 {
            metrics.exposure(&format!("flag-{i}"), "on");
        }
        assert_eq!(metrics.dropped(), 0);
        metrics
            .flush_with(|_| std::future::ready(Delivery::Retry("503".to_owned())))
            .await;
        assert_eq!(metrics.dropped(), 6);
        let recorder = Recorder::default();
        metrics.flush_with(recorder.send()).await;
        let (exposures, _) = recorder.sums();
        assert_eq!(exposures.len(), 6);
        assert_eq!(exposures.values().sum::<u64>(), 6);
    }

    #[tokio::test]
    async fn batches_respect_the_entry_and_byte_limits() {
        let limits = Limits {
            max_keys: MAX_KEYS,
            batch_entries: 3,
            batch_bytes: MAX_BATCH_BYTES,
        };
        let metrics = Metrics::with_limits(limits);
        for i in 0..10 {
            for _ in 0..=i {
                metrics.exposure(&format!("flag-{i}"), "on");
            }
        }
        for i in 0..5 {
            metrics.event(&format!("event-{i}"), "checkout", "on");
        }
        let recorder = Recorder::default();
        metrics.flush_with(recorder.send()).await;
        let bodies = recorder.bodies.lock().expect("lock").clone();
        assert_eq!(bodies.len(), 5, "15 entries in batches of 3");
        for body in &bodies {
            let (mut e, mut v) = (Sums::new(), Sums::new());
            assert!(add_body(body, &mut e, &mut v) <= 3);
        }
        let (exposures, events) = recorder.sums();
        for i in 0..10u64 {
            assert_eq!(exposures[&key(&[&format!("flag-{i}"), "on"])], i + 1);
        }
        assert_eq!(events.len(), 5);

        // Long names: the byte limit splits batches.
        let limits = Limits {
            max_keys: MAX_KEYS,
            batch_entries: MAX_BATCH_ENTRIES,
            batch_bytes: 4096,
        };
        let metrics = Metrics::with_limits(limits);
        let long = |i: usize| format!("{i:0>250}");
        for i in 0..40 {
            metrics.event(&long(i), &long(i + 1), "on");
        }
        let recorder = Recorder::default();
        metrics.flush_with(recorder.send()).await;
        let bodies = recorder.bodies.lock().expect("lock").clone();
        assert!(bodies.len() > 1);
        assert!(
            bodies.iter().all(|b| b.len() <= 4096),
            "bodies within 4096 bytes"
        );
        let (_, events) = recorder.sums();
        assert_eq!(events.len(), 40);
        assert!(events.values().all(|&c| c == 1));
    }

    #[tokio::test]
    async fn idle_keys_are_evicted_by_a_flush_and_active_ones_kept() {
        let counters = Counters::<2>::new(MAX_KEYS);
        assert!(counters.add(["a", "on"]));
        assert!(counters.add(["b", "on"]));
        let mut out = HashMap::new();
        counters.drain_into(&mut out);
        assert_eq!(out.len(), 2);
        let stripe = &counters.stripes[stripe_index()];
        // Both were counted since the last drain: both are kept.
        assert_eq!(stripe.current.load().keys(), 2);
        assert!(counters.add(["a", "on"]));
        let mut out = HashMap::new();
        counters.drain_into(&mut out);
        // Only `a` was counted this time.
        assert_eq!(stripe.current.load().keys(), 1);
        assert_eq!(out.len(), 1);
        // Retired tables are released once swept with no reader.
        counters.drain_into(&mut HashMap::new());
        assert!(lock(&counters.retired).is_empty());
    }

    #[test]
    fn tables_grow_and_keep_their_keys() {
        let counters = Counters::<2>::new(MAX_KEYS);
        for i in 0..1000 {
            let flag = format!("flag-{i}");
            assert!(counters.add([&flag, "on"]));
            assert!(counters.add([&flag, "on"]));
        }
        let stripe = &counters.stripes[stripe_index()];
        assert!(stripe.current.load().slots.len() >= 1024);
        assert_eq!(stripe.current.load().keys(), 1000);
        let mut out = HashMap::new();
        counters.drain_into(&mut out);
        assert_eq!(out.len(), 1000);
        assert!(out.values().all(|&c| c == 2));
    }
}
