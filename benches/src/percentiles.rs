//! Nearest-rank percentiles, the one definition every benchmark reports with: the
//! value at rank ⌈p/100 · n⌉ of the sorted samples (rank 1 for p = 0), so every
//! reported figure is one that was measured.

use std::time::Duration;

/// The nearest-rank percentile `p` (0..=100) of `sorted` (ascending); `None` when
/// there are no samples.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: u32) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p as usize * n).div_ceil(100).clamp(1, n);
    Some(sorted[rank - 1])
}

/// Sorts `samples` and describes them in milliseconds: `count=… median=… p90=… p99=…
/// max=…` (`count=0` when empty), the format of the load binaries' `summary` lines.
pub fn distribution(samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    let ms = |p: u32| nearest_rank(samples, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    if samples.is_empty() {
        return "count=0".to_owned();
    }
    format!(
        "count={} median={:.2} p90={:.2} p99={:.2} max={:.2}",
        samples.len(),
        ms(50),
        ms(90),
        ms(99),
        ms(100)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_a_measured_sample() {
        let hundred: Vec<u32> = (1..=100).collect();
        let cases: [(&[u32], u32, Option<u32>); 9] = [
            (&[], 50, None),
            (&[7], 0, Some(7)),
            (&[7], 100, Some(7)),
            (&hundred, 0, Some(1)),
            (&hundred, 50, Some(50)),
            (&hundred, 99, Some(99)),
            (&hundred, 100, Some(100)),
            (&[1, 2, 3], 50, Some(2)),
            (&[1, 2, 3, 4], 50, Some(2)),
        ];
        for (sorted, p, expected) in cases {
            assert_eq!(nearest_rank(sorted, p), expected, "p{p} of {sorted:?}");
        }
    }

    #[test]
    fn distribution_sorts_and_reports_milliseconds() {
        let mut samples: Vec<Duration> = (1..=10).rev().map(Duration::from_millis).collect();
        assert_eq!(
            distribution(&mut samples),
            "count=10 median=5.00 p90=9.00 p99=10.00 max=10.00"
        );
        assert_eq!(distribution(&mut []), "count=0");
    }
}
