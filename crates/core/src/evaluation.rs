//! `evaluate(&Snapshot, key, &Context) -> Evaluation`: pure, total and
//! allocation-free (but for a context's first evaluation against a snapshot, which
//! records its attribute positions once). No clock, no randomness, no I/O; problems
//! become reason `ERROR`.

use serde::Serialize;
use serde_json::Value;

use crate::bucketing;
use crate::context::{Context, Resolved};
use crate::model::Hashing;
use crate::snapshot::{CompiledFlag, CompiledRollout, CompiledServe, Snapshot};
use crate::targeting::with_first_present;

/// Prerequisite chains deeper than this fail (cycles are rejected when compiling;
/// this is a second line of defence for the stack).
const MAX_PREREQUISITE_DEPTH: usize = 32;

/// Why a value was served (OpenFeature's reasons).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has no rules, prerequisites or rollout: everyone gets the same.
    Static,
    /// A rule matched and served a fixed variant.
    TargetingMatch,
    /// A rollout (in a rule or the default) chose the variant.
    Split,
    /// No rule matched; the fixed default was served.
    Default,
    /// The flag is killed.
    Disabled,
    /// A prerequisite did not evaluate to an accepted variant.
    PrerequisiteFailed,
    /// The flag could not be evaluated; see the error code.
    Error,
}

impl Reason {
    /// The reason as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Default => "DEFAULT",
            Reason::Disabled => "DISABLED",
            Reason::PrerequisiteFailed => "PREREQUISITE_FAILED",
            Reason::Error => "ERROR",
        }
    }

    /// The reason as OpenFeature's protocols (OFREP, flagd) carry it, and the precise
    /// one for metadata when they differ: they have no `PREREQUISITE_FAILED`; the flag
    /// serves its off variant, so it is `DISABLED`.
    pub fn openfeature(self) -> (&'static str, Option<&'static str>) {
        match self {
            Reason::PrerequisiteFailed => (Reason::Disabled.as_str(), Some(self.as_str())),
            other => (other.as_str(), None),
        }
    }
}

/// Why an evaluation failed (OpenFeature's error codes).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No flag with that key in the snapshot.
    FlagNotFound,
    /// The flag's value does not have the type the caller asked for.
    TypeMismatch,
    /// The context could not be parsed.
    InvalidContext,
    /// The request could not be parsed.
    ParseError,
    /// Something else.
    General,
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::InvalidContext => "INVALID_CONTEXT",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::General => "GENERAL",
        }
    }
}

/// The outcome of evaluating one flag, borrowing from the snapshot.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation<'s> {
    /// The served value; `None` with reason `ERROR`, and when a disabled flag defers
    /// to the caller's code default (reason `DISABLED` or `PREREQUISITE_FAILED`, no
    /// error: see [`Evaluation::defers`]).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>, required))]
    pub value: Option<&'s Value>,
    /// The served variant's name.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, required))]
    pub variant: Option<&'s str>,
    /// Why.
    pub reason: Reason,
    /// The rule that served, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<&'s str>,
    /// The flag's version (0 when the flag was not found).
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub flag_version: u64,
    /// Set with reason `ERROR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
    /// Where the served variant's `"value":..,"variant":".."` is kept as JSON, written
    /// by the first [`Evaluation::write_json`] that needs it.
    #[serde(skip)]
    pub(crate) served_fields: Option<&'s std::sync::OnceLock<Box<str>>>,
}

impl<'s> Evaluation<'s> {
    fn error(code: ErrorCode) -> Self {
        Evaluation {
            value: None,
            variant: None,
            reason: Reason::Error,
            rule_id: None,
            flag_version: 0,
            error: Some(code),
            served_fields: None,
        }
    }

    /// Whether the flag serves nothing and the caller's code default applies: it is
    /// disabled (killed or a prerequisite failed) and its `off_variant` is `null`.
    pub fn defers(&self) -> bool {
        self.value.is_none() && self.error.is_none() && self.reason != Reason::Error
    }

    /// The value as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        self.value.and_then(Value::as_bool)
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&'s str> {
        self.value.and_then(Value::as_str)
    }

    /// The value as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        self.value.and_then(Value::as_f64)
    }
}

/// Evaluates flag `key` for `ctx`. Never panics, never fails as a
/// `Result`: a missing flag is reason `ERROR` with `FLAG_NOT_FOUND`.
pub fn evaluate<'s>(snapshot: &'s Snapshot, key: &str, ctx: &Context) -> Evaluation<'s> {
    match snapshot.flag_index(key) {
        // A killed or static flag does not read the context: answered before the
        // context is resolved against the snapshot's names.
        Some(index) => snapshot
            .flags
            .get(index)
            .and_then(without_context)
            .unwrap_or_else(|| evaluate_index(snapshot, index, &ctx.resolve(&snapshot.names), 0)),
        None => Evaluation::error(ErrorCode::FlagNotFound),
    }
}

/// Evaluates every flag of the snapshot, in its order.
pub fn evaluate_all<'s, 'c>(
    snapshot: &'s Snapshot,
    ctx: &'c Context,
) -> impl Iterator<Item = (&'s str, Evaluation<'s>)> + 'c
where
    's: 'c,
{
    let ctx = ctx.resolve(&snapshot.names);
    (0..snapshot.flags.len()).map(move |i| {
        (
            snapshot.flags[i].source.key.as_str(),
            evaluate_index(snapshot, i, &ctx, 0),
        )
    })
}

fn evaluate_index<'s>(
    snapshot: &'s Snapshot,
    index: usize,
    ctx: &Resolved<'_>,
    depth: usize,
) -> Evaluation<'s> {
    let Some(flag) = snapshot.flags.get(index) else {
        return Evaluation::error(ErrorCode::General);
    };
    if let Some(answer) = without_context(flag) {
        return answer;
    }
    for prerequisite in &flag.prerequisites {
        let satisfied = match prerequisite {
            Some((target, accepted)) if depth < MAX_PREREQUISITE_DEPTH => {
                let result = evaluate_index(snapshot, *target, ctx, depth + 1);
                result.reason != Reason::Error
                    && result.variant.is_some_and(|name| {
                        accepted.iter().any(|&v| {
                            snapshot.flags[*target]
                                .variant(v)
                                .is_some_and(|(n, _)| n == name)
                        })
                    })
            }
            _ => false,
        };
        if !satisfied {
            return off(flag, Reason::PrerequisiteFailed);
        }
    }
    for rule in &flag.rules {
        if rule.when.matches(ctx, &snapshot.segments.compiled) {
            return match &rule.serve {
                CompiledServe::Variant(v) => {
                    served(flag, *v, Reason::TargetingMatch, Some(&rule.id))
                }
                CompiledServe::Rollout(r) => {
                    served(flag, pick(r, ctx), Reason::Split, Some(&rule.id))
                }
            };
        }
    }
    match &flag.default {
        // (A flag with nothing but a fixed default was answered as `STATIC` above.)
        CompiledServe::Variant(v) => served(flag, *v, Reason::Default, None),
        CompiledServe::Rollout(r) => served(flag, pick(r, ctx), Reason::Split, None),
    }
}

/// The answer of a flag that does not depend on the context: killed, or with nothing
/// but a fixed default.
#[inline]
fn without_context(flag: &CompiledFlag) -> Option<Evaluation<'_>> {
    if !flag.source.enabled {
        return Some(off(flag, Reason::Disabled));
    }
    match flag.default {
        CompiledServe::Variant(v) if flag.rules.is_empty() && flag.prerequisites.is_empty() => {
            Some(served(flag, v, Reason::Static, None))
        }
        _ => None,
    }
}

/// What a killed flag, or one whose prerequisite failed, serves: its off variant, or
/// nothing (no value, no variant, no error) when it defers to the caller's code default.
fn off(flag: &CompiledFlag, reason: Reason) -> Evaluation<'_> {
    match flag.off {
        Some(variant) => served(flag, variant, reason, None),
        None => Evaluation {
            value: None,
            variant: None,
            reason,
            rule_id: None,
            flag_version: flag.source.version,
            error: None,
            served_fields: None,
        },
    }
}

fn served<'s>(
    flag: &'s CompiledFlag,
    variant: usize,
    reason: Reason,
    rule_id: Option<&'s str>,
) -> Evaluation<'s> {
    match flag.variant(variant) {
        Some((name, value)) => Evaluation {
            value: Some(value),
            variant: Some(name),
            reason,
            rule_id,
            flag_version: flag.source.version,
            error: None,
            served_fields: flag.served_fields(variant),
        },
        None => Evaluation::error(ErrorCode::General),
    }
}

/// The variant a rollout serves: the first whose cumulative weight exceeds the
/// context's bucket. With nothing to bucket on, the first variant if it holds the
/// whole weight, else the last.
fn pick(rollout: &CompiledRollout, ctx: &Resolved<'_>) -> usize {
    let target = with_first_present(ctx, &rollout.by, |value| match rollout.hashing {
        // flagd's `fractional` takes an empty key for none.
        Hashing::Flagd if value.is_empty() => None,
        Hashing::Switchyard | Hashing::Flagd => Some(bucketing::scaled(rollout.salted.hash(value))),
        // Unleash's 1-based target against "cumulative >= target" is the same as a
        // 0-based bucket against "cumulative > bucket".
        Hashing::Unleash => {
            Some(bucketing::variant_target_of(rollout.salted.hash(value), rollout.total) - 1)
        }
    })
    .flatten();
    let (first, last) = match (rollout.shares.first(), rollout.shares.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => return 0,
    };
    match target {
        Some(bucket) => {
            rollout
                .shares
                .iter()
                .find(|(end, _)| *end > bucket)
                .unwrap_or(last)
                .1
        }
        None if first.0 >= rollout.total => first.1,
        None => last.1,
    }
}
