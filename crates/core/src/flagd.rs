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
//! - rules whose `when` lists `users` (or is empty), serving a variant or a rollout;
//! - rollouts hashed as flagd hashes (`hashing: flagd`, the flag key as salt, bucketing
//!   on `targetingKey`): flagd's `fractional`, with Switchyard's answer for a context
//!   without a key;
//! - killed flags: the off variant as the only answer (flagd says `STATIC` where we say
//!   `DISABLED`), or flagd's `DISABLED` state when the flag defers to code defaults.
//!
//! Left out: prerequisites, `groups`, `segments`, `constraints` and `percentage` in a
//! rule, rollouts with Switchyard's or Unleash's hashing, another salt or another
//! bucketing property, array or null variant values. Reasons differ where flagd has
//! fewer: a rollout's `SPLIT` is flagd's `TARGETING_MATCH`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::model::{Flag, Hashing, Rollout, Serve, TARGETING_KEY};

/// Flags as flagd definitions, and those left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// `{"flags": {...}, "metadata": {...}}`, flagd's flag configuration.
    pub configuration: Value,
    /// Flag key → why it is not in `configuration`.
    pub excluded: BTreeMap<String, String>,
}

/// The flagd configuration of `flags`, with `metadata` as the flag set's metadata
/// (flagd merges it into every evaluation's metadata).
pub fn export<'f>(
    flags: impl IntoIterator<Item = &'f Flag>,
    metadata: Map<String, Value>,
) -> Export {
    let mut definitions = Map::new();
    let mut excluded = BTreeMap::new();
    for flag in flags {
        match definition(flag) {
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
pub fn definition(flag: &Flag) -> Result<Value, String> {
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
        let at = |what: &str| {
            format!(
                "rule `{}` {what}, which is not synced to flagd yet",
                rule.id
            )
        };
        let when = &rule.when;
        if !when.groups.is_empty() {
            return Err(at("matches groups"));
        }
        if !when.segments.is_empty() {
            return Err(at("matches segments"));
        }
        if !when.constraints.is_empty() {
            return Err(at("has constraints"));
        }
        if when.percentage.is_some() {
            return Err(at("samples a percentage"));
        }
        chain.push(if when.users.is_empty() {
            Value::Bool(true)
        } else {
            json!({ "in": [{ "var": TARGETING_KEY }, when.users] })
        });
        chain.push(serve(flag, &rule.serve, &format!("rule `{}`", rule.id))?);
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
    if rollout.hashing != Hashing::Flagd {
        return Err(format!(
            "{what}'s rollout buckets with {} hashing; `hashing: flagd` buckets as flagd \
             does (changing it moves users between variants once)",
            match rollout.hashing {
                Hashing::Unleash => "Unleash's",
                _ => "Switchyard's",
            }
        ));
    }
    if rollout
        .salt
        .as_deref()
        .is_some_and(|salt| salt != flag.key.as_str())
    {
        return Err(format!(
            "{what}'s rollout has its own salt; flagd hashes the flag key"
        ));
    }
    if rollout.by.properties() != [TARGETING_KEY] {
        return Err(format!(
            "{what}'s rollout buckets on {:?}; flagd's shorthand buckets on targetingKey",
            rollout.by.properties()
        ));
    }
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
