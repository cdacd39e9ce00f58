//! Stream tickets: a browser's `EventSource` cannot send an `Authorization` header, so
//! the OFREP event stream's URL carries a ticket instead of the token:
//! `{token id}.{expiry, ms since epoch}.{HMAC-SHA256, hex}`, the MAC keyed by the
//! token's stored hash over the id and the expiry. Every replica can check it (tokens
//! live in the shared store), revoking the token ends its tickets, and the URL never
//! holds the token itself. Expiries are rounded to whole days so that the ticket, and
//! the stream URL a provider compares to decide whether to reconnect, stays the same
//! for a day. A relay issues and checks its own, keyed by the hash of a token its
//! upstream vouched for (`relay/tokens.rs`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Principal, Tokens};

/// A ticket lives between one and two days.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Why a ticket was refused (each is a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not `id.expiry.mac`.
    #[error("the stream ticket is malformed; take the URL from an OFREP bulk evaluation's `eventStreams`")]
    Malformed,
    /// Past its expiry.
    #[error("the stream ticket expired; evaluate the flags again (POST /ofrep/v1/evaluate/flags) for a new one")]
    Expired,
    /// Its token is revoked, or the MAC does not match.
    #[error("invalid stream ticket, or its token was revoked")]
    Invalid,
}

fn mac(key: &str, id: &str, expires_ms: u64) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(b"switchyard-stream-ticket\0");
    mac.update(id.as_bytes());
    mac.update(b"\0");
    mac.update(&expires_ms.to_be_bytes());
    mac
}

/// A ticket for the token with public `id` whose stored hash is `hash`, valid for
/// one to two days from `now_ms`.
pub fn issue(hash: &str, id: &str, now_ms: u64) -> String {
    let expires_ms = (now_ms / DAY_MS + 2) * DAY_MS;
    let tag = mac(hash, id, expires_ms).finalize().into_bytes();
    format!("{id}.{expires_ms}.{}", hex::encode(tag))
}

/// The principal `ticket` stands for at `now_ms`; `lookup` gives the stored hash and
/// principal of a token id it knows.
pub fn check(
    ticket: &str,
    now_ms: u64,
    lookup: impl FnOnce(&str) -> Option<(String, Principal)>,
) -> Result<Principal, TicketError> {
    let mut parts = ticket.split('.');
    let (Some(id), Some(expires), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TicketError::Malformed);
    };
    let expires_ms: u64 = expires.parse().map_err(|_| TicketError::Malformed)?;
    let tag = hex::decode(tag).map_err(|_| TicketError::Malformed)?;
    let (hash, principal) = lookup(id).ok_or(TicketError::Invalid)?;
    mac(&hash, id, expires_ms)
        .verify_slice(&tag)
        .map_err(|_| TicketError::Invalid)?;
    if now_ms >= expires_ms {
        return Err(TicketError::Expired);
    }
    Ok(principal)
}

impl Tokens {
    /// A ticket for `principal`'s token, valid for one to two days from `now_ms`;
    /// `None` for a token without an id (the bootstrap admin token) or not stored here.
    pub fn ticket(&self, principal: &Principal, now_ms: u64) -> Option<String> {
        let id = principal.token_id.as_deref()?;
        // Every bulk evaluation asks: read the record in place, no copy.
        Some(issue(&self.by_id.load().get(id)?.record.hash, id, now_ms))
    }

    /// The principal a ticket stands for at `now_ms`.
    pub fn redeem(&self, ticket: &str, now_ms: u64) -> Result<Principal, TicketError> {
        check(ticket, now_ms, |id| {
            let map = self.by_id.load();
            let accepted = map.get(id)?;
            // As if its current secret were presented: refused once it expires.
            let until = accepted.accepts(&accepted.hash, now_ms).ok()?;
            Some((
                accepted.record.hash.clone(),
                accepted.principal(accepted.hash, until),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::generate;
    use crate::store::TokenKind;
    use switchyard_core::model::EnvName;

    const NOW: u64 = 1_780_000_000_000;

    fn tokens() -> (Tokens, Principal) {
        let (token, record) = generate("web", TokenKind::Sdk, Some(EnvName::new("prod")), 1);
        let tokens = Tokens::new(vec![record], None);
        let principal = tokens.authenticate(&token).expect("valid");
        (tokens, principal)
    }

    #[test]
    fn a_ticket_stands_for_its_token_until_it_expires() {
        let (tokens, principal) = tokens();
        let ticket = tokens.ticket(&principal, NOW).expect("a ticket");
        assert_eq!(tokens.redeem(&ticket, NOW), Ok(principal.clone()));
        // The same for the rest of the day: the stream URL does not change.
        assert_eq!(tokens.ticket(&principal, NOW + 1000), Some(ticket.clone()));
        assert_eq!(
            tokens.redeem(&ticket, NOW + 2 * DAY_MS),
            Err(TicketError::Expired)
        );
    }

    #[test]
    fn forged_malformed_and_revoked_tickets_are_refused() {
        let (tokens, principal) = tokens();
        let ticket = tokens.ticket(&principal, NOW).expect("a ticket");
        let (head, tag) = ticket.rsplit_once('.').expect("three parts");
        let mut forged = tag.to_owned();
        forged.replace_range(0..1, if tag.starts_with('0') { "1" } else { "0" });
        assert_eq!(
            tokens.redeem(&format!("{head}.{forged}"), NOW),
            Err(TicketError::Invalid)
        );
        // A later expiry under the old MAC.
        let id = principal.token_id.as_deref().expect("an id");
        let later = format!("{id}.{}.{tag}", NOW + 10 * DAY_MS);
        assert_eq!(tokens.redeem(&later, NOW), Err(TicketError::Invalid));
        for bad in ["", "a.b", "a.1.zz", "a.1.00.extra", "a.x.00"] {
            assert_eq!(
                tokens.redeem(bad, NOW),
                Err(TicketError::Malformed),
                "{bad}"
            );
        }
        tokens.replace(Vec::new());
        assert_eq!(tokens.redeem(&ticket, NOW), Err(TicketError::Invalid));
    }
}
