//! API tokens: generated secrets shown once, stored as SHA-256 hashes, compared in
//! constant time. A token looks like `swy_<id>_<secret>`: the id finds the record,
//! the hash of the whole token must match it. The bootstrap admin token from
//! `--admin-token` / `SWITCHYARD_ADMIN_TOKEN` may be any string and is checked against
//! its own hash; it is never stored.

pub mod ticket;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchyard_core::model::EnvName;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{TokenKind, TokenRecord};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (recorded as the actor in the audit log).
    pub name: String,
    /// The token's public id; `None` for the bootstrap admin token, which has none.
    pub token_id: Option<String>,
    /// What it may do.
    pub kind: TokenKind,
    /// The environment an `sdk` or `eval` token is limited to.
    pub env: Option<EnvName>,
}

impl Principal {
    /// Only admin tokens pass.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.kind {
            TokenKind::Admin => Ok(()),
            kind => Err(ApiError::forbidden(format!(
                "this endpoint needs an admin token; `{}` is {} token",
                self.name,
                with_article(kind)
            ))),
        }
    }

    /// The environment this principal reads, for endpoints where the environment
    /// comes from the token (OFREP, SDK sync). Admin tokens have none.
    pub fn token_env(&self, allowed: &[TokenKind]) -> Result<&EnvName, ApiError> {
        if !allowed.contains(&self.kind) {
            return Err(ApiError::forbidden(format!(
                "{} token cannot use this endpoint",
                with_article(self.kind)
            )));
        }
        self.env.as_ref().ok_or_else(|| {
            ApiError::forbidden(format!(
                "token `{}` is not bound to an environment; use an sdk or eval token",
                self.name
            ))
        })
    }

    /// Passes admin tokens, and `allowed` kinds bound to `env`.
    pub fn require_env(&self, env: &str, allowed: &[TokenKind]) -> Result<(), ApiError> {
        if self.kind == TokenKind::Admin {
            return Ok(());
        }
        if !allowed.contains(&self.kind) {
            return Err(ApiError::forbidden(format!(
                "{} token cannot use this endpoint",
                with_article(self.kind)
            )));
        }
        match &self.env {
            Some(own) if own.as_str() == env => Ok(()),
            _ => Err(ApiError::forbidden(format!(
                "token `{}` is not valid for environment `{env}`",
                self.name
            ))),
        }
    }
}

/// The token in an `Authorization` value `Bearer <token>` (HTTP header or gRPC
/// metadata).
pub fn bearer(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The name of a token kind as written in JSON.
pub fn kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Admin => "admin",
        TokenKind::Sdk => "sdk",
        TokenKind::Eval => "eval",
    }
}

/// The kind's name with its indefinite article, for messages: `an admin`, `an sdk`,
/// `an eval`.
pub fn with_article(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Admin => "an admin",
        TokenKind::Sdk => "an sdk",
        TokenKind::Eval => "an eval",
    }
}

/// The name of the bootstrap admin token (`--admin-token`): the actor of its audit
/// entries and its row in the token list.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";

/// The name of the admin token the server generates when it starts with none.
pub const INITIAL_ADMIN_TOKEN_NAME: &str = "initial-admin";

/// The tokens the server accepts, kept in memory (no store access per request).
pub struct Tokens {
    by_id: ArcSwap<HashMap<String, TokenRecord>>,
    bootstrap: Option<[u8; 32]>,
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new token and its record (the token itself is never stored).
pub fn generate(
    name: &str,
    kind: TokenKind,
    env: Option<EnvName>,
    now_ms: u64,
) -> (String, TokenRecord) {
    let mut rng = rand::thread_rng();
    let mut id = [0_u8; 6];
    let mut secret = [0_u8; 24];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let token = format!("swy_{id}_{}", hex::encode(secret));
    let record = TokenRecord {
        id,
        name: name.to_owned(),
        kind,
        env,
        hash: hex::encode(sha256(&token)),
        created_ms: now_ms,
    };
    (token, record)
}

impl Tokens {
    /// Tokens from the store, plus the optional bootstrap admin token.
    pub fn new(records: Vec<TokenRecord>, bootstrap: Option<&str>) -> Self {
        let tokens = Tokens {
            by_id: ArcSwap::from_pointee(HashMap::new()),
            bootstrap: bootstrap.map(sha256),
        };
        tokens.replace(records);
        tokens
    }

    /// Replaces the accepted set (after a create or delete).
    pub fn replace(&self, records: Vec<TokenRecord>) {
        let map = records.into_iter().map(|r| (r.id.clone(), r)).collect();
        self.by_id.store(Arc::new(map));
    }

    /// Whether a bootstrap admin token was configured (`--admin-token`). It lives in
    /// the configuration, not the store, so only a restart without it removes it.
    pub fn has_bootstrap(&self) -> bool {
        self.bootstrap.is_some()
    }

    /// Whether any admin token exists (the bootstrap one included).
    pub fn has_admin(&self) -> bool {
        self.bootstrap.is_some()
            || self
                .by_id
                .load()
                .values()
                .any(|r| r.kind == TokenKind::Admin)
    }

    /// The record of the token with this public id, if it is accepted.
    fn record(&self, id: &str) -> Option<TokenRecord> {
        self.by_id.load().get(id).cloned()
    }

    /// The principal a presented token stands for, if it is valid.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let hash = sha256(token);
        if let Some(bootstrap) = &self.bootstrap {
            if bool::from(bootstrap.ct_eq(&hash)) {
                return Some(Principal {
                    name: BOOTSTRAP_TOKEN_NAME.to_owned(),
                    token_id: None,
                    kind: TokenKind::Admin,
                    env: None,
                });
            }
        }
        let id = token.strip_prefix("swy_")?.split('_').next()?;
        let map = self.by_id.load();
        let record = map.get(id)?;
        let stored = hex::decode(&record.hash).ok()?;
        bool::from(stored.as_slice().ct_eq(&hash)).then(|| Principal {
            name: record.name.clone(),
            token_id: Some(record.id.clone()),
            kind: record.kind,
            env: record.env.clone(),
        })
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing `Authorization: Bearer <token>` header")
        })?;
        let token = header.to_str().ok().and_then(bearer).ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
        state
            .authenticate(token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid or revoked token"))
    }
}

/// A caller holding an admin token. Taken before any body extractor, so a token that
/// may not use an admin endpoint is told so (403) before its request is parsed.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require_admin()?;
        Ok(Admin(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_authenticate_and_others_do_not() {
        let (token, record) = generate("ci", TokenKind::Sdk, Some(EnvName::new("prod")), 1);
        let tokens = Tokens::new(vec![record], Some("let-me-in"));
        let principal = tokens.authenticate(&token).expect("valid");
        assert_eq!(
            (principal.name.as_str(), principal.kind),
            ("ci", TokenKind::Sdk)
        );
        assert_eq!(
            tokens.authenticate("let-me-in").map(|p| p.kind),
            Some(TokenKind::Admin)
        );
        let mut forged = token.clone();
        forged.pop();
        forged.push('x');
        assert_eq!(tokens.authenticate(&forged), None);
        assert_eq!(tokens.authenticate("swy_nope_nope"), None);
        assert_eq!(tokens.authenticate(""), None);
        assert!(principal.require_env("prod", &[TokenKind::Sdk]).is_ok());
        assert!(principal.require_env("dev", &[TokenKind::Sdk]).is_err());
        assert!(principal.require_admin().is_err());
    }
}
