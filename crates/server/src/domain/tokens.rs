//! API tokens: list (never a secret or its hash), issue (the secret is shown once,
//! optionally with an expiry), rotate (a new secret; the old one accepted for a grace
//! period) and revoke. Streams opened with a token end when it stops being accepted
//! (`subscription.rs`).

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use switchyard_core::model::EnvName;

use super::{check_key, entry, EnvError};
use crate::auth::{generate, kind_name, rotate, Principal, BOOTSTRAP_TOKEN_NAME};
use crate::console::history::rfc3339;
use crate::environments::now_ms;
use crate::state::AppState;
use crate::store::{TokenKind, TokenRecord, UsageOf};

/// A token just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The secret: shown to its owner once, never stored.
    pub secret: String,
    /// What is stored about it.
    pub record: TokenRecord,
}

/// One token as listed: what it may do, never its secret or the secret's hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenSummary {
    /// Its name.
    pub name: String,
    /// What it may do.
    pub kind: TokenKind,
    /// The environment it is bound to (`null` for admin tokens).
    pub env: Option<EnvName>,
    /// Creation time, ms since the epoch (`null` for the bootstrap token).
    pub created_ms: Option<u64>,
    /// When it stops being accepted, ms since the epoch (`null`: never).
    pub expires_ms: Option<u64>,
    /// Whether it has expired.
    pub expired: bool,
    /// When its secret was last rotated, ms since the epoch.
    pub rotated_ms: Option<u64>,
    /// Until when the secret replaced by the last rotation is still accepted, if it is.
    pub previous_valid_until_ms: Option<u64>,
    /// When it was last used to authenticate, ms since the epoch (to about 10 s;
    /// `null`: never).
    pub last_used_ms: Option<u64>,
    /// Where the token comes from.
    pub source: TokenSource,
}

/// Where a listed token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// Issued through the API and kept in the store; revocable.
    Store,
    /// The bootstrap admin token of `--admin-token` / `SWITCHYARD_ADMIN_TOKEN`; removed
    /// by restarting without it.
    Configuration,
}

/// Every token: the configured bootstrap admin token (if any) first, then the stored
/// ones. The admin API's list and the console's tokens page both show this.
pub async fn list_tokens(state: &AppState) -> Result<Vec<TokenSummary>, EnvError> {
    let store = state.envs.store();
    let used = state
        .usage
        .last_seen(store.as_ref(), UsageOf::Tokens)
        .await?;
    let now = now_ms();
    // The bootstrap token is configuration, not a stored record, but an operator
    // auditing who holds admin access must see it too.
    let bootstrap = state.tokens.has_bootstrap().then(|| TokenSummary {
        name: BOOTSTRAP_TOKEN_NAME.to_owned(),
        kind: TokenKind::Admin,
        env: None,
        created_ms: None,
        expires_ms: None,
        expired: false,
        rotated_ms: None,
        previous_valid_until_ms: None,
        last_used_ms: used.get(BOOTSTRAP_TOKEN_NAME).copied(),
        source: TokenSource::Configuration,
    });
    let stored = store.tokens().await?.into_iter().map(|t| TokenSummary {
        last_used_ms: used.get(&t.name).copied(),
        name: t.name,
        kind: t.kind,
        env: t.env,
        created_ms: Some(t.created_ms),
        expires_ms: t.expires_ms,
        expired: t.expires_ms.is_some_and(|at| now >= at),
        rotated_ms: t.rotated_ms,
        previous_valid_until_ms: t.previous.map(|p| p.until_ms).filter(|&until| until > now),
        source: TokenSource::Store,
    });
    Ok(bootstrap.into_iter().chain(stored).collect())
}

/// The longest grace period of a rotated secret.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Issues a token named `name`; `sdk` and `eval` tokens are bound to `env`, admin
/// tokens to none; it is accepted until `expires_ms` (ms since the epoch), if given.
pub async fn issue_token(
    state: &AppState,
    by: &Principal,
    name: &str,
    kind: TokenKind,
    env: Option<&str>,
    expires_ms: Option<u64>,
) -> Result<Issued, EnvError> {
    check_key("token name", name)?;
    let now = now_ms();
    if let Some(at) = expires_ms.filter(|&at| at <= now) {
        return Err(EnvError::BadRequest(format!(
            "`expires_ms` {at} ({}) is not in the future",
            rfc3339(at)
        )));
    }
    if name == BOOTSTRAP_TOKEN_NAME {
        return Err(EnvError::Conflict(format!(
            "`{BOOTSTRAP_TOKEN_NAME}` is reserved for the token from --admin-token \
             (SWITCHYARD_ADMIN_TOKEN); choose another name"
        )));
    }
    let env = match (kind, env) {
        (TokenKind::Admin, Some(_)) => {
            return Err(EnvError::BadRequest(
                "admin tokens are not bound to an environment; omit `env`".into(),
            ))
        }
        (TokenKind::Admin, None) => None,
        (kind, None) => {
            return Err(EnvError::BadRequest(format!(
                "{} tokens need the `env` they may read",
                kind_name(kind)
            )))
        }
        (_, Some(env)) => {
            if state.envs.get(env).is_none() {
                return Err(EnvError::NoEnvironment(env.to_owned()));
            }
            Some(EnvName::new(env))
        }
    };
    let (secret, mut record) = generate(name, kind, env.clone(), now);
    record.expires_ms = expires_ms;
    let mut audit = entry(by, env.as_ref(), "token.create", name);
    audit.after = Some(json!({
        "name": record.name, "kind": record.kind, "env": record.env, "expires_ms": record.expires_ms,
    }));
    let store = state.envs.store();
    store.create_token(record.clone(), audit).await?;
    state.tokens.replace(store.tokens().await?);
    Ok(Issued { secret, record })
}

/// Gives the token `name` a new secret; the old one stays accepted for `grace` (at
/// most [`MAX_GRACE`]; zero ends it at once, and with it the streams it opened).
pub async fn rotate_token(
    state: &AppState,
    by: &Principal,
    name: &str,
    grace: Duration,
) -> Result<Issued, EnvError> {
    if name == BOOTSTRAP_TOKEN_NAME && state.tokens.has_bootstrap() {
        return Err(EnvError::Conflict(format!(
            "`{BOOTSTRAP_TOKEN_NAME}` comes from the server's configuration (--admin-token or \
             SWITCHYARD_ADMIN_TOKEN): change it there and restart"
        )));
    }
    if grace > MAX_GRACE {
        return Err(EnvError::BadRequest(format!(
            "`grace_seconds` is at most {} (30 days)",
            MAX_GRACE.as_secs()
        )));
    }
    let store = state.envs.store();
    let Some(current) = store.tokens().await?.into_iter().find(|t| t.name == name) else {
        return Err(EnvError::NotFound(format!("no token named `{name}`")));
    };
    let now = now_ms();
    if let Some(at) = current.expires_ms.filter(|&at| at <= now) {
        return Err(EnvError::Conflict(format!(
            "token `{name}` expired at {}; issue a new one instead",
            rfc3339(at)
        )));
    }
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let (secret, record) = rotate(&current, now, now.saturating_add(grace_ms));
    let mut audit = entry(by, current.env.as_ref(), "token.rotate", name);
    audit.after = Some(json!({
        "name": record.name,
        "previous_valid_until_ms": record.previous.as_ref().map(|p| p.until_ms),
    }));
    if !store
        .replace_token(&current.hash, record.clone(), audit)
        .await?
    {
        return Err(EnvError::Conflict(format!(
            "token `{name}` was rotated or revoked by someone else meanwhile; list the tokens and try again"
        )));
    }
    state.tokens.replace(store.tokens().await?);
    Ok(Issued { secret, record })
}

/// Revokes the token `name` (the configured bootstrap token cannot be).
pub async fn revoke_token(state: &AppState, by: &Principal, name: &str) -> Result<(), EnvError> {
    if name == BOOTSTRAP_TOKEN_NAME && state.tokens.has_bootstrap() {
        return Err(EnvError::Conflict(format!(
            "`{BOOTSTRAP_TOKEN_NAME}` is the bootstrap admin token from the server's configuration \
             (--admin-token or SWITCHYARD_ADMIN_TOKEN) and cannot be revoked through the API; \
             issue another admin token if you need one, then restart the server without it"
        )));
    }
    let audit = entry(by, None, "token.delete", name);
    let store = state.envs.store();
    if store.delete_token(name, audit).await?.is_none() {
        return Err(EnvError::NotFound(format!("no token named `{name}`")));
    }
    state.tokens.replace(store.tokens().await?);
    Ok(())
}
