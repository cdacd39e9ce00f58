//! Ramping a flag: giving its first variant a share of the users its default serve (or
//! one named rule's serve) reaches, the other variants keeping their relative shares
//! of the rest. What the orchestrator does at every step (never lowering: [`raise_to`])
//! and what a person or a scheduled change does (`switchyard flags ramp`: [`set_to`]).

use crate::model::{Flag, Hashing, Rollout, Serve, Split};

/// Weights in the flag model are in units of 1/100 000; a percent is 1 000.
pub const PER_PERCENT: u32 = 1_000;
const ALL: u32 = 100 * PER_PERCENT;

/// Why a flag cannot be ramped as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flag `{key}` cannot be ramped: {why}")]
pub struct RampError {
    /// The flag.
    pub key: String,
    /// Why.
    pub why: String,
}

/// The ramped serve of `flag` (the default, or rule `rule`'s) and its first variant,
/// or why it cannot be ramped.
pub fn ramped_serve<'f>(
    flag: &'f mut Flag,
    rule: Option<&str>,
) -> Result<(String, &'f mut Serve), RampError> {
    let key = flag.key.as_str().to_owned();
    let not_rampable = |why: String| RampError {
        key: key.clone(),
        why,
    };
    let first = flag
        .variants
        .keys()
        .next()
        .cloned()
        .ok_or_else(|| not_rampable("it has no variants".into()))?;
    if flag.baseline() == Some(first.as_str()) {
        return Err(not_rampable(format!(
            "its first variant `{first}` is also what the rest get (its off_variant, or \
             its last variant when off_variant is null)"
        )));
    }
    let serve = match rule {
        None => &mut flag.default,
        Some(id) => {
            &mut flag
                .rules
                .iter_mut()
                .find(|r| r.id == id)
                .ok_or_else(|| not_rampable(format!("it has no rule `{id}`")))?
                .serve
        }
    };
    if matches!(&*serve, Serve::Rollout(r) if r.hashing != Hashing::Switchyard) {
        return Err(not_rampable(
            "its rollout uses Unleash hashing; ramps need Switchyard bucketing".into(),
        ));
    }
    Ok((first, serve))
}

/// The share (in 1/100 000) `serve` gives `variant`.
pub fn share(serve: &Serve, variant: &str) -> u32 {
    match serve {
        Serve::Variant(v) if v == variant => ALL,
        Serve::Variant(_) => 0,
        Serve::Rollout(r) => r
            .split
            .iter()
            .filter(|s| s.variant == variant)
            .map(|s| s.weight)
            .sum(),
    }
}

/// Gives `flag`'s first variant at least `percent` % of its ramped serve (never
/// less than it has). Returns whether the flag changed.
pub fn raise_to(flag: &mut Flag, rule: Option<&str>, percent: u32) -> Result<bool, RampError> {
    let target = percent.min(100) * PER_PERCENT;
    let (first, serve) = ramped_serve(flag, rule)?;
    if share(serve, &first) >= target {
        return Ok(false);
    }
    set_to(flag, rule, percent)
}

/// Gives `flag`'s first variant exactly `percent` % of its ramped serve, up or down.
/// Returns whether the flag changed.
pub fn set_to(flag: &mut Flag, rule: Option<&str>, percent: u32) -> Result<bool, RampError> {
    // What the rest get when the serve names only the first variant.
    let off = flag.baseline().unwrap_or_default().to_owned();
    let target = percent.min(100) * PER_PERCENT;
    let (first, serve) = ramped_serve(flag, rule)?;
    if share(serve, &first) == target {
        return Ok(false);
    }
    let mut split = split(serve, &first, target, &off);
    *serve = if let [only] = &mut split[..] {
        Serve::Variant(std::mem::take(&mut only.variant))
    } else {
        let (by, salt) = match &*serve {
            Serve::Rollout(r) => (r.by.clone(), r.salt.clone()),
            Serve::Variant(_) => (Default::default(), None),
        };
        Serve::Rollout(Rollout {
            by,
            salt,
            split,
            hashing: Hashing::Switchyard,
        })
    };
    Ok(true)
}

/// `first` at `target` followed by the other variants of `serve`, scaled
/// proportionally into the rest (the rounding remainder goes to the last of them);
/// shares of 0 are left out.
fn split(serve: &Serve, first: &str, target: u32, off: &str) -> Vec<Split> {
    let mut others: Vec<Split> = match serve {
        Serve::Variant(v) if v != first => vec![Split {
            variant: v.clone(),
            weight: ALL,
        }],
        Serve::Variant(_) => Vec::new(),
        Serve::Rollout(r) => r
            .split
            .iter()
            .filter(|s| s.variant != first && s.weight > 0)
            .cloned()
            .collect(),
    };
    if others.is_empty() {
        others.push(Split {
            variant: off.to_owned(),
            weight: ALL,
        });
    }
    let rest = ALL - target;
    let total: u64 = others.iter().map(|s| u64::from(s.weight)).sum();
    let mut given = 0;
    for s in &mut others {
        s.weight = (u64::from(s.weight) * u64::from(rest) / total) as u32;
        given += s.weight;
    }
    if let Some(last) = others.last_mut() {
        last.weight += rest - given;
    }
    let mut split = vec![Split {
        variant: first.to_owned(),
        weight: target,
    }];
    split.extend(others);
    split.retain(|s| s.weight > 0);
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag() -> Flag {
        serde_json::from_value(serde_json::json!({
            "key": "f",
            "kind": "boolean",
            "variants": { "on": true, "off": false },
            "off_variant": "off",
            "default": { "variant": "off" },
        }))
        .unwrap()
    }

    fn on_share(flag: &Flag) -> u32 {
        share(&flag.default, "on") / PER_PERCENT
    }

    #[test]
    fn set_to_goes_up_and_down_and_raise_to_only_up() {
        let mut f = flag();
        assert!(set_to(&mut f, None, 30).unwrap());
        assert_eq!(on_share(&f), 30);
        assert!(!raise_to(&mut f, None, 20).unwrap(), "never lowers");
        assert!(set_to(&mut f, None, 20).unwrap());
        assert_eq!(on_share(&f), 20);
        assert!(set_to(&mut f, None, 100).unwrap());
        assert_eq!(f.default, Serve::Variant("on".into()));
        assert!(set_to(&mut f, None, 0).unwrap());
        assert_eq!(f.default, Serve::Variant("off".into()));
        assert!(!set_to(&mut f, None, 0).unwrap(), "nothing to change");
        let error = set_to(&mut f, Some("eu"), 10).unwrap_err();
        assert_eq!(
            error.to_string(),
            "flag `f` cannot be ramped: it has no rule `eu`"
        );
    }
}
