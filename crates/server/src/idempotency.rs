//! `Idempotency-Key` for metric batches: a relay (or an SDK) that sends a batch
//! again because it did not see the answer gets it recorded once. Keys are
//! remembered in memory for [`KEEP`] by the server that recorded them (a retry that
//! reaches another replica within the same second is not recognised: docs/relay.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::error::ApiError;

/// How long a key is remembered.
pub const KEEP: Duration = Duration::from_secs(600);
/// The most keys remembered; past it the expired ones go, then the oldest half.
const MAX_KEYS: usize = 100_000;
/// The longest key accepted.
const MAX_KEY_LEN: usize = 128;

/// The request's `Idempotency-Key`, if it has one: 1 to 128 visible ASCII characters.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= MAX_KEY_LEN
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::bad_request(format!(
            "the Idempotency-Key header must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Being recorded now.
    Recording,
    /// Recorded at this time.
    Done(Instant),
}

/// The keys of recently recorded batches.
#[derive(Debug, Default)]
pub struct RecentKeys {
    keys: Arc<Mutex<HashMap<String, Seen>>>,
}

/// A key claimed for one request: kept as recorded with [`Claim::keep`], released
/// (so a retry records the batch) when dropped without it.
pub struct Claim {
    keys: Arc<Mutex<HashMap<String, Seen>>>,
    key: Option<String>,
}

impl Claim {
    /// Whether this request is the first with its key (and must record the batch).
    pub fn is_new(&self) -> bool {
        self.key.is_some()
    }

    /// The batch was recorded: remember the key.
    pub fn keep(mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.keys).insert(key, Seen::Done(Instant::now()));
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.keys).remove(&key);
        }
    }
}

fn lock(keys: &Mutex<HashMap<String, Seen>>) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
    keys.lock().unwrap_or_else(|e| e.into_inner())
}

impl RecentKeys {
    /// Claims `key`: new, or already recorded; 409 while another request with the
    /// same key is recording it.
    pub fn claim(&self, key: String) -> Result<Claim, ApiError> {
        let mut keys = lock(&self.keys);
        let now = Instant::now();
        match keys.get(&key) {
            Some(Seen::Recording) => {
                return Err(ApiError::conflict(
                    "a batch with this Idempotency-Key is being recorded; retry shortly",
                ))
            }
            Some(Seen::Done(at)) if now.duration_since(*at) < KEEP => {
                return Ok(Claim {
                    keys: Arc::clone(&self.keys),
                    key: None,
                })
            }
            _ => {}
        }
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, seen| match seen {
                Seen::Recording => true,
                Seen::Done(at) => now.duration_since(*at) < KEEP,
            });
            if keys.len() >= MAX_KEYS {
                let mut done: Vec<Instant> = keys
                    .values()
                    .filter_map(|seen| match seen {
                        Seen::Done(at) => Some(*at),
                        Seen::Recording => None,
                    })
                    .collect();
                done.sort_unstable();
                if let Some(median) = done.get(done.len() / 2).copied() {
                    keys.retain(|_, seen| !matches!(seen, Seen::Done(at) if *at <= median));
                }
            }
        }
        keys.insert(key.clone(), Seen::Recording);
        Ok(Claim {
            keys: Arc::clone(&self.keys),
            key: Some(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_recorded_once_and_released_when_recording_fails() {
        let recent = RecentKeys::default();
        let first = recent.claim("a".to_owned()).expect("claimed");
        assert!(first.is_new());
        assert!(
            recent.claim("a".to_owned()).is_err(),
            "the same key while the first is recording"
        );
        drop(first); // recording failed
        let again = recent.claim("a".to_owned()).expect("claimed again");
        assert!(again.is_new(), "a failed batch is recorded by its retry");
        again.keep();
        assert!(!recent.claim("a".to_owned()).expect("known").is_new());
    }

    #[test]
    fn keys_are_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(key(&headers).expect("none"), None);
        headers.insert("idempotency-key", "abc-123".parse().expect("header"));
        assert_eq!(key(&headers).expect("valid").as_deref(), Some("abc-123"));
        headers.insert("idempotency-key", "has space".parse().expect("header"));
        assert!(key(&headers).is_err());
        headers.insert("idempotency-key", "x".repeat(129).parse().expect("header"));
        assert!(key(&headers).is_err());
    }
}
