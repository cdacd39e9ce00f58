//! Compiling a validated flag set into a [`Snapshot`]: every variant, segment and
//! prerequisite reference becomes an index, every operand is parsed, so that
//! [`crate::evaluate`] only compares.
//!
//! A change compiles what it changed ([`Snapshot::with_writes`]): each flag is
//! compiled on its own behind an `Arc` (with its JSON written once), so the next
//! revision shares every unchanged flag with the one before, and only the links
//! between flags (prerequisites, cycles) are checked again over the whole set.

mod flag_list;
mod key_index;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use flag_list::FlagList;
use key_index::KeyIndex;

use rustc_hash::FxHashMap;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::bucketing::{Salted, BUCKETS};
use crate::context::{AttrName, NameTable};
use crate::model::{
    json_type_name, Flag, FlagKey, FlagKind, Hashing, Rollout, Segment, SegmentKey, Serve,
};
use crate::targeting::{check_by, CompiledWhen};
use crate::validation::{
    check_key, check_name, check_name_at, check_value, At, Problem, Problems, ValidationErrors,
};

/// An immutable, compiled set of flags and segments: one environment at one
/// revision. Cheap to share behind an `Arc`; replaced whole on every change, sharing
/// what the change did not touch.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    index: Arc<KeyIndex>,
    pub(crate) flags: FlagList,
    pub(crate) segments: Arc<Segments>,
    /// The attribute names the flags and segments read, numbered (see
    /// [`Context`](crate::Context)'s lookups).
    pub(crate) names: NameTable,
    /// How many names the table had after the last whole compile. A change adds the
    /// names its flags read and never removes any; once the table has grown well past
    /// this, the next change compiles everything (and numbers only what is read).
    names_compiled: usize,
    /// The flags with prerequisites, by index, ascending: the only ones linking and
    /// the cycle check visit (a change need not walk every flag).
    linking: Vec<usize>,
}

/// The compiled segments of a snapshot, shared by the revisions that did not
/// change them.
#[derive(Debug, Default)]
pub(crate) struct Segments {
    pub(crate) compiled: Vec<CompiledWhen>,
    defs: Vec<Segment>,
    /// `defs` as JSON, written once (see [`CompiledFlag`]'s `json`).
    json: Vec<Box<RawValue>>,
    index: FxHashMap<SegmentKey, usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledFlag {
    /// The flag as written; its variants are indexed by position (see `variant`).
    pub(crate) source: Flag,
    /// `source` as JSON, written once: the environment's document is these, joined.
    json: Box<RawValue>,
    /// Each variant's `"value":..,"variant":".."`, by index: the start of every JSON
    /// evaluation serving it ([`crate::answer_json`]). Written when first needed, not
    /// when compiled: compiles (and SDKs, which never write answers) do not pay for it.
    served_fields: Box<[OnceLock<Box<str>>]>,
    /// The off variant; `None` defers to the caller's code default.
    pub(crate) off: Option<usize>,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) default: CompiledServe,
    /// (flag index, accepted variant indices); `None` when the flag is missing.
    pub(crate) prerequisites: Vec<Option<(usize, Vec<usize>)>>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub(crate) id: Box<str>,
    pub(crate) when: CompiledWhen,
    pub(crate) serve: CompiledServe,
}

#[derive(Debug, Clone)]
pub(crate) enum CompiledServe {
    Variant(usize),
    Rollout(CompiledRollout),
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRollout {
    pub(crate) by: Box<[AttrName]>,
    /// The salt (or the flag's key), already fed to the hash.
    pub(crate) salted: Salted,
    pub(crate) hashing: Hashing,
    /// (cumulative weight at the end of the share, variant index); zero shares dropped.
    pub(crate) shares: Vec<(u32, usize)>,
    pub(crate) total: u32,
}

/// Names a table may gain through changes beyond twice what a whole compile
/// numbered, before a change compiles everything again.
const NAME_SLACK: usize = 64;

impl Snapshot {
    /// Validates and compiles a whole environment. Errors name the flag or segment
    /// and the field: `flags[checkout].rules[0].serve.variant: unknown variant `x``.
    pub fn compile(
        flags: impl IntoIterator<Item = Flag>,
        segments: impl IntoIterator<Item = Segment>,
    ) -> Result<Snapshot, ValidationErrors> {
        let mut problems = Problems::default();
        let mut names = NameTable::new();
        let segments = Arc::new(Segments::compile(segments, &mut names, &mut problems));
        let mut index = KeyIndex::default();
        let mut compiled = Vec::new();
        for flag in flags {
            let key = flag.key.clone();
            let flag = compile_member(flag, &segments, &mut names, &mut problems);
            if index.insert(key.clone(), compiled.len()).is_some() {
                let path = At::Key(&At::Top, "flags", key.as_str());
                problems.push(path, Problem::DuplicateKey(key.to_string()));
            }
            compiled.push(Arc::new(flag));
        }
        let snapshot = Snapshot {
            index: Arc::new(index),
            flags: FlagList::new(compiled),
            segments,
            names_compiled: names.len(),
            names,
            linking: Vec::new(),
        };
        snapshot.linked(problems, None)
    }

    /// This snapshot with `flags` and `segments` written (`Some`) or deleted
    /// (`None`), later writes of a key winning: exactly what [`Snapshot::compile`]
    /// makes of the resulting set (see [`crate::sync::apply_writes`]), same errors
    /// included, at the cost of what changed. Only the written flags are compiled;
    /// the others are shared with this snapshot. A change to segments compiles the
    /// whole set. Rewritten flags keep their places; a change that adds or removes a
    /// flag sorts the flags by key (the order of `apply_writes`, and of the store).
    pub fn with_writes<'a>(
        &self,
        flags: impl IntoIterator<Item = (&'a FlagKey, Option<&'a Flag>)>,
        segments: impl IntoIterator<Item = (&'a SegmentKey, Option<&'a Segment>)>,
    ) -> Result<Snapshot, ValidationErrors> {
        let flags: BTreeMap<&FlagKey, Option<&Flag>> = flags.into_iter().collect();
        let segments: Vec<_> = segments.into_iter().collect();
        if !segments.is_empty() || self.names.len() > 2 * self.names_compiled + NAME_SLACK {
            let (flags, segments) = crate::sync::apply_writes(self, flags, segments);
            return Snapshot::compile(flags, segments);
        }
        let mut problems = Problems::default();
        let mut names = self.names.forked();
        let mut written = BTreeMap::new();
        for (&key, flag) in &flags {
            let compiled = flag.map(|flag| {
                let flag = compile_member(flag.clone(), &self.segments, &mut names, &mut problems);
                Arc::new(flag)
            });
            written.insert(key, compiled);
        }
        let same_keys = written
            .iter()
            .all(|(key, flag)| flag.is_some() == self.index.contains_key(key.as_str()));
        let (index, flags, linking) = if same_keys {
            // Rewrites of existing flags (or deletes of missing ones): same places.
            let mut list = self.flags.clone();
            let mut linking = self.linking.clone();
            for (key, flag) in written {
                if let (Some(i), Some(flag)) = (self.index.get(key.as_str()), flag) {
                    linking.retain(|&l| l != i);
                    if !flag.source.prerequisites.is_empty() {
                        linking.push(i);
                    }
                    list.set(i, flag);
                }
            }
            linking.sort_unstable();
            (Arc::clone(&self.index), list, Some(linking))
        } else {
            let mut list: Vec<Arc<CompiledFlag>> = self
                .flags
                .iter()
                .filter(|f| !written.contains_key(&f.source.key))
                .cloned()
                .collect();
            list.extend(written.into_values().flatten());
            list.sort_by(|a, b| a.source.key.cmp(&b.source.key));
            let index = list
                .iter()
                .enumerate()
                .map(|(i, f)| (f.source.key.clone(), i))
                .collect();
            // Places moved: every flag with prerequisites is found again.
            (Arc::new(index), FlagList::new(list), None)
        };
        let snapshot = Snapshot {
            index,
            flags,
            segments: Arc::clone(&self.segments),
            names,
            names_compiled: self.names_compiled,
            linking: Vec::new(),
        };
        snapshot.linked(problems, linking)
    }

    /// Links the prerequisites of the flags in `linking` (of every flag that has
    /// any, when `None`), looks for cycles, and returns the snapshot if nothing was
    /// found wrong along the way.
    fn linked(
        mut self,
        mut problems: Problems,
        linking: Option<Vec<usize>>,
    ) -> Result<Snapshot, ValidationErrors> {
        self.linking = linking.unwrap_or_else(|| {
            let flags = self.flags.iter().enumerate();
            // (Only a whole pass can find them: places moved, or nothing was known.)
            flags
                .filter(|(_, f)| !f.source.prerequisites.is_empty())
                .map(|(i, _)| i)
                .collect()
        });
        self.link_prerequisites(&mut problems);
        if problems.errors.is_empty() {
            if let Some(cycle) = self.find_cycle() {
                let path = format!("flags[{}].prerequisites", cycle[0]);
                problems.push(path, Problem::PrerequisiteCycle(cycle));
            }
        }
        problems.into_result(self)
    }

    /// Points every prerequisite at its flag's current place and variants; a flag
    /// whose links are unchanged stays shared.
    fn link_prerequisites(&mut self, problems: &mut Problems) {
        for &i in &self.linking {
            let Some(flag) = self.flags.get(i) else {
                continue;
            };
            let mut links = Vec::with_capacity(flag.source.prerequisites.len());
            for (p, prerequisite) in flag.source.prerequisites.iter().enumerate() {
                let Some(target) = self.index.get(prerequisite.flag.as_str()) else {
                    // A missing prerequisite simply fails at evaluation: flags may be
                    // written before the flags they depend on.
                    links.push(None);
                    continue;
                };
                let mut accepted = Vec::new();
                for (v, name) in prerequisite.variants.iter().enumerate() {
                    match self.flags[target].variant_index(name) {
                        Some(index) => accepted.push(index),
                        None => problems.push(
                            format!(
                                "flags[{}].prerequisites[{p}].variants[{v}]",
                                flag.source.key
                            ),
                            Problem::UnknownPrerequisiteVariant {
                                flag: prerequisite.flag.to_string(),
                                variant: name.clone(),
                            },
                        ),
                    }
                }
                links.push(Some((target, accepted)));
            }
            if flag.prerequisites != links {
                if let Some(flag) = self.flags.get_mut(i) {
                    flag.prerequisites = links;
                }
            }
        }
    }

    /// A prerequisite cycle, as the keys along it, if there is one.
    fn find_cycle(&self) -> Option<Vec<FlagKey>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut marks = vec![Mark::New; self.flags.len()];
        // A cycle passes through a flag with prerequisites: only those start a search.
        for &start in &self.linking {
            if marks[start] != Mark::New {
                continue;
            }
            // Iterative depth-first search; `path` holds (flag, next edge to try).
            let mut path = vec![(start, 0_usize)];
            marks[start] = Mark::OnPath;
            while let Some(&mut (node, ref mut edge)) = path.last_mut() {
                let next = self.flags[node]
                    .prerequisites
                    .get(*edge)
                    .map(|link| link.as_ref().map(|(target, _)| *target));
                *edge += 1;
                match next {
                    None => {
                        marks[node] = Mark::Done;
                        path.pop();
                    }
                    Some(None) => {}
                    Some(Some(target)) => match marks[target] {
                        Mark::New => {
                            marks[target] = Mark::OnPath;
                            path.push((target, 0));
                        }
                        Mark::OnPath => {
                            let from = path.iter().position(|&(n, _)| n == target)?;
                            return Some(
                                path[from..]
                                    .iter()
                                    .map(|&(n, _)| self.flags[n].source.key.clone())
                                    .collect(),
                            );
                        }
                        Mark::Done => {}
                    },
                }
            }
        }
        None
    }

    /// The flag with this key, as it was written.
    pub fn flag(&self, key: &str) -> Option<&Flag> {
        self.index.get(key).map(|i| &self.flags[i].source)
    }

    /// Every flag, in the order given to [`Snapshot::compile`] (sorted by key after
    /// [`Snapshot::with_writes`]).
    pub fn flags(&self) -> impl Iterator<Item = &Flag> {
        self.flags.iter().map(|f| &f.source)
    }

    /// Every flag as JSON (what [`Snapshot::flags`] serialises to), in the same
    /// order: written when the flag was compiled, so a document of the environment
    /// copies them instead of serialising every flag again.
    pub fn flags_json(&self) -> impl Iterator<Item = &RawValue> {
        self.flags.iter().map(|f| &*f.json)
    }

    /// Every segment, in the order given to [`Snapshot::compile`].
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.defs.iter()
    }

    /// Every segment as JSON, in the same order (see [`Snapshot::flags_json`]).
    pub fn segments_json(&self) -> impl Iterator<Item = &RawValue> {
        self.segments.json.iter().map(|j| &**j)
    }

    /// Whether flag `key` is the same compiled flag in both snapshots (one was made
    /// from the other by a change that did not touch it): `false` says nothing.
    pub(crate) fn shares_flag(&self, other: &Snapshot, key: &str) -> bool {
        match (self.index.get(key), other.index.get(key)) {
            (Some(a), Some(b)) => match (self.flags.shared(a), other.flags.shared(b)) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            },
            _ => false,
        }
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// True when there are no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.len() == 0
    }

    pub(crate) fn flag_index(&self, key: &str) -> Option<usize> {
        self.index.get(key)
    }
}

impl CompiledServe {
    fn assign_slots(&mut self, names: &mut NameTable) {
        if let CompiledServe::Rollout(rollout) = self {
            rollout.by.iter_mut().for_each(|name| names.assign(name));
        }
    }
}

impl Segments {
    /// Compiles every segment, numbering the names they read.
    fn compile(
        segments: impl IntoIterator<Item = Segment>,
        names: &mut NameTable,
        problems: &mut Problems,
    ) -> Self {
        let mut set = Segments::default();
        for segment in segments {
            let path = At::Key(&At::Top, "segments", segment.key.as_str());
            let mut compiled = compile_segment(&segment, &path, problems);
            compiled.assign_slots(names);
            if set
                .index
                .insert(segment.key.clone(), set.compiled.len())
                .is_some()
            {
                problems.push(path, Problem::DuplicateKey(segment.key.to_string()));
            }
            set.compiled.push(compiled);
            set.json.push(encode(&segment, &path, problems));
            set.defs.push(segment);
        }
        set
    }
}

/// Compiles one flag as a member of a set: its segment references resolved among
/// `segments`, the names it reads numbered in `names` (prerequisites are linked by
/// the set, [`Snapshot::linked`]).
fn compile_member(
    flag: Flag,
    segments: &Segments,
    names: &mut NameTable,
    problems: &mut Problems,
) -> CompiledFlag {
    let key = flag.key.clone();
    let path = At::Key(&At::Top, "flags", key.as_str());
    let mut compiled = compile_flag(flag, &path, problems);
    let CompiledFlag { source, rules, .. } = &mut compiled;
    let named = source
        .rules
        .iter()
        .map(|r| &r.when.segments)
        .zip(rules.iter_mut().map(|r| &mut r.when));
    for (rule, (segment_names, when)) in named.enumerate() {
        for (i, name) in segment_names.iter().enumerate() {
            match segments.index.get(name) {
                Some(&index) => when.segments.push(index),
                None => problems.push(
                    format!("{path}.rules[{rule}].when.segments[{i}]"),
                    Problem::UnknownSegment(name.to_string()),
                ),
            }
        }
    }
    compiled.assign_slots(names);
    compiled
}

impl CompiledFlag {
    /// Gives every attribute name the flag reads its slot in `names`.
    fn assign_slots(&mut self, names: &mut NameTable) {
        for rule in &mut self.rules {
            rule.when.assign_slots(names);
            rule.serve.assign_slots(names);
        }
        self.default.assign_slots(names);
    }

    fn variant_index(&self, name: &str) -> Option<usize> {
        self.source.variants.get_index_of(name)
    }

    /// The JSON fields of the variant at `index`, once written (see `served_fields`).
    pub(crate) fn served_fields(&self, index: usize) -> Option<&OnceLock<Box<str>>> {
        self.served_fields.get(index)
    }

    /// The variant at `index`: its name and value.
    pub(crate) fn variant(&self, index: usize) -> Option<(&str, &Value)> {
        self.source
            .variants
            .get_index(index)
            .map(|(name, value)| (name.as_str(), value))
    }
}

/// Compiles one flag on its own; segment references are left for the set.
pub(crate) fn compile_flag(flag: Flag, path: &At<'_>, problems: &mut Problems) -> CompiledFlag {
    let at = |field| path.field(field);
    check_name_at(problems, &at("key"), flag.key.as_str());

    if flag.variants.is_empty() {
        problems.push(at("variants"), Problem::Empty);
    }
    if flag.kind == FlagKind::Boolean {
        let exact = flag.variants.len() == 2
            && flag.variants.get("on") == Some(&Value::Bool(true))
            && flag.variants.get("off") == Some(&Value::Bool(false));
        if !exact {
            problems.push(at("variants"), Problem::BooleanVariants);
        }
    }
    for (name, value) in &flag.variants {
        if name.is_empty() {
            problems.push(at("variants"), Problem::Empty);
        }
        if !flag.kind.admits(value) {
            problems.push(
                format!("{}.{name}", at("variants")),
                Problem::KindMismatch {
                    kind: flag.kind.as_str(),
                    found: json_type_name(value),
                },
            );
        }
        check_value(problems, format_args!("{}.{name}", at("variants")), value);
    }
    let variants = &flag.variants;
    let variant = |name: &str, path: &At<'_>, problems: &mut Problems| -> usize {
        variants.get_index_of(name).unwrap_or_else(|| {
            problems.push(path, Problem::UnknownVariant(name.to_owned()));
            0
        })
    };

    let off = flag
        .off_variant
        .as_deref()
        .map(|name| variant(name, &at("off_variant"), problems));
    let mut ids = rustc_hash::FxHashSet::default();
    let rules = flag
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let rules_path = at("rules");
            let rule_path = rules_path.index(i);
            if rule.id.is_empty() {
                problems.push(rule_path.field("id"), Problem::Empty);
            } else if !ids.insert(rule.id.as_str()) {
                problems.push(
                    rule_path.field("id"),
                    Problem::DuplicateRuleId(rule.id.clone()),
                );
            } else if problems.writing() {
                if let Err(problem) = check_name(&rule.id) {
                    problems.push(rule_path.field("id"), problem);
                }
            }
            CompiledRule {
                id: rule.id.as_str().into(),
                when: CompiledWhen::compile(
                    &rule.when,
                    flag.key.as_str(),
                    &rule_path.field("when"),
                    problems,
                ),
                serve: compile_serve(
                    &rule.serve,
                    flag.key.as_str(),
                    &rule_path.field("serve"),
                    &mut |name, path, problems| variant(name, path, problems),
                    problems,
                ),
            }
        })
        .collect();
    let default = compile_serve(
        &flag.default,
        flag.key.as_str(),
        &at("default"),
        &mut |name, path, problems| variant(name, path, problems),
        problems,
    );
    let prerequisites_path = at("prerequisites");
    for (i, prerequisite) in flag.prerequisites.iter().enumerate() {
        let p = prerequisites_path.index(i);
        check_name_at(problems, &p.field("flag"), prerequisite.flag.as_str());
        if prerequisite.variants.is_empty() {
            problems.push(p.field("variants"), Problem::Empty);
        }
        if prerequisite.flag == flag.key {
            problems.push(
                p.field("flag"),
                Problem::PrerequisiteCycle(vec![flag.key.clone()]),
            );
        }
    }
    let tags_path = at("tags");
    for (i, tag) in flag.tags.iter().enumerate() {
        check_key(problems, &tags_path.index(i), tag);
    }

    let json = encode(&flag, path, problems);
    let served_fields = flag.variants.iter().map(|_| OnceLock::new()).collect();
    CompiledFlag {
        source: flag,
        json,
        served_fields,
        off,
        rules,
        default,
        prerequisites: Vec::new(),
    }
}

type VariantLookup<'a> = dyn FnMut(&str, &At<'_>, &mut Problems) -> usize + 'a;

fn compile_serve(
    serve: &Serve,
    flag_key: &str,
    path: &At<'_>,
    variant: &mut VariantLookup<'_>,
    problems: &mut Problems,
) -> CompiledServe {
    match serve {
        Serve::Variant(name) => {
            CompiledServe::Variant(variant(name, &path.field("variant"), problems))
        }
        Serve::Rollout(rollout) => CompiledServe::Rollout(compile_rollout(
            rollout,
            flag_key,
            &path.field("rollout"),
            variant,
            problems,
        )),
    }
}

fn compile_rollout(
    rollout: &Rollout,
    flag_key: &str,
    path: &At<'_>,
    variant: &mut VariantLookup<'_>,
    problems: &mut Problems,
) -> CompiledRollout {
    check_by(rollout.by.properties(), &path.field("by"), problems);
    let split_path = path.field("split");
    if rollout.split.is_empty() {
        problems.push(split_path, Problem::Empty);
    }
    let sum: u64 = rollout.split.iter().map(|s| u64::from(s.weight)).sum();
    match rollout.hashing {
        Hashing::Switchyard | Hashing::Flagd
            if sum != u64::from(BUCKETS) && !rollout.split.is_empty() =>
        {
            problems.push(
                split_path,
                Problem::WeightSum {
                    sum,
                    expected: BUCKETS,
                },
            );
        }
        Hashing::Unleash if sum == 0 => problems.push(split_path, Problem::ZeroWeights),
        Hashing::Unleash if sum > u64::from(u32::MAX) => problems.push(
            split_path,
            Problem::WeightSum {
                sum,
                expected: u32::MAX,
            },
        ),
        _ => {}
    }
    let mut cumulative = 0_u32;
    let mut shares = Vec::with_capacity(rollout.split.len());
    let mut listed = rustc_hash::FxHashSet::default();
    for (i, share) in rollout.split.iter().enumerate() {
        let share_path = split_path.index(i);
        let index = variant(&share.variant, &share_path.field("variant"), problems);
        // Stored flags may list a variant twice (it was once accepted and buckets
        // still place users the same way); new writes give each variant one share.
        if problems.writing() && !listed.insert(share.variant.as_str()) {
            problems.push(
                share_path.field("variant"),
                Problem::DuplicateSplitVariant(share.variant.clone()),
            );
        }
        cumulative = cumulative.saturating_add(share.weight);
        if share.weight > 0 {
            shares.push((cumulative, index));
        }
    }
    CompiledRollout {
        by: rollout
            .by
            .properties()
            .iter()
            .map(|s| AttrName::new(s))
            .collect(),
        salted: Salted::new(
            rollout.hashing,
            rollout.salt.as_deref().unwrap_or(flag_key),
            true,
        ),
        hashing: rollout.hashing,
        shares,
        total: cumulative,
    }
}

/// `value` as JSON; a value serde cannot write is a problem at `path`.
fn encode(value: &impl serde::Serialize, path: &At<'_>, problems: &mut Problems) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|e| {
        problems.push(path, Problem::Unencodable(e.to_string()));
        RawValue::NULL.to_owned()
    })
}

/// Compiles one segment; segments may not name other segments.
pub(crate) fn compile_segment(
    segment: &Segment,
    path: &At<'_>,
    problems: &mut Problems,
) -> CompiledWhen {
    let at = |field| path.field(field);
    check_name_at(problems, &at("key"), segment.key.as_str());
    if !segment.when.segments.is_empty() {
        problems.push(at("when.segments"), Problem::NestedSegment);
    }
    CompiledWhen::compile(&segment.when, segment.key.as_str(), &at("when"), problems)
}
