//! Deterministic fault injection: the new code path fails exactly a chosen share of
//! its requests, spread evenly, so a demo or a test sees the same error rate every run.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A rate as parts per million, so the arithmetic that picks failing requests is exact
/// (no floating-point drift over millions of requests).
const PPM: u64 = 1_000_000;

/// A fail rate outside `0.0..=1.0` (or not a number).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("a fail rate is a number from 0.0 to 1.0, not `{0}`")]
pub struct InvalidRate(pub String);

/// Parses a fail rate (`0`, `0.2`, `1.0`); for clap and the admin endpoint alike.
pub fn parse_rate(text: &str) -> Result<f64, InvalidRate> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(InvalidRate(text.trim().to_owned())),
    }
}

/// Whether the `n`-th request (counting from 1) fails at `ppm` parts per million: when
/// `floor(n · rate)` steps up. Of any `k` consecutive requests, `floor(k · rate)` or one
/// more fail; at 0.2 exactly every fifth does.
pub fn fails(n: u64, ppm: u32) -> bool {
    let ppm = u64::from(ppm).min(PPM);
    n > 0 && n * ppm / PPM > (n - 1) * ppm / PPM
}

/// The new code path's fail rate, changeable while requests run.
#[derive(Debug, Default)]
pub struct Faults {
    ppm: AtomicU32,
    requests: AtomicU64,
}

impl Faults {
    /// Fails `rate` (0.0–1.0, clamped) of the requests from now on.
    pub fn new(rate: f64) -> Faults {
        let faults = Faults::default();
        faults.set_rate(rate);
        faults
    }

    /// Changes the rate; the request count carries on.
    pub fn set_rate(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * PPM as f64).round() as u32;
        self.ppm.store(ppm, Ordering::Relaxed);
    }

    /// The current rate.
    pub fn rate(&self) -> f64 {
        f64::from(self.ppm.load(Ordering::Relaxed)) / PPM as f64
    }

    /// Counts one request on the new path and says whether it fails.
    pub fn next_fails(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        fails(n, self.ppm.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_exactly_the_share_evenly() {
        // (rate, failing requests among the first 20, failures among 1000)
        let cases: &[(f64, &[u64], usize)] = &[
            (0.0, &[], 0),
            (0.2, &[5, 10, 15, 20], 200),
            (0.25, &[4, 8, 12, 16, 20], 250),
            (0.3, &[4, 7, 10, 14, 17, 20], 300),
            (0.5, &[2, 4, 6, 8, 10, 12, 14, 16, 18, 20], 500),
            (
                1.0,
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                ],
                1000,
            ),
        ];
        for &(rate, first, per_thousand) in cases {
            let faults = Faults::new(rate);
            let outcomes: Vec<bool> = (0..1000).map(|_| faults.next_fails()).collect();
            let failing: Vec<u64> = (1..=20).filter(|&n| outcomes[n as usize - 1]).collect();
            assert_eq!(failing, first, "rate {rate}: failing among the first 20");
            assert_eq!(
                outcomes.iter().filter(|&&f| f).count(),
                per_thousand,
                "rate {rate}: failures among 1000"
            );
        }
    }

    #[test]
    fn a_new_rate_applies_from_the_next_request() {
        let faults = Faults::new(0.0);
        assert!(!(0..10).any(|_| faults.next_fails()));
        faults.set_rate(1.0);
        assert!(faults.next_fails());
        assert_eq!(faults.rate(), 1.0);
    }

    #[test]
    fn parses_rates_from_zero_to_one_only() {
        assert_eq!(parse_rate("0.2"), Ok(0.2));
        assert_eq!(parse_rate(" 1\n"), Ok(1.0));
        assert_eq!(parse_rate("0"), Ok(0.0));
        for bad in ["-0.1", "1.5", "NaN", "inf", "", "abc"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
    }
}
