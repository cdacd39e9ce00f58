//! The load generator: requests `GET /checkout?user=…` at a steady rate, for a bounded
//! time and a bounded count, and tallies the answers by the version that gave them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The service's (or its load balancer's) base URL, `http://127.0.0.1:8000`.
    pub target: String,
    /// Requests per second.
    pub rate: f64,
    /// Stop after this long …
    pub duration: Duration,
    /// … or after this many requests, whichever comes first.
    pub max_requests: u64,
    /// Users `user-0` … `user-{users-1}`, taken in turn.
    pub users: u64,
    /// Requests in flight at most; beyond it ticks are skipped (the rate drops rather
    /// than the generator piling up requests).
    pub concurrency: usize,
    /// How long one request may take.
    pub timeout: Duration,
}

/// A configuration that cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidLoad(String);

impl LoadConfig {
    /// Checks what the types do not.
    pub fn validate(self) -> Result<LoadConfig, InvalidLoad> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 100_000.0) {
            return Err(InvalidLoad(format!(
                "--rate must be above 0 and at most 100000 per second, not {}",
                self.rate
            )));
        }
        if self.users == 0 || self.concurrency == 0 || self.max_requests == 0 {
            return Err(InvalidLoad(
                "--users, --concurrency and --max-requests must be at least 1".into(),
            ));
        }
        if !(self.target.starts_with("http://") || self.target.starts_with("https://")) {
            return Err(InvalidLoad(format!(
                "--target `{}` is not an http(s) URL",
                self.target
            )));
        }
        Ok(self)
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The service answered: which version, and whether with 200.
    Version {
        /// The version named in the body.
        version: String,
        /// 200 (else an error status).
        ok: bool,
    },
    /// No answer from a checkout version: a connection error, a timeout, or a body
    /// that is not the service's (a load balancer's 503).
    Unanswered,
}

/// Reads an answer from its status and body.
pub fn classify(status: u16, body: &str) -> Answer {
    #[derive(Deserialize)]
    struct Body {
        version: String,
    }
    match serde_json::from_str::<Body>(body) {
        Ok(Body { version }) => Answer::Version {
            version,
            ok: status == 200,
        },
        Err(_) => Answer::Unanswered,
    }
}

/// Answers of one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// 200s.
    pub ok: u64,
    /// Any other status.
    pub errors: u64,
}

/// Every answer so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// By version.
    pub versions: BTreeMap<String, Counts>,
    /// Requests no version answered.
    pub unanswered: u64,
}

impl Tally {
    /// Adds one answer.
    pub fn record(&mut self, answer: Answer) {
        match answer {
            Answer::Version { version, ok } => {
                let counts = self.versions.entry(version).or_default();
                if ok {
                    counts.ok += 1;
                } else {
                    counts.errors += 1;
                }
            }
            Answer::Unanswered => self.unanswered += 1,
        }
    }

    /// Requests answered 200.
    pub fn ok(&self) -> u64 {
        self.versions.values().map(|c| c.ok).sum()
    }

    /// Requests not answered 200 (errors and no answers).
    pub fn errors(&self) -> u64 {
        self.versions.values().map(|c| c.errors).sum::<u64>() + self.unanswered
    }

    /// Every request.
    pub fn total(&self) -> u64 {
        self.ok() + self.errors()
    }

    /// One line: `checkout-load: 3000 requests in 30.0s (100.0/s): 2950 ok, 50 errors;
    /// v1 1500 ok 0 errors; v2 1450 ok 50 errors; no answer 0`.
    pub fn summary(&self, elapsed: Duration) -> String {
        let seconds = elapsed.as_secs_f64();
        let per_second = if seconds > 0.0 {
            self.total() as f64 / seconds
        } else {
            0.0
        };
        let mut line = format!(
            "checkout-load: {} requests in {seconds:.1}s ({per_second:.1}/s): {} ok, {} errors",
            self.total(),
            self.ok(),
            self.errors()
        );
        for (version, counts) in &self.versions {
            let _ = write!(
                line,
                "; {version} {} ok {} errors",
                counts.ok, counts.errors
            );
        }
        let _ = write!(line, "; no answer {}", self.unanswered);
        line
    }
}

/// Sends the load until the duration, the request count or `stop` ends it, waits for
/// the requests in flight, and returns the tally and how long it ran.
pub async fn run(
    config: &LoadConfig,
    stop: impl Future<Output = ()>,
) -> Result<(Tally, Duration), reqwest::Error> {
    let http = reqwest::Client::builder().timeout(config.timeout).build()?;
    let url = format!("{}/checkout", config.target.trim_end_matches('/'));
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let mut requests = JoinSet::new();
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rate));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let end = tokio::time::sleep(config.duration);
    tokio::pin!(stop, end);
    let mut sent = 0_u64;
    while sent < config.max_requests {
        tokio::select! {
            () = &mut stop => break,
            () = &mut end => break,
            _ = ticks.tick() => {}
        }
        while let Some(done) = requests.try_join_next() {
            tally.record(done.unwrap_or(Answer::Unanswered));
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // every slot busy: skip this tick
        };
        let user = format!("user-{}", sent % config.users);
        sent += 1;
        let request = http.get(&url).query(&[("user", user)]);
        requests.spawn(async move {
            let _slot = slot;
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.text().await {
                        Ok(body) => classify(status, &body),
                        Err(_) => Answer::Unanswered,
                    }
                }
                Err(_) => Answer::Unanswered,
            }
        });
    }
    while let Some(done) = requests.join_next().await {
        tally.record(done.unwrap_or(Answer::Unanswered));
    }
    Ok((tally, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_the_version_in_the_body() {
        let mut tally = Tally::default();
        for (status, body) in [
            (200, r#"{"version":"v1","path":"old"}"#),
            (200, r#"{"version":"v2","path":"new"}"#),
            (500, r#"{"version":"v2","path":"new","error":"x"}"#),
            (200, r#"{"version":"v1","path":"old"}"#),
            (503, "<html>503 Service Unavailable</html>"),
        ] {
            tally.record(classify(status, body));
        }
        tally.record(Answer::Unanswered);
        assert_eq!(tally.versions["v1"], Counts { ok: 2, errors: 0 });
        assert_eq!(tally.versions["v2"], Counts { ok: 1, errors: 1 });
        assert_eq!((tally.total(), tally.ok(), tally.errors()), (6, 3, 3));
        assert_eq!(
            tally.summary(Duration::from_secs(2)),
            "checkout-load: 6 requests in 2.0s (3.0/s): 3 ok, 3 errors; \
             v1 2 ok 0 errors; v2 1 ok 1 errors; no answer 2"
        );
    }

    #[tokio::test]
    async fn stops_at_the_request_bound_and_tallies_every_answer() {
        use crate::service::{router, AppState};
        let document = serde_json::json!({
            "environment": "test", "revision": 1, "segments": [], "flags": []
        });
        let flags = switchyard_sdk::Client::builder("http://127.0.0.1:9", "unused")
            .transport(switchyard_sdk::Transport::Offline)
            .bootstrap(document)
            .build()
            .await
            .expect("offline client");
        let server =
            switchyard_testkit::http::serve(router(AppState::new(flags, "v1", false, 0.0))).await;
        let target = server.url();
        let config = LoadConfig {
            target,
            rate: 500.0,
            duration: Duration::from_secs(60),
            max_requests: 25,
            users: 7,
            concurrency: 4,
            timeout: Duration::from_secs(5),
        };
        let (tally, _) = run(&config, std::future::pending()).await.expect("runs");
        drop(server);
        assert_eq!(tally.total(), 25, "{tally:?}");
        assert_eq!(
            tally.versions["v1"],
            Counts { ok: 25, errors: 0 },
            "{tally:?}"
        );
    }

    #[test]
    fn nonsense_configurations_are_refused() {
        let good = LoadConfig {
            target: "http://127.0.0.1:8000".into(),
            rate: 50.0,
            duration: Duration::from_secs(1),
            max_requests: 10,
            users: 100,
            concurrency: 8,
            timeout: Duration::from_secs(1),
        };
        assert!(good.clone().validate().is_ok());
        let bad = [
            LoadConfig {
                rate: 0.0,
                ..good.clone()
            },
            LoadConfig {
                rate: f64::NAN,
                ..good.clone()
            },
            LoadConfig {
                users: 0,
                ..good.clone()
            },
            LoadConfig {
                target: "127.0.0.1:8000".into(),
                ..good.clone()
            },
        ];
        for config in bad {
            assert!(config.clone().validate().is_err(), "{config:?} accepted");
        }
    }
}
