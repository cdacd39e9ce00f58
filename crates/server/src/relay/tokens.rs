//! Tokens on a relay: each presented token is checked with the upstream once
//! (`GET /v1/whoami`) and the answer — valid with its principal, or not valid — is
//! kept for a TTL. Requests with the same token wait for one check instead of each
//! asking (no revalidation storm), an unknown token is not asked about again before
//! its TTL ends, and while the upstream is unreachable the last answer stands.
//!
//! Valid answers are also kept on disk (the SHA-256 of each token, never the token),
//! so a relay restarted while its upstream is down still knows its SDKs' tokens.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::upstream::{Upstream, UpstreamError};
use super::RelayTelemetry;
use crate::auth::ticket::{self, TicketError};
use crate::auth::Principal;
use crate::http::whoami::WhoAmI;

/// The id of a relayed token's principal: this prefix and the start of its hash (so
/// stream tickets can name it, `auth/ticket.rs`).
const RELAYED_ID: &str = "relayed-";
/// Hex digits of the hash in that id.
const RELAYED_ID_HEX: usize = 24;

/// The principal of a token the upstream vouched for; `hash` is its hex SHA-256.
fn relayed(hash: &str, who: WhoAmI) -> Principal {
    Principal {
        token_id: Some(format!(
            "{RELAYED_ID}{}",
            &hash[..RELAYED_ID_HEX.min(hash.len())]
        )),
        ..Principal::from(who)
    }
}

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
    /// The valid answers (hex SHA-256 → token), as written to `file`.
    known: Mutex<BTreeMap<String, WhoAmI>>,
    file: PathBuf,
}

impl TokenCache {
    /// Answers from `upstream`, each kept for `ttl`; the valid ones also in `file`,
    /// read back now as answers to check again (standing while the upstream is down).
    pub fn new(
        upstream: Upstream,
        ttl: Duration,
        telemetry: RelayTelemetry,
        file: PathBuf,
    ) -> Self {
        let known: BTreeMap<String, WhoAmI> = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let now = Instant::now();
        let slots = known
            .iter()
            .filter_map(|(hash, who)| {
                let key: [u8; 32] = hex::decode(hash).ok()?.try_into().ok()?;
                let answer = Answer {
                    principal: Some(relayed(hash, who.clone())),
                    until: now,
                };
                Some((key, Arc::new(tokio::sync::Mutex::new(Some(answer)))))
            })
            .collect();
        TokenCache {
            upstream,
            ttl,
            slots: Mutex::new(slots),
            telemetry,
            known: Mutex::new(known),
            file,
        }
    }

    /// Records `who` (or that the token is not valid) and writes the valid answers
    /// to disk when they changed.
    fn remember(&self, key: &[u8; 32], who: Option<&WhoAmI>) {
        let hash = hex::encode(key);
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match who {
            Some(who) => known.insert(hash, who.clone()).as_ref() != Some(who),
            None => known.remove(&hash).is_some(),
        };
        if !changed {
            return;
        }
        let written = serde_json::to_vec(&*known)
            .map_err(std::io::Error::other)
            .and_then(|json| {
                let temporary = self.file.with_extension("tmp");
                if let Some(dir) = self.file.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&temporary, json)?;
                std::fs::rename(&temporary, &self.file)
            });
        if let Err(error) = written {
            tracing::warn!(%error, file = %self.file.display(), "could not keep the token answers on disk");
        }
    }

    fn slot(&self, key: [u8; 32]) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= MAX_TOKENS && !slots.contains_key(&key) {
            let now = Instant::now();
            slots.retain(|_, slot| {
                slot.try_lock().map_or(true, |answer| {
                    answer.as_ref().is_some_and(|a| a.until > now)
                })
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
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let slot = self.slot(key);
        let mut answer = slot.lock().await;
        if let Some(known) = answer.as_ref().filter(|a| a.until > Instant::now()) {
            return Ok(known.principal.clone());
        }
        match self.upstream.whoami(token).await {
            Ok(who) => {
                self.telemetry
                    .token_check(if who.is_some() { "valid" } else { "invalid" });
                self.remember(&key, who.as_ref());
                let principal = who.map(|who| relayed(&hex::encode(key), who));
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

    /// The hash and record of the known token a relayed id names.
    fn known_by_id(&self, id: &str) -> Option<(String, WhoAmI)> {
        let prefix = id.strip_prefix(RELAYED_ID)?;
        if prefix.len() != RELAYED_ID_HEX {
            return None;
        }
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .range(prefix.to_owned()..)
            .next()
            .filter(|(hash, _)| hash.starts_with(prefix))
            .map(|(hash, who)| (hash.clone(), who.clone()))
    }

    /// A stream ticket for a relayed principal (OFREP `eventStreams`).
    pub fn ticket(&self, principal: &Principal, now_ms: u64) -> Option<String> {
        let id = principal.token_id.as_deref()?;
        let (hash, _) = self.known_by_id(id)?;
        Some(ticket::issue(&hash, id, now_ms))
    }

    /// The relayed principal a stream ticket stands for.
    pub fn redeem(&self, presented: &str, now_ms: u64) -> Result<Principal, TicketError> {
        ticket::check(presented, now_ms, |id| {
            let (hash, who) = self.known_by_id(id)?;
            let principal = relayed(&hash, who);
            Some((hash, principal))
        })
    }
}
