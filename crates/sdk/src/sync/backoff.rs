//! The jittered exponential back-off between reconnection attempts.

use std::time::Duration;

use rand::Rng;

/// A jittered exponential back-off.
#[derive(Debug)]
pub(super) struct Backoff {
    start: Duration,
    max: Duration,
    pub(super) next: Duration,
}

impl Backoff {
    pub(super) fn new(start: Duration, max: Duration) -> Self {
        Backoff {
            start,
            max,
            next: start,
        }
    }

    /// The next delay (the current step ±50 %), doubling the step up to the maximum.
    pub(super) fn delay(&mut self) -> Duration {
        let step = self.next;
        self.next = step.saturating_mul(2).min(self.max);
        step.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }

    pub(super) fn reset(&mut self) {
        self.next = self.start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_maximum_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut step = Duration::from_millis(100);
        for _ in 0..20 {
            let delay = backoff.delay();
            assert!(
                delay >= step / 2 && delay <= step.mul_f64(1.5),
                "{delay:?} for step {step:?}"
            );
            step = (step * 2).min(Duration::from_secs(30));
        }
        assert_eq!(backoff.next, Duration::from_secs(30));
        backoff.reset();
        assert!(backoff.delay() <= Duration::from_millis(150));
    }
}
