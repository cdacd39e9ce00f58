//! The statistics against values computed independently with scipy
//! (`scripts/guard_reference.py`: numerical integration of the mixture, root finding
//! for its boundary, `scipy.stats.chisquare`), to 1e-9.

use super::*;

const TOLERANCE: f64 = 1e-9;

fn close(actual: f64, expected: f64, what: &str) {
    let scale = expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= TOLERANCE * scale,
        "{what}: {actual} != {expected}"
    );
}

#[test]
fn the_mixture_ratio_is_the_integral_over_the_mixing_distribution() {
    // (d, v, tau2, ln Λ) — ln Λ by quadrature over θ ~ N(0, τ²).
    for (d, v, tau2, expected) in [
        (0.01, 1e-05, 0.0001, 3.3465069090553596),
        (0.003, 2.5e-06, 4e-06, 0.629936585178589),
        (-0.02, 4e-05, 0.0001, 2.945047087180887),
        (0.5, 0.04, 0.25, 1.703464782808088),
        (0.001, 1e-06, 1e-08, -2.467037707987174e-05),
    ] {
        close(log_mixture_ratio(d, v, tau2), expected, "ln Λ");
    }
}

#[test]
fn the_radius_is_where_the_ratio_reaches_one_over_alpha() {
    for (v, tau2, alpha, expected) in [
        (1e-05, 0.0001, 0.05, 0.009606401928868568),
        (2.5e-06, 4e-06, 0.0166666, 0.006094944406107699),
        (0.04, 0.25, 0.01, 0.7206096456578307),
    ] {
        close(mixture_radius(v, tau2, alpha), expected, "radius");
    }
}

#[test]
fn the_sample_ratio_check_is_scipys_chi_square() {
    for (t, c, share, expected) in [
        (1000, 9000, 0.1, 1.0),
        (1100, 9000, 0.1, 0.002834749080259389),
        (5100, 4900, 0.5, 0.04550026389635857),
        (2400, 7600, 0.25, 0.020921335337794035),
    ] {
        let p = sample_ratio_p_value(t, c, share, 0.0).unwrap();
        close(p, expected, "SRM p");
    }
    for (t, c, share, error, expected) in [
        (2200, 17800, 0.1, 0.0081, 2.642209511996009e-05),
        (51000, 49000, 0.5, 0.0081, 0.0022398065598556813),
    ] {
        let p = sample_ratio_p_value(t, c, share, error).unwrap();
        close(p, expected, "SRM p with sketch error");
    }
}

#[test]
fn the_sequential_sample_ratio_check_is_the_inverse_mixture_ratio() {
    for (t, c, share, error, expected) in [
        (2200, 17800, 0.1, 0.0081, 0.0010192992231508797),
        (1000, 9000, 0.1, 0.0081, 1.0),
        (4700, 5300, 0.5, 0.0, 1.551855966364307e-07),
    ] {
        let check = sample_ratio(t, c, share, error, 0.001).unwrap();
        close(check.always_valid_p, expected, "always-valid p");
        assert_eq!(check.mismatch, expected < 0.001);
        // Always valid costs something: never below the single look's p-value.
        assert!(check.always_valid_p >= check.p_value, "{check:?}");
    }
}

#[test]
fn the_sample_ratio_check_cannot_be_asked_of_a_one_sided_split() {
    assert_eq!(sample_ratio_p_value(10, 0, 1.0, 0.0), None);
    assert_eq!(sample_ratio_p_value(0, 10, 0.0, 0.0), None);
    assert_eq!(sample_ratio_p_value(0, 0, 0.5, 0.0), None);
    assert_eq!(sample_ratio_p_value(1, 1, f64::NAN, 0.0), None);
}

#[test]
fn the_rate_test_matches_the_reference() {
    // (events_t, units_t, events_c, units_c, limit, α, mixture, count error) →
    // (ln evidence, interval low, interval high)
    for ((et, nt, ec, nc, limit, alpha, mixture, error), (log_evidence, low, high)) in [
        (
            (60, 2000, 400, 18000, 0.1, 0.05, 0.5, 0.0),
            (
                -0.25732462814836055,
                -0.1870320088469235,
                0.9497973698513943,
            ),
        ),
        (
            (90, 2000, 360, 18000, 0.0, 0.0166666, 0.5, 0.0081),
            (10.564573461678448, 0.402196493787821, 2.276944445982146),
        ),
        (
            (40, 5000, 100, 5000, 0.0, 0.05, 1.0, 0.0),
            (0.0, -0.8169271678404041, -0.29941773749799455),
        ),
    ] {
        let design = Design {
            max_relative_increase: limit,
            alpha,
            mixture,
            count_error: error,
        };
        let e = rates(
            UnitCounts {
                units: nt,
                with_event: et,
            },
            UnitCounts {
                units: nc,
                with_event: ec,
            },
            &design,
        );
        close(e.log_evidence, log_evidence, "ln evidence");
        close(e.interval.low, low, "interval low");
        close(e.interval.high, high, "interval high");
        close(e.threshold, (1.0 / alpha).ln(), "threshold");
        // The guard fails exactly when the interval is above the limit.
        assert_eq!(e.fails, e.interval.low > limit, "{e:?}");
        assert_eq!(e.fails, log_evidence >= (1.0 / alpha).ln());
    }
}

#[test]
fn degenerate_inputs_answer_without_panicking() {
    let design = Design {
        max_relative_increase: 0.0,
        alpha: 0.05,
        mixture: 0.5,
        count_error: 0.0,
    };
    let none = UnitCounts::default();
    let e = rates(none, none, &design);
    assert!(!e.fails);
    assert_eq!(e.relative_difference, 0.0);
    // Every treatment unit had the event, no control unit did: fails.
    let all = UnitCounts {
        units: 500,
        with_event: 500,
    };
    let clean = UnitCounts {
        units: 500,
        with_event: 0,
    };
    let e = rates(all, clean, &design);
    assert!(e.fails, "{e:?}");
    assert_eq!(e.relative_difference, f64::INFINITY);
    // NaN α is never sure enough.
    let e = rates(
        all,
        clean,
        &Design {
            alpha: f64::NAN,
            ..design
        },
    );
    assert!(!e.fails, "{e:?}");
    // Values: fewer than two per arm give no variance and no evidence of anything odd.
    let mut one = ValueSummary::default();
    one.add(3.0);
    let e = means(one, one, &design);
    assert!(!e.fails);
    assert_eq!(e.relative_difference, 0.0);
}

#[test]
fn value_summaries_merge_and_give_the_sample_variance() {
    let mut a = ValueSummary::default();
    for v in [1.0, 2.0, 3.0] {
        a.add(v);
    }
    let mut b = ValueSummary::default();
    b.add(4.0);
    a.merge(&b);
    close(a.mean(), 2.5, "mean");
    close(a.variance(), 5.0 / 3.0, "variance");
}

#[test]
fn the_mean_test_sees_a_doubled_latency_and_not_an_equal_one() {
    let design = Design {
        max_relative_increase: 0.1,
        alpha: 0.05,
        mixture: 0.5,
        count_error: 0.0,
    };
    let arm = |mean: f64, n: u64| {
        let mut s = ValueSummary::default();
        for i in 0..n {
            // Spread ±50 % around the mean, deterministic.
            s.add(mean * (0.5 + (i % 11) as f64 / 10.0));
        }
        s
    };
    let doubled = means(arm(200.0, 400), arm(100.0, 4000), &design);
    assert!(doubled.fails, "{doubled:?}");
    assert!(doubled.interval.low > 0.1 && doubled.interval.low < 1.0);
    let same = means(arm(100.0, 400), arm(100.0, 4000), &design);
    assert!(!same.fails, "{same:?}");
    assert!(
        same.interval.low < 0.0 && same.interval.high > 0.0,
        "{same:?}"
    );
}
