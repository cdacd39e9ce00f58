//! Turning Unleash features into native flags (the mapping is documented on
//! [`crate::unleash`]).

use indexmap::IndexMap;
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::context::{variant_value, DISABLED_VARIANT};
use super::state::{
    UnleashConstraint, UnleashDependency, UnleashFeature, UnleashSegment, UnleashState,
    UnleashStrategy, UnleashVariant,
};
use super::ImportError;
use crate::bucketing::BUCKETS;
use crate::model::{
    By, Constraint, Flag, FlagKey, FlagKind, Hashing, Operator, Percentage, Prerequisite, Rollout,
    Rule, Segment, SegmentKey, Serve, Split, When,
};
use crate::snapshot::Snapshot;
use crate::validation::{check_name, validate_segment};

/// The native variant served when the toggle is off: Unleash's `disabled` variant
/// with `feature_enabled: false`.
pub const OFF_VARIANT: &str = "off";
/// The native variant served when the toggle is on without a variant: Unleash's
/// `disabled` variant with `feature_enabled: true`.
pub const ON_VARIANT: &str = "on";

/// Strategies' default stickiness (Unleash then falls back to a random number).
const STRATEGY_STICKINESS: [&str; 2] = ["userId", "sessionId"];
/// Variants' default stickiness (Unleash then falls back to a random number).
const VARIANT_STICKINESS: [&str; 3] = ["userId", "sessionId", "remoteAddress"];
/// The pseudo-strategy that combines strategies with `AND` or `OR`.
const GROUP_STRATEGY: &str = "__internal-strategy-group";
/// The attribute `applicationHostname` tests (Unleash clients read the host's name).
const HOSTNAME: &str = "hostname";

/// Imports a client-API state as native flags that evaluate as Unleash clients do.
///
/// The flags compile with [`Snapshot::compile`] together with the returned segments.
/// Unleash segments are inlined into the strategies using them (a strategy needs all
/// of its segments, a native rule any of its segments), so no native segments are
/// returned: editing one would not change the imported flags.
pub fn import(state: &UnleashState) -> Result<(Vec<Flag>, Vec<Segment>), ImportError> {
    let mut segments = FxHashMap::default();
    for segment in &state.segments {
        if segments.insert(segment.id, segment).is_some() {
            return Err(ImportError::DuplicateSegment(segment.id));
        }
    }
    let mut features = FxHashMap::default();
    for (i, feature) in state.features.iter().enumerate() {
        check_name(&feature.name).map_err(|problem| ImportError::InvalidName {
            feature: feature.name.clone(),
            problem,
        })?;
        if features.insert(feature.name.as_str(), i).is_some() {
            return Err(ImportError::DuplicateFeature(feature.name.clone()));
        }
    }

    let mut flags = state
        .features
        .iter()
        .map(|feature| FlagBuilder::new(feature, &segments).build())
        .collect::<Result<Vec<_>, _>>()?;

    for (i, feature) in state.features.iter().enumerate() {
        let mut prerequisites = Vec::new();
        let mut blocked = Vec::new();
        for dependency in &feature.dependencies {
            match features.get(dependency.feature.as_str()) {
                None if is_valid_key(&dependency.feature) => prerequisites.push(Prerequisite {
                    flag: FlagKey::new(dependency.feature.as_str()),
                    variants: unknown_parent_variants(dependency),
                }),
                None => blocked.push(format!(
                    "depends on `{}`, which cannot be a flag key",
                    dependency.feature
                )),
                Some(&parent) if !state.features[parent].dependencies.is_empty() => {
                    blocked.push(format!(
                        "depends on `{}`, which has dependencies of its own",
                        dependency.feature
                    ));
                }
                Some(&parent) => {
                    let variants = accepted_variants(&flags[parent], dependency);
                    if variants.is_empty() {
                        blocked.push(format!(
                            "depends on variants {:?} of `{}`, which it never serves",
                            dependency.variants, dependency.feature
                        ));
                    } else {
                        prerequisites.push(Prerequisite {
                            flag: FlagKey::new(dependency.feature.as_str()),
                            variants,
                        });
                    }
                }
            }
        }
        let flag = &mut flags[i];
        flag.prerequisites = prerequisites;
        if !blocked.is_empty() {
            // Unleash evaluates such a toggle as off whatever the context.
            flag.enabled = false;
            let note = format!(
                "[imported disabled: Unleash evaluates it as off because it {}]",
                blocked.join(" and ")
            );
            flag.description = if flag.description.is_empty() {
                note
            } else {
                format!("{} {note}", flag.description)
            };
        }
    }

    Snapshot::compile(flags.iter().cloned(), Vec::new()).map_err(ImportError::Rejected)?;
    Ok((flags, Vec::new()))
}

fn is_valid_key(key: &str) -> bool {
    check_name(key).is_ok()
}

/// The variants of a parent, as imported, that satisfy a dependency: Unleash wants
/// the parent off (its off variant), on (any variant but off), or on with one of
/// the named variants (`disabled` naming "on without a variant").
fn accepted_variants(parent: &Flag, dependency: &UnleashDependency) -> Vec<String> {
    parent
        .variants
        .iter()
        .filter(|(_, value)| {
            let feature_enabled = value
                .get("feature_enabled")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let name = value.get("name").and_then(Value::as_str).unwrap_or("");
            if dependency.enabled {
                feature_enabled
                    && (dependency.variants.is_empty()
                        || dependency.variants.iter().any(|v| v == name))
            } else {
                !feature_enabled
            }
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// A dependency on a toggle that is not in the state fails in Unleash. The native
/// prerequisite fails too while the flag is missing; the variants named are those an
/// imported parent would have.
fn unknown_parent_variants(dependency: &UnleashDependency) -> Vec<String> {
    if !dependency.enabled {
        vec![OFF_VARIANT.to_owned()]
    } else if dependency.variants.is_empty() {
        vec![ON_VARIANT.to_owned()]
    } else {
        dependency.variants.clone()
    }
}

/// A condition in disjunctive normal form: the strategy holds when any conjunction
/// does. An empty list never holds.
#[derive(Debug, Clone)]
struct Dnf(Vec<Conjunction>);

/// What one native rule's `when` can say: constraints and at most one percentage.
#[derive(Debug, Clone, Default)]
struct Conjunction {
    constraints: Vec<Constraint>,
    percentage: Option<Percentage>,
}

/// Two sampled percentages in one conjunction cannot be written as one rule.
const TWO_PERCENTAGES: &str =
    "an AND strategy group with two partial rollouts cannot be expressed as native rules";

/// The most native rules one strategy's constraints may expand into.
const MAX_RULES: usize = 1_000;

const TOO_MANY_RULES: &str =
    "its constraints expand into more than 1 000 native rules (each inverted NUM_EQ and each OR group multiplies them)";

impl Dnf {
    fn always() -> Self {
        Dnf(vec![Conjunction::default()])
    }

    fn never() -> Self {
        Dnf(Vec::new())
    }

    fn of(constraints: Vec<Constraint>) -> Self {
        Dnf(vec![Conjunction {
            constraints,
            percentage: None,
        }])
    }

    fn and(self, other: Dnf) -> Result<Dnf, &'static str> {
        // Each side's alternatives multiply: inverted NUM_EQ constraints and OR groups
        // would otherwise grow a small document into millions of rules.
        if self.0.len().saturating_mul(other.0.len()) > MAX_RULES {
            return Err(TOO_MANY_RULES);
        }
        let mut out = Vec::with_capacity(self.0.len() * other.0.len());
        for left in &self.0 {
            for right in &other.0 {
                if let Some(both) = left.and(right)? {
                    out.push(both);
                }
            }
        }
        Ok(Dnf(out))
    }

    fn or(mut self, other: Dnf) -> Dnf {
        self.0.extend(other.0);
        self
    }
}

impl Conjunction {
    /// Both conjunctions; `None` when they can never hold together.
    fn and(&self, other: &Conjunction) -> Result<Option<Conjunction>, &'static str> {
        let percentage = match (&self.percentage, &other.percentage) {
            (None, p) | (p, None) => p.clone(),
            (Some(a), Some(b)) if a.weight == 0 || b.weight == 0 => return Ok(None),
            // A whole percentage includes every context, so it can be dropped.
            (Some(a), Some(b)) if a.weight >= BUCKETS => Some(b.clone()),
            (Some(a), Some(b)) if b.weight >= BUCKETS => Some(a.clone()),
            (Some(_), Some(_)) => return Err(TWO_PERCENTAGES),
        };
        let mut constraints = self.constraints.clone();
        constraints.extend(other.constraints.iter().cloned());
        Ok(Some(Conjunction {
            constraints,
            percentage,
        }))
    }

    fn when(&self, extra: Option<&Constraint>) -> When {
        let mut constraints = self.constraints.clone();
        constraints.extend(extra.cloned());
        When {
            constraints,
            percentage: self.percentage.clone(),
            ..When::default()
        }
    }
}

/// How a matching strategy picks the variant: overrides first, then `serve`.
#[derive(Debug, Clone)]
struct VariantPlan {
    overrides: Vec<(Constraint, String)>,
    serve: Serve,
}

struct FlagBuilder<'a> {
    feature: &'a UnleashFeature,
    segments: &'a FxHashMap<i64, &'a UnleashSegment>,
    variants: IndexMap<String, Value>,
}

impl<'a> FlagBuilder<'a> {
    fn new(feature: &'a UnleashFeature, segments: &'a FxHashMap<i64, &'a UnleashSegment>) -> Self {
        Self {
            feature,
            segments,
            variants: IndexMap::new(),
        }
    }

    fn unsupported(&self, reason: &'static str) -> ImportError {
        ImportError::Unsupported {
            feature: self.feature.name.clone(),
            reason,
        }
    }

    fn build(mut self) -> Result<Flag, ImportError> {
        let feature = self.feature;
        self.variants.insert(
            ON_VARIANT.to_owned(),
            variant_value(DISABLED_VARIANT, None, false, true),
        );
        let stickiness = feature
            .variants
            .first()
            .and_then(|v| v.stickiness.as_deref());
        let feature_plan = self.plan(&feature.variants, stickiness, &feature.name, true)?;

        let mut rules = Vec::new();
        let default = if feature.strategies.is_empty() {
            for (k, (constraint, variant)) in feature_plan.overrides.iter().enumerate() {
                rules.push(Rule {
                    id: format!("override{k}"),
                    when: When {
                        constraints: vec![constraint.clone()],
                        ..When::default()
                    },
                    serve: Serve::Variant(variant.clone()),
                });
            }
            feature_plan.serve.clone()
        } else {
            // The first matching strategy decides: its own variants if it has any,
            // else the feature's (a missing `variants` field counts as empty).
            for (i, strategy) in feature.strategies.iter().enumerate() {
                let condition = self
                    .condition(strategy)
                    .map_err(|reason| self.unsupported(reason))?;
                let plan = match &strategy.variants {
                    Some(variants) if !variants.is_empty() => {
                        let stickiness = strategy.parameters.get("stickiness").map(String::as_str);
                        let group = group_id(strategy, &feature.name).to_owned();
                        self.plan(variants, stickiness, &group, false)?
                    }
                    _ => feature_plan.clone(),
                };
                emit_rules(&mut rules, &format!("strategy{i}"), &condition, &plan);
            }
            Serve::Variant(OFF_VARIANT.to_owned())
        };
        self.variants.insert(
            OFF_VARIANT.to_owned(),
            variant_value(DISABLED_VARIANT, None, false, false),
        );

        Ok(Flag {
            key: FlagKey::new(feature.name.as_str()),
            kind: FlagKind::Json,
            description: feature.description.clone().unwrap_or_default(),
            enabled: feature.enabled,
            variants: self.variants,
            off_variant: Some(OFF_VARIANT.to_owned()),
            rules,
            default,
            prerequisites: Vec::new(),
            tags: Vec::new(),
            expires: None,
            version: 0,
        })
    }

    /// The native key of a real variant. Keys are the Unleash names, except that
    /// `on`, `off`, the empty name, a name already used with another payload and a
    /// variant already in `split` (a list naming the same variant twice) get a `#n`
    /// suffix.
    fn variant_key(&mut self, variant: &UnleashVariant, split: &[Split]) -> String {
        let payload = variant.payload.as_ref().map(|p| {
            let mut object = Map::new();
            object.insert("type".to_owned(), Value::String(p.kind.clone()));
            object.insert("value".to_owned(), p.value.clone());
            Value::Object(object)
        });
        let value = variant_value(&variant.name, payload, true, true);
        let in_split = |key: &str| split.iter().any(|s| s.variant == key);
        if let Some((key, _)) = self
            .variants
            .iter()
            .find(|(key, v)| **v == value && !in_split(key))
        {
            return key.clone();
        }
        let taken = |key: &str, variants: &IndexMap<String, Value>| {
            key.is_empty() || key == ON_VARIANT || key == OFF_VARIANT || variants.contains_key(key)
        };
        let mut key = variant.name.clone();
        let mut n = 1;
        while taken(&key, &self.variants) {
            n += 1;
            key = format!("{}#{n}", variant.name);
        }
        self.variants.insert(key.clone(), value);
        key
    }

    /// How a list of variants is served: Unleash's weighted pick, or "on without a
    /// variant" when the list is empty or weighs nothing.
    fn plan(
        &mut self,
        variants: &[UnleashVariant],
        stickiness: Option<&str>,
        group: &str,
        with_overrides: bool,
    ) -> Result<VariantPlan, ImportError> {
        let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
        if total == 0 {
            return Ok(VariantPlan {
                overrides: Vec::new(),
                serve: Serve::Variant(ON_VARIANT.to_owned()),
            });
        }
        if total > u64::from(u32::MAX) {
            return Err(self.unsupported("variant weights sum to more than 2^32 - 1"));
        }
        let mut overrides = Vec::new();
        let mut split = Vec::with_capacity(variants.len());
        for variant in variants {
            let key = self.variant_key(variant, &split);
            if with_overrides {
                for o in &variant.overrides {
                    if !o.context_name.is_empty() && !o.values.is_empty() {
                        let constraint = Constraint {
                            attribute: o.context_name.clone(),
                            op: Operator::In,
                            values: o.values.clone(),
                            negate: false,
                            case_insensitive: false,
                        };
                        overrides.push((constraint, key.clone()));
                    }
                }
            }
            split.push(Split {
                variant: key,
                weight: variant.weight,
            });
        }
        let by = match stickiness {
            None | Some("" | "default" | "random") => {
                By::first_of(VARIANT_STICKINESS.iter().map(|s| (*s).to_owned()).collect())
            }
            Some(custom) => By::one(custom),
        };
        Ok(VariantPlan {
            overrides,
            serve: Serve::Rollout(Rollout {
                by,
                salt: Some(group.to_owned()),
                split,
                hashing: Hashing::Unleash,
            }),
        })
    }

    /// When a strategy is on: its constraints, its segments' constraints and its
    /// own condition.
    fn condition(&self, strategy: &UnleashStrategy) -> Result<Dnf, &'static str> {
        let mut condition = Dnf::always();
        for constraint in &strategy.constraints {
            condition = condition.and(map_constraint(constraint))?;
        }
        for id in &strategy.segments {
            let Some(segment) = self.segments.get(id) else {
                return Ok(Dnf::never());
            };
            for constraint in &segment.constraints {
                condition = condition.and(map_constraint(constraint))?;
            }
        }
        condition.and(self.strategy_condition(strategy)?)
    }

    fn strategy_condition(&self, strategy: &UnleashStrategy) -> Result<Dnf, &'static str> {
        let parameter = |name: &str| strategy.parameters.get(name).map(String::as_str);
        let feature = self.feature.name.as_str();
        Ok(match strategy.name.as_str() {
            "default" => Dnf::always(),
            "userWithId" => match parameter("userIds") {
                Some(ids) => Dnf::of(vec![Constraint {
                    attribute: "userId".to_owned(),
                    op: Operator::In,
                    values: comma_list(ids),
                    negate: false,
                    case_insensitive: false,
                }]),
                None => Dnf::never(),
            },
            "gradualRolloutUserId" | "gradualRolloutSessionId" => {
                let id = if strategy.name == "gradualRolloutUserId" {
                    "userId"
                } else {
                    "sessionId"
                };
                sampled(
                    Some(id),
                    &[id],
                    parameter("groupId").unwrap_or(""),
                    parse_percent(parameter("percentage")),
                )
            }
            "gradualRolloutRandom" => sampled(
                None,
                &STRATEGY_STICKINESS,
                group_id(strategy, feature),
                parse_percent(parameter("percentage")),
            ),
            "flexibleRollout" => {
                let percent = parse_percent(parameter("rollout"));
                let group = group_id(strategy, feature);
                match parameter("stickiness") {
                    None | Some("" | "default" | "random") => {
                        sampled(None, &STRATEGY_STICKINESS, group, percent)
                    }
                    Some(custom) => sampled(Some(custom), &[custom], group, percent),
                }
            }
            "remoteAddress" => {
                let blocks: Vec<String> = parameter("IPs")
                    .map(comma_list)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|block| {
                        compiles(&native(
                            Operator::InCidr,
                            "remoteAddress",
                            vec![block.clone()],
                        ))
                    })
                    .collect();
                if blocks.is_empty() {
                    Dnf::never()
                } else {
                    Dnf::of(vec![native(Operator::InCidr, "remoteAddress", blocks)])
                }
            }
            "applicationHostname" => {
                let mut constraint = native(
                    Operator::In,
                    HOSTNAME,
                    comma_list(parameter("hostNames").unwrap_or("")),
                );
                constraint.case_insensitive = true;
                Dnf::of(vec![constraint])
            }
            GROUP_STRATEGY => {
                let members = strategy.group.as_deref().unwrap_or_default();
                match strategy.operator.as_deref() {
                    Some("AND") => {
                        let mut all = Dnf::always();
                        for member in members {
                            all = all.and(self.condition(member)?)?;
                        }
                        all
                    }
                    Some("OR") => {
                        let mut any = Dnf::never();
                        for member in members {
                            any = any.or(self.condition(member)?);
                        }
                        any
                    }
                    _ => Dnf::never(),
                }
            }
            // Custom strategies are not registered here: Unleash evaluates them false.
            _ => Dnf::never(),
        })
    }
}

/// Appends the rules of one strategy: per conjunction, the overrides, then the plan.
fn emit_rules(rules: &mut Vec<Rule>, base: &str, condition: &Dnf, plan: &VariantPlan) {
    for (j, conjunction) in condition.0.iter().enumerate() {
        let id = if condition.0.len() == 1 {
            base.to_owned()
        } else {
            format!("{base}.or{j}")
        };
        for (k, (constraint, variant)) in plan.overrides.iter().enumerate() {
            rules.push(Rule {
                id: format!("{id}.override{k}"),
                when: conjunction.when(Some(constraint)),
                serve: Serve::Variant(variant.clone()),
            });
        }
        rules.push(Rule {
            id,
            when: conjunction.when(None),
            serve: plan.serve.clone(),
        });
    }
}

/// `groupId`, defaulting to the feature's name (also when empty, as Unleash reads it).
fn group_id<'s>(strategy: &'s UnleashStrategy, feature: &'s str) -> &'s str {
    match strategy.parameters.get("groupId") {
        Some(group) if !group.is_empty() => group,
        _ => feature,
    }
}

/// A sampled percentage of the contexts, optionally requiring a property (Unleash
/// evaluates a strategy false when its explicit stickiness field is missing).
fn sampled(require: Option<&str>, by: &[&str], group: &str, percent: u32) -> Dnf {
    let mut constraints = Vec::new();
    if let Some(property) = require {
        constraints.push(native(Operator::Exists, property, Vec::new()));
    }
    Dnf(vec![Conjunction {
        constraints,
        percentage: Some(Percentage {
            by: By::first_of(by.iter().map(|s| (*s).to_owned()).collect()),
            salt: Some(group.to_owned()),
            weight: percent * 1000,
            hashing: Hashing::Unleash,
        }),
    }])
}

/// A rollout percentage as Unleash reads it (`Number(p)`, then `hash <= p` for a
/// hash in 1..=100): floored, clamped to 0..=100, 0 when it is not a number.
fn parse_percent(raw: Option<&str>) -> u32 {
    match raw.map(|p| p.trim().parse::<f64>()) {
        Some(Ok(p)) if p >= 100.0 => 100,
        Some(Ok(p)) if p >= 1.0 => p.floor() as u32,
        _ => 0,
    }
}

fn comma_list(list: &str) -> Vec<String> {
    list.split(',').map(|item| item.trim().to_owned()).collect()
}

fn native(op: Operator, attribute: &str, values: Vec<String>) -> Constraint {
    Constraint {
        attribute: attribute.to_owned(),
        op,
        values,
        negate: false,
        case_insensitive: false,
    }
}

/// Whether the engine accepts a constraint (its operands parse).
fn compiles(constraint: &Constraint) -> bool {
    let probe = Segment {
        key: SegmentKey::new("probe"),
        description: String::new(),
        when: When {
            constraints: vec![constraint.clone()],
            ..When::default()
        },
        version: 0,
    };
    validate_segment(&probe).is_ok()
}

/// Maps one Unleash constraint. An operator this engine does not know, or operands
/// it cannot parse, make the constraint what Unleash computes for them: false, or
/// true when inverted.
fn map_constraint(c: &UnleashConstraint) -> Dnf {
    let make = |op: Operator, values: Vec<String>, negate: bool| Constraint {
        attribute: c.context_name.clone(),
        op,
        values,
        negate,
        case_insensitive: c.case_insensitive
            && matches!(
                op,
                Operator::In
                    | Operator::Contains
                    | Operator::StartsWith
                    | Operator::EndsWith
                    | Operator::Matches
            ),
    };
    let operand = || c.value.iter().cloned().collect::<Vec<_>>();
    let inverted = c.inverted;
    let simple = |op: Operator| Some(Dnf::of(vec![make(op, operand(), inverted)]));
    let list = |op: Operator| Some(Dnf::of(vec![make(op, c.values.clone(), inverted)]));
    let mapped = match c.operator.as_str() {
        // NOT_IN is `in` negated: both hold for a missing field, as in Unleash.
        "IN" => list(Operator::In),
        "NOT_IN" => Some(Dnf::of(vec![make(
            Operator::In,
            c.values.clone(),
            !inverted,
        )])),
        "STR_CONTAINS" => list(Operator::Contains),
        "STR_STARTS_WITH" => list(Operator::StartsWith),
        "STR_ENDS_WITH" => list(Operator::EndsWith),
        // Numeric equality (12 == 12.0) is `>= v and <= v`; negated, `< v or > v`
        // or a missing or non-numeric field, which the two negated halves cover.
        "NUM_EQ" if !inverted => Some(Dnf::of(vec![
            make(Operator::Gte, operand(), false),
            make(Operator::Lte, operand(), false),
        ])),
        "NUM_EQ" => Some(Dnf(vec![
            Conjunction {
                constraints: vec![make(Operator::Gte, operand(), true)],
                percentage: None,
            },
            Conjunction {
                constraints: vec![make(Operator::Lte, operand(), true)],
                percentage: None,
            },
        ])),
        "NUM_GT" => simple(Operator::Gt),
        "NUM_GTE" => simple(Operator::Gte),
        "NUM_LT" => simple(Operator::Lt),
        "NUM_LTE" => simple(Operator::Lte),
        "DATE_AFTER" => simple(Operator::After),
        "DATE_BEFORE" => simple(Operator::Before),
        "SEMVER_EQ" => simple(Operator::SemverEq),
        "SEMVER_GT" => simple(Operator::SemverGt),
        "SEMVER_GTE" => simple(Operator::SemverGte),
        "SEMVER_LT" => simple(Operator::SemverLt),
        "SEMVER_LTE" => simple(Operator::SemverLte),
        "REGEX" => simple(Operator::Matches),
        // Unleash ignores the entries that are not addresses or blocks.
        "IN_CIDR" => {
            let blocks: Vec<String> = c
                .values
                .iter()
                .filter(|v| compiles(&make(Operator::InCidr, vec![(*v).clone()], false)))
                .cloned()
                .collect();
            (!blocks.is_empty()).then(|| Dnf::of(vec![make(Operator::InCidr, blocks, inverted)]))
        }
        _ => None,
    };
    match mapped {
        Some(dnf) if dnf.0.iter().flat_map(|c| &c.constraints).all(compiles) => dnf,
        _ => constant(c),
    }
}

/// What Unleash gives a constraint it cannot use, whatever the context: the
/// operator's result is false (true for `NOT_IN`, whose only failure is a missing
/// field), then `inverted` applies.
fn constant(c: &UnleashConstraint) -> Dnf {
    if (c.operator == "NOT_IN") != c.inverted {
        Dnf::always()
    } else {
        Dnf::never()
    }
}
