//! Waiting for a condition with a deadline: the one poller of the test suites.

use std::future::Future;
use std::time::Duration;

/// How long anything a test waits for may take, unless the test says otherwise.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often a condition is polled.
const INTERVAL: Duration = Duration::from_millis(10);

/// Polls `check` every 10 ms until it returns `Some`, and returns that value; fails
/// the test, naming `what` it waited for, when `deadline` has passed.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
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
