//! The striped, lock-free counter tables the hot path counts into.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use arc_swap::ArcSwap;

use super::Key;

/// The longest name the server accepts in a metrics entry.
pub(super) const MAX_NAME_LEN: usize = 256;
/// Tables per kind; threads are spread over them.
pub(super) const STRIPES: usize = 4;
/// The smallest table.
const MIN_SLOTS: usize = 16;

/// The stripe this thread counts into.
#[inline]
pub(super) fn stripe_index() -> usize {
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

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these mutexes stays consistent whatever panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the server would accept `name` in a metrics entry.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

/// Counts per key of `N` names, striped across threads.
pub(super) struct Counters<const N: usize> {
    pub(super) stripes: [Stripe<N>; STRIPES],
    /// Tables replaced since they were last swept with no reader left.
    pub(super) retired: Mutex<Vec<Arc<Table<N>>>>,
    max_keys: usize,
}

pub(super) struct Stripe<const N: usize> {
    pub(super) current: ArcSwap<Table<N>>,
    /// Taken to replace `current` (growth, flush); never on the hot path.
    replace: Mutex<()>,
}

impl<const N: usize> Counters<N> {
    pub(super) fn new(max_keys: usize) -> Self {
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
    pub(super) fn add(&self, parts: [&str; N]) -> bool {
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
    pub(super) fn drain_into(&self, out: &mut HashMap<Key<N>, u64>) {
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

pub(super) fn hash_parts<const N: usize>(parts: &[&str; N]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    for part in parts {
        hasher.write(part.as_bytes());
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

pub(super) fn same<const N: usize>(key: &Key<N>, parts: &[&str; N]) -> bool {
    key.iter().zip(parts).all(|(a, b)| **a == **b)
}

pub(super) struct Slot<const N: usize> {
    key: OnceLock<Key<N>>,
    count: AtomicU64,
}

/// An open-addressing table that never holds more than three-quarters of its slots,
/// so every probe meets an empty slot.
pub(super) struct Table<const N: usize> {
    pub(super) slots: Box<[Slot<N>]>,
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
    pub(super) fn keys(&self) -> usize {
        self.slots.iter().filter(|s| s.key.get().is_some()).count()
    }
}
