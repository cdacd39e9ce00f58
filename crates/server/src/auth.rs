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
use tokio::sync::watch;

use crate::error::ApiError;
use crate::limits::Budget;
use crate::state::AppState;
use crate::store::{PreviousSecret, TokenKind, TokenRecord};
use crate::tls::Peer;

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
    /// The stored token's secret that was presented, for streams that must end when
    /// it stops being accepted; `None` for the bootstrap token and relayed ones.
    pub credential: Option<Credential>,
}

/// Which secret of a stored token a caller presented, and until when it is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    hash: [u8; 32],
    /// When it stops being accepted (expiry, or the grace end of a rotated secret),
    /// ms since the epoch; `None`: until revoked or rotated.
    pub until_ms: Option<u64>,
}

/// Why a presented token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token has that secret (never issued, revoked, or mistyped).
    Unknown,
    /// The token named `name` expired at `at_ms`.
    Expired {
        /// The token's name.
        name: String,
        /// When it expired.
        at_ms: u64,
    },
    /// The secret is the one token `name`'s last rotation replaced, and its grace
    /// period ended at `at_ms`.
    Rotated {
        /// The token's name.
        name: String,
        /// When the old secret stopped being accepted.
        at_ms: u64,
    },
}

impl Refusal {
    /// What a 401 says.
    pub fn message(&self) -> String {
        match self {
            Refusal::Unknown => "invalid or revoked token".to_owned(),
            Refusal::Expired { name, at_ms } => format!(
                "token `{name}` expired at {}; an admin can issue a new one",
                crate::console::history::rfc3339(*at_ms)
            ),
            Refusal::Rotated { name, at_ms } => format!(
                "token `{name}` was rotated: this secret stopped working at {}; use the new one",
                crate::console::history::rfc3339(*at_ms)
            ),
        }
    }
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
    by_id: ArcSwap<HashMap<String, Accepted>>,
    bootstrap: Option<[u8; 32]>,
    /// Bumped on every change of the set, so streams re-check their credential.
    changes: watch::Sender<u64>,
}

/// A stored token with its secrets' hashes decoded once.
struct Accepted {
    record: TokenRecord,
    hash: [u8; 32],
    /// A rotated secret's hash and when it stops being accepted.
    previous: Option<([u8; 32], u64)>,
}

impl Accepted {
    fn new(record: TokenRecord) -> Option<Self> {
        let decode =
            |hex_hash: &str| -> Option<[u8; 32]> { hex::decode(hex_hash).ok()?.try_into().ok() };
        let Some(hash) = decode(&record.hash) else {
            tracing::error!(token = %record.name, "stored token hash is not SHA-256 hex; the token is not accepted");
            return None;
        };
        let previous = record
            .previous
            .as_ref()
            .and_then(|p| Some((decode(&p.hash)?, p.until_ms)));
        Some(Accepted {
            record,
            hash,
            previous,
        })
    }

    /// Whether the secret hashing to `hash` is accepted at `now_ms`, and until when.
    fn accepts(&self, hash: &[u8; 32], now_ms: u64) -> Result<Option<u64>, Refusal> {
        let name = || self.record.name.clone();
        let current = bool::from(self.hash.ct_eq(hash));
        let until = match self.previous {
            _ if current => self.record.expires_ms,
            Some((old, until_ms)) if bool::from(old.ct_eq(hash)) => {
                if now_ms >= until_ms {
                    return Err(Refusal::Rotated {
                        name: name(),
                        at_ms: until_ms,
                    });
                }
                Some(self.record.expires_ms.map_or(until_ms, |e| e.min(until_ms)))
            }
            _ => return Err(Refusal::Unknown),
        };
        match self.record.expires_ms {
            Some(at_ms) if now_ms >= at_ms => Err(Refusal::Expired {
                name: name(),
                at_ms,
            }),
            _ => Ok(until),
        }
    }

    fn principal(&self, hash: [u8; 32], until_ms: Option<u64>) -> Principal {
        Principal {
            name: self.record.name.clone(),
            token_id: Some(self.record.id.clone()),
            kind: self.record.kind,
            env: self.record.env.clone(),
            credential: Some(Credential { hash, until_ms }),
        }
    }
}

/// SHA-256 of a token, as stored and compared.
pub(crate) fn sha256(token: &str) -> [u8; 32] {
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
        expires_ms: None,
        rotated_ms: None,
        previous: None,
    };
    (token, record)
}

/// A new secret for `record` (same id, name and rights): the old one stays accepted
/// until `grace_until_ms`.
pub fn rotate(record: &TokenRecord, now_ms: u64, grace_until_ms: u64) -> (String, TokenRecord) {
    let (token, fresh) = generate(&record.name, record.kind, record.env.clone(), now_ms);
    // Keep the id: it is in the new secret too, so the record is found by either.
    let token = token.replacen(&fresh.id, &record.id, 1);
    let rotated = TokenRecord {
        hash: hex::encode(sha256(&token)),
        rotated_ms: Some(now_ms),
        previous: (grace_until_ms > now_ms).then(|| PreviousSecret {
            hash: record.hash.clone(),
            until_ms: grace_until_ms,
        }),
        ..record.clone()
    };
    (token, rotated)
}

impl Tokens {
    /// Tokens from the store, plus the optional bootstrap admin token.
    pub fn new(records: Vec<TokenRecord>, bootstrap: Option<&str>) -> Self {
        let tokens = Tokens {
            by_id: ArcSwap::from_pointee(HashMap::new()),
            bootstrap: bootstrap.map(sha256),
            changes: watch::Sender::new(0),
        };
        tokens.replace(records);
        tokens
    }

    /// Replaces the accepted set (after a create, rotation or delete); streams held
    /// by a token no longer accepted end.
    pub fn replace(&self, records: Vec<TokenRecord>) {
        let map = records
            .into_iter()
            .filter_map(Accepted::new)
            .map(|a| (a.record.id.clone(), a))
            .collect();
        self.by_id.store(Arc::new(map));
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Changes whenever the accepted set does.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
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
                .any(|a| a.record.kind == TokenKind::Admin)
    }

    /// The principal a presented token stands for, if it is valid now.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        self.check(token, crate::environments::now_ms()).ok()
    }

    /// The principal a presented token stands for at `now_ms`, or why it is refused.
    pub fn check(&self, token: &str, now_ms: u64) -> Result<Principal, Refusal> {
        let hash = sha256(token);
        if let Some(bootstrap) = &self.bootstrap {
            if bool::from(bootstrap.ct_eq(&hash)) {
                return Ok(Principal {
                    name: BOOTSTRAP_TOKEN_NAME.to_owned(),
                    token_id: None,
                    kind: TokenKind::Admin,
                    env: None,
                    credential: None,
                });
            }
        }
        let id = token
            .strip_prefix("swy_")
            .and_then(|rest| rest.split('_').next())
            .ok_or(Refusal::Unknown)?;
        let map = self.by_id.load();
        let accepted = map.get(id).ok_or(Refusal::Unknown)?;
        let until = accepted.accepts(&hash, now_ms)?;
        Ok(accepted.principal(hash, until))
    }

    /// Whether `principal`'s credential is still accepted at `now_ms`: `Some(until)`
    /// when it is (`until` may have moved: a rotation starts a grace period), `None`
    /// once it is revoked, expired or past its grace. Principals without a credential
    /// keep theirs.
    pub fn standing(&self, principal: &Principal, now_ms: u64) -> Option<Option<u64>> {
        let Some(credential) = &principal.credential else {
            return Some(None);
        };
        let map = self.by_id.load();
        let accepted = map.get(principal.token_id.as_deref()?)?;
        accepted.accepts(&credential.hash, now_ms).ok()
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
            .authenticate_within(token, budget(parts), Peer::of(&parts.extensions))
            .await
    }
}

/// What an HTTP request spends of its token's rate limits.
fn budget(parts: &Parts) -> Budget {
    // Nested routers see their own part of the path; the budget needs all of it.
    let path = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(parts.uri.path(), |original| original.0.path());
    if path == "/v1/sdk/stream" {
        Budget::Stream
    } else if path.starts_with("/v1/admin/") && !parts.method.is_safe() {
        Budget::Write
    } else {
        Budget::Read
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

    #[test]
    fn expiry_and_rotation_decide_which_secrets_are_accepted_until_when() {
        let (first, mut record) = generate("web", TokenKind::Sdk, Some(EnvName::new("prod")), 0);
        record.expires_ms = Some(10_000);
        let (second, rotated) = rotate(&record, 1_000, 5_000);
        assert!(
            second.starts_with(&format!("swy_{}_", record.id)),
            "{second}"
        );
        let tokens = Tokens::new(vec![rotated.clone()], None);
        let until = |token: &str, now| {
            tokens
                .check(token, now)
                .map(|p| p.credential.and_then(|c| c.until_ms))
        };
        // The new secret until the token expires, the old one until its grace ends.
        assert_eq!(until(&second, 2_000), Ok(Some(10_000)));
        assert_eq!(until(&first, 2_000), Ok(Some(5_000)));
        let rotated_refusal = Refusal::Rotated {
            name: "web".into(),
            at_ms: 5_000,
        };
        assert_eq!(until(&first, 5_000), Err(rotated_refusal));
        let expired = Refusal::Expired {
            name: "web".into(),
            at_ms: 10_000,
        };
        assert_eq!(until(&second, 10_000), Err(expired));
        // A stream's standing follows the set: a rotation without grace ends the old one.
        let old = tokens.check(&first, 2_000).expect("in grace");
        assert_eq!(tokens.standing(&old, 2_000), Some(Some(5_000)));
        let (_, again) = rotate(&rotated, 3_000, 3_000);
        assert_eq!(again.previous, None);
        tokens.replace(vec![again]);
        assert_eq!(tokens.standing(&old, 3_000), None);
        tokens.replace(Vec::new());
        assert_eq!(tokens.check(&second, 3_000).err(), Some(Refusal::Unknown));
    }
}
