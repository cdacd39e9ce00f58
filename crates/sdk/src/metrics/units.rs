//! Distinct units (targeting keys) per key, for the guarded rollout (docs/guard.md):
//! the units served each flag variant, and per event the units that had it with the
//! values tracked with it. What leaves the SDK is a [`UnitSketch`] per key, which the
//! server merges across instances and flushes without counting a unit twice.
//!
//! A unit is recorded as its 64-bit [`unit_hash`]. Per key, up to [`EXACT_UNITS`]
//! hashes are kept exactly (a small set); beyond that the key switches to a dense
//! sketch (16 KiB), so a key costs at most 16 KiB and the table at most `max_keys`
//! keys per stripe. Recording takes the stripe's mutex (each thread keeps to its
//! stripe, so it is uncontended) and allocates only for a key's first unit and when
//! its set grows.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use switchyard_core::guard::sketch::{unit_hash, SketchWire, UnitSketch};
use switchyard_core::guard::ValueSummary;

use super::table::{hash_parts, lock, same, stripe_index, STRIPES};
use super::Key;

/// Units kept exactly per key before switching to a sketch.
pub(super) const EXACT_UNITS: usize = 1024;

/// The units of one key.
#[derive(Debug, Clone)]
pub(crate) enum UnitSet {
    /// Few units: their hashes.
    Exact(HashSet<u64>),
    /// Many: a sketch.
    Sketch(Box<UnitSketch>),
}

impl Default for UnitSet {
    fn default() -> Self {
        UnitSet::Exact(HashSet::new())
    }
}

impl UnitSet {
    fn insert(&mut self, hash: u64) {
        match self {
            UnitSet::Exact(set) => {
                set.insert(hash);
                if set.len() > EXACT_UNITS {
                    let mut sketch = UnitSketch::new();
                    set.iter().for_each(|h| sketch.insert_hash(*h));
                    *self = UnitSet::Sketch(Box::new(sketch));
                }
            }
            UnitSet::Sketch(sketch) => sketch.insert_hash(hash),
        }
    }

    /// The union.
    pub(crate) fn merge(&mut self, other: UnitSet) {
        match other {
            UnitSet::Exact(set) => set.into_iter().for_each(|h| self.insert(h)),
            UnitSet::Sketch(sketch) => {
                let mut mine = self.sketch();
                mine.merge(&sketch);
                *self = UnitSet::Sketch(Box::new(mine));
            }
        }
    }

    fn sketch(&self) -> UnitSketch {
        match self {
            UnitSet::Exact(set) => {
                let mut sketch = UnitSketch::new();
                set.iter().for_each(|h| sketch.insert_hash(*h));
                sketch
            }
            UnitSet::Sketch(sketch) => (**sketch).clone(),
        }
    }

    /// The wire form of the set's sketch.
    pub(crate) fn wire(&self) -> SketchWire {
        self.sketch().encode()
    }

    /// Whether no unit was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            UnitSet::Exact(set) => set.is_empty(),
            UnitSet::Sketch(sketch) => sketch.is_empty(),
        }
    }
}

/// One key's units and values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorded {
    /// The units.
    pub(crate) units: UnitSet,
    /// The values (events only).
    pub(crate) values: ValueSummary,
}

impl Recorded {
    pub(crate) fn merge(&mut self, other: Recorded) {
        self.units.merge(other.units);
        self.values.merge(&other.values);
    }
}

/// One stripe: keys by the hash of their names (a bucket holds the rare collisions).
type Stripe<const N: usize> = Mutex<HashMap<u64, Vec<(Key<N>, Recorded)>>>;

/// Units per key of `N` names, striped like the counters.
pub(super) struct Units<const N: usize> {
    stripes: [Stripe<N>; STRIPES],
    max_keys: usize,
}

impl<const N: usize> Units<N> {
    pub(super) fn new(max_keys: usize) -> Self {
        Units {
            stripes: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            max_keys,
        }
    }

    /// Records `unit` (and `value`) for `parts`; false when dropped (the stripe holds
    /// `max_keys` keys).
    pub(super) fn add(&self, parts: [&str; N], unit: &str, value: Option<f64>) -> bool {
        let hash = hash_parts(&parts);
        let mut stripe = lock(&self.stripes[stripe_index()]);
        let keys = stripe.len();
        let bucket = stripe.entry(hash).or_default();
        let index = match bucket.iter().position(|(key, _)| same(key, &parts)) {
            Some(index) => index,
            None => {
                if keys >= self.max_keys {
                    return false;
                }
                bucket.push((parts.map(Box::from), Recorded::default()));
                bucket.len() - 1
            }
        };
        let recorded = &mut bucket[index].1;
        recorded.units.insert(unit_hash(unit));
        if let Some(value) = value {
            recorded.values.add(value);
        }
        true
    }

    /// Takes everything recorded, merged over the stripes.
    pub(super) fn drain_into(&self, out: &mut HashMap<Key<N>, Recorded>) {
        for stripe in &self.stripes {
            let taken = std::mem::take(&mut *lock(stripe));
            for (key, recorded) in taken.into_values().flatten() {
                out.entry(key).or_default().merge(recorded);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_distinct_per_key_and_merge_over_stripes() {
        let units: Units<2> = Units::new(10);
        for i in 0..100 {
            assert!(units.add(["f", "on"], &format!("u{}", i % 40), None));
        }
        assert!(units.add(["f", "off"], "u1", None));
        let mut out = HashMap::new();
        units.drain_into(&mut out);
        let on = &out[&["f".into(), "on".into()]];
        assert_eq!(on.units.sketch().count(), 40);
        assert_eq!(out.len(), 2);
        let mut again = HashMap::new();
        units.drain_into(&mut again);
        assert!(again.is_empty(), "a drain takes everything");
    }

    #[test]
    fn many_units_switch_to_a_sketch_and_values_add_up() {
        let units: Units<3> = Units::new(10);
        for i in 0..5000 {
            units.add(["e", "f", "on"], &format!("user-{i}"), Some(2.0));
        }
        let mut out = HashMap::new();
        units.drain_into(&mut out);
        let r = &out[&["e".into(), "f".into(), "on".into()]];
        assert!(matches!(r.units, UnitSet::Sketch(_)));
        let count = r.units.sketch().estimate();
        assert!((count - 5000.0).abs() < 5000.0 * 0.03, "{count}");
        assert_eq!((r.values.count, r.values.sum), (5000, 10_000.0));
    }

    #[test]
    fn keys_beyond_the_cap_are_dropped() {
        let units: Units<2> = Units::new(1);
        // One stripe per thread: both keys land in this thread's stripe.
        assert!(units.add(["a", "on"], "u", None));
        assert!(!units.add(["b", "on"], "u", None));
    }
}
