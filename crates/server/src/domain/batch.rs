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
            let audit = |action: &str, key: &str, before: Option<serde_json::Value>, after| {
                let mut e = entry(by, Some(&env_name), action, key);
                e.before = before;
                e.after = after;
                e.reason = Some(reason.clone());
                e
            };
            for flag in &batch.flags {
                if let Some((written, created)) = write(current, flag) {
                    let key = flag.key.as_str();
                    let before = Flag::find(current, key).map(|b| json!(b));
                    change
                        .audit
                        .push(audit("flag.put", key, before, Some(json!(written))));
                    change.flags.push((flag.key.clone(), Some(written)));
                    let list = if created {
                        &mut applied.created
                    } else {
                        &mut applied.changed
                    };
                    list.push(("flag", key.to_owned()));
                }
            }
            for segment in &batch.segments {
                if let Some((written, created)) = write(current, segment) {
                    let key = segment.key.as_str();
                    let before = Segment::find(current, key).map(|b| json!(b));
                    change
                        .audit
                        .push(audit("segment.put", key, before, Some(json!(written))));
                    change.segments.push((segment.key.clone(), Some(written)));
                    let list = if created {
                        &mut applied.created
                    } else {
                        &mut applied.changed
                    };
                    list.push(("segment", key.to_owned()));
                }
            }
            for key in &batch.delete_flags {
                if let Some(before) = Flag::find(current, key.as_str()) {
                    change.audit.push(audit(
                        "flag.delete",
                        key.as_str(),
                        Some(json!(before)),
                        None,
                    ));
                    change.flags.push((key.clone(), None));
                    applied.deleted.push(("flag", key.to_string()));
                }
            }
            for key in &batch.delete_segments {
                if let Some(before) = Segment::find(current, key.as_str()) {
                    change.audit.push(audit(
                        "segment.delete",
                        key.as_str(),
                        Some(json!(before)),
                        None,
                    ));
                    change.segments.push((key.clone(), None));
                    applied.deleted.push(("segment", key.to_string()));
                }
            }
            Ok(change)
        })
        .await?;
    applied.revision = new.revision;
    Ok(applied)
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
