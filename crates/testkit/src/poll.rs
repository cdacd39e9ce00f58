//! Waiting for a condition with a deadline: the one poller of the test suites.

use std::future::Future;
use std::time::Duration;

/// How long anything a test waits for may take, unless the test says otherwise.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often a condition is polled.
const INTERVAL: Duration = Duration::from_millis(10);

/// What one poll found: done with a value, or not yet (with what was seen instead,
/// for the failure message, when the check can say).
pub trait Attempt<T> {
    /// `Ok(value)` when done; `Err(what was seen)` otherwise.
    fn outcome(self) -> Result<T, Option<String>>;
}

impl<T> Attempt<T> for Option<T> {
    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Attempt<T> for Result<T, String> {
    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Polls `check` every 10 ms until it is done (`Some(value)` or `Ok(value)`), and
/// returns the value; fails the test when `deadline` has passed, naming `what` it
/// waited for and, when the check returned `Err(seen)`, what it saw last.
pub async fn eventually<T, A, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    A: Attempt<T>,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let seen = match check().await.outcome() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= until {
            match seen {
                Some(seen) => panic!("timed out after {deadline:?} waiting for {what}; saw {seen}"),
                None => panic!("timed out after {deadline:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Polls a synchronous condition every 10 ms until it holds; fails after `deadline`.
pub async fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    eventually(deadline, what, || {
        std::future::ready(condition().then_some(()))
    })
    .await;
}
