//! Rate limits (governor's GCRA, keyed): separate budgets per token for reads
//! (evaluations, snapshots, admin reads), stream opens and admin writes; the same three
//! per client address (so minting tokens does not buy more); a cap on a token's open
//! streams; and failed authentication per client address — past that budget the
//! address gets 429 for every request that presents a token until the budget refills,
//! so tokens cannot be guessed at line rate.
//! A refusal is a 429 with `Retry-After` (gRPC: RESOURCE_EXHAUSTED) and is counted in
//! `/metrics`. A limit of 0 is off. docs/server.md#rate-limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::auth::Principal;
use crate::error::ApiError;

/// What a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// Evaluations, snapshots, admin reads, SDK metrics.
    Read,
    /// Opening a stream (SSE, gRPC Sync, flagd event and sync streams).
    Stream,
    /// Admin writes.
    Write,
}

impl Budget {
    fn name(self) -> &'static str {
        match self {
            Budget::Read => "read",
            Budget::Stream => "stream",
            Budget::Write => "write",
        }
    }
}

/// The limits, each per second (0: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Reads per token.
    pub reads_per_token: u32,
    /// Reads per client address.
    pub reads_per_address: u32,
    /// Stream opens per token.
    pub stream_opens_per_token: u32,
    /// Stream opens per client address.
    pub stream_opens_per_address: u32,
    /// Streams a token may hold open at once.
    pub open_streams_per_token: u32,
    /// Admin writes per token.
    pub writes_per_token: u32,
    /// Admin writes per client address.
    pub writes_per_address: u32,
    /// Failed authentications per client address.
    pub auth_failures_per_address: u32,
}

impl Default for LimitSettings {
    /// Writes per token and failed authentication are limited; reads and streams are
    /// not, since one sdk token often serves a whole fleet, and nothing is limited per
    /// address but failed authentication, since a fleet behind a proxy or NAT shares
    /// one address (size those limits to it).
    fn default() -> Self {
        LimitSettings {
            reads_per_token: 0,
            reads_per_address: 0,
            stream_opens_per_token: 0,
            stream_opens_per_address: 0,
            open_streams_per_token: 0,
            writes_per_token: 100,
            writes_per_address: 0,
            auth_failures_per_address: 10,
        }
    }
}

/// Labels of the rate-limit metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// `read`, `stream`, `write`, `open_streams` or `auth_failures`.
    pub budget: &'static str,
    /// `token` or `address`.
    pub per: &'static str,
}

type Keyed<K> = Option<DefaultKeyedRateLimiter<K>>;

fn keyed<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Keyed<K> {
    NonZeroU32::new(per_second)
        .map(|rate| RateLimiter::keyed(Quota::per_second(rate).allow_burst(rate)))
}

/// Every limiter of one server.
pub struct Limits {
    settings: LimitSettings,
    reads: Keyed<String>,
    reads_by_address: Keyed<IpAddr>,
    stream_opens: Keyed<String>,
    stream_opens_by_address: Keyed<IpAddr>,
    writes: Keyed<String>,
    writes_by_address: Keyed<IpAddr>,
    failures: Keyed<IpAddr>,
    /// Addresses refused until the instant, after too many failed authentications.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// How many entries `blocked` has: the common case (none) costs one load.
    blocked_count: AtomicUsize,
    /// Open streams per token name.
    open: Mutex<HashMap<String, u32>>,
    telemetry: LimitTelemetry,
}

/// The rate-limit metrics, registered with the server's others.
#[derive(Clone, Default)]
pub struct LimitTelemetry {
    /// Refusals by budget (`switchyard_rate_limited`).
    pub refused: Family<LimitLabels, Counter>,
    /// Each limit as configured (`switchyard_rate_limit`).
    pub configured: Family<LimitLabels, Gauge>,
}

impl LimitTelemetry {
    /// Registers both families.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "switchyard_rate_limit",
            "Configured rate limits per second (0: off); open_streams is a count",
            self.configured.clone(),
        );
        registry.register(
            "switchyard_rate_limited",
            "Requests refused with 429 by budget",
            self.refused.clone(),
        );
    }
}

/// A request refused for its budget.
#[derive(Debug)]
pub struct Limited {
    /// What ran out.
    pub message: String,
    /// When to try again.
    pub retry_after: Duration,
}

impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        ApiError::too_many_requests(limited.message, limited.retry_after)
    }
}

impl Limits {
    /// Limiters for `settings`, counting into `telemetry`.
    pub fn new(settings: LimitSettings, telemetry: LimitTelemetry) -> Self {
        for (budget, per, value) in [
            ("read", "token", settings.reads_per_token),
            ("read", "address", settings.reads_per_address),
            ("stream", "token", settings.stream_opens_per_token),
            ("stream", "address", settings.stream_opens_per_address),
            ("open_streams", "token", settings.open_streams_per_token),
            ("write", "token", settings.writes_per_token),
            ("write", "address", settings.writes_per_address),
            (
                "auth_failures",
                "address",
                settings.auth_failures_per_address,
            ),
        ] {
            telemetry
                .configured
                .get_or_create(&LimitLabels { budget, per })
                .set(i64::from(value));
        }
        Limits {
            settings,
            reads: keyed(settings.reads_per_token),
            reads_by_address: keyed(settings.reads_per_address),
            stream_opens: keyed(settings.stream_opens_per_token),
            stream_opens_by_address: keyed(settings.stream_opens_per_address),
            writes: keyed(settings.writes_per_token),
            writes_by_address: keyed(settings.writes_per_address),
            failures: keyed(settings.auth_failures_per_address),
            blocked: Mutex::default(),
            blocked_count: AtomicUsize::new(0),
            open: Mutex::default(),
            telemetry,
        }
    }

    fn refuse(
        &self,
        budget: &'static str,
        per: &'static str,
        retry_after: Duration,
        message: String,
    ) -> Limited {
        self.telemetry
            .refused
            .get_or_create(&LimitLabels { budget, per })
            .inc();
        Limited {
            message,
            retry_after,
        }
    }

    /// 429 while `addr` is refused for failed authentications.
    pub fn check_blocked(&self, addr: Option<IpAddr>) -> Result<(), Limited> {
        let Some(addr) = addr else { return Ok(()) };
        if self.blocked_count.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match blocked.get(&addr) {
            Some(&until) if until > now => Err(self.refuse(
                "auth_failures",
                "address",
                until - now,
                format!("too many failed authentications from {addr}; try again later"),
            )),
            Some(_) => {
                blocked.remove(&addr);
                self.blocked_count.store(blocked.len(), Ordering::Relaxed);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed authentication from `addr`; past the budget the address is
    /// refused until it refills, and this answer becomes a 429 too.
    pub fn auth_failed(&self, addr: Option<IpAddr>) -> Result<(), Limited> {
        let (Some(addr), Some(failures)) = (addr, &self.failures) else {
            return Ok(());
        };
        let Err(not_until) = failures.check_key(&addr) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(failures.clock().now());
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.insert(addr, Instant::now() + wait);
        self.blocked_count.store(blocked.len(), Ordering::Relaxed);
        drop(blocked);
        Err(self.refuse(
            "auth_failures",
            "address",
            wait,
            format!(
                "too many failed authentications from {addr} (more than {} a second); try again later",
                self.settings.auth_failures_per_address
            ),
        ))
    }

    /// Spends one request of `budget` for `principal`'s token and `addr`.
    pub fn admit(
        &self,
        budget: Budget,
        principal: &Principal,
        addr: Option<IpAddr>,
    ) -> Result<(), Limited> {
        let (limiter, rate) = match budget {
            Budget::Read => (&self.reads, self.settings.reads_per_token),
            Budget::Stream => (&self.stream_opens, self.settings.stream_opens_per_token),
            Budget::Write => (&self.writes, self.settings.writes_per_token),
        };
        // Times come from each limiter's own clock: making a clock calibrates the
        // CPU's counter, which cost more than the request (a fifth of gRPC's time).
        if let Some(limiter) = limiter {
            if let Err(not_until) = limiter.check_key(&principal.name) {
                return Err(self.refuse(
                    budget.name(),
                    "token",
                    not_until.wait_time_from(limiter.clock().now()),
                    format!(
                        "token `{}` is over its {} budget of {rate} a second",
                        principal.name,
                        budget.name()
                    ),
                ));
            }
        }
        let (limiter, rate) = match budget {
            Budget::Read => (&self.reads_by_address, self.settings.reads_per_address),
            Budget::Stream => (
                &self.stream_opens_by_address,
                self.settings.stream_opens_per_address,
            ),
            Budget::Write => (&self.writes_by_address, self.settings.writes_per_address),
        };
        if let (Some(limiter), Some(addr)) = (limiter, addr) {
            if let Err(not_until) = limiter.check_key(&addr) {
                return Err(self.refuse(
                    budget.name(),
                    "address",
                    not_until.wait_time_from(limiter.clock().now()),
                    format!(
                        "{addr} is over its {} budget of {rate} a second",
                        budget.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A place for one more open stream of `principal`'s token; the stream holds it.
    pub fn open_stream(self: &Arc<Self>, principal: &Principal) -> Result<StreamPermit, Limited> {
        let cap = self.settings.open_streams_per_token;
        if cap == 0 {
            return Ok(StreamPermit(None));
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(principal.name.clone()).or_default();
        if *count >= cap {
            drop(open);
            return Err(self.refuse(
                "open_streams",
                "token",
                Duration::from_secs(1),
                format!(
                    "token `{}` already holds {cap} open streams, the most allowed (--max-streams-per-token)",
                    principal.name
                ),
            ));
        }
        *count += 1;
        Ok(StreamPermit(Some((
            Arc::clone(self),
            principal.name.clone(),
        ))))
    }

    /// Forgets keys not seen for a while (called every minute), so addresses that
    /// came once do not stay in memory.
    pub fn forget_idle(&self) {
        for limiter in [&self.reads, &self.stream_opens, &self.writes]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in [
            &self.reads_by_address,
            &self.stream_opens_by_address,
            &self.writes_by_address,
            &self.failures,
        ]
        .into_iter()
        .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        blocked.retain(|_, until| *until > now);
        self.blocked_count.store(blocked.len(), Ordering::Relaxed);
    }
}

/// One open stream counted against its token's cap, until dropped.
pub struct StreamPermit(Option<(Arc<Limits>, String)>);

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if let Some((limits, name)) = self.0.take() {
            let mut open = limits.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = open.get_mut(&name) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&name);
                }
            }
        }
    }
}

/// Forgets idle keys every minute until `shutdown`.
pub async fn run_cleanup(limits: Arc<Limits>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => limits.forget_idle(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TokenKind;

    fn principal(name: &str) -> Principal {
        Principal {
            name: name.to_owned(),
            token_id: None,
            kind: TokenKind::Sdk,
            env: None,
            credential: None,
        }
    }

    #[test]
    fn each_budget_is_separate_per_token_and_says_when_to_retry() {
        let limits = Limits::new(
            LimitSettings {
                reads_per_token: 3,
                writes_per_token: 1,
                ..LimitSettings::default()
            },
            LimitTelemetry::default(),
        );
        let (a, b) = (principal("a"), principal("b"));
        for _ in 0..3 {
            assert!(limits.admit(Budget::Read, &a, None).is_ok());
        }
        let refused = limits.admit(Budget::Read, &a, None).expect_err("over");
        assert!(
            refused.message.contains("`a` is over its read budget of 3"),
            "{}",
            refused.message
        );
        assert!(refused.retry_after <= Duration::from_secs(1));
        // Another token, another budget; streams are not limited.
        assert!(limits.admit(Budget::Read, &b, None).is_ok());
        assert!(limits.admit(Budget::Write, &a, None).is_ok());
        assert!(limits.admit(Budget::Write, &a, None).is_err());
        for _ in 0..100 {
            assert!(limits.admit(Budget::Stream, &a, None).is_ok());
        }
    }

    #[test]
    fn failed_authentication_blocks_the_address_once_over_budget() {
        let limits = Limits::new(
            LimitSettings {
                auth_failures_per_address: 2,
                ..LimitSettings::default()
            },
            LimitTelemetry::default(),
        );
        let (one, two): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(limits.check_blocked(Some(one)).is_ok());
        assert!(limits.auth_failed(Some(one)).is_ok());
        assert!(limits.auth_failed(Some(one)).is_ok());
        assert!(limits.auth_failed(Some(one)).is_err());
        assert!(
            limits.check_blocked(Some(one)).is_err(),
            "blocked until it refills"
        );
        assert!(limits.check_blocked(Some(two)).is_ok(), "only that address");
        assert!(
            limits.auth_failed(None).is_ok(),
            "no address, no per-address limit"
        );
    }

    #[test]
    fn open_streams_are_capped_per_token_and_released_when_they_end() {
        let limits = Arc::new(Limits::new(
            LimitSettings {
                open_streams_per_token: 2,
                ..LimitSettings::default()
            },
            LimitTelemetry::default(),
        ));
        let a = principal("a");
        let first = limits.open_stream(&a).expect("one");
        let _second = limits.open_stream(&a).expect("two");
        assert!(limits.open_stream(&a).is_err());
        assert!(limits.open_stream(&principal("b")).is_ok());
        drop(first);
        assert!(limits.open_stream(&a).is_ok());
    }
}
