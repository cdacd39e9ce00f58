//! Usage: when each flag was last evaluated, per environment — by this server
//! (REST, OFREP, gRPC, flagd) and by SDKs (the flags their exposure counts name) —
//! including keys the environment does not have (unknown flags, from the server's
//! evaluations and the `unknown_flags` SDKs report with their metrics); and when each
//! API token was last used.
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
use crate::store::{Store, StoreError, UsageOf};

/// How often what changed is written to the store.
pub const FLUSH: Duration = Duration::from_secs(10);

/// Times below this apart count as the same (an evaluation a millisecond later
/// changes nothing worth writing).
const RESOLUTION_MS: u64 = 1_000;

/// Last-use times not yet written to the store.
#[derive(Debug, Default)]
pub struct Usage {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    /// env → flag → ms since the epoch.
    flags: HashMap<String, HashMap<String, u64>>,
    /// token name → ms since the epoch.
    tokens: HashMap<String, u64>,
}

/// Raises `name`'s time to `at_ms` (no allocation for a name already there).
fn raise(times: &mut HashMap<String, u64>, name: &str, at_ms: u64) {
    match times.get_mut(name) {
        Some(last) => {
            if at_ms >= *last + RESOLUTION_MS {
                *last = at_ms;
            }
        }
        None => {
            times.insert(name.to_owned(), at_ms);
        }
    }
}

impl Usage {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `flag` was evaluated in `env` at `at_ms`.
    pub fn seen(&self, env: &str, flag: &str, at_ms: u64) {
        let mut pending = self.pending();
        match pending.flags.get_mut(env) {
            Some(flags) => raise(flags, flag, at_ms),
            None => {
                let flags = HashMap::from([(flag.to_owned(), at_ms)]);
                pending.flags.insert(env.to_owned(), flags);
            }
        }
    }

    /// The token named `token` was used at `at_ms`.
    pub fn token_used(&self, token: &str, at_ms: u64) {
        raise(&mut self.pending().tokens, token, at_ms);
    }

    /// Writes what changed since the last flush; kept for the next one if the store
    /// fails.
    pub async fn flush(&self, store: &dyn Store) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *self.pending());
        let mut written = Ok(());
        for (env, flags) in &taken.flags {
            let seen: Vec<(String, u64)> = flags.iter().map(|(k, v)| (k.clone(), *v)).collect();
            written = store
                .record_usage(UsageOf::Flags(&EnvName::new(env)), &seen)
                .await;
            if written.is_err() {
                break;
            }
        }
        if written.is_ok() && !taken.tokens.is_empty() {
            let seen: Vec<(String, u64)> = taken.tokens.clone().into_iter().collect();
            written = store.record_usage(UsageOf::Tokens, &seen).await;
        }
        if written.is_err() {
            // Max-merged: writing again what was written is harmless.
            let mut pending = self.pending();
            for (env, flags) in taken.flags {
                for (flag, at) in flags {
                    let times = pending.flags.entry(env.clone()).or_default();
                    raise(times, &flag, at);
                }
            }
            for (token, at) in taken.tokens {
                raise(&mut pending.tokens, &token, at);
            }
        }
        written
    }

    /// When each flag of `env` (known or not), or each token, was last used: the
    /// store's times merged with this replica's unflushed ones.
    pub async fn last_seen(
        &self,
        store: &dyn Store,
        of: UsageOf<'_>,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut seen: BTreeMap<String, u64> = store.usage(of).await?.into_iter().collect();
        let pending = self.pending();
        let unflushed = match of {
            UsageOf::Flags(env) => pending.flags.get(env.as_str()),
            UsageOf::Tokens => Some(&pending.tokens),
        };
        for (name, at) in unflushed.into_iter().flatten() {
            let last = seen.entry(name.clone()).or_default();
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
        usage.token_used("ci", 5_000);
        usage.token_used("ci", 5_400);
        let pending = usage.pending();
        assert_eq!(pending.flags["prod"]["a"], 12_000);
        assert_eq!(pending.flags["prod"]["b"], 1);
        assert_eq!(pending.tokens["ci"], 5_000);
    }
}
