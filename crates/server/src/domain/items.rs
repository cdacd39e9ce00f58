//! Flags and segments: create or replace, delete, kill and revive, kill by tag, and
//! revert a flag to an earlier version from its audit history.

use std::sync::Arc;

use serde_json::json;
use switchyard_core::model::{EnvName, FlagKey, SegmentKey};
use switchyard_core::{Flag, Segment};

use super::{check_key, entry, EnvError, Preconditions};
use crate::auth::Principal;
use crate::environments::{Change, EnvState};
use crate::state::AppState;
use crate::store::AuditQuery;

/// What flags and segments share, so one path writes and deletes both with
/// preconditions, validation and audit.
pub trait Item: Clone + serde::Serialize + serde::de::DeserializeOwned {
    /// `flag` or `segment`, for messages and audit actions.
    const WHAT: &'static str;
    /// `flag key` or `segment key`, for name errors.
    const KEY: &'static str;
    /// Its key.
    fn key(&self) -> &str;
    /// Its version.
    fn version(&self) -> u64;
    /// Sets its version.
    fn set_version(&mut self, version: u64);
    /// Core's validation of the item on its own.
    fn validate(&self) -> Result<(), switchyard_core::ValidationErrors>;
    /// The item `key` in `state`.
    fn find<'a>(state: &'a EnvState, key: &str) -> Option<&'a Self>;
    /// A change writing (`Some`) or deleting (`None`) the item.
    fn change(key: &str, item: Option<Self>) -> Change;
    /// The flags that name the item `key` (as a prerequisite or in a rule).
    fn users<'a>(state: &'a EnvState, key: &str) -> Vec<&'a str>;
}

impl Item for Flag {
    const WHAT: &'static str = "flag";
    const KEY: &'static str = "flag key";
    fn key(&self) -> &str {
        self.key.as_str()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
    fn validate(&self) -> Result<(), switchyard_core::ValidationErrors> {
        switchyard_core::validate_flag(self)
    }
    fn find<'a>(state: &'a EnvState, key: &str) -> Option<&'a Self> {
        state.snapshot.flag(key)
    }
    fn change(key: &str, item: Option<Self>) -> Change {
        Change {
            flags: vec![(FlagKey::new(key), item)],
            ..Change::default()
        }
    }
    fn users<'a>(state: &'a EnvState, key: &str) -> Vec<&'a str> {
        state
            .snapshot
            .flags()
            .filter(|f| f.prerequisites.iter().any(|p| p.flag.as_str() == key))
            .map(|f| f.key.as_str())
            .collect()
    }
}

impl Item for Segment {
    const WHAT: &'static str = "segment";
    const KEY: &'static str = "segment key";
    fn key(&self) -> &str {
        self.key.as_str()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
    fn validate(&self) -> Result<(), switchyard_core::ValidationErrors> {
        switchyard_core::validate_segment(self)
    }
    fn find<'a>(state: &'a EnvState, key: &str) -> Option<&'a Self> {
        state.snapshot.segments().find(|s| s.key.as_str() == key)
    }
    fn change(key: &str, item: Option<Self>) -> Change {
        Change {
            segments: vec![(SegmentKey::new(key), item)],
            ..Change::default()
        }
    }
    fn users<'a>(state: &'a EnvState, key: &str) -> Vec<&'a str> {
        state
            .snapshot
            .flags()
            .filter(|f| {
                f.rules
                    .iter()
                    .any(|r| r.when.segments.iter().any(|s| s.as_str() == key))
            })
            .map(|f| f.key.as_str())
            .collect()
    }
}

/// An item as saved, and whether the write created it.
#[derive(Debug, Clone)]
pub struct Saved<T> {
    /// The item at its new version.
    pub item: T,
    /// `true` when it did not exist before.
    pub created: bool,
}

fn missing<T: Item>(env: &str, key: &str) -> EnvError {
    EnvError::NotFound(format!("{} `{key}` does not exist in `{env}`", T::WHAT))
}

fn saved<T: Item>(state: &EnvState, env: &str, key: &str) -> Result<T, EnvError> {
    T::find(state, key)
        .cloned()
        .ok_or_else(|| missing::<T>(env, key))
}

/// Creates or replaces `item` (its key names it) at the next version, if `conditions`
/// hold. `reason` goes into the audit entry.
pub async fn put_item<T: Item>(
    state: &AppState,
    by: &Principal,
    env: &str,
    mut item: T,
    conditions: &Preconditions,
    action: &str,
    reason: Option<String>,
) -> Result<Saved<T>, EnvError> {
    let key = item.key().to_owned();
    check_key(T::KEY, &key)?;
    item.validate()?;
    let env_name = EnvName::new(env);
    let mut created = false;
    let new = state
        .envs
        .apply(env, |current| {
            let before = T::find(current, &key);
            conditions.check(&format!("{} `{key}`", T::WHAT), before.map(T::version))?;
            created = before.is_none();
            item.set_version(before.map_or(1, |b| b.version() + 1));
            let mut audit = entry(by, Some(&env_name), action, &key);
            audit.before = before.map(|b| json!(b));
            audit.after = Some(json!(item));
            audit.reason = reason.clone();
            let mut change = T::change(&key, Some(item.clone()));
            change.audit.push(audit);
            Ok(change)
        })
        .await?;
    Ok(Saved {
        item: saved(&new, env, &key)?,
        created,
    })
}

/// Deletes an item if `conditions` hold; refused while flags still name it.
pub async fn delete_item<T: Item>(
    state: &AppState,
    by: &Principal,
    env: &str,
    key: &str,
    conditions: &Preconditions,
) -> Result<(), EnvError> {
    let env_name = EnvName::new(env);
    state
        .envs
        .apply(env, |current| {
            let before = T::find(current, key).ok_or_else(|| missing::<T>(env, key))?;
            conditions.check(&format!("{} `{key}`", T::WHAT), Some(before.version()))?;
            let users = T::users(current, key);
            if !users.is_empty() {
                return Err(EnvError::InUse {
                    what: T::WHAT,
                    key: key.to_owned(),
                    users: users.into_iter().map(str::to_owned).collect(),
                });
            }
            let mut audit = entry(by, Some(&env_name), &format!("{}.delete", T::WHAT), key);
            audit.before = Some(json!(before));
            let mut change = T::change(key, None);
            change.audit.push(audit);
            Ok(change)
        })
        .await?;
    Ok(())
}

/// Kills (`enabled: false`: everyone gets `off_variant`) or revives a flag. Doing what
/// is already done writes nothing.
pub async fn set_enabled(
    state: &AppState,
    by: &Principal,
    env: &str,
    key: &str,
    enabled: bool,
    reason: Option<String>,
    conditions: &Preconditions,
) -> Result<Flag, EnvError> {
    let env_name = EnvName::new(env);
    let action = if enabled { "flag.revive" } else { "flag.kill" };
    let new = state
        .envs
        .apply(env, |current| {
            let before = current
                .snapshot
                .flag(key)
                .ok_or_else(|| missing::<Flag>(env, key))?;
            conditions.check(&format!("flag `{key}`"), Some(before.version))?;
            if before.enabled == enabled {
                return Ok(Change::default());
            }
            let mut after = before.clone();
            after.enabled = enabled;
            after.version += 1;
            let mut audit = entry(by, Some(&env_name), action, key);
            audit.before = Some(json!(before));
            audit.after = Some(json!(after));
            audit.reason = reason.clone();
            Ok(Change {
                flags: vec![(after.key.clone(), Some(after))],
                audit: vec![audit],
                ..Change::default()
            })
        })
        .await?;
    saved(&new, env, key)
}

/// The enabled flags carrying `tag`: what [`kill_tag`] would kill (a preview).
pub fn flags_with_tag<'a>(state: &'a EnvState, tag: &'a str) -> impl Iterator<Item = &'a Flag> {
    state
        .snapshot
        .flags()
        .filter(move |f| f.enabled && f.tags.iter().any(|t| t == tag))
}

/// Kills every flag carrying `tag`, in one write. Returns the flags killed by it and
/// the environment as it is after.
pub async fn kill_tag(
    state: &AppState,
    by: &Principal,
    env: &str,
    tag: &str,
    reason: Option<String>,
) -> Result<(Vec<FlagKey>, Arc<EnvState>), EnvError> {
    if tag.is_empty() {
        return Err(EnvError::BadRequest("`tag` must not be empty".into()));
    }
    let env_name = EnvName::new(env);
    let mut killed = Vec::new();
    let new = state
        .envs
        .apply(env, |current| {
            let mut change = Change::default();
            killed.clear();
            for flag in flags_with_tag(current, tag) {
                let mut after = flag.clone();
                after.enabled = false;
                after.version += 1;
                let mut audit = entry(by, Some(&env_name), "flag.kill", flag.key.as_str());
                audit.before = Some(json!(flag));
                audit.after = Some(json!(after));
                audit.reason = reason.clone();
                change.audit.push(audit);
                killed.push(after.key.clone());
                change.flags.push((after.key.clone(), Some(after)));
            }
            Ok(change)
        })
        .await?;
    Ok((killed, new))
}

/// How far back [`revert_flag`] looks for a version.
const REVERT_HISTORY: usize = 1000;

/// Writes flag `key` back to what it was at `version` (as a new version, audited as
/// `flag.revert`), if `conditions` hold for its current version. The earlier version
/// comes from the audit log.
pub async fn revert_flag(
    state: &AppState,
    by: &Principal,
    env: &str,
    key: &str,
    version: u64,
    conditions: &Preconditions,
) -> Result<Flag, EnvError> {
    let query = AuditQuery {
        env: Some(EnvName::new(env)),
        target: Some(key.to_owned()),
        since_ms: None,
        limit: REVERT_HISTORY,
        ..AuditQuery::default()
    };
    let entries = state.envs.store().audit(&query).await?;
    let earlier = entries
        .iter()
        .filter(|e| e.action.starts_with("flag."))
        .filter_map(|e| e.after.as_ref())
        .filter_map(|after| serde_json::from_value::<Flag>(after.clone()).ok())
        .find(|flag| flag.version == version)
        .ok_or_else(|| {
            EnvError::NotFound(format!(
                "version {version} of flag `{key}` is not in the last {REVERT_HISTORY} audit \
                 entries of `{env}`"
            ))
        })?;
    let reason = Some(format!("reverted to version {version}"));
    let saved = put_item(state, by, env, earlier, conditions, "flag.revert", reason).await?;
    Ok(saved.item)
}
