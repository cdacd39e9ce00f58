//! An environment's flags as flagd flag definitions (flagd's `flags.json` schema:
//! `state`, `variants`, `defaultVariant`, JsonLogic `targeting`), for flagd's
//! in-process providers, which sync definitions over `flagd.sync.v1` and evaluate them
//! locally with flagd's engine.
//!
//! A flag is written only where that engine gives **every** context the variant
//! Switchyard gives it; any other flag is left out, with the reason, and such
//! providers answer it `FLAG_NOT_FOUND` — never a silently different variant. What is
//! written today (docs/openfeature.md, "flagd sync"):
//!
//! - variants whose values are booleans, strings, numbers or objects;
//! - rules matching `users`, `groups`, `segments` (inlined), `constraints` with the
//!   case-sensitive operators `in`, `not_in`, `eq`, `neq`, `starts_with`, `ends_with`
//!   and `exists` (negated or not), and a `percentage` hashed as flagd hashes;
//! - fixed serves and rollouts hashed as flagd hashes (`hashing: flagd`, the flag key
//!   as salt, bucketing on `targetingKey`): flagd's `fractional`, with Switchyard's
//!   answer for a context without a key;
//! - killed flags: the off variant as the only answer (flagd says `STATIC` where we say
//!   `DISABLED`), or flagd's `DISABLED` state when the flag defers to code defaults.
//!
//! Switchyard reads an attribute by its type (a number against numeric values, a
//! boolean as `"true"`/`"false"`, a list by its items); flagd's JsonLogic compares
//! values as they are. So each item of an attribute is tested (`some` over `merge`,
//! which makes a list of a list, a single value or nothing), a negated test requires
//! the attribute to be present, and a constraint whose values the two would read
//! differently — numeric values, `"true"`/`"false"` or their prefixes and suffixes — is
//! left out. Also left out: prerequisites, the other operators, case-insensitive tests,
//! constraints on `groups`, rollouts and percentages with Switchyard's or Unleash's
//! hashing, another salt or bucketing property, array or null variant values. Reasons
//! differ where flagd has fewer: a rollout's `SPLIT` is flagd's `TARGETING_MATCH`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::context::GROUPS;
use crate::model::{
    Constraint, Flag, Hashing, Operator, Percentage, Rollout, Segment, Serve, When, TARGETING_KEY,
};
use crate::targeting::parse_number;

/// Flags as flagd definitions, and those left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// `{"flags": {...}, "metadata": {...}}`, flagd's flag configuration.
    pub configuration: Value,
    /// Flag key → why it is not in `configuration`.
    pub excluded: BTreeMap<String, String>,
}

/// The flagd configuration of `flags` (whose rules may name `segments`), with
/// `metadata` as the flag set's metadata (flagd merges it into every evaluation's
/// metadata).
pub fn export<'f>(
    flags: impl IntoIterator<Item = &'f Flag>,
    segments: &[&Segment],
    metadata: Map<String, Value>,
) -> Export {
    let mut definitions = Map::new();
    let mut excluded = BTreeMap::new();
    for flag in flags {
        match definition(flag, segments) {
            Ok(definition) => {
                definitions.insert(flag.key.as_str().to_owned(), definition);
            }
            Err(reason) => {
                excluded.insert(flag.key.as_str().to_owned(), reason);
            }
        }
    }
    Export {
        configuration: json!({ "flags": definitions, "metadata": metadata }),
        excluded,
    }
}

/// One flag's definition, or why flagd cannot evaluate it exactly as we do.
pub fn definition(flag: &Flag, segments: &[&Segment]) -> Result<Value, String> {
    if !flag.prerequisites.is_empty() {
        return Err("it has prerequisites, which flagd cannot express".to_owned());
    }
    if let Some((name, _)) = flag
        .variants
        .iter()
        .find(|(_, value)| value.is_array() || value.is_null())
    {
        return Err(format!(
            "variant `{name}` is an array or null, which a flagd variant cannot hold"
        ));
    }
    let metadata = json!({ "flag_version": flag.version });
    let first = flag.variants.keys().next().cloned().unwrap_or_default();
    if !flag.enabled {
        return Ok(match &flag.off_variant {
            // Killed: everyone gets the off variant.
            Some(off) => json!({
                "state": "ENABLED", "variants": flag.variants, "defaultVariant": off,
                "metadata": metadata
            }),
            // Killed, deferring to the caller's code default: flagd's DISABLED.
            None => json!({
                "state": "DISABLED", "variants": flag.variants, "defaultVariant": first,
                "metadata": metadata
            }),
        });
    }
    // `if` takes condition, result pairs, then what no condition gives.
    let mut chain = Vec::with_capacity(flag.rules.len() * 2 + 1);
    for rule in &flag.rules {
        let at = format!("rule `{}`", rule.id);
        chain.push(condition(flag, &rule.when, segments, &at)?);
        chain.push(serve(flag, &rule.serve, &at)?);
    }
    let (default_variant, fallthrough) = match &flag.default {
        // No rule matched: flagd's `DEFAULT`, as ours.
        Serve::Variant(v) => (v.clone(), Value::Null),
        Serve::Rollout(_) => (first, serve(flag, &flag.default, "the default")?),
    };
    let mut definition = json!({
        "state": "ENABLED", "variants": flag.variants, "defaultVariant": default_variant,
        "metadata": metadata
    });
    let targeting = if chain.is_empty() {
        fallthrough
    } else {
        chain.push(fallthrough);
        json!({ "if": chain })
    };
    if !targeting.is_null() {
        definition["targeting"] = targeting;
    }
    Ok(definition)
}

/// A `when` in JsonLogic: every part present must hold (`true` when none is).
fn condition(flag: &Flag, when: &When, segments: &[&Segment], at: &str) -> Result<Value, String> {
    let mut parts = Vec::new();
    if !when.users.is_empty() {
        parts.push(json!({ "in": [{ "var": TARGETING_KEY }, when.users] }));
    }
    if !when.groups.is_empty() {
        parts.push(any_item(
            GROUPS,
            json!({ "in": [{ "var": "" }, when.groups] }),
        ));
    }
    if !when.segments.is_empty() {
        let mut any = Vec::with_capacity(when.segments.len());
        for key in &when.segments {
            let segment = segments
                .iter()
                .find(|s| s.key == *key)
                .ok_or_else(|| format!("{at} names segment `{key}`, which does not exist"))?;
            any.push(condition(
                flag,
                &segment.when,
                &[],
                &format!("segment `{key}`"),
            )?);
        }
        parts.push(json!({ "or": any }));
    }
    for (i, c) in when.constraints.iter().enumerate() {
        let test = constraint(c)
            .map_err(|why| format!("{at}, constraint {i} on `{}`: {why}", c.attribute))?;
        parts.push(test);
    }
    if let Some(p) = &when.percentage {
        parts.push(percentage(flag, p, at)?);
    }
    Ok(match parts.len() {
        0 => Value::Bool(true),
        1 => parts.remove(0),
        _ => json!({ "and": parts }),
    })
}

/// Whether some item of `attribute` passes `test` (on `{"var": ""}`): `merge` makes a
/// list of a list, of a single value, or of nothing (`[null]`).
fn any_item(attribute: &str, test: Value) -> Value {
    json!({ "some": [{ "merge": [{ "var": attribute }] }, test] })
}

/// One constraint in JsonLogic, or why flagd would read it differently.
fn constraint(c: &Constraint) -> Result<Value, String> {
    use Operator::*;
    if c.case_insensitive {
        return Err("case-insensitive tests are not synced to flagd yet".to_owned());
    }
    if c.attribute == GROUPS {
        return Err("an empty `groups` is absent to Switchyard and present to flagd".to_owned());
    }
    // Strictly: `!=` takes `false` and `0` for null.
    let present = json!({ "!==": [{ "var": c.attribute }, null] });
    let item = json!({ "var": "" });
    let test = match c.op {
        In | Eq | NotIn | Neq => {
            let read_otherwise = |v: &&String| {
                parse_number(v).is_some() || v.as_str() == "true" || v.as_str() == "false"
            };
            if let Some(v) = c.values.iter().find(read_otherwise) {
                return Err(format!(
                    "value `{v}` is read as a number or a boolean by Switchyard, as text by flagd"
                ));
            }
            let any = any_item(&c.attribute, json!({ "in": [item, c.values] }));
            if matches!(c.op, NotIn | Neq) {
                // An attribute, and none of its items among the values.
                json!({ "and": [present, { "!": any }] })
            } else {
                any
            }
        }
        StartsWith | EndsWith => {
            let (name, covers): (&str, fn(&str, &str) -> bool) = if c.op == StartsWith {
                ("starts_with", |s, v| s.starts_with(v))
            } else {
                ("ends_with", |s, v| s.ends_with(v))
            };
            if let Some(v) = c
                .values
                .iter()
                .find(|v| covers("true", v) || covers("false", v))
            {
                return Err(format!(
                    "value `{v}` matches a boolean attribute in Switchyard, not in flagd"
                ));
            }
            let tests: Vec<Value> = c
                .values
                .iter()
                .map(|v| json!({ name: [item, v] }))
                .collect();
            any_item(&c.attribute, json!({ "or": tests }))
        }
        Exists => present,
        other => {
            return Err(format!(
                "operator `{}` is not synced to flagd yet",
                other.as_str()
            ))
        }
    };
    Ok(if c.negate { json!({ "!": test }) } else { test })
}

/// A percentage condition as flagd's `fractional` into `in` and `out`.
fn percentage(flag: &Flag, p: &Percentage, at: &str) -> Result<Value, String> {
    flagd_hashed(
        flag,
        p.hashing,
        p.salt.as_deref(),
        p.by.properties(),
        &format!("{at}'s percentage"),
    )?;
    let whole = crate::bucketing::BUCKETS;
    let weight = p.weight.min(whole);
    Ok(json!({ "if": [
        { "var": TARGETING_KEY },
        { "==": [{ "fractional": [["in", weight], ["out", whole - weight]] }, "in"] },
        // Nothing to bucket on: only a whole percentage includes the context.
        weight >= whole
    ]}))
}

/// Whether a rollout or percentage hashed with these settings is flagd's shorthand
/// `fractional` (which hashes `[flag key, targetingKey]`), and why not.
fn flagd_hashed(
    flag: &Flag,
    hashing: Hashing,
    salt: Option<&str>,
    by: &[String],
    what: &str,
) -> Result<(), String> {
    if hashing != Hashing::Flagd {
        return Err(format!(
            "{what} buckets with {} hashing; `hashing: flagd` buckets as flagd does \
             (changing it moves users between variants once)",
            match hashing {
                Hashing::Unleash => "Unleash's",
                _ => "Switchyard's",
            }
        ));
    }
    if salt.is_some_and(|salt| salt != flag.key.as_str()) {
        return Err(format!(
            "{what} has its own salt; flagd hashes the flag key"
        ));
    }
    if by != [TARGETING_KEY] {
        return Err(format!(
            "{what} buckets on {by:?}; flagd's shorthand buckets on targetingKey"
        ));
    }
    Ok(())
}

/// What a serve returns in JsonLogic: a variant's name, or a rollout.
fn serve(flag: &Flag, serve: &Serve, what: &str) -> Result<Value, String> {
    match serve {
        Serve::Variant(v) => Ok(Value::String(v.clone())),
        Serve::Rollout(rollout) => fractional(flag, rollout, what),
    }
}

/// A rollout as flagd's `fractional` on the targeting key (flagd's shorthand hashes
/// `[flag key, targetingKey]`), guarded by what Switchyard serves a context without
/// one (flagd would fall through to the default variant instead).
fn fractional(flag: &Flag, rollout: &Rollout, what: &str) -> Result<Value, String> {
    flagd_hashed(
        flag,
        rollout.hashing,
        rollout.salt.as_deref(),
        rollout.by.properties(),
        &format!("{what}'s rollout"),
    )?;
    let shares: Vec<_> = rollout.split.iter().filter(|s| s.weight > 0).collect();
    let (Some(first), Some(last)) = (shares.first(), shares.last()) else {
        return Err(format!("{what}'s rollout has no weight"));
    };
    // Switchyard's answer without a key: the first variant if it holds the whole
    // weight, else the last.
    let keyless = if first.weight >= crate::bucketing::BUCKETS {
        &first.variant
    } else {
        &last.variant
    };
    let fractions: Vec<Value> = shares
        .iter()
        .map(|s| json!([s.variant, s.weight]))
        .collect();
    Ok(json!({ "if": [
        { "var": TARGETING_KEY },
        { "fractional": fractions },
        keyless
    ]}))
}

#[cfg(test)]
mod tests;
