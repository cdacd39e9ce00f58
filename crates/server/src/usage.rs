//! Flag usage: when each flag was last evaluated, per environment — by this server
//! (REST, OFREP, gRPC, flagd) and by SDKs (the flags their exposure counts name) —
//! including keys the environment does not have (unknown flags, from the server's
//! evaluations).
//!
//! Evaluations only touch memory: [`Usage::seen`] keeps the latest time per flag, to
//! the second, without allocating for a flag already seen. [`run_flusher`] writes what
//! changed to the store every [`FLUSH`] (and at shutdown), max-merged there, so every
//! replica's evaluations count and a restart keeps them; [`Usage::last_seen`] reads
//! the store's times merged with what is not flushed yet.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use switchyard_core::model::EnvName;

use crate::state::AppState;
use crate::store::{Store, StoreError};

/// How often what changed is written to the store.
pub const FLUSH: Duration = Duration::from_secs(10);

/// Times below this apart count as the same (an evaluation a millisecond later
/// changes nothing worth writing).
const RESOLUTION_MS: u64 = 1_000;

/// Last-evaluated times not yet written to the store.
#[derive(Debug, Default)]
pub struct Usage {
    /// env → flag → ms since the epoch.
    pending: Mutex<HashMap<String, HashMap<String, u64>>>,
}

impl Usage {
    /// `flag` was evaluated in `env` at `at_ms`.
    pub fn seen(&self, env: &str, flag: &str, at_ms: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flags) = pending.get_mut(env) {
            if let Some(last) = flags.get_mut(flag) {
                if at_ms >= *last + RESOLUTION_MS {
                    *last = at_ms;
                }
                return;
            }
            flags.insert(flag.to_owned(), at_ms);
            return;
        }
        pending.insert(env.to_owned(), HashMap::from([(flag.to_owned(), at_ms)]));
    }

    /// Writes what changed since the last flush; kept for the next one if the store
    /// fails.
    pub async fn flush(&self, store: &dyn Store) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for (env, flags) in &taken {
            let seen: Vec<(String, u64)> = flags.iter().map(|(k, v)| (k.clone(), *v)).collect();
            if let Err(error) = store.record_usage(&EnvName::new(env), &seen).await {
                for (env, flags) in taken {
                    for (flag, at) in flags {
                        self.seen(&env, &flag, at);
                    }
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// When each flag of `env` (known or not) was last evaluated: the store's times
    /// merged with this replica's unflushed ones.
    pub async fn last_seen(
        &self,
        store: &dyn Store,
        env: &EnvName,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut seen: BTreeMap<String, u64> = store.usage(env).await?.into_iter().collect();
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (flag, at) in pending.get(env.as_str()).into_iter().flatten() {
            let last = seen.entry(flag.clone()).or_default();
            *last = (*last).max(*at);
        }
        Ok(seen)
    }
}

/// Flushes every [`FLUSH`] until the server shuts down, then once more.
pub async fn run_flusher(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let stopping = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => true,
            () = tokio::time::sleep(FLUSH) => false,
        };
        if let Err(error) = state.usage.flush(state.envs.store().as_ref()).await {
            tracing::warn!(%error, "cannot write flag usage; keeping it for the next try");
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_time_to_the_second() {
        let usage = Usage::default();
        usage.seen("prod", "a", 10_000);
        usage.seen("prod", "a", 10_500);
        usage.seen("prod", "a", 9_000);
        usage.seen("prod", "b", 1);
        usage.seen("prod", "a", 12_000);
        let pending = usage.pending.lock().unwrap();
        assert_eq!(pending["prod"]["a"], 12_000);
        assert_eq!(pending["prod"]["b"], 1);
    }
}
