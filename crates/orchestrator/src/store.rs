//! Where releases are kept: every transition is stored before its actions run.
//!
//! *Architecture Invariant*: a stored [`Release`] is everything needed to resume it
//! (plan + machine state, whose outbox holds the actions not yet confirmed).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::machine::{Millis, State};
use crate::plan::Plan;

pub mod embedded;

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
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed.
    #[error("embedded store: {0}")]
    Embedded(#[source] Box<redb::Error>),
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
