//! The sync contract between the server and its readers (SDKs, other replicas): the
//! documents an environment travels in, and what a change does to a flag set.
//!
//! - [`SnapshotDocument`]: the whole environment, `{environment, revision, flags,
//!   segments}` (`GET /v1/sdk/snapshot`, the stream's `snapshot` event, gRPC `SNAPSHOT`).
//! - [`ChangeDocument`]: one revision's writes and deletes, `{environment, revision,
//!   flags, deleted_flags, segments, deleted_segments}` (the stream's `change` event,
//!   gRPC `CHANGE`, the `change` of a Redis announcement).
//! - [`changed_flags`]: which flags' answers may differ between two snapshots.
//!
//! The `…Ref` variants serialise borrowed flags, so the server writes a document
//! straight from its compiled [`Snapshot`] without cloning it. Both variants write the
//! fields in the same order: the wire format is byte for byte the one SDKs read.
//!
//! *Architecture invariant*: readers are lenient — a missing list is empty, a missing
//! environment is empty and a missing revision is 0 (bootstrap documents omit them).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::model::{EnvName, FlagKey, SegmentKey};
use crate::{Flag, Segment, Snapshot, ValidationErrors};

/// The whole environment as SDKs receive it on connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotDocument {
    /// The environment.
    pub environment: EnvName,
    /// Its revision (the `ETag`).
    pub revision: u64,
    /// Every flag.
    pub flags: Vec<Flag>,
    /// Every segment.
    pub segments: Vec<Segment>,
}

impl Default for SnapshotDocument {
    fn default() -> Self {
        SnapshotDocument {
            environment: EnvName::new(""),
            revision: 0,
            flags: Vec::new(),
            segments: Vec::new(),
        }
    }
}

/// [`SnapshotDocument`] over borrowed flags and segments, for writing one.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        as = SdkSnapshot,
        description = "The whole environment as SDKs receive it on connect."
    )
)]
pub struct SnapshotDocumentRef<'a> {
    /// The environment.
    #[cfg_attr(feature = "openapi", schema(value_type = EnvName))]
    pub environment: &'a EnvName,
    /// Its revision (the `ETag`).
    pub revision: u64,
    /// Every flag, as the JSON written when it was compiled ([`Snapshot::flags_json`]).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Flag>))]
    pub flags: Vec<&'a RawValue>,
    /// Every segment, as the JSON written when it was compiled.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Segment>))]
    pub segments: Vec<&'a RawValue>,
}

impl<'a> SnapshotDocumentRef<'a> {
    /// The document of `snapshot`, environment `environment` at `revision`.
    pub fn new(environment: &'a EnvName, revision: u64, snapshot: &'a Snapshot) -> Self {
        SnapshotDocumentRef {
            environment,
            revision,
            flags: snapshot.flags_json().collect(),
            segments: snapshot.segments_json().collect(),
        }
    }
}

/// What changed at one revision: flags and segments written whole, keys deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeDocument {
    /// The environment.
    pub environment: EnvName,
    /// The revision this change produced.
    pub revision: u64,
    /// Flags created or replaced.
    pub flags: Vec<Flag>,
    /// Flags deleted.
    pub deleted_flags: Vec<FlagKey>,
    /// Segments created or replaced.
    pub segments: Vec<Segment>,
    /// Segments deleted.
    pub deleted_segments: Vec<SegmentKey>,
}

impl Default for ChangeDocument {
    fn default() -> Self {
        ChangeDocument {
            environment: EnvName::new(""),
            revision: 0,
            flags: Vec::new(),
            deleted_flags: Vec::new(),
            segments: Vec::new(),
            deleted_segments: Vec::new(),
        }
    }
}

/// A flag written (`Some`) or deleted (`None`), by key.
pub type FlagWrite = (FlagKey, Option<Flag>);

/// A segment written (`Some`) or deleted (`None`), by key.
pub type SegmentWrite = (SegmentKey, Option<Segment>);

impl ChangeDocument {
    /// The change as writes by key: `(key, Some(flag))` written, `(key, None)` deleted.
    pub fn into_writes(self) -> (Vec<FlagWrite>, Vec<SegmentWrite>) {
        let mut flags: Vec<FlagWrite> = self
            .flags
            .into_iter()
            .map(|f| (f.key.clone(), Some(f)))
            .collect();
        flags.extend(self.deleted_flags.into_iter().map(|k| (k, None)));
        let mut segments: Vec<SegmentWrite> = self
            .segments
            .into_iter()
            .map(|s| (s.key.clone(), Some(s)))
            .collect();
        segments.extend(self.deleted_segments.into_iter().map(|k| (k, None)));
        (flags, segments)
    }

    /// `snapshot` with this change applied ([`Snapshot::with_writes`]: only the
    /// flags it writes are compiled).
    pub fn applied_to(&self, snapshot: &Snapshot) -> Result<Snapshot, ValidationErrors> {
        let flags = self
            .flags
            .iter()
            .map(|f| (&f.key, Some(f)))
            .chain(self.deleted_flags.iter().map(|k| (k, None)));
        let segments = self
            .segments
            .iter()
            .map(|s| (&s.key, Some(s)))
            .chain(self.deleted_segments.iter().map(|k| (k, None)));
        snapshot.with_writes(flags, segments)
    }
}

/// `snapshot`'s flags and segments with the writes applied in order (`Some` replaces
/// or adds, `None` deletes), sorted by key.
pub fn apply_writes<'a>(
    snapshot: &Snapshot,
    flags: impl IntoIterator<Item = (&'a FlagKey, Option<&'a Flag>)>,
    segments: impl IntoIterator<Item = (&'a SegmentKey, Option<&'a Segment>)>,
) -> (Vec<Flag>, Vec<Segment>) {
    let mut all_flags: BTreeMap<&FlagKey, &Flag> = snapshot.flags().map(|f| (&f.key, f)).collect();
    for (key, flag) in flags {
        match flag {
            Some(flag) => all_flags.insert(key, flag),
            None => all_flags.remove(key),
        };
    }
    let mut all_segments: BTreeMap<&SegmentKey, &Segment> =
        snapshot.segments().map(|s| (&s.key, s)).collect();
    for (key, segment) in segments {
        match segment {
            Some(segment) => all_segments.insert(key, segment),
            None => all_segments.remove(key),
        };
    }
    (
        all_flags.into_values().cloned().collect(),
        all_segments.into_values().cloned().collect(),
    )
}

/// [`ChangeDocument`] over borrowed writes, for writing one.
#[derive(Debug, Serialize)]
pub struct ChangeDocumentRef<'a> {
    /// The environment.
    pub environment: &'a EnvName,
    /// The revision this change produced.
    pub revision: u64,
    /// Flags created or replaced.
    pub flags: Vec<&'a Flag>,
    /// Flags deleted.
    pub deleted_flags: Vec<&'a FlagKey>,
    /// Segments created or replaced.
    pub segments: Vec<&'a Segment>,
    /// Segments deleted.
    pub deleted_segments: Vec<&'a SegmentKey>,
}

impl<'a> ChangeDocumentRef<'a> {
    /// The document of writes by key (`Some` written, `None` deleted).
    pub fn new(
        environment: &'a EnvName,
        revision: u64,
        flags: &'a [FlagWrite],
        segments: &'a [SegmentWrite],
    ) -> Self {
        ChangeDocumentRef {
            environment,
            revision,
            flags: flags.iter().filter_map(|(_, f)| f.as_ref()).collect(),
            deleted_flags: flags
                .iter()
                .filter(|(_, f)| f.is_none())
                .map(|(k, _)| k)
                .collect(),
            segments: segments.iter().filter_map(|(_, s)| s.as_ref()).collect(),
            deleted_segments: segments
                .iter()
                .filter(|(_, s)| s.is_none())
                .map(|(k, _)| k)
                .collect(),
        }
    }
}

/// How a flag differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    /// Only in the new one.
    Created,
    /// In both, and its answers may differ: rewritten, using a segment that changed,
    /// or depending through prerequisites on a changed flag.
    Updated,
    /// Only in the old one.
    Deleted,
}

/// The flags whose answers may differ between `old` and `new`: created, deleted or
/// rewritten flags, flags whose rules name a segment that changed, and flags whose
/// prerequisites are among those (transitively). Sorted by key.
pub fn changed_flags(old: &Snapshot, new: &Snapshot) -> BTreeMap<FlagKey, FlagChange> {
    let mut changed = BTreeMap::new();
    for flag in new.flags() {
        if new.shares_flag(old, flag.key.as_str()) {
            // One was made from the other without touching this flag.
            continue;
        }
        match old.flag(flag.key.as_str()) {
            None => {
                changed.insert(flag.key.clone(), FlagChange::Created);
            }
            Some(before) if before != flag => {
                changed.insert(flag.key.clone(), FlagChange::Updated);
            }
            Some(_) => {}
        }
    }
    for flag in old.flags() {
        if new.flag(flag.key.as_str()).is_none() {
            changed.insert(flag.key.clone(), FlagChange::Deleted);
        }
    }
    let old_segments: HashMap<&str, _> = old.segments().map(|s| (s.key.as_str(), s)).collect();
    let new_segments: HashMap<&str, _> = new.segments().map(|s| (s.key.as_str(), s)).collect();
    let segments: BTreeSet<&str> = old_segments
        .keys()
        .chain(new_segments.keys())
        .copied()
        .filter(|key| old_segments.get(key) != new_segments.get(key))
        .collect();
    // Dependents: flags using a changed segment, then flags whose prerequisites are
    // listed, until nothing is added.
    loop {
        let dependent: Vec<FlagKey> = new
            .flags()
            .filter(|flag| !changed.contains_key(&flag.key))
            .filter(|flag| {
                let uses_segment = flag
                    .rules
                    .iter()
                    .flat_map(|rule| rule.when.segments.iter())
                    .any(|s| segments.contains(s.as_str()));
                uses_segment
                    || flag
                        .prerequisites
                        .iter()
                        .any(|p| changed.contains_key(&p.flag))
            })
            .map(|flag| flag.key.clone())
            .collect();
        if dependent.is_empty() {
            return changed;
        }
        changed.extend(dependent.into_iter().map(|k| (k, FlagChange::Updated)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn flag(key: &str, extra: Value) -> Value {
        let mut flag = json!({
            "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": "off"}
        });
        if let (Some(flag), Some(extra)) = (flag.as_object_mut(), extra.as_object()) {
            flag.extend(extra.clone());
        }
        flag
    }

    fn snapshot(document: Value) -> Snapshot {
        let document: SnapshotDocument = serde_json::from_value(document).expect("document");
        Snapshot::compile(document.flags, document.segments).expect("compiles")
    }

    fn keys(changed: &BTreeMap<FlagKey, FlagChange>) -> Vec<&str> {
        changed.keys().map(FlagKey::as_str).collect()
    }

    #[test]
    fn changed_flags_follow_segments_and_prerequisites() {
        let segment = |countries: &[&str]| {
            json!({"key": "eu", "when": {"constraints": [
                {"attribute": "country", "op": "in", "values": countries}
            ]}})
        };
        let flags = json!([
            flag(
                "uses-segment",
                json!({"rules": [{"id": "r", "when": {"segments": ["eu"]}, "serve": {"variant": "on"}}]})
            ),
            flag(
                "needs-it",
                json!({"prerequisites": [{"flag": "uses-segment", "variant": "on"}]})
            ),
            flag(
                "needs-that",
                json!({"prerequisites": [{"flag": "needs-it", "variant": "on"}]})
            ),
            flag("unrelated", json!({})),
            flag("doomed", json!({})),
        ]);
        let old = snapshot(json!({"flags": flags, "segments": [segment(&["IT"])]}));
        assert!(changed_flags(&old, &old).is_empty());

        let resegmented = snapshot(json!({"flags": flags, "segments": [segment(&["IT", "FR"])]}));
        let changed = changed_flags(&old, &resegmented);
        assert_eq!(keys(&changed), ["needs-it", "needs-that", "uses-segment"]);
        assert!(changed.values().all(|c| *c == FlagChange::Updated));

        let mut fewer = flags.as_array().cloned().expect("array");
        fewer.retain(|f| f["key"] != "doomed");
        fewer.push(flag("new", json!({})));
        let new = snapshot(json!({"flags": fewer, "segments": [segment(&["IT"])]}));
        let changed = changed_flags(&old, &new);
        assert_eq!(keys(&changed), ["doomed", "new"]);
        assert_eq!(changed[&FlagKey::new("doomed")], FlagChange::Deleted);
        assert_eq!(changed[&FlagKey::new("new")], FlagChange::Created);
    }

    #[test]
    fn a_change_applies_writes_and_deletes_in_key_order() {
        let old = snapshot(json!({
            "flags": [flag("b", json!({})), flag("doomed", json!({}))],
            "segments": [{"key": "gone", "when": {}}, {"key": "kept", "when": {}}]
        }));
        let change: ChangeDocument = serde_json::from_value(json!({
            "revision": 2,
            "flags": [flag("a", json!({})), flag("b", json!({"enabled": false}))],
            "deleted_flags": ["doomed"],
            "deleted_segments": ["gone"]
        }))
        .expect("change");
        let new = change.applied_to(&old).expect("compiles");
        let flags: Vec<&Flag> = new.flags().collect();
        let flag_keys: Vec<&str> = flags.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(flag_keys, ["a", "b"]);
        assert!(!flags[1].enabled);
        let segment_keys: Vec<&str> = new.segments().map(|s| s.key.as_str()).collect();
        assert_eq!(segment_keys, ["kept"]);
    }

    #[test]
    fn borrowed_and_owned_documents_write_the_same_bytes() {
        let flags = json!([flag("a", json!({}))]);
        let old = snapshot(json!({"flags": flags, "segments": [{"key": "s", "when": {}}]}));
        let env = EnvName::new("prod");
        let borrowed =
            serde_json::to_string(&SnapshotDocumentRef::new(&env, 3, &old)).expect("serialises");
        let owned: SnapshotDocument = serde_json::from_str(&borrowed).expect("parses");
        assert_eq!(serde_json::to_string(&owned).expect("serialises"), borrowed);

        let writes = [
            (FlagKey::new("a"), old.flag("a").cloned()),
            (FlagKey::new("gone"), None),
        ];
        let segments = [(SegmentKey::new("s"), None)];
        let borrowed = serde_json::to_string(&ChangeDocumentRef::new(&env, 4, &writes, &segments))
            .expect("serialises");
        let owned: ChangeDocument = serde_json::from_str(&borrowed).expect("parses");
        assert_eq!(owned.deleted_flags, [FlagKey::new("gone")]);
        assert_eq!(serde_json::to_string(&owned).expect("serialises"), borrowed);
    }
}
