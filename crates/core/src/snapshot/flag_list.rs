//! The compiled flags of a snapshot, in chunks shared between revisions: a change
//! that replaces one flag copies one chunk of pointers, and neither copying the list
//! nor dropping it touches the flags themselves — at 10 000 flags, touching each
//! (a reference count on its own cache line) was most of a one-flag write.

use std::ops::Index;
use std::sync::Arc;

use super::CompiledFlag;

/// Flags per chunk.
const CHUNK: usize = 64;

/// An indexed list of compiled flags (see the module documentation).
#[derive(Debug, Clone, Default)]
pub(crate) struct FlagList {
    chunks: Vec<Arc<[Arc<CompiledFlag>]>>,
    len: usize,
}

impl FlagList {
    /// The list of `flags`, in their order.
    pub(crate) fn new(flags: Vec<Arc<CompiledFlag>>) -> Self {
        let len = flags.len();
        let chunks = flags.chunks(CHUNK).map(Arc::from).collect();
        FlagList { chunks, len }
    }

    /// Number of flags.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The flag at `index`.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&CompiledFlag> {
        self.shared(index).map(|flag| &**flag)
    }

    /// The shared pointer to the flag at `index` (to compare identities).
    #[inline]
    pub(crate) fn shared(&self, index: usize) -> Option<&Arc<CompiledFlag>> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    /// Every flag, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<CompiledFlag>> {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    /// Replaces the flag at `index` (copying its chunk if another list shares it).
    pub(crate) fn set(&mut self, index: usize, flag: Arc<CompiledFlag>) {
        if let Some(slot) = self.slot(index) {
            *slot = flag;
        }
    }

    /// The flag at `index` to change in place: its chunk and the flag itself are
    /// copied first if shared.
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut CompiledFlag> {
        self.slot(index).map(Arc::make_mut)
    }

    fn slot(&mut self, index: usize) -> Option<&mut Arc<CompiledFlag>> {
        let chunk = self.chunks.get_mut(index / CHUNK)?;
        if Arc::get_mut(chunk).is_none() {
            *chunk = Arc::from(chunk.to_vec());
        }
        Arc::get_mut(chunk)?.get_mut(index % CHUNK)
    }
}

impl Index<usize> for FlagList {
    type Output = CompiledFlag;

    /// The flag at `index`; indices come from the snapshot's own index and links.
    #[inline]
    fn index(&self, index: usize) -> &CompiledFlag {
        &self.chunks[index / CHUNK][index % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Snapshot;
    use serde_json::json;

    fn flags(n: usize) -> Vec<Arc<CompiledFlag>> {
        let flags = (0..n).map(|i| {
            serde_json::from_value(json!({
                "key": format!("f{i:03}"), "kind": "boolean",
                "variants": {"on": true, "off": false}, "off_variant": "off",
                "default": {"variant": "on"}
            }))
            .expect("flag")
        });
        let snapshot: Snapshot =
            Snapshot::compile(flags.collect::<Vec<_>>(), []).expect("compiles");
        snapshot.flags.iter().cloned().collect()
    }

    #[test]
    fn a_replaced_flag_copies_its_chunk_only() {
        let list = FlagList::new(flags(150));
        assert_eq!(list.len(), 150);
        assert_eq!(list.chunks.len(), 3);
        let mut next = list.clone();
        let replacement = Arc::clone(list.shared(3).expect("there"));
        next.set(100, replacement);
        assert_eq!(next[100].source.key.as_str(), "f003");
        assert_eq!(list[100].source.key.as_str(), "f100");
        assert!(Arc::ptr_eq(&list.chunks[0], &next.chunks[0]));
        assert!(!Arc::ptr_eq(&list.chunks[1], &next.chunks[1]));
        assert!(Arc::ptr_eq(&list.chunks[2], &next.chunks[2]));
        assert!(next.get(150).is_none());
        let keys: Vec<&str> = next.iter().map(|f| f.source.key.as_str()).collect();
        assert_eq!(keys.len(), 150);
        assert_eq!(keys[99], "f099");
    }

    #[test]
    fn changing_a_shared_flag_leaves_the_other_list_alone() {
        let list = FlagList::new(flags(10));
        let mut next = list.clone();
        next.get_mut(2).expect("there").prerequisites = vec![None];
        assert_eq!(next[2].prerequisites.len(), 1);
        assert!(list[2].prerequisites.is_empty());
    }
}
