//! Flag lifecycle: which flags of an environment are stale — unused, or serving one
//! variant to everyone, for `stale_after` — or past their `expires` date, and which
//! keys are evaluated that the environment does not have.
//!
//! Last evaluated comes from `usage.rs` (the server's single-flag evaluations, the
//! flags SDKs report exposures of, and the keys SDKs report their snapshot lacks);
//! last changed from the audit log (its newest [`AUDIT_WINDOW`] entries of the
//! environment: a flag not among them changed longer ago). A flag created or changed
//! within `stale_after` is never stale: it has not had the time.

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_core::admin::{FlagLifecycle, Lifecycle, UnknownFlag};
use switchyard_core::model::{EnvName, Serve};
use switchyard_core::Flag;

use super::EnvError;
use crate::environments::now_ms;
use crate::state::AppState;
use crate::store::{AuditQuery, UsageOf};

/// How many of an environment's newest audit entries are read for last-changed times.
pub const AUDIT_WINDOW: usize = 10_000;

/// The stale threshold `/metrics` counts with.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(30 * 86_400);

/// The lifecycle of every flag of `env`, stale after `stale_after`, at `now_ms`.
pub async fn lifecycle(
    state: &AppState,
    env: &str,
    stale_after: Duration,
) -> Result<Lifecycle, EnvError> {
    let current = super::envs::environment(state, env)?;
    let name = EnvName::new(env);
    let store = state.envs.store();
    let seen = state
        .usage
        .last_seen(store.as_ref(), UsageOf::Flags(&name))
        .await?;
    let audit = store
        .audit(&AuditQuery {
            env: Some(name.clone()),
            limit: AUDIT_WINDOW,
            ..AuditQuery::default()
        })
        .await?;
    let mut changed: BTreeMap<&str, u64> = BTreeMap::new();
    for entry in audit.iter().filter(|e| e.action.starts_with("flag.")) {
        let at = changed.entry(entry.target.as_str()).or_default();
        *at = (*at).max(entry.at_ms);
    }
    let now = now_ms();
    let stale_after_ms = u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX);
    let since = now.saturating_sub(stale_after_ms);
    let flags = current
        .snapshot
        .flags()
        .map(|flag| {
            let key = flag.key.as_str();
            let last_evaluated_ms = seen.get(key).copied();
            let last_changed_ms = changed.get(key).copied();
            let settled = last_changed_ms.is_none_or(|at| at < since);
            let serves_everyone = serves_everyone(flag);
            let mut stale = Vec::new();
            if settled && last_evaluated_ms.is_none_or(|at| at < since) {
                stale.push("unused".to_owned());
            }
            if settled && serves_everyone.is_some() {
                stale.push("fully rolled out".to_owned());
            }
            FlagLifecycle {
                key: flag.key.clone(),
                last_evaluated_ms,
                last_changed_ms,
                serves_everyone,
                expires: flag.expires,
                expired: flag.expires.is_some_and(|e| e.is_past(now)),
                stale,
            }
        })
        .collect();
    let unknown = seen
        .iter()
        .filter(|(key, _)| current.snapshot.flag(key).is_none())
        .map(|(key, at)| UnknownFlag {
            key: key.clone(),
            last_evaluated_ms: *at,
        })
        .collect();
    Ok(Lifecycle {
        env: name,
        stale_after_ms,
        flags,
        unknown,
    })
}

/// The variant every evaluation of `flag` serves, whatever the context: its off
/// variant when killed, else its default when that is one variant, every rule serves
/// it and nothing is a prerequisite.
fn serves_everyone(flag: &Flag) -> Option<String> {
    if !flag.enabled {
        return flag.off_variant.clone();
    }
    let Serve::Variant(variant) = &flag.default else {
        return None;
    };
    let rules_agree = flag
        .rules
        .iter()
        .all(|r| matches!(&r.serve, Serve::Variant(v) if v == variant));
    (rules_agree && flag.prerequisites.is_empty()).then(|| variant.clone())
}
