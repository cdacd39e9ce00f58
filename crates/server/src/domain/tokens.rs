//! API tokens: list (never a secret or its hash), issue (the secret is shown once)
//! and revoke.

use serde::Serialize;
use serde_json::json;
use switchyard_core::model::EnvName;

use super::{check_key, entry, EnvError};
use crate::auth::{generate, kind_name, Principal, BOOTSTRAP_TOKEN_NAME};
use crate::environments::now_ms;
use crate::state::AppState;
use crate::store::{TokenKind, TokenRecord};

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
    // The bootstrap token is configuration, not a stored record, but an operator
    // auditing who holds admin access must see it too.
    let bootstrap = state.tokens.has_bootstrap().then(|| TokenSummary {
        name: BOOTSTRAP_TOKEN_NAME.to_owned(),
        kind: TokenKind::Admin,
        env: None,
        created_ms: None,
        source: TokenSource::Configuration,
    });
    let stored = state
        .envs
        .store()
        .tokens()
        .await?
        .into_iter()
        .map(|t| TokenSummary {
            name: t.name,
            kind: t.kind,
            env: t.env,
            created_ms: Some(t.created_ms),
            source: TokenSource::Store,
        });
    Ok(bootstrap.into_iter().chain(stored).collect())
}

/// Issues a token named `name`; `sdk` and `eval` tokens are bound to `env`, admin
/// tokens to none.
pub async fn issue_token(
    state: &AppState,
    by: &Principal,
    name: &str,
    kind: TokenKind,
    env: Option<&str>,
) -> Result<Issued, EnvError> {
    check_key("token name", name)?;
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
    let (secret, record) = generate(name, kind, env.clone(), now_ms());
    let mut audit = entry(by, env.as_ref(), "token.create", name);
    audit.after = Some(json!({ "name": record.name, "kind": record.kind, "env": record.env }));
    let store = state.envs.store();
    store.create_token(record.clone(), audit).await?;
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
