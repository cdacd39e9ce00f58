//! Tokens on a relay: each presented token is checked with the upstream once
//! (`GET /v1/whoami`) and the answer — valid with its principal, or not valid — is
//! kept for a TTL. Requests with the same token wait for one check instead of each
//! asking (no revalidation storm), an unknown token is not asked about again before
//! its TTL ends, and while the upstream is unreachable the last answer stands.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::upstream::{Upstream, UpstreamError};
use super::RelayTelemetry;
use crate::auth::Principal;

/// The most tokens remembered; past it, expired answers are dropped first.
const MAX_TOKENS: usize = 100_000;

/// An answer of the upstream about one token.
#[derive(Debug, Clone)]
struct Answer {
    principal: Option<Principal>,
    until: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Answer>>>;

/// The relay's token answers.
pub struct TokenCache {
    upstream: Upstream,
    ttl: Duration,
    slots: Mutex<HashMap<[u8; 32], Slot>>,
    telemetry: RelayTelemetry,
}

impl TokenCache {
    /// Answers from `upstream`, each kept for `ttl`.
    pub fn new(upstream: Upstream, ttl: Duration, telemetry: RelayTelemetry) -> Self {
        TokenCache {
            upstream,
            ttl,
            slots: Mutex::new(HashMap::new()),
            telemetry,
        }
    }

    fn slot(&self, key: [u8; 32]) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= MAX_TOKENS && !slots.contains_key(&key) {
            let now = Instant::now();
            slots.retain(|_, slot| {
                slot.try_lock()
                    .map_or(true, |answer| answer.as_ref().is_some_and(|a| a.until > now))
            });
            if slots.len() >= MAX_TOKENS {
                slots.clear();
            }
        }
        Arc::clone(slots.entry(key).or_default())
    }

    /// The principal `token` stands for (`None`: not valid upstream), from the
    /// cache or, once per TTL, from the upstream. Fails only when the upstream is
    /// unreachable and this token was never answered.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, UpstreamError> {
        let slot = self.slot(Sha256::digest(token.as_bytes()).into());
        let mut answer = slot.lock().await;
        if let Some(known) = answer.as_ref().filter(|a| a.until > Instant::now()) {
            return Ok(known.principal.clone());
        }
        match self.upstream.whoami(token).await {
            Ok(who) => {
                let principal = who.map(Principal::from);
                self.telemetry.token_check(if principal.is_some() {
                    "valid"
                } else {
                    "invalid"
                });
                *answer = Some(Answer {
                    principal: principal.clone(),
                    until: Instant::now() + self.ttl,
                });
                Ok(principal)
            }
            Err(error) => {
                self.telemetry.token_check("unreachable");
                match answer.as_ref() {
                    // The upstream is down: the last answer stands until it is back.
                    Some(last) => Ok(last.principal.clone()),
                    None => Err(error),
                }
            }
        }
    }
}
