//! Where releases are kept: every transition is stored before its actions run.
//!
//! *Architecture Invariant*: a stored [`Release`] is everything needed to resume it
//! (plan + machine state, whose outbox holds the actions not yet confirmed).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::machine::{Event, Millis, State};
use crate::plan::Plan;

pub mod embedded;
pub mod redis;

/// A release: its plan and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// The plan as applied.
    pub plan: Plan,
    /// The machine's state.
    pub state: State,
    /// When it was applied.
    pub created_at: Millis,
    /// Transitions stored so far (increases by one per stored state).
    pub revision: u64,
}

impl Release {
    /// The release's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }
}

/// Durable storage of releases.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Stores `release` durably (replacing its previous state) before returning.
    async fn save(&self, release: &Release) -> Result<(), StoreError>;

    /// Moves a finished release named `name` out of the way into history, so that a
    /// new release may take its name; no-op when there is none.
    async fn archive(&self, name: &str) -> Result<(), StoreError>;

    /// Every current (not archived) release.
    async fn releases(&self) -> Result<Vec<Release>, StoreError>;

    /// Archived releases, oldest first.
    async fn history(&self) -> Result<Vec<Release>, StoreError>;

    /// One current release, as stored.
    async fn load(&self, name: &str) -> Result<Option<Release>, StoreError>;

    /// Whether several orchestrator processes may use this store at once (then
    /// releases left without a driver must be looked for).
    fn shared(&self) -> bool {
        false
    }

    /// Takes (or renews) the lease that lets `owner` drive release `name` for `ttl`.
    /// `true` when `owner` holds it afterwards. A store used by one orchestrator
    /// process grants every lease.
    async fn acquire(&self, _name: &str, _owner: &str, _ttl: Duration) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Gives the lease up (e.g. on shutdown, so another replica takes over at once).
    async fn release_lease(&self, _name: &str, _owner: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Queues a person's command for the replica driving release `name`.
    async fn push_command(&self, name: &str, _event: &Event) -> Result<(), StoreError> {
        Err(StoreError::NotShared(name.to_owned()))
    }

    /// Takes the commands queued for release `name`, oldest first.
    async fn take_commands(&self, _name: &str) -> Result<Vec<Event>, StoreError> {
        Ok(Vec::new())
    }
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed.
    #[error("embedded store: {0}")]
    Embedded(#[source] Box<redb::Error>),
    /// The release is driven elsewhere and this store cannot reach that replica.
    #[error("release `{0}` is driven by another orchestrator, which this store cannot reach")]
    NotShared(String),
    /// This replica no longer holds the release's lease; another one drives it now.
    #[error("the lease on release `{0}` was lost to another orchestrator")]
    LeaseLost(String),
    /// Redis failed.
    #[error("redis store")]
    Redis(#[source] ::redis::RedisError),
    /// Redis could not be reached, or its URL names no deployment.
    #[error("redis store")]
    Connect(#[source] switchyard_redis::ConnectError),
    /// A stored release could not be read back.
    #[error("stored release `{name}` is unreadable")]
    Corrupt {
        /// Its key.
        name: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Embedded(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
