//! API tokens: issue (the secret is shown once) and revoke.

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
