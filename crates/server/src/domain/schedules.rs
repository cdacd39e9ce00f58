//! Scheduled changes: a kill, a revive, a ramp or any edit of a flag at a time,
//! stored durably in the flag's environment and carried out by the server once.
//!
//! Once: the commit that makes the change also marks the schedule done, and the store
//! refuses it unless the schedule is still pending (`Commit::schedule`). So after a
//! restart a due schedule is done if it was not, and of several replicas sharing
//! Redis exactly one commit lands; the others find it settled and move on. Every
//! replica runs [`run_scheduler`]: it looks for due schedules every second.

use std::time::Duration;

use serde_json::json;
use switchyard_core::admin::{NewSchedule, Schedule, ScheduleState, ScheduledChange};
use switchyard_core::model::EnvName;
use switchyard_core::Flag;

use super::{check_key, entry, EnvError, Item};
use crate::auth::Principal;
use crate::environments::{now_ms, Change};
use crate::state::AppState;
use crate::store::{AuditEntry, StoreError};

/// How often every replica looks for due schedules.
pub const TICK: Duration = Duration::from_secs(1);

/// Stores a scheduled change (pending) after checking it can be done as things are.
pub async fn create_schedule(
    state: &AppState,
    by: &Principal,
    env: &str,
    new: NewSchedule,
) -> Result<Schedule, EnvError> {
    let current = super::envs::environment(state, env)?;
    check_key(Flag::KEY, new.flag.as_str())?;
    let flag = Flag::find(&current, new.flag.as_str()).ok_or_else(|| {
        EnvError::NotFound(format!("flag `{}` does not exist in `{env}`", new.flag))
    })?;
    // Checked now, so a schedule that cannot work is refused rather than failing later.
    changed(flag, &new.change)?;
    let schedule = Schedule {
        id: format!("{:016x}", rand::random::<u64>()),
        env: EnvName::new(env),
        flag: new.flag,
        at_ms: new.at_ms,
        change: new.change,
        reason: new.reason,
        created_by: by.name.clone(),
        created_ms: now_ms(),
        state: ScheduleState::Pending,
    };
    let mut audit = entry(
        by,
        Some(&schedule.env),
        "schedule.create",
        schedule.flag.as_str(),
    );
    audit.after = Some(json!(schedule));
    audit.reason = schedule.reason.clone();
    state
        .envs
        .store()
        .put_schedule(&schedule, audit)
        .await
        .map_err(|e| match e {
            StoreError::NoSuchEnvironment(env) => EnvError::NoEnvironment(env),
            other => other.into(),
        })?;
    Ok(schedule)
}

/// The scheduled changes of `env`, by due time.
pub async fn list_schedules(state: &AppState, env: &str) -> Result<Vec<Schedule>, EnvError> {
    super::envs::environment(state, env)?;
    let mut schedules = state
        .envs
        .store()
        .schedules(Some(&EnvName::new(env)))
        .await?;
    schedules.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    Ok(schedules)
}

/// Cancels a pending scheduled change.
pub async fn cancel_schedule(
    state: &AppState,
    by: &Principal,
    env: &str,
    id: &str,
) -> Result<Schedule, EnvError> {
    let schedule = list_schedules(state, env)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| EnvError::NotFound(format!("no scheduled change `{id}` in `{env}`")))?;
    let cancelled = Schedule {
        state: ScheduleState::Cancelled {
            settled_ms: now_ms(),
            by: by.name.clone(),
        },
        ..schedule.clone()
    };
    let mut audit = entry(
        by,
        Some(&schedule.env),
        "schedule.cancel",
        schedule.flag.as_str(),
    );
    audit.before = Some(json!(schedule));
    audit.after = Some(json!(cancelled));
    if state
        .envs
        .store()
        .settle_schedule(&cancelled, audit)
        .await?
    {
        Ok(cancelled)
    } else {
        Err(EnvError::Conflict(format!(
            "scheduled change `{id}` is no longer pending; it cannot be cancelled"
        )))
    }
}

/// `flag` with `change` made, and the audit action; `Ok(None)` when it already is so.
fn changed(
    flag: &Flag,
    change: &ScheduledChange,
) -> Result<Option<(Flag, &'static str)>, EnvError> {
    let mut new = flag.clone();
    let action = match change {
        ScheduledChange::Kill => {
            new.enabled = false;
            "flag.kill"
        }
        ScheduledChange::Revive => {
            new.enabled = true;
            "flag.revive"
        }
        ScheduledChange::Ramp { percent, rule } => {
            if *percent > 100 {
                return Err(EnvError::BadRequest(format!(
                    "change.percent: {percent} is not between 0 and 100"
                )));
            }
            switchyard_core::ramp::set_to(&mut new, rule.as_deref(), *percent)
                .map_err(|e| EnvError::BadRequest(e.to_string()))?;
            "flag.put"
        }
        ScheduledChange::Put { flag: replacement } => {
            if replacement.key != flag.key {
                return Err(EnvError::BadRequest(format!(
                    "change.flag.key: `{}` is not the scheduled flag `{}`",
                    replacement.key, flag.key
                )));
            }
            replacement.validate()?;
            new = (**replacement).clone();
            new.version = flag.version;
            "flag.put"
        }
    };
    if new == *flag {
        return Ok(None);
    }
    new.version = flag.version + 1;
    Ok(Some((new, action)))
}

/// Carries out `schedule` now: the change and the schedule's `done` in one commit;
/// a change that can no longer be made marks it failed. A schedule another replica
/// settled meanwhile is left alone.
pub async fn carry_out(state: &AppState, schedule: &Schedule) -> Result<(), StoreError> {
    let env = schedule.env.as_str();
    let key = schedule.flag.as_str();
    let result = state
        .envs
        .apply(env, |current| {
            let flag = Flag::find(current, key).ok_or_else(|| {
                EnvError::NotFound(format!("flag `{key}` does not exist in `{env}`"))
            })?;
            let mut change = Change::default();
            if let Some((new, action)) = changed(flag, &schedule.change)? {
                let mut audit =
                    AuditEntry::new(&schedule.created_by, Some(&schedule.env), action, key);
                audit.before = Some(json!(flag));
                audit.after = Some(json!(new));
                audit.reason = Some(match &schedule.reason {
                    Some(why) => format!("scheduled change {}: {why}", schedule.id),
                    None => format!("scheduled change {}", schedule.id),
                });
                change.audit.push(audit);
                change.flags.push((flag.key.clone(), Some(new)));
            }
            change.schedule = Some(Schedule {
                state: ScheduleState::Done {
                    settled_ms: now_ms(),
                    revision: current.revision + 1,
                },
                ..schedule.clone()
            });
            Ok(change)
        })
        .await;
    match result {
        Ok(_) => {
            tracing::info!(env, flag = key, schedule = %schedule.id, "scheduled change done");
            Ok(())
        }
        Err(EnvError::Store(StoreError::ScheduleSettled(_))) => Ok(()),
        Err(EnvError::Store(e)) => Err(e),
        Err(error) => {
            let failed = Schedule {
                state: ScheduleState::Failed {
                    settled_ms: now_ms(),
                    error: error.to_string(),
                },
                ..schedule.clone()
            };
            let mut audit = AuditEntry::new(
                &schedule.created_by,
                Some(&schedule.env),
                "schedule.fail",
                key,
            );
            audit.after = Some(json!(failed));
            audit.reason = Some(error.to_string());
            tracing::warn!(env, flag = key, schedule = %schedule.id, %error, "scheduled change failed");
            state
                .envs
                .store()
                .settle_schedule(&failed, audit)
                .await
                .map(drop)
        }
    }
}

/// Carries out every due pending schedule, until the server shuts down.
pub async fn run_scheduler(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let due = match state.envs.store().schedules(None).await {
            Ok(all) => all,
            Err(error) => {
                tracing::warn!(%error, "cannot read the scheduled changes; trying again");
                continue;
            }
        };
        let now = now_ms();
        for schedule in due
            .iter()
            .filter(|s| s.state == ScheduleState::Pending && s.at_ms <= now)
        {
            if let Err(error) = carry_out(&state, schedule).await {
                tracing::warn!(schedule = %schedule.id, %error, "scheduled change not done yet; trying again");
            }
        }
    }
}
