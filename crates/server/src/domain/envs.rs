//! Environments: create, delete, and promote flags from one to another.

use std::collections::BTreeMap;

use serde_json::json;
use switchyard_core::model::{EnvName, FlagKey};
use switchyard_core::Flag;

use super::{check_key, entry, EnvError, Preconditions};
use crate::auth::Principal;
use crate::environments::{Change, EnvState};
use crate::state::AppState;

/// Creates `env` if `conditions` hold. Returns whether it was created (`false`: it
/// existed) and its revision.
pub async fn create_env(
    state: &AppState,
    by: &Principal,
    env: &str,
    conditions: &Preconditions,
) -> Result<(bool, u64), EnvError> {
    check_key("environment name", env)?;
    let what = format!("environment `{env}`");
    conditions.check(&what, state.envs.get(env).map(|e| e.revision))?;
    let created = state.envs.create(&EnvName::new(env), &by.name).await?;
    let current = state
        .envs
        .get(env)
        .ok_or_else(|| EnvError::NoEnvironment(env.to_owned()))?;
    if !created {
        // Created by someone else since the check above.
        conditions.check(&what, Some(current.revision))?;
    }
    Ok((created, current.revision))
}

/// Deletes `env`: refused while it has flags or segments unless `force`.
pub async fn delete_env(
    state: &AppState,
    by: &Principal,
    env: &str,
    force: bool,
    conditions: &Preconditions,
) -> Result<(), EnvError> {
    state
        .envs
        .delete(env, &by.name, |current| {
            conditions.check(&format!("environment `{env}`"), Some(current.revision))?;
            let flags = current.snapshot.len();
            let segments = current.snapshot.segments().count();
            if force || flags + segments == 0 {
                return Ok(());
            }
            let mut names: Vec<&str> = current.snapshot.flags().map(|f| f.key.as_str()).collect();
            let more = names.len().saturating_sub(5);
            names.truncate(5);
            let listed = names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let listed = match (flags, more) {
                (0, _) => String::new(),
                (_, 0) => format!(" ({listed})"),
                _ => format!(" ({listed} and {more} more)"),
            };
            Err(EnvError::Conflict(format!(
                "environment `{env}` still has {flags} flag(s){listed} and {segments} \
                 segment(s); delete them first, or send ?force=true to delete them with it \
                 (the audit log keeps them)"
            )))
        })
        .await?;
    Ok(())
}

/// What a promotion would do to one flag of the target environment.
#[derive(Debug, Clone, PartialEq)]
pub enum PromotionDiff {
    /// The target has no such flag.
    Added(Box<Flag>),
    /// The target's flag differs (before, after).
    Changed(Box<Flag>, Box<Flag>),
    /// Already identical (but for the version).
    Same(FlagKey),
}

/// What a promotion preview showed, so the confirm applies exactly that: each
/// promoted flag's version in the source, and its version in the target (`None`: the
/// target lacked it). If any differs when the promotion is applied, nothing is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviewedVersions {
    /// Flag key → version in the source environment.
    pub source: BTreeMap<String, u64>,
    /// Flag key → version in the target environment (`None`: absent there).
    pub target: BTreeMap<String, Option<u64>>,
}

impl PreviewedVersions {
    /// The versions behind `diff` (as [`promotion_diff`] returned it for the same keys).
    pub fn of(diff: &[PromotionDiff], source: &EnvState, target: &EnvState) -> Self {
        let mut seen = PreviewedVersions::default();
        for entry in diff {
            let key = entry.key();
            if let Some(flag) = source.snapshot.flag(key) {
                seen.source.insert(key.to_owned(), flag.version);
            }
            seen.target
                .insert(key.to_owned(), target.snapshot.flag(key).map(|f| f.version));
        }
        seen
    }

    fn stale(what: String) -> EnvError {
        EnvError::PreconditionFailed {
            current: None,
            message: format!(
                "{what} changed since the preview; nothing was promoted. Preview again and \
                 confirm what it shows"
            ),
        }
    }
}

impl PromotionDiff {
    /// The flag's key.
    pub fn key(&self) -> &str {
        match self {
            PromotionDiff::Added(flag) | PromotionDiff::Changed(_, flag) => flag.key.as_str(),
            PromotionDiff::Same(key) => key.as_str(),
        }
    }
}

/// The result of [`promote`].
#[derive(Debug, Clone)]
pub struct Promoted {
    /// The flags promoted (all requested, whether or not they differed).
    pub flags: Vec<FlagKey>,
    /// The target's revision after.
    pub revision: u64,
}

fn source_flags(source: &EnvState, from: &str, keys: &[String]) -> Result<Vec<Flag>, EnvError> {
    if keys.is_empty() {
        return Ok(source.snapshot.flags().cloned().collect());
    }
    keys.iter()
        .map(|key| {
            source.snapshot.flag(key).cloned().ok_or_else(|| {
                EnvError::NotFound(format!("flag `{key}` does not exist in `{from}`"))
            })
        })
        .collect()
}

/// Environment `env`'s current state, or why there is none.
pub(super) fn environment(
    state: &AppState,
    env: &str,
) -> Result<std::sync::Arc<EnvState>, EnvError> {
    state
        .envs
        .get(env)
        .ok_or_else(|| EnvError::NoEnvironment(env.to_owned()))
}

fn diff_one(target: &EnvState, flag: &Flag) -> PromotionDiff {
    match target.snapshot.flag(flag.key.as_str()) {
        None => PromotionDiff::Added(Box::new(flag.clone())),
        Some(before) => {
            let same = Flag {
                version: flag.version,
                ..before.clone()
            } == *flag;
            if same {
                PromotionDiff::Same(flag.key.clone())
            } else {
                PromotionDiff::Changed(Box::new(before.clone()), Box::new(flag.clone()))
            }
        }
    }
}

/// What promoting `keys` (all of `from`'s flags when empty) from `from` to `to` would
/// change, flag by flag: the preview before [`promote`].
pub fn promotion_diff(
    state: &AppState,
    from: &str,
    to: &str,
    keys: &[String],
) -> Result<Vec<PromotionDiff>, EnvError> {
    if from == to {
        return Err(EnvError::BadRequest("`from` and `to` must differ".into()));
    }
    let flags = source_flags(&*environment(state, from)?, from, keys)?;
    let target = environment(state, to)?;
    Ok(flags.iter().map(|f| diff_one(&target, f)).collect())
}

/// Copies flags `keys` (all of `from`'s when empty) from `from` to `to` in one write;
/// flags already identical are left alone. With `previewed` (what a preview showed),
/// any flag whose version in either environment differs from it refuses the whole
/// promotion (a precondition failure).
pub async fn promote(
    state: &AppState,
    by: &Principal,
    from: &str,
    to: &str,
    keys: &[String],
    reason: Option<String>,
    previewed: Option<&PreviewedVersions>,
) -> Result<Promoted, EnvError> {
    if from == to {
        return Err(EnvError::BadRequest("`from` and `to` must differ".into()));
    }
    let flags = source_flags(&*environment(state, from)?, from, keys)?;
    if let Some(seen) = previewed {
        let listed = flags.len() == seen.source.len() && flags.len() == seen.target.len();
        for flag in &flags {
            if !listed || seen.source.get(flag.key.as_str()) != Some(&flag.version) {
                return Err(PreviewedVersions::stale(format!(
                    "flag `{}` in `{from}`",
                    flag.key
                )));
            }
        }
    }
    let to_name = EnvName::new(to);
    let reason = reason.or_else(|| Some(format!("promoted from `{from}`")));
    let new = state
        .envs
        .apply(to, |current| {
            let mut change = Change::default();
            for flag in &flags {
                let before = current.snapshot.flag(flag.key.as_str());
                if let Some(seen) = previewed {
                    if seen.target.get(flag.key.as_str()) != Some(&before.map(|f| f.version)) {
                        return Err(PreviewedVersions::stale(format!(
                            "flag `{}` in `{to}`",
                            flag.key
                        )));
                    }
                }
                let mut after = flag.clone();
                after.version = before.map_or(1, |f| f.version + 1);
                if let PromotionDiff::Same(_) = diff_one(current, &after) {
                    continue;
                }
                let mut audit = entry(by, Some(&to_name), "flag.promote", flag.key.as_str());
                audit.before = before.map(|f| json!(f));
                audit.after = Some(json!(after));
                audit.reason = reason.clone();
                change.audit.push(audit);
                change.flags.push((after.key.clone(), Some(after)));
            }
            Ok(change)
        })
        .await?;
    Ok(Promoted {
        flags: flags.into_iter().map(|f| f.key).collect(),
        revision: new.revision,
    })
}
