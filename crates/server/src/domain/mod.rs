//! The write rules of the admin side, once, for every front end: the REST admin API,
//! the console and whatever comes next call these functions; none writes on its own.
//!
//! Each function checks its input (names, preconditions), computes a [`Change`] from
//! the environment's current state (version bump, audit entry with before/after), and
//! hands it to [`Environments::apply`](crate::environments::Environments::apply), which
//! validates the whole environment, commits atomically and publishes to streams.
//! Errors are [`EnvError`]; each front end maps them at its edge (`ApiError` for HTTP,
//! a page message for the console).

mod batch;
mod envs;
mod error;
mod items;
mod lifecycle;
mod preconditions;
mod schedules;
mod tokens;

pub use batch::{apply_batch, Applied, Batch};
pub use envs::{
    create_env, delete_env, promote, promotion_diff, PreviewedVersions, Promoted, PromotionDiff,
};
pub use error::EnvError;
pub use items::{
    delete_item, flags_with_tag, kill_tag, put_item, revert_flag, set_enabled, Item, Saved,
};
pub use lifecycle::{lifecycle, DEFAULT_STALE_AFTER};
pub use preconditions::{Header, Malformed, Preconditions};
pub use schedules::{cancel_schedule, carry_out, create_schedule, list_schedules, run_scheduler};
pub use tokens::{
    issue_token, list_tokens, revoke_token, rotate_token, Issued, TokenSource, TokenSummary,
    MAX_GRACE,
};

use switchyard_core::model::EnvName;
use switchyard_core::validation::{check_name, MAX_KEY_LEN};

use crate::auth::Principal;
use crate::store::AuditEntry;

/// A name from a path, form or body: core's one character set for names
/// (docs/flags.md). `what` says which, e.g. `flag key`.
pub fn check_key(what: &'static str, key: &str) -> Result<(), EnvError> {
    check_name(key).map_err(|problem| EnvError::InvalidName {
        what,
        // Echoed escaped (no invisible or reordering characters) and only when short.
        name: (key.len() <= MAX_KEY_LEN).then(|| key.escape_debug().to_string()),
        problem,
    })
}

fn entry(principal: &Principal, env: Option<&EnvName>, action: &str, target: &str) -> AuditEntry {
    AuditEntry::new(&principal.name, env, action, target)
}
