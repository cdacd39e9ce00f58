//! A snapshot's flag positions by key: where every single-flag evaluation starts, so
//! it is kept as small as a lookup can be. An open-addressing table of (hash, entry)
//! pairs, at most half full, probed linearly from the slot the hash's top bits name;
//! a hit on the 64-bit hash is confirmed by comparing the key inline (short keys in
//! registers, see [`text::eq`]), not through a call to `memcmp`. A general hash map
//! spent about twice the instructions on the same lookup (`docs/PERFORMANCE.md`).

use std::hash::Hasher;

use rustc_hash::FxHasher;

use crate::model::FlagKey;
use crate::targeting::text;

/// Flag positions by key.
#[derive(Debug, Clone)]
pub(crate) struct KeyIndex {
    /// (key hash, 1 + index into `entries`); `(_, 0)` is a free slot. A power of two,
    /// at least two, at least twice as long as `entries`.
    slots: Box<[(u64, u32)]>,
    /// 64 minus log2 of the slots: a hash shifted right by it names its home slot.
    shift: u32,
    entries: Vec<(FlagKey, usize)>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::with_slots(2)
    }
}

#[inline(always)]
fn hash(key: &str) -> u64 {
    // One key per hash: no terminator needed to keep keys apart (as `Hash for str` adds).
    let mut hasher = FxHasher::default();
    hasher.write(key.as_bytes());
    hasher.finish()
}

impl KeyIndex {
    fn with_slots(len: usize) -> Self {
        KeyIndex {
            slots: vec![(0, 0); len].into_boxed_slice(),
            shift: 64 - len.trailing_zeros(),
            entries: Vec::new(),
        }
    }

    /// The position of flag `key`.
    #[inline(always)]
    pub(crate) fn get(&self, key: &str) -> Option<usize> {
        let entry = self.find(hash(key), key)?;
        self.entries.get(entry).map(|&(_, position)| position)
    }

    /// Whether flag `key` has a position.
    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Gives `key` its position, returning the one it had.
    pub(crate) fn insert(&mut self, key: FlagKey, position: usize) -> Option<usize> {
        let hashed = hash(key.as_str());
        if let Some(entry) = self.find(hashed, key.as_str()) {
            return self
                .entries
                .get_mut(entry)
                .map(|held| std::mem::replace(&mut held.1, position));
        }
        self.entries.push((key, position));
        if self.slots.len() < 2 * self.entries.len() {
            let mut grown = KeyIndex::with_slots(2 * self.slots.len());
            grown.entries = std::mem::take(&mut self.entries);
            for number in 1..=grown.entries.len() {
                let moved = hash(grown.entries[number - 1].0.as_str());
                grown.place(moved, number);
            }
            *self = grown;
        } else {
            self.place(hashed, self.entries.len());
        }
        None
    }

    /// The entry of `key`, whose hash is `hash`.
    #[inline(always)]
    fn find(&self, hash: u64, key: &str) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut slot = (hash >> self.shift) as usize;
        // At most half full: the probe meets a free slot.
        loop {
            let &(held, number) = self.slots.get(slot)?;
            if number == 0 {
                return None;
            }
            let entry = number as usize - 1;
            if held == hash
                && self
                    .entries
                    .get(entry)
                    .is_some_and(|(stored, _)| text::eq(stored.as_str().as_bytes(), key.as_bytes()))
            {
                return Some(entry);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Puts entry `number` (1-based) in the first free slot from its home.
    fn place(&mut self, hash: u64, number: usize) {
        let mask = self.slots.len() - 1;
        let mut slot = (hash >> self.shift) as usize;
        while self.slots.get(slot).is_some_and(|&(_, held)| held != 0) {
            slot = (slot + 1) & mask;
        }
        if let Some(free) = self.slots.get_mut(slot) {
            *free = (hash, u32::try_from(number).unwrap_or(u32::MAX));
        }
    }
}

impl FromIterator<(FlagKey, usize)> for KeyIndex {
    fn from_iter<I: IntoIterator<Item = (FlagKey, usize)>>(pairs: I) -> Self {
        let mut index = KeyIndex::default();
        for (key, position) in pairs {
            index.insert(key, position);
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let keys = [
            "a",
            "disabled",
            "checkout-v3",
            "a-much-longer-flag-key-than-sixteen",
            "",
        ];
        let mut index: KeyIndex = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (FlagKey::from(*k), i))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(index.get(key), Some(i), "{key:?}");
        }
        for missing in ["b", "disable", "disabledx", "checkout-v4", "A"] {
            assert_eq!(index.get(missing), None, "{missing:?}");
        }
        assert_eq!(index.insert(FlagKey::from("disabled"), 9), Some(1));
        assert_eq!(index.get("disabled"), Some(9));
        assert_eq!(KeyIndex::default().get("a"), None);
    }

    proptest! {
        /// The index answers as a `HashMap` does, through growth and overwrites.
        #[test]
        fn agrees_with_a_hash_map(
            writes in proptest::collection::vec(("[a-d]{0,3}|[a-z0-9-]{5,24}", 0_usize..1000), 0..300),
            probes in proptest::collection::vec("[a-d]{0,3}|[a-z0-9-]{5,24}", 0..50),
        ) {
            let mut index = KeyIndex::default();
            let mut map = HashMap::new();
            for (key, position) in &writes {
                prop_assert_eq!(
                    index.insert(FlagKey::from(key.as_str()), *position),
                    map.insert(key.clone(), *position)
                );
            }
            for key in writes.iter().map(|(k, _)| k).chain(&probes) {
                prop_assert_eq!(index.get(key), map.get(key).copied(), "{:?}", key);
            }
        }
    }
}
