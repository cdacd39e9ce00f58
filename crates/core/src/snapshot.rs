//! Compiling a validated flag set into a [`Snapshot`]: every variant, segment and
//! prerequisite reference becomes an index, every operand is parsed, so that
//! [`crate::evaluate`] only compares.

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::bucketing::BUCKETS;
use crate::context::{AttrName, NameTable};
use crate::model::{json_type_name, Flag, FlagKey, FlagKind, Hashing, Rollout, Segment, Serve};
use crate::targeting::{check_by, CompiledWhen};
use crate::validation::{
    check_key, check_name, check_name_at, check_value, At, Problem, Problems, ValidationErrors,
};

/// An immutable, compiled set of flags and segments: one environment at one
/// revision. Cheap to share behind an `Arc`; swapped whole on every change.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    index: FxHashMap<FlagKey, usize>,
    pub(crate) flags: Vec<CompiledFlag>,
    pub(crate) segments: Vec<CompiledWhen>,
    segment_defs: Vec<Segment>,
    /// The attribute names the flags and segments read, numbered (see
    /// [`Context`](crate::Context)'s lookups).
    pub(crate) names: NameTable,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledFlag {
    /// The flag as written; its variants are indexed by position (see `variant`).
    pub(crate) source: Flag,
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
    pub(crate) salt: Box<str>,
    pub(crate) hashing: Hashing,
    /// (cumulative weight at the end of the share, variant index); zero shares dropped.
    pub(crate) shares: Vec<(u32, usize)>,
    pub(crate) total: u32,
}

impl Snapshot {
    /// Validates and compiles a whole environment. Errors name the flag or segment
    /// and the field: `flags[checkout].rules[0].serve.variant: unknown variant `x``.
    pub fn compile(
        flags: impl IntoIterator<Item = Flag>,
        segments: impl IntoIterator<Item = Segment>,
    ) -> Result<Snapshot, ValidationErrors> {
        let mut problems = Problems::default();
        let mut snapshot = Snapshot::default();

        let mut segment_index = FxHashMap::default();
        for segment in segments {
            let path = At::Key(&At::Top, "segments", segment.key.as_str());
            let compiled = compile_segment(&segment, &path, &mut problems);
            if segment_index
                .insert(segment.key.clone(), snapshot.segments.len())
                .is_some()
            {
                problems.push(path, Problem::DuplicateKey(segment.key.to_string()));
            }
            snapshot.segments.push(compiled);
            snapshot.segment_defs.push(segment);
        }

        for flag in flags {
            let key = flag.key.clone();
            let path = At::Key(&At::Top, "flags", key.as_str());
            let mut compiled = compile_flag(flag, &path, &mut problems);
            let CompiledFlag { source, rules, .. } = &mut compiled;
            let named = source
                .rules
                .iter()
                .map(|r| &r.when.segments)
                .zip(rules.iter_mut().map(|r| &mut r.when));
            for (rule, (names, when)) in named.enumerate() {
                for (i, name) in names.iter().enumerate() {
                    match segment_index.get(name) {
                        Some(&index) => when.segments.push(index),
                        None => problems.push(
                            format!("{path}.rules[{rule}].when.segments[{i}]"),
                            Problem::UnknownSegment(name.to_string()),
                        ),
                    }
                }
            }
            if snapshot
                .index
                .insert(key.clone(), snapshot.flags.len())
                .is_some()
            {
                problems.push(path, Problem::DuplicateKey(key.to_string()));
            }
            snapshot.flags.push(compiled);
        }

        snapshot.assign_slots();
        snapshot.link_prerequisites(&mut problems);
        if problems.errors.is_empty() {
            if let Some(cycle) = snapshot.find_cycle() {
                let path = format!("flags[{}].prerequisites", cycle[0]);
                problems.push(path, Problem::PrerequisiteCycle(cycle));
            }
        }
        problems.into_result(snapshot)
    }

    /// Numbers the attribute names every flag and segment reads.
    fn assign_slots(&mut self) {
        let mut names = NameTable::new();
        for segment in &mut self.segments {
            segment.assign_slots(&mut names);
        }
        for flag in &mut self.flags {
            for rule in &mut flag.rules {
                rule.when.assign_slots(&mut names);
                rule.serve.assign_slots(&mut names);
            }
            flag.default.assign_slots(&mut names);
        }
        self.names = names;
    }

    fn link_prerequisites(&mut self, problems: &mut Problems) {
        let mut links = Vec::with_capacity(self.flags.len());
        for flag in &self.flags {
            let mut flag_links = Vec::new();
            for (p, prerequisite) in flag.source.prerequisites.iter().enumerate() {
                let Some(&target) = self.index.get(prerequisite.flag.as_str()) else {
                    // A missing prerequisite simply fails at evaluation: flags may be
                    // written before the flags they depend on.
                    flag_links.push(None);
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
                flag_links.push(Some((target, accepted)));
            }
            links.push(flag_links);
        }
        for (flag, flag_links) in self.flags.iter_mut().zip(links) {
            flag.prerequisites = flag_links;
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
        for start in 0..self.flags.len() {
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
        self.index.get(key).map(|&i| &self.flags[i].source)
    }

    /// Every flag, in the order given to [`Snapshot::compile`].
    pub fn flags(&self) -> impl Iterator<Item = &Flag> {
        self.flags.iter().map(|f| &f.source)
    }

    /// Every segment, in the order given to [`Snapshot::compile`].
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segment_defs.iter()
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// True when there are no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    pub(crate) fn flag_index(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }
}

impl CompiledServe {
    fn assign_slots(&mut self, names: &mut NameTable) {
        if let CompiledServe::Rollout(rollout) = self {
            rollout.by.iter_mut().for_each(|name| names.assign(name));
        }
    }
}

impl CompiledFlag {
    fn variant_index(&self, name: &str) -> Option<usize> {
        self.source.variants.get_index_of(name)
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

    CompiledFlag {
        source: flag,
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
        salt: rollout.salt.as_deref().unwrap_or(flag_key).into(),
        hashing: rollout.hashing,
        shares,
        total: cumulative,
    }
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
