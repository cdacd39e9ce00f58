use std::collections::BTreeMap;

use switchyard_core::admin::{EventUnits, FlagUnits, VariantUnits};

use super::*;

fn query(max_relative_increase: f64) -> GuardQuery {
    GuardQuery {
        flag: "f".into(),
        event: "e".into(),
        max_relative_increase,
        confidence: 0.95,
        min_samples: 100,
        value: false,
        mixture: 1.0,
        window: None,
    }
}

fn window(share: f64) -> WeightWindow {
    WeightWindow {
        since: 0,
        share,
        weight_steps: 3,
    }
}

fn arm(units: u64, with_event: u64) -> Arm {
    Arm {
        units: UnitCounts { units, with_event },
        values: ValueSummary::default(),
    }
}

fn tested(outcome: GuardOutcome) -> Tested {
    match outcome {
        GuardOutcome::Tested(t) => *t,
        other => panic!("not tested: {other:?}"),
    }
}

#[test]
fn the_first_variant_is_treatment_and_the_rest_control() {
    let variant = |units, event_units, values: &[f64]| {
        let mut summary = ValueSummary::default();
        values.iter().for_each(|v| summary.add(*v));
        VariantUnits {
            units,
            events: BTreeMap::from([(
                "e".to_owned(),
                EventUnits {
                    units: event_units,
                    values: summary,
                },
            )]),
        }
    };
    let units = FlagUnits {
        since: "2026-12-05T00:00:00Z".into(),
        relative_error: 0.0081,
        variants: BTreeMap::from([
            ("on".to_owned(), variant(100, 5, &[1.0, 3.0])),
            ("off".to_owned(), variant(300, 6, &[2.0])),
            (
                "other".to_owned(),
                VariantUnits {
                    units: 50,
                    events: BTreeMap::new(),
                },
            ),
        ]),
    };
    let (t, c) = arms(&units, "on", "e");
    assert_eq!(
        t.units,
        UnitCounts {
            units: 100,
            with_event: 5
        }
    );
    assert_eq!(
        c.units,
        UnitCounts {
            units: 350,
            with_event: 6
        }
    );
    assert_eq!((t.values.count, c.values.count), (2, 1));
    let (t, _) = arms(&units, "on", "another-event");
    assert_eq!(
        t.units,
        UnitCounts {
            units: 100,
            with_event: 0
        }
    );
}

#[test]
fn too_few_units_give_no_verdict() {
    let outcome = judge(arm(99, 50), arm(10_000, 10), &query(0.1), &window(0.1), 0.0);
    assert!(
        matches!(outcome, GuardOutcome::NoData { .. }),
        "{outcome:?}"
    );
    let m = measurement("g", &query(0.1), Ok(outcome), OnNoData::Pass);
    assert_eq!(m.verdict, Verdict::Pass);
    assert_eq!(
        m.detail.as_deref(),
        Some("no data (counted as passed): treatment 99 units, control 10000: each arm needs 100")
    );
    let m = measurement(
        "g",
        &query(0.1),
        Ok(GuardOutcome::NotStarted),
        OnNoData::Fail,
    );
    assert_eq!(m.verdict, Verdict::Fail);
}

#[test]
fn a_doubled_rate_fails_and_an_equal_one_passes() {
    let q = query(0.1);
    let doubled = judge(arm(2000, 80), arm(18_000, 360), &q, &window(0.1), 0.0081);
    let m = measurement("checkout-errors", &q, Ok(doubled), OnNoData::Pass);
    assert_eq!(m.verdict, Verdict::Fail, "{m:?}");
    let explained = m.explain();
    assert!(
        explained.contains("treatment 80/2000 units = 4.00 %, control 360/18000 units = 2.00 %")
            && explained.contains("the increase exceeds 10 % at 95 % confidence"),
        "{explained}"
    );
    let look = m.guard.expect("a look");
    assert_eq!(
        (look.treatment.units, look.control.units_with_event),
        (2000, 360)
    );
    assert!(look.interval_low.unwrap() > 0.1);
    assert!(look.log_evidence.unwrap() >= look.threshold);
    // α is spent over the plan's three weight steps.
    assert!((look.threshold - (3.0f64 / 0.05).ln()).abs() < 1e-12);
    let srm = look.sample_ratio.expect("a sample-ratio check at 10 %");
    assert!((srm.expected - 0.1).abs() < 1e-12 && srm.always_valid_p > 0.001);

    let equal = judge(arm(2000, 40), arm(18_000, 360), &q, &window(0.1), 0.0081);
    let m = measurement("checkout-errors", &q, Ok(equal), OnNoData::Pass);
    assert_eq!(m.verdict, Verdict::Pass, "{m:?}");
    assert!(
        m.explain().contains("not shown to exceed 10 %"),
        "{}",
        m.explain()
    );
    assert_eq!(m.value, Some(0.0));
}

#[test]
fn a_sample_ratio_mismatch_makes_the_analysis_invalid() {
    let q = query(0.1);
    // The ramp serves 25 %; the treatment has 20 % of 20 000 units.
    let t = tested(judge(
        arm(4000, 80),
        arm(16_000, 320),
        &q,
        &window(0.25),
        0.0081,
    ));
    assert!(t.mismatch(), "{t:?}");
    let m = measurement(
        "checkout-errors",
        &q,
        Ok(GuardOutcome::Tested(Box::new(t))),
        OnNoData::Pass,
    );
    assert_eq!(m.verdict, Verdict::Invalid);
    assert!(
        m.explain()
            .contains("sample-ratio mismatch: the treatment has 4000 of 20000 units = 20.00 %, the ramp serves 25 %"),
        "{}",
        m.explain()
    );
    // At 100 % there is no split to check.
    let t = tested(judge(
        arm(20_000, 80),
        arm(100, 0),
        &q,
        &window(1.0),
        0.0081,
    ));
    assert_eq!(t.sample_ratio, None);
}

#[test]
fn a_value_guard_tests_the_means() {
    let mut q = query(0.1);
    q.value = true;
    let values = |mean: f64, n: u64| {
        let mut a = arm(n, n);
        for i in 0..n {
            a.values.add(mean * (0.5 + (i % 11) as f64 / 10.0));
        }
        a
    };
    let slow = judge(
        values(200.0, 400),
        values(100.0, 3600),
        &q,
        &window(0.1),
        0.0,
    );
    let m = measurement("latency", &q, Ok(slow), OnNoData::Pass);
    assert_eq!(m.verdict, Verdict::Fail, "{m:?}");
    assert!(
        m.explain().contains("treatment mean 199.3 over 400 values"),
        "{}",
        m.explain()
    );
    let same = judge(
        values(100.0, 400),
        values(100.0, 3600),
        &q,
        &window(0.1),
        0.0,
    );
    assert_eq!(
        measurement("latency", &q, Ok(same), OnNoData::Pass).verdict,
        Verdict::Pass
    );
    // Values, not units, must reach min_samples.
    let few = judge(
        values(100.0, 50),
        values(100.0, 3600),
        &q,
        &window(0.1),
        0.0,
    );
    assert!(matches!(few, GuardOutcome::NoData { .. }));
}

#[test]
fn a_flag_server_error_fails_the_measurement() {
    let m = measurement(
        "g",
        &query(0.1),
        Err(MetricError::Unsupported(
            "guard metrics need the flag server's admin API",
        )),
        OnNoData::Pass,
    );
    assert_eq!(m.verdict, Verdict::Fail);
    assert_eq!(
        m.error.as_deref(),
        Some("guard metrics need the flag server's admin API")
    );
}

#[test]
fn numbers_in_words() {
    assert_eq!(percent(0.1), "10");
    assert_eq!(percent(0.125), "12.5");
    assert_eq!(signed_percent(-0.5), "-50 %");
    assert_eq!(signed_percent(f64::INFINITY), "+∞");
    assert_eq!(significant(200.0), "200.0");
    assert_eq!(significant(0.012345), "0.01235");
}
