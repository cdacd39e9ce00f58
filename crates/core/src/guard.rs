//! The statistics of a guarded rollout: an always-valid sequential test that the
//! treatment's event rate (or mean value) exceeds the control's by more than a relative
//! limit, and the sample-ratio check that the arms are the sizes the ramp says.
//! `docs/guard.md` states the method, its assumptions and its references; this module
//! is its implementation, pure and without panics.
//!
//! # The test
//!
//! Each arm gives an estimate `m` (the share of its units that had the event, or the
//! mean of a tracked value) and the variance `v` of that estimate. With
//! `k = 1 + max_relative_increase`, the guard tests
//!
//! ```text
//! H0: μ_t ≤ k·μ_c        against        H1: μ_t > k·μ_c
//! ```
//!
//! on `d = m_t − k·m_c`, whose variance is `V = v_t + k²·v_c`, with the normal-mixture
//! likelihood ratio (the mixture sequential probability ratio test; mixing distribution
//! `N(0, τ²)` over the true difference):
//!
//! ```text
//! Λ = √(V / (V + τ²)) · exp( τ²·d² / (2·V·(V + τ²)) )
//! ```
//!
//! `Λ` is the evidence against `d = 0`. The guard fails when `d > 0` and `Λ ≥ 1/α`. By
//! Ville's inequality the chance that this *ever* happens under `H0`, however often
//! the counts are looked at, is at most `α`: the test may be re-run at every analysis on
//! the counts since the step started without spending `α` again.
//!
//! Inverting the same boundary gives the always-valid interval: the set of relative
//! differences `r` for which `|m_t − (1 + r)·m_c|` stays within
//! `√(V_r (V_r + τ²)/τ² · (ln(1 + τ²/V_r) + 2 ln(1/α)))`, `V_r = v_t + (1 + r)²·v_c`.
//! The guard fails exactly when the interval's lower end is above the limit.
//!
//! `τ` is `mixture × pooled estimate`: the mixture is tuned to a relative effect of
//! `mixture` (a plan setting), in the units of the data.

pub mod sketch;

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;

/// An event guard's arm: distinct units exposed and how many of them had the event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitCounts {
    /// Distinct units served the arm's variant(s).
    pub units: u64,
    /// Distinct units among them that had the event.
    pub with_event: u64,
}

impl UnitCounts {
    /// `with_event / units`, capped at 1 (two sketches' estimates may cross); 0 without
    /// units.
    pub fn rate(&self) -> f64 {
        if self.units == 0 {
            return 0.0;
        }
        (self.with_event as f64 / self.units as f64).min(1.0)
    }
}

/// A value guard's arm: the values tracked for units served the arm's variant(s). It
/// merges by adding, so it travels from SDKs to the server and across minutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValueSummary {
    /// Values tracked.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_squares: f64,
}

impl ValueSummary {
    /// The mean; 0 without values.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.sum / self.count as f64
    }

    /// The sample variance (`n − 1` denominator, never negative); 0 below two values.
    pub fn variance(&self) -> f64 {
        if self.count < 2 {
            return 0.0;
        }
        let n = self.count as f64;
        ((self.sum_squares - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }

    /// Adds one value.
    pub fn add(&mut self, value: f64) {
        self.count = self.count.saturating_add(1);
        self.sum += value;
        self.sum_squares += value * value;
    }

    /// Adds another summary's values.
    pub fn merge(&mut self, other: &ValueSummary) {
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.sum_squares += other.sum_squares;
    }
}

/// What one guard tests and how surely.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Design {
    /// The largest tolerated relative increase (0.1 = 10 %).
    pub max_relative_increase: f64,
    /// The false-failure probability this test may spend, over all its looks.
    pub alpha: f64,
    /// The relative effect the mixture is tuned to (`τ = mixture × pooled estimate`).
    pub mixture: f64,
    /// The relative standard error of the unit counts (a sketch's; 0 when exact).
    pub count_error: f64,
}

/// An always-valid interval for the relative difference `treatment / control − 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Its lower end (at least −1).
    pub low: f64,
    /// Its upper end (`+∞` when the data cannot bound it yet).
    pub high: f64,
}

/// The test's answer at one look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// The treatment's estimate (rate or mean).
    pub treatment: f64,
    /// The control's estimate.
    pub control: f64,
    /// `treatment / control − 1`; `+∞` when the control's is 0 and the treatment's not.
    pub relative_difference: f64,
    /// The always-valid `1 − α` interval of the relative difference.
    pub interval: Interval,
    /// `ln Λ`: the evidence that the increase exceeds the limit (0 when the estimate
    /// is within it).
    pub log_evidence: f64,
    /// `ln(1/α)`: the evidence at which the guard fails.
    pub threshold: f64,
    /// Whether the increase exceeds the limit: `d > 0` and `ln Λ ≥ ln(1/α)`.
    pub fails: bool,
}

/// One arm's estimate and the variance of that estimate.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    value: f64,
    variance: f64,
}

/// The test on unit counts: the share of units that had the event.
pub fn rates(treatment: UnitCounts, control: UnitCounts, design: &Design) -> Evidence {
    let arm = |c: UnitCounts| {
        let p = c.rate();
        // The variance uses a lightly smoothed rate so that an arm with no event (or
        // only events) does not claim to be exactly known.
        let smoothed = (c.with_event as f64 + 0.5) / (c.units as f64 + 1.0);
        let sampling = smoothed * (1.0 - smoothed) / (c.units.max(1) as f64);
        // Two sketch estimates (units, units with the event) each off by
        // `count_error` relatively: the rate is off by about √2 times that.
        let sketch = 2.0 * (design.count_error * p).powi(2);
        Estimate {
            value: p,
            variance: sampling + sketch,
        }
    };
    let pooled_units = treatment.units.saturating_add(control.units);
    let pooled = (treatment.with_event.saturating_add(control.with_event) as f64 + 0.5)
        / (pooled_units as f64 + 1.0);
    test(
        arm(treatment),
        arm(control),
        design.mixture * pooled,
        design,
    )
}

/// The test on tracked values: their mean.
pub fn means(treatment: ValueSummary, control: ValueSummary, design: &Design) -> Evidence {
    let arm = |s: ValueSummary| Estimate {
        value: s.mean(),
        variance: s.variance() / (s.count.max(1) as f64),
    };
    let mut pooled = treatment;
    pooled.merge(&control);
    let scale = if pooled.mean() != 0.0 {
        pooled.mean().abs()
    } else {
        pooled.variance().sqrt()
    };
    test(arm(treatment), arm(control), design.mixture * scale, design)
}

fn test(t: Estimate, c: Estimate, tau: f64, design: &Design) -> Evidence {
    let alpha = sane_alpha(design.alpha);
    let tau2 = tau * tau;
    let k = 1.0 + design.max_relative_increase;
    let d = t.value - k * c.value;
    let v = t.variance + k * k * c.variance;
    let log_evidence = if d > 0.0 {
        log_mixture_ratio(d, v, tau2)
    } else {
        0.0
    };
    let threshold = (1.0 / alpha).ln();
    Evidence {
        treatment: t.value,
        control: c.value,
        relative_difference: relative(t.value, c.value),
        interval: interval(t, c, tau2, alpha),
        log_evidence,
        threshold,
        fails: d > 0.0 && log_evidence >= threshold,
    }
}

/// `α` kept in [0, 1): out of range becomes the nearest sane value, NaN becomes 0
/// (an infinite threshold: never sure enough to fail).
fn sane_alpha(alpha: f64) -> f64 {
    if alpha.is_nan() {
        return 0.0;
    }
    alpha.clamp(0.0, 1.0 - f64::EPSILON)
}

fn relative(t: f64, c: f64) -> f64 {
    if c != 0.0 {
        t / c - 1.0
    } else if t > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// `ln Λ` of the normal mixture (module docs) for an estimate `d` of variance `v` and
/// mixing variance `tau2`. A zero variance with `d ≠ 0` is infinite evidence; a zero
/// `tau2` is none.
pub fn log_mixture_ratio(d: f64, v: f64, tau2: f64) -> f64 {
    if tau2.is_nan() || tau2 <= 0.0 {
        return 0.0;
    }
    if v.is_nan() || v <= 0.0 {
        return if d != 0.0 { f64::INFINITY } else { 0.0 };
    }
    -0.5 * (tau2 / v).ln_1p() + tau2 * d * d / (2.0 * v * (v + tau2))
}

/// The half-width of the always-valid `1 − α` interval around an estimate of variance
/// `v`: where `Λ` reaches `1/α`. Infinite without a mixture; 0 with a zero variance.
pub fn mixture_radius(v: f64, tau2: f64, alpha: f64) -> f64 {
    if tau2.is_nan() || tau2 <= 0.0 {
        return f64::INFINITY;
    }
    if v.is_nan() || v <= 0.0 {
        return 0.0;
    }
    let alpha = sane_alpha(alpha);
    (v * (v + tau2) / tau2 * ((tau2 / v).ln_1p() + 2.0 * (1.0 / alpha).ln())).sqrt()
}

/// The always-valid interval of `t / c − 1` (module docs). The lower end is where
/// `t − (1 + r)c − radius(r)` (decreasing in `r`) reaches 0. Above it,
/// `(1 + r)c − t − radius(r)` is concave: it rises and falls again, because the
/// variance under a hypothesis `r` grows with `(1 + r)²`, so the upper end is its first
/// zero past the estimate, and `+∞` when it never gets above 0 (too few units yet).
fn interval(t: Estimate, c: Estimate, tau2: f64, alpha: f64) -> Interval {
    let radius = |r: f64| mixture_radius(t.variance + (1.0 + r).powi(2) * c.variance, tau2, alpha);
    let below = |r: f64| t.value - (1.0 + r) * c.value - radius(r);
    let above = |r: f64| (1.0 + r) * c.value - t.value - radius(r);
    const FAR: f64 = 1e9;
    let low = if below(-1.0) <= 0.0 {
        -1.0
    } else if below(FAR) > 0.0 {
        return Interval {
            low: f64::INFINITY,
            high: f64::INFINITY,
        };
    } else {
        bisect(below, -1.0, FAR)
    };
    let peak = golden_max(above, low, FAR);
    let high = if above(peak) > 0.0 {
        bisect(|r| -above(r), low, peak)
    } else {
        f64::INFINITY
    };
    Interval { low, high }
}

/// Where the concave `f` is largest in `[a, b]` (golden-section search).
fn golden_max(f: impl Fn(f64) -> f64, mut a: f64, mut b: f64) -> f64 {
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..200 {
        let (x1, x2) = (b - ratio * (b - a), a + ratio * (b - a));
        if f(x1) < f(x2) {
            a = x1;
        } else {
            b = x2;
        }
    }
    0.5 * (a + b)
}

/// The root of `f` in `[a, b]`, where `f(a) > 0 ≥ f(b)`.
fn bisect(f: impl Fn(f64) -> f64, mut a: f64, mut b: f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (a + b);
        if mid <= a || mid >= b {
            break;
        }
        if f(mid) > 0.0 {
            a = mid;
        } else {
            b = mid;
        }
    }
    0.5 * (a + b)
}

/// The p-value of the sample-ratio check: are `treatment` and `control` units the
/// `treatment_share` split they should be? A chi-square test with one degree of freedom
/// (the z-test of the treatment's count), its variance widened by the counts' relative
/// error (`count_error`, a sketch's; 0 when exact). `None` when it cannot be asked: no
/// units, or a share of 0 or 1 (every unit in one arm).
pub fn sample_ratio_p_value(
    treatment: u64,
    control: u64,
    treatment_share: f64,
    count_error: f64,
) -> Option<f64> {
    let w = treatment_share;
    let (t, c) = (treatment as f64, control as f64);
    let n = t + c;
    if !(w > 0.0 && w < 1.0) || n == 0.0 {
        return None;
    }
    let deviation = (1.0 - w) * t - w * c;
    let variance =
        n * w * (1.0 - w) + count_error.powi(2) * (((1.0 - w) * t).powi(2) + (w * c).powi(2));
    Some(erfc(deviation.abs() / (2.0 * variance).sqrt()))
}

/// The mixture of the sequential sample-ratio check: tuned to 10 % of one arm's units
/// missing, which moves the treatment's share `w` by about `0.1·w(1−w)` (the normal
/// mixture crosses soonest when its scale is near the deviation it meets).
pub const SAMPLE_RATIO_MIXTURE: f64 = 0.1;

/// The sample-ratio check at one look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRatio {
    /// The treatment's share of the units counted.
    pub observed: f64,
    /// The share the ramp serves it.
    pub expected: f64,
    /// The chi-square test's p-value at this look alone ([`sample_ratio_p_value`]).
    pub p_value: f64,
    /// The always-valid p-value, `min(1, 1/Λ)` of the normal mixture on the share's
    /// deviation: looking at every analysis does not make it smaller by chance.
    pub always_valid_p: f64,
    /// Whether `always_valid_p` is below the level: the assignment or the counting is
    /// broken.
    pub mismatch: bool,
}

/// The sample-ratio check (module docs of `docs/guard.md`): the chi-square p-value, and
/// the mismatch decided sequentially at `level` so that repeated looks keep the false
/// alarm rate at `level`. `None` when it cannot be asked (see
/// [`sample_ratio_p_value`]).
pub fn sample_ratio(
    treatment: u64,
    control: u64,
    expected_share: f64,
    count_error: f64,
    level: f64,
) -> Option<SampleRatio> {
    let p_value = sample_ratio_p_value(treatment, control, expected_share, count_error)?;
    let w = expected_share;
    let (t, c) = (treatment as f64, control as f64);
    let n = t + c;
    let observed = t / n;
    let variance = (n * w * (1.0 - w)
        + count_error.powi(2) * (((1.0 - w) * t).powi(2) + (w * c).powi(2)))
        / (n * n);
    let tau = SAMPLE_RATIO_MIXTURE * w * (1.0 - w);
    let log_ratio = log_mixture_ratio(observed - w, variance, tau * tau);
    let always_valid_p = (-log_ratio).exp().min(1.0);
    Some(SampleRatio {
        observed,
        expected: w,
        p_value,
        always_valid_p,
        mismatch: always_valid_p < level,
    })
}

#[cfg(test)]
mod tests;
