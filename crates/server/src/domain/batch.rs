//! Applying a set of flags and segments to an environment in one write: what
//! `switchyard apply` (flags as code) sends. All or nothing: every item is validated,
//! then the environment as it would be, then one commit lands with one audit entry
//! per flag or segment changed, each naming the batch. Items equal to what is stored
//! (their version aside) are left alone, so applying the same files twice changes
//! nothing the second time.

use serde_json::json;
use switchyard_core::model::{EnvName, FlagKey, SegmentKey};
use switchyard_core::{Flag, Segment, ValidationErrors};

use super::{check_key, entry, EnvError, Item, Preconditions};
use crate::auth::Principal;
use crate::environments::{Change, EnvState};
use crate::state::AppState;
use crate::store::AuditEntry;

/// What a batch writes and deletes.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Flags created or replaced (their `version` is ignored).
    pub flags: Vec<Flag>,
    /// Segments created or replaced.
    pub segments: Vec<Segment>,
    /// Flags deleted.
    pub delete_flags: Vec<FlagKey>,
    /// Segments deleted.
    pub delete_segments: Vec<SegmentKey>,
    /// Why, for the audit log.
    pub reason: Option<String>,
}

/// What a batch did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The batch's id, named by each of its audit entries.
    pub batch: String,
    /// The environment's revision after (unchanged when nothing changed).
    pub revision: u64,
    /// Flags and segments created (`flag` / `segment`, key).
    pub created: Vec<(&'static str, String)>,
    /// Flags and segments changed.
    pub changed: Vec<(&'static str, String)>,
    /// Flags and segments deleted.
    pub deleted: Vec<(&'static str, String)>,
}

/// Applies `batch` to `env` in one write, if `conditions` (`If-Match` on the
/// environment's revision) hold.
pub async fn apply_batch(
    state: &AppState,
    by: &Principal,
    env: &str,
    batch: Batch,
    conditions: &Preconditions,
) -> Result<Applied, EnvError> {
    check_items("flags", &batch.flags)?;
    check_items("segments", &batch.segments)?;
    let id = format!("{:016x}", rand::random::<u64>());
    let reason = match &batch.reason {
        Some(why) => format!("batch {id}: {why}"),
        None => format!("batch {id}"),
    };
    let env_name = EnvName::new(env);
    let mut applied = Applied {
        batch: id,
        revision: 0,
        created: Vec::new(),
        changed: Vec::new(),
        deleted: Vec::new(),
    };
    let new = state
        .envs
        .apply(env, |current| {
            conditions.check(&format!("environment `{env}`"), Some(current.revision))?;
            let mut change = Change::default();
            applied.created.clear();
            applied.changed.clear();
            applied.deleted.clear();
            let audit = |action: String,
                         key: &str,
                         before: Option<serde_json::Value>,
                         after: Option<serde_json::Value>| {
                let mut e = entry(by, Some(&env_name), &action, key);
                e.before = before;
                e.after = after;
                e.reason = Some(reason.clone());
                e
            };
            let flags_gone = batch.delete_flags.iter().map(|k| k.as_str());
            stage(
                current,
                &batch.flags,
                flags_gone,
                &audit,
                &mut change,
                &mut applied,
            );
            let segments_gone = batch.delete_segments.iter().map(|k| k.as_str());
            stage(
                current,
                &batch.segments,
                segments_gone,
                &audit,
                &mut change,
                &mut applied,
            );
            Ok(change)
        })
        .await?;
    applied.revision = new.revision;
    Ok(applied)
}

/// Adds to `change` the writes of `items` that differ from what is stored and the
/// deletions of `gone` that exist, each with its audit entry, and lists them in
/// `applied`.
fn stage<'k, T: Item + PartialEq>(
    current: &EnvState,
    items: &[T],
    gone: impl Iterator<Item = &'k str>,
    audit: &impl Fn(String, &str, Option<serde_json::Value>, Option<serde_json::Value>) -> AuditEntry,
    change: &mut Change,
    applied: &mut Applied,
) {
    let mut add = |key: &str, item: Option<T>, entry: AuditEntry| {
        let one = T::change(key, item);
        change.flags.extend(one.flags);
        change.segments.extend(one.segments);
        change.audit.push(entry);
    };
    for item in items {
        let key = item.key();
        if let Some((written, created)) = write(current, item) {
            let before = T::find(current, key).map(|b| json!(b));
            let entry = audit(
                format!("{}.put", T::WHAT),
                key,
                before,
                Some(json!(written)),
            );
            add(key, Some(written), entry);
            let list = if created {
                &mut applied.created
            } else {
                &mut applied.changed
            };
            list.push((T::WHAT, key.to_owned()));
        }
    }
    for key in gone {
        if let Some(before) = T::find(current, key) {
            let entry = audit(
                format!("{}.delete", T::WHAT),
                key,
                Some(json!(before)),
                None,
            );
            add(key, None, entry);
            applied.deleted.push((T::WHAT, key.to_owned()));
        }
    }
}

/// Each item's key and validity on its own, every problem at its path in the batch
/// (`flags[2].rules[0].serve`).
fn check_items<T: Item>(list: &str, items: &[T]) -> Result<(), EnvError> {
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        check_key(T::KEY, item.key())?;
        if items[..i].iter().any(|other| other.key() == item.key()) {
            return Err(EnvError::BadRequest(format!(
                "{list}[{i}]: {} `{}` is listed twice",
                T::WHAT,
                item.key()
            )));
        }
        if let Err(ValidationErrors(errors)) = item.validate() {
            problems.extend(errors.into_iter().map(|mut e| {
                e.path = if e.path.is_empty() {
                    format!("{list}[{i}]")
                } else {
                    format!("{list}[{i}].{}", e.path)
                };
                e
            }));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(problems).into())
    }
}

/// `item` at its next version and whether it is new, or `None` when it is what is
/// stored already (its version aside).
fn write<T: Item + PartialEq>(current: &EnvState, item: &T) -> Option<(T, bool)> {
    let before = T::find(current, item.key());
    let mut written = item.clone();
    match before {
        Some(b) => {
            written.set_version(b.version());
            if written == *b {
                return None;
            }
            written.set_version(b.version() + 1);
            Some((written, false))
        }
        None => {
            written.set_version(1);
            Some((written, true))
        }
    }
}
