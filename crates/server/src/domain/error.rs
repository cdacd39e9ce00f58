//! What a write can fail with, whichever front end asked for it.

use switchyard_core::validation::Problem;
use switchyard_core::ValidationErrors;

use crate::store::StoreError;

/// Why a write (or the read it needs) did not happen. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A name does not follow core's rule.
    #[error("invalid {what}{}: {problem}", name.as_ref().map(|n| format!(" `{n}`")).unwrap_or_default())]
    InvalidName {
        /// Which name, e.g. `flag key`.
        what: &'static str,
        /// The name, escaped; `None` when too long to echo.
        name: Option<String>,
        /// What is wrong with it.
        problem: Problem,
    },
    /// The request itself is malformed (e.g. an empty tag, `from` equal to `to`).
    #[error("{0}")]
    BadRequest(String),
    /// A precondition (If-Match / If-None-Match, or the version a form was rendered
    /// with) does not hold.
    #[error("{message}")]
    PreconditionFailed {
        /// What the object's version is now (`None`: it does not exist).
        current: Option<u64>,
        /// What did not hold, for people.
        message: String,
    },
    /// A precondition header is not a list of entity tags.
    #[error(transparent)]
    MalformedCondition(#[from] super::Malformed),
    /// No such environment.
    #[error("environment `{0}` does not exist")]
    NoEnvironment(String),
    /// No such flag, segment, token or version.
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with what exists (a reserved name, an environment that still has
    /// flags, a write that kept racing others).
    #[error("{0}")]
    Conflict(String),
    /// Flags still use what is to be deleted.
    #[error(
        "{what} `{key}` is used by flag(s) {}; remove it from them first",
        list(users)
    )]
    InUse {
        /// `flag` or `segment`.
        what: &'static str,
        /// Its key.
        key: String,
        /// The flags naming it.
        users: Vec<String>,
    },
    /// The environment as it would be does not validate; every problem with its path.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A document could not be serialised (a bug).
    #[error("serialising a document: {0}")]
    Encode(#[from] serde_json::Error),
}

fn list(keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
