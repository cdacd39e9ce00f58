//! Targeting: compiled `when` conditions and constraint operators.
//!
//! Everything a comparison needs from the flag (regexes, semvers, CIDRs, instants,
//! numbers, lowercased strings, string sets) is parsed here once, when the flag is
//! loaded; matching a context then only compares and never allocates.

use std::cmp::Ordering;
use std::net::IpAddr;

use chrono::{DateTime, FixedOffset};
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use rustc_hash::FxHashSet;

use crate::bucketing::{self, Salted};
use crate::context::{Attr, AttrName, NameTable, Resolved, Text};
use crate::model::{Constraint, Hashing, Operator, Percentage, When};
use crate::semver::{Version, VersionBuf};

use crate::validation::{check_name, At, Problem, Problems};
use text::TextOp;

/// A compiled `when`: every present part must match.
#[derive(Debug, Clone)]
pub(crate) struct CompiledWhen {
    users: StrSet,
    groups: StrSet,
    /// Indices into the snapshot's segments; resolved after compiling.
    pub(crate) segments: Vec<usize>,
    constraints: Vec<CompiledConstraint>,
    percentage: Option<CompiledPercentage>,
}

#[derive(Debug, Clone)]
struct CompiledConstraint {
    attribute: AttrName,
    negate: bool,
    test: Test,
}

/// The comparison a constraint makes against a present attribute.
#[derive(Debug, Clone)]
enum Test {
    /// `in` (and `eq`): the value is one of these. `not` turns it into `not_in`/`neq`.
    OneOf {
        values: StrSet,
        numbers: Vec<f64>,
        not: bool,
    },
    /// Case-insensitive `in`/`eq`: values are lowercased.
    OneOfIgnoringCase {
        values: Vec<Box<str>>,
        not: bool,
    },
    Text {
        kind: TextOp,
        values: Vec<Box<str>>,
        ignore_case: bool,
    },
    /// `matches`: any of the patterns matches somewhere in the value.
    Matches(Vec<Pattern>),
    Number {
        accept: Accept,
        values: Vec<f64>,
    },
    Semver {
        accept: Accept,
        values: Vec<VersionBuf>,
    },
    Instant {
        accept: Accept,
        values: Vec<DateTime<FixedOffset>>,
    },
    InCidr(Vec<Cidr>),
    Exists,
}

/// A compiled `matches` pattern. A pattern that is a plain literal, optionally
/// anchored (`^/checkout`, `@corp\.com$`, `beta`), is a string test: the same answer
/// as the regex engine at a fraction of the cost.
#[derive(Debug, Clone)]
enum Pattern {
    Literal(TextOp, Box<str>),
    Regex(Regex),
}

impl Pattern {
    fn compile(pattern: &str, ignore_case: bool) -> Result<Self, regex::Error> {
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(ignore_case)
            .size_limit(1 << 20)
            .build()?;
        Ok(literal_pattern(pattern, ignore_case).unwrap_or(Pattern::Regex(regex)))
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Literal(op, value) => op.holds(s, value),
            Pattern::Regex(regex) => regex.is_match(s),
        }
    }
}

/// The string test equivalent to `pattern`, when it is `^`? literal `$`? (a
/// case-insensitive literal with letters is a class, not a literal, so it stays a
/// regex). Multi-line anchors and everything else stay regexes.
fn literal_pattern(pattern: &str, ignore_case: bool) -> Option<Pattern> {
    use regex_syntax::hir::{HirKind, Look};
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(ignore_case)
        .build()
        .parse(pattern)
        .ok()?;
    let parts = match hir.kind() {
        HirKind::Concat(parts) => parts.as_slice(),
        _ => std::slice::from_ref(&hir),
    };
    let (start, parts) = match parts.split_first() {
        Some((first, rest)) if matches!(first.kind(), HirKind::Look(Look::Start)) => (true, rest),
        _ => (false, parts),
    };
    let (end, parts) = match parts.split_last() {
        Some((last, rest)) if matches!(last.kind(), HirKind::Look(Look::End)) => (true, rest),
        _ => (false, parts),
    };
    let [only] = parts else { return None };
    let HirKind::Literal(literal) = only.kind() else {
        return None;
    };
    let text = std::str::from_utf8(&literal.0).ok()?;
    let op = match (start, end) {
        (true, true) => TextOp::Equals,
        (true, false) => TextOp::StartsWith,
        (false, true) => TextOp::EndsWith,
        (false, false) => TextOp::Contains,
    };
    Some(Pattern::Literal(op, text.into()))
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledPercentage {
    pub(crate) by: Box<[AttrName]>,
    /// The salt (or the flag's key), already fed to the hash.
    pub(crate) salted: Salted,
    pub(crate) weight: u32,
    pub(crate) hashing: Hashing,
}

impl CompiledWhen {
    /// Compiles `when`; segment names are returned for the caller to resolve.
    pub(crate) fn compile(
        when: &When,
        flag_key: &str,
        path: &At<'_>,
        problems: &mut Problems,
    ) -> Self {
        if problems.writing() {
            let segments_path = path.field("segments");
            for (i, name) in when.segments.iter().enumerate() {
                if let Err(problem) = check_name(name.as_str()) {
                    problems.push(segments_path.index(i), problem);
                }
            }
        }
        let constraints_path = path.field("constraints");
        let constraints = when
            .constraints
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                CompiledConstraint::compile(c, &constraints_path.index(i), problems)
            })
            .collect();
        let percentage = when
            .percentage
            .as_ref()
            .map(|p| CompiledPercentage::compile(p, flag_key, &path.field("percentage"), problems))
            // A whole percentage includes every context, with or without a property to
            // bucket on, under every hashing: nothing to hash (an Unleash rollout of
            // 100 % is the usual case).
            .filter(|p| p.weight < bucketing::BUCKETS);
        CompiledWhen {
            users: StrSet::new(&when.users),
            groups: StrSet::new(&when.groups),
            segments: Vec::new(),
            constraints,
            percentage,
        }
    }

    /// Gives every attribute name this condition reads its slot in `table`.
    pub(crate) fn assign_slots(&mut self, table: &mut NameTable) {
        for constraint in &mut self.constraints {
            table.assign(&mut constraint.attribute);
        }
        if let Some(percentage) = &mut self.percentage {
            percentage.by.iter_mut().for_each(|name| table.assign(name));
        }
    }

    /// Whether the context matches; `segments` are the snapshot's compiled segments.
    pub(crate) fn matches(&self, ctx: &Resolved<'_>, segments: &[CompiledWhen]) -> bool {
        if !self.users.is_empty()
            && !ctx
                .targeting_key()
                .is_some_and(|key| self.users.contains(key))
        {
            return false;
        }
        if !self.groups.is_empty() && !ctx.groups().iter().any(|g| self.groups.contains(g)) {
            return false;
        }
        if !self.segments.is_empty()
            && !self.segments.iter().any(|&i| {
                segments
                    .get(i)
                    .is_some_and(|segment| segment.matches(ctx, &[]))
            })
        {
            return false;
        }
        if !self.constraints.iter().all(|c| c.holds(ctx)) {
            return false;
        }
        match &self.percentage {
            Some(p) => p.includes(ctx),
            None => true,
        }
    }
}

impl CompiledPercentage {
    fn compile(p: &Percentage, flag_key: &str, path: &At<'_>, problems: &mut Problems) -> Self {
        check_by(p.by.properties(), &path.field("by"), problems);
        if p.weight > bucketing::BUCKETS {
            problems.push(
                path.field("weight"),
                Problem::WeightAboveWhole { weight: p.weight },
            );
        } else if p.hashing == Hashing::Unleash && p.weight % 1000 != 0 {
            problems.push(
                path.field("weight"),
                Problem::FractionalPercent { weight: p.weight },
            );
        }
        CompiledPercentage {
            by: p.by.properties().iter().map(|s| AttrName::new(s)).collect(),
            salted: Salted::new(p.hashing, p.salt.as_deref().unwrap_or(flag_key), false),
            weight: p.weight,
            hashing: p.hashing,
        }
    }

    fn includes(&self, ctx: &Resolved<'_>) -> bool {
        let included = with_first_present(ctx, &self.by, |value| match self.hashing {
            // flagd's `fractional` takes an empty key for none.
            Hashing::Flagd if value.is_empty() => None,
            Hashing::Switchyard | Hashing::Flagd => {
                Some(bucketing::scaled(self.salted.hash(value)) < self.weight)
            }
            Hashing::Unleash => Some(
                self.weight > 0
                    && bucketing::percentage_of(self.salted.hash(value)) * 1000 <= self.weight,
            ),
        })
        .flatten();
        // Nothing to bucket on: only a full percentage includes the context.
        included.unwrap_or(self.weight >= bucketing::BUCKETS)
    }
}

/// Checks a `by` list: at least one property, none empty.
pub(crate) fn check_by(by: &[String], path: &At<'_>, problems: &mut Problems) {
    if by.is_empty() {
        problems.push(path, Problem::Empty);
    }
    for (i, property) in by.iter().enumerate() {
        if property.is_empty() {
            problems.push(path.index(i), Problem::Empty);
        }
    }
}

/// Calls `f` with the string form of the first of `by` present in the context.
/// Numbers and booleans are formatted on the stack; lists cannot be bucketed on.
pub(crate) fn with_first_present<R>(
    ctx: &Resolved<'_>,
    by: &[AttrName],
    f: impl FnOnce(&str) -> R,
) -> Option<R> {
    for name in by {
        match ctx.lookup(name) {
            Some(Attr::Text(text)) => return Some(f(text.raw)),
            Some(Attr::Bool(b)) => return Some(f(if b { "true" } else { "false" })),
            Some(Attr::Number(n)) => {
                use std::io::Write;
                // f64's Display needs at most ~330 bytes.
                let mut buf = [0_u8; 400];
                let mut cursor = &mut buf[..];
                if write!(cursor, "{n}").is_ok() {
                    let written = 400 - cursor.len();
                    if let Ok(s) = std::str::from_utf8(&buf[..written]) {
                        return Some(f(s));
                    }
                }
            }
            Some(Attr::List(_)) | None => {}
        }
    }
    None
}

/// A set of strings: a short list is scanned, a long one hashed.
#[derive(Debug, Clone)]
enum StrSet {
    Few(Vec<Box<str>>),
    Many(FxHashSet<Box<str>>),
}

impl StrSet {
    fn new(values: &[String]) -> Self {
        if values.len() <= 8 {
            StrSet::Few(values.iter().map(|v| v.as_str().into()).collect())
        } else {
            StrSet::Many(values.iter().map(|v| v.as_str().into()).collect())
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            StrSet::Few(values) => values.is_empty(),
            StrSet::Many(values) => values.is_empty(),
        }
    }

    #[inline(always)]
    fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Few(values) => values.iter().any(|v| text::eq(v.as_bytes(), s.as_bytes())),
            StrSet::Many(values) => values.contains(s),
        }
    }
}

impl CompiledConstraint {
    fn compile(c: &Constraint, path: &At<'_>, problems: &mut Problems) -> Option<Self> {
        use Operator::*;
        if c.attribute.is_empty() {
            problems.push(path.field("attribute"), Problem::Empty);
        }
        let values_path = path.field("values");
        match c.op {
            Exists if !c.values.is_empty() => {
                problems.push(values_path, Problem::UnexpectedValues);
            }
            // `in []` never holds (`not_in []` always does): a mistake when written,
            // but stored flags that have one (the Unleash import once wrote it as a
            // constant) still load.
            In | NotIn if c.values.is_empty() && problems.writing() => {
                problems.push(values_path, Problem::MissingValues { op: c.op.as_str() });
            }
            Exists | In | NotIn => {}
            op if c.values.is_empty() => {
                problems.push(values_path, Problem::MissingValues { op: op.as_str() });
            }
            _ => {}
        }
        let before = problems.errors.len();
        let mut parse_each = |parse: &dyn Fn(&str) -> Result<(), Problem>| {
            for (i, value) in c.values.iter().enumerate() {
                if let Err(problem) = parse(value) {
                    problems.push(values_path.index(i), problem);
                }
            }
        };
        let ignore_case = c.case_insensitive;
        let lowered = || -> Vec<Box<str>> {
            c.values
                .iter()
                .map(|v| {
                    if ignore_case {
                        v.to_lowercase().into()
                    } else {
                        v.as_str().into()
                    }
                })
                .collect()
        };
        let test = match c.op {
            In | Eq | NotIn | Neq => {
                let not = matches!(c.op, NotIn | Neq);
                if ignore_case {
                    Test::OneOfIgnoringCase {
                        values: lowered(),
                        not,
                    }
                } else {
                    Test::OneOf {
                        values: StrSet::new(&c.values),
                        numbers: c.values.iter().filter_map(|v| parse_number(v)).collect(),
                        not,
                    }
                }
            }
            Contains | StartsWith | EndsWith => Test::Text {
                kind: match c.op {
                    Contains => TextOp::Contains,
                    StartsWith => TextOp::StartsWith,
                    _ => TextOp::EndsWith,
                },
                values: lowered(),
                ignore_case,
            },
            Matches => {
                parse_each(&|v| {
                    Pattern::compile(v, ignore_case)
                        .map(drop)
                        .map_err(|source| Problem::BadRegex {
                            value: v.to_owned(),
                            source,
                        })
                });
                Test::Matches(
                    c.values
                        .iter()
                        .filter_map(|v| Pattern::compile(v, ignore_case).ok())
                        .collect(),
                )
            }
            Lt | Lte | Gt | Gte => {
                parse_each(&|v| {
                    parse_number(v)
                        .map(drop)
                        .ok_or_else(|| Problem::BadNumber(v.to_owned()))
                });
                Test::Number {
                    accept: Accept::of(c.op),
                    values: c.values.iter().filter_map(|v| parse_number(v)).collect(),
                }
            }
            SemverEq | SemverLt | SemverLte | SemverGt | SemverGte => {
                parse_each(&|v| {
                    Version::parse(v)
                        .map(drop)
                        .ok_or_else(|| Problem::BadSemver(v.to_owned()))
                });
                Test::Semver {
                    accept: Accept::of(c.op),
                    values: c
                        .values
                        .iter()
                        .filter_map(|v| Version::parse(v).map(VersionBuf::from))
                        .collect(),
                }
            }
            Before | After => {
                parse_each(&|v| {
                    DateTime::parse_from_rfc3339(v).map(drop).map_err(|source| {
                        Problem::BadInstant {
                            value: v.to_owned(),
                            source,
                        }
                    })
                });
                Test::Instant {
                    accept: Accept::of(c.op),
                    values: c
                        .values
                        .iter()
                        .filter_map(|v| DateTime::parse_from_rfc3339(v).ok())
                        .collect(),
                }
            }
            InCidr => {
                parse_each(&|v| {
                    parse_cidr(v)
                        .map(drop)
                        .ok_or_else(|| Problem::BadCidr(v.to_owned()))
                });
                Test::InCidr(
                    c.values
                        .iter()
                        .filter_map(|v| parse_cidr(v).map(Cidr::from))
                        .collect(),
                )
            }
            Exists => Test::Exists,
        };
        (problems.errors.len() == before).then(|| CompiledConstraint {
            attribute: AttrName::new(&c.attribute),
            negate: c.negate,
            test,
        })
    }

    /// Absent or mistyped attributes make the test false; `negate` flips the result,
    /// so they make a negated constraint true.
    fn holds(&self, ctx: &Resolved<'_>) -> bool {
        let result = match ctx.lookup(&self.attribute) {
            None => false,
            Some(attr) => self.test.accepts(attr),
        };
        result != self.negate
    }
}

/// The orderings of (attribute, value) a comparison accepts, as bits: `Less` is bit
/// 0, `Equal` bit 1, `Greater` bit 2 (a test, not a call through a pointer).
#[derive(Debug, Clone, Copy)]
struct Accept(u8);

impl Accept {
    fn of(op: Operator) -> Self {
        use Operator::*;
        Accept(match op {
            Lt | SemverLt | Before => 0b001,
            Lte | SemverLte => 0b011,
            Gt | SemverGt | After => 0b100,
            Gte | SemverGte => 0b110,
            _ => 0b010,
        })
    }

    #[inline(always)]
    fn holds(self, order: Ordering) -> bool {
        // `Ordering` is -1, 0 or 1.
        (self.0 >> (order as i8 + 1)) & 1 == 1
    }
}

/// A CIDR block as integers: an address is inside when its masked bits are the
/// network's (an IPv4 block holds no IPv6 address and the reverse, as in `ipnet`).
#[derive(Debug, Clone, Copy)]
enum Cidr {
    V4 { network: u32, mask: u32 },
    V6 { network: u128, mask: u128 },
}

impl From<IpNet> for Cidr {
    fn from(net: IpNet) -> Self {
        match net {
            IpNet::V4(net) => Cidr::V4 {
                network: u32::from(net.network()),
                mask: u32::from(net.netmask()),
            },
            IpNet::V6(net) => Cidr::V6 {
                network: u128::from(net.network()),
                mask: u128::from(net.netmask()),
            },
        }
    }
}

impl Cidr {
    #[inline]
    fn contains(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Cidr::V4 { network, mask }, IpAddr::V4(ip)) => u32::from(ip) & mask == network,
            (Cidr::V6 { network, mask }, IpAddr::V6(ip)) => u128::from(ip) & mask == network,
            _ => false,
        }
    }
}

pub(crate) fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Test {
    fn accepts(&self, attr: Attr<'_>) -> bool {
        match attr {
            Attr::List(items) => match self {
                // A list attribute holds when any of its items does; `not_in`/`neq`
                // hold when none is among the values.
                Test::OneOf { not: true, .. } | Test::OneOfIgnoringCase { not: true, .. } => items
                    .iter()
                    .all(|item| self.accepts_text(Text::plain(item))),
                Test::Exists => true,
                _ => items
                    .iter()
                    .any(|item| self.accepts_text(Text::plain(item))),
            },
            Attr::Text(text) => self.accepts_text(text),
            Attr::Number(n) => match self {
                Test::OneOf { numbers, not, .. } => numbers.contains(&n) != *not,
                Test::Number { accept, values } => values
                    .iter()
                    .any(|v| n.partial_cmp(v).is_some_and(|o| accept.holds(o))),
                Test::Exists => true,
                _ => false,
            },
            Attr::Bool(b) => match self {
                Test::Exists => true,
                _ => self.accepts_text(Text::plain(if b { "true" } else { "false" })),
            },
        }
    }

    #[inline(always)]
    fn accepts_text(&self, text: Text<'_>) -> bool {
        let s = text.raw;
        match self {
            Test::OneOf { values, not, .. } => values.contains(s) != *not,
            Test::OneOfIgnoringCase { values, not } => {
                values.iter().any(|v| text::eq_ignoring_case(s, v)) != *not
            }
            Test::Text {
                kind,
                values,
                ignore_case,
            } => match ignore_case {
                false => values.iter().any(|v| kind.holds(s, v)),
                true => values.iter().any(|v| kind.holds_ignoring_case(s, v)),
            },
            Test::Matches(patterns) => patterns.iter().any(|p| p.is_match(s)),
            Test::Number { accept, values } => text.number().is_some_and(|n| {
                values
                    .iter()
                    .any(|v| n.partial_cmp(v).is_some_and(|o| accept.holds(o)))
            }),
            Test::Semver { accept, values } => text.version().is_some_and(|version| {
                values
                    .iter()
                    .any(|v| accept.holds(version.cmp(&v.as_version())))
            }),
            Test::Instant { accept, values } => text
                .instant()
                .is_some_and(|instant| values.iter().any(|v| accept.holds(instant.cmp(v)))),
            Test::InCidr(nets) => text
                .ip()
                .is_some_and(|ip| nets.iter().any(|net| net.contains(ip))),
            Test::Exists => true,
        }
    }
}

pub(crate) mod text;

#[cfg(test)]
mod tests;
