//! The `guard` metric: a guarded rollout judged on the flag server's own counts, with no
//! external monitoring.
//!
//! SDK clients count, per flag and variant, the *exposures* (evaluations that served the
//! variant) and the *events* tracked for users served it (`client.track(event, &ctx)`).
//! The *treatment* arm is the flag's first variant (the one a ramp raises); the *control*
//! arm is every other variant, summed. [`Guard`] reads those counts over the plan's window
//! and [`compare`] decides, without I/O, whether the treatment's event rate is higher than
//! the control's by more than the plan allows.
//!
//! # The test
//!
//! With counts `(exposures_t, events_t)` and `(exposures_c, events_c)`, the rates are
//!
//! ```text
//! p_t = min(events_t / exposures_t, 1)        p_c = min(events_c / exposures_c, 1)
//! ```
//!
//! an *event rate per exposure*. A user may trigger an event several times, and events
//! may be tracked without a matching exposure in the window, so `events` can exceed
//! `exposures`; the rate is then capped at 1 (every exposure "had" the event) so that it
//! stays a proportion and its variance `p(1 − p)` is not negative.
//!
//! With `L = max_relative_increase` and `k = 1 + L`, the one-sided hypotheses are
//!
//! ```text
//! H0: p_t <= k·p_c   (the increase is within the limit)
//! H1: p_t >  k·p_c   (the increase exceeds it)
//! ```
//!
//! tested with a Wald z statistic on the difference `d = p_t − k·p_c`:
//!
//! ```text
//! Var(d) = p_t(1 − p_t)/exposures_t + k²·p_c(1 − p_c)/exposures_c
//! z      = d / √Var(d)
//! fails  ⇔  z > z_c,   z_c = Φ⁻¹(confidence)  (1.645 at 95 %, 2.326 at 99 %)
//! ```
//!
//! So a failure means: the increase exceeds the limit with the plan's confidence. A large
//! *observed* increase on few exposures does not fail by itself; it fails once the counts
//! are large enough to show it.
//!
//! # Edge cases
//!
//! - **Too few exposures**: either arm below `min_samples` exposures (or with none at
//!   all) gives no verdict ([`GuardOutcome::NoData`]); the plan's `on_no_data` decides
//!   what that counts as. Early in a ramp the treatment arm is small, so this is the
//!   normal state of the first analyses.
//! - **Zero variance**: `Var(d) = 0` only when both rates are 0 or 1. Then `d` is known
//!   exactly and `z` is its limit: `+∞` when `d > 0` (fails: the treatment had an event
//!   on every exposure while the control had none), `−∞` when `d < 0`, and 0 when
//!   `d = 0` (both rates 0, or both 1 with `L = 0`), which passes.
//! - **No control events**: with `p_c = 0 < p_t < 1` the control term vanishes and
//!   `z = √(exposures_t · p_t / (1 − p_t))`, roughly the square root of the treatment's
//!   event count: about 3 events fail at 95 %, 6 at 99 %. The Wald variance treats the
//!   control's zero as exact, which is optimistic for a small control; it is kept
//!   because an event that the control never shows but the treatment does is exactly
//!   what a guard is for, the control is usually the larger arm during a ramp, and
//!   `min_samples` plus the analysis's `failure_limit` keep one unlucky interval from
//!   rolling a release back. The reported relative increase is then `+∞`.
//! - **What is counted**: exposures are evaluations, not distinct users, and the server
//!   counts per variant, not per rule — users served the first variant by a targeted
//!   rule (staff, beta) are treatment too. Both arms are counted the same way, so the
//!   comparison is fair; but a user evaluating the flag many times contributes many
//!   correlated exposures, which makes the binomial variance optimistic.
//! - **Relative increase** (the reported value): `p_t / p_c − 1`; `+∞` when
//!   `p_c = 0 < p_t`, 0 when both are 0. It is informative only: the verdict is the
//!   test's, never a comparison of this value with `max_relative_increase`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use statrs::distribution::{ContinuousCDF, Normal};
use switchyard_sdk::admin::{AdminClient, VariantCounts};

use super::{
    error_chain, Measurement, MetricError, MetricKind, MetricRequest, MetricSource, Verdict,
};
use crate::plan::{GuardQuery, OnNoData};

/// One arm's counts over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Arm {
    /// Evaluations that served the arm's variant(s).
    pub exposures: u64,
    /// The guarded event tracked for users served them.
    pub events: u64,
}

impl Arm {
    /// Events per exposure, capped at 1 (see the module docs); 0 without exposures.
    pub fn rate(&self) -> f64 {
        if self.exposures == 0 {
            return 0.0;
        }
        (self.events as f64 / self.exposures as f64).min(1.0)
    }
}

/// What the test found when both arms had enough exposures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardResult {
    /// The flag's first variant.
    pub treatment: Arm,
    /// Every other variant.
    pub control: Arm,
    /// `p_t / p_c − 1`; `+∞` when `p_c = 0 < p_t`, 0 when both are 0.
    pub relative_increase: f64,
    /// The test statistic (may be `±∞` when the variance is 0).
    pub z: f64,
    /// `Φ⁻¹(confidence)`: the largest passing `z`.
    pub threshold_z: f64,
    /// Whether the increase exceeds the limit with the plan's confidence.
    pub fails: bool,
}

/// The outcome of one guard check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GuardOutcome {
    /// An arm has fewer than `min_samples` exposures: no verdict yet.
    NoData {
        /// The flag's first variant.
        treatment: Arm,
        /// Every other variant.
        control: Arm,
    },
    /// Both arms were large enough and the test ran.
    Tested(GuardResult),
}

/// Runs the test of the module docs on the two arms with the query's limit, confidence
/// and minimum sample size. Pure; never panics.
pub fn compare(treatment: Arm, control: Arm, query: &GuardQuery) -> GuardOutcome {
    let needed = query.min_samples.max(1);
    if treatment.exposures < needed || control.exposures < needed {
        return GuardOutcome::NoData { treatment, control };
    }
    let (p_t, p_c) = (treatment.rate(), control.rate());
    let k = 1.0 + query.max_relative_increase;
    let d = p_t - k * p_c;
    let variance = p_t * (1.0 - p_t) / treatment.exposures as f64
        + k * k * p_c * (1.0 - p_c) / control.exposures as f64;
    let z = if variance > 0.0 {
        d / variance.sqrt()
    } else if d > 0.0 {
        f64::INFINITY
    } else if d < 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    let threshold_z = critical_z(query.confidence);
    GuardOutcome::Tested(GuardResult {
        treatment,
        control,
        relative_increase: relative_increase(p_t, p_c),
        z,
        threshold_z,
        fails: z > threshold_z,
    })
}

/// `p_t / p_c − 1`, with the limits of the module docs where `p_c = 0`.
fn relative_increase(p_t: f64, p_c: f64) -> f64 {
    if p_c > 0.0 {
        p_t / p_c - 1.0
    } else if p_t > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// `Φ⁻¹(confidence)`, the standard normal quantile. Plans keep `confidence` within
/// (0.5, 1); anything else is clamped into [0, 1] (NaN to 1: never sure enough to fail)
/// because the quantile function panics outside it.
pub fn critical_z(confidence: f64) -> f64 {
    let p = if confidence.is_nan() {
        1.0
    } else {
        confidence.clamp(0.0, 1.0)
    };
    Normal::standard().inverse_cdf(p)
}

/// The treatment (`first_variant`) and control (every other variant) arms of a flag's
/// per-variant counts, for `event`. A variant absent from the counts had no exposures.
pub fn arms(
    counts: &BTreeMap<String, VariantCounts>,
    first_variant: &str,
    event: &str,
) -> (Arm, Arm) {
    let mut treatment = Arm::default();
    let mut control = Arm::default();
    for (variant, c) in counts {
        let arm = if variant == first_variant {
            &mut treatment
        } else {
            &mut control
        };
        arm.exposures = arm.exposures.saturating_add(c.exposures);
        arm.events = arm
            .events
            .saturating_add(c.events.get(event).copied().unwrap_or(0));
    }
    (treatment, control)
}

/// The `window` query parameter for a duration: whole minutes, rounded up (the server
/// reads humantime durations of at least a minute and counts per minute anyway).
pub fn window_param(window: Duration) -> String {
    format!("{}m", window.as_secs().div_ceil(60).max(1))
}

/// A guard metric measured against a flag server.
#[derive(Debug, Clone)]
pub struct Guard {
    query: GuardQuery,
    admin: AdminClient,
    env: String,
}

impl Guard {
    /// Checks `query.flag` in `env` through `admin`.
    pub fn new(query: GuardQuery, admin: AdminClient, env: impl Into<String>) -> Self {
        Guard {
            query,
            admin,
            env: env.into(),
        }
    }

    /// Reads the flag's first variant and its counts over the window, and runs the test.
    pub async fn check(&self) -> Result<GuardOutcome, MetricError> {
        let (env, key) = (self.env.as_str(), self.query.flag.as_str());
        let flag_server = |context: String| {
            move |source: switchyard_sdk::Error| MetricError::FlagServer { context, source }
        };
        let reading = || format!("reading flag `{key}` in `{env}`");
        let flag = match self.admin.flag(env, key).await {
            Ok(Some(flag)) => Ok(flag.value),
            // The admin client turns the server's 404 into `None`; it is still the
            // server's answer, so it is reported as one.
            Ok(None) => Err(switchyard_sdk::Error::Api {
                status: 404,
                code: "not_found".into(),
                message: format!("flag `{key}` does not exist in `{env}`"),
            }),
            Err(e) => Err(e),
        }
        .map_err(flag_server(reading()))?;
        let Some(first_variant) = flag.variants.keys().next() else {
            return Err(MetricError::BadAnswer {
                url: "the flag server".to_owned(),
                detail: format!("flag `{key}` in `{env}` with no variants"),
            });
        };
        let window = window_param(self.query.window);
        let counts = self
            .admin
            .flag_metrics(env, key, &window)
            .await
            .map_err(flag_server(format!(
                "reading the metrics of flag `{key}` in `{env}` over {window}"
            )))?;
        let (treatment, control) = arms(&counts, first_variant, &self.query.event);
        Ok(compare(treatment, control, &self.query))
    }
}

impl Guard {
    /// The relative increase of the event rate, or `None` while an arm is below
    /// `min_samples`.
    ///
    /// The value alone does not say whether the guard passed — a large increase on few
    /// exposures passes — so do not judge it with [`super::judge`]: use [`Guard::check`]
    /// and [`measurement`].
    pub async fn measure(&self) -> Result<Option<f64>, MetricError> {
        Ok(match self.check().await? {
            GuardOutcome::NoData { .. } => None,
            GuardOutcome::Tested(result) => Some(result.relative_increase),
        })
    }
}

/// How long a guard metric's reads of the flag server may take.
const GUARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The source of `guard` metrics: the flag server's per-variant counts (through its
/// admin API) under the statistical test, in the release's current environment.
#[derive(Debug, Clone)]
pub struct GuardSource {
    admin: Option<AdminClient>,
}

impl GuardSource {
    /// Reads the flag server through `admin`; without it every guard metric fails (it
    /// needs the admin API).
    pub fn new(admin: Option<AdminClient>) -> Self {
        GuardSource { admin }
    }
}

#[async_trait]
impl MetricSource for GuardSource {
    async fn measure(&self, request: MetricRequest<'_>) -> Measurement {
        let Some((metric, query)) = request.metric.and_then(|m| Some((m, m.guard.as_ref()?)))
        else {
            return request.failed(MetricError::WrongKind(MetricKind::Guard));
        };
        let outcome = match &self.admin {
            None => Err(MetricError::Unsupported(
                "guard metrics need the flag server's admin API",
            )),
            Some(admin) => {
                let guard = Guard::new(query.clone(), admin.clone(), request.environment);
                tokio::time::timeout(GUARD_TIMEOUT, guard.check())
                    .await
                    .unwrap_or(Err(MetricError::Unsupported(
                        "the flag server did not answer within 10s",
                    )))
            }
        };
        measurement(&metric.name, query, outcome, metric.on_no_data)
    }
}

/// The measurement of a guard check: the relative increase against
/// `max_relative_increase`, with the verdict of the test (not of comparing the two) and
/// the counts and statistic in `detail`, so the explanation says why.
pub fn measurement(
    metric_name: &str,
    query: &GuardQuery,
    outcome: Result<GuardOutcome, MetricError>,
    on_no_data: OnNoData,
) -> Measurement {
    let mut m = Measurement {
        metric: metric_name.to_owned(),
        value: None,
        // The limit is stated in the detail: the verdict is the test's, not a
        // comparison of the observed increase with the limit.
        min: None,
        max: None,
        verdict: Verdict::Fail,
        error: None,
        detail: None,
    };
    match outcome {
        Err(e) => m.error = Some(error_chain(&e)),
        Ok(GuardOutcome::NoData { treatment, control }) => {
            m.verdict = match on_no_data {
                OnNoData::Fail => Verdict::Fail,
                OnNoData::Pass => Verdict::Pass,
                OnNoData::Ignore => Verdict::Ignored,
            };
            m.detail = Some(format!(
                "no data ({}): treatment {} exposures, control {}: each arm needs {}",
                m.verdict.counted_as(),
                treatment.exposures,
                control.exposures,
                query.min_samples
            ));
        }
        Ok(GuardOutcome::Tested(result)) => {
            // An infinite increase (no control events) has no JSON form; the detail
            // carries the counts.
            m.value = Some(result.relative_increase).filter(|v| v.is_finite());
            m.verdict = if result.fails {
                Verdict::Fail
            } else {
                Verdict::Pass
            };
            m.detail = Some(tested_detail(&result, query));
        }
    }
    m
}

/// E.g. `treatment 12/400 = 3.00 %, control 10/1000 = 1.00 %: z 3.10 > 1.64, the increase
/// exceeds 10 % at 95 % confidence`.
fn tested_detail(result: &GuardResult, query: &GuardQuery) -> String {
    let mut text = String::new();
    for (name, arm) in [("treatment", result.treatment), ("control", result.control)] {
        if !text.is_empty() {
            text.push_str(", ");
        }
        let _ = write!(
            text,
            "{name} {}/{} = {:.2} %",
            arm.events,
            arm.exposures,
            arm.rate() * 100.0
        );
    }
    let (comparison, conclusion) = if result.fails {
        (">", "the increase exceeds")
    } else {
        ("<=", "not shown to exceed")
    };
    let _ = write!(
        text,
        ": z {:.2} {comparison} {:.2}, {conclusion} {} % at {} % confidence",
        result.z,
        result.threshold_z,
        percent(query.max_relative_increase),
        percent(query.confidence)
    );
    text
}

/// `0.1` → `10`, `0.125` → `12.5`, `0.999` → `99.9`.
fn percent(fraction: f64) -> String {
    let text = format!("{:.2}", fraction * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(max_relative_increase: f64, confidence: f64, min_samples: u64) -> GuardQuery {
        GuardQuery {
            flag: "f".into(),
            event: "checkout_error".into(),
            max_relative_increase,
            confidence,
            min_samples,
            window: Duration::from_secs(600),
        }
    }

    fn arm(exposures: u64, events: u64) -> Arm {
        Arm { exposures, events }
    }

    fn close(actual: f64, expected: f64) -> bool {
        actual == expected || (actual - expected).abs() <= 1e-9
    }

    /// Expected z, quantiles and relative increases computed independently in Python
    /// (`statistics.NormalDist().inv_cdf`, the formula of the module docs).
    #[test]
    fn the_test_matches_reference_values() {
        const Z95: f64 = 1.6448536269514715;
        const Z99: f64 = 2.3263478740408408;
        const Z80: f64 = 0.8416212335729144;
        const INF: f64 = f64::INFINITY;
        #[rustfmt::skip]
        let cases = [
            // (what, treatment, control, L, confidence, z, threshold, relative increase, fails)
            ("clear regression", arm(1000, 100), arm(1000, 10), 0.1, 0.95, 8.81322042247234, Z95, 9.0, true),
            ("equal rates", arm(1000, 50), arm(1000, 50), 0.1, 0.95, -0.4880081361394696, Z95, 0.0, false),
            ("increase within the limit", arm(100_000, 1050), arm(100_000, 1000), 0.1, 0.95, -1.0571805063843516, Z95, 0.05, false),
            ("exactly at the limit", arm(1000, 110), arm(1000, 100), 0.1, 0.95, 0.0, Z95, 0.1, false),
            ("an improvement", arm(1000, 20), arm(1000, 40), 0.1, 0.95, -2.9527644870132344, Z95, -0.5, false),
            ("large but noisy at 99 %", arm(120, 6), arm(120, 2), 0.1, 0.99, 1.336862910827053, Z99, 2.0, false),
            ("large but noisy at 95 %", arm(120, 6), arm(120, 2), 0.1, 0.95, 1.336862910827053, Z95, 2.0, false),
            ("large but noisy at 80 %", arm(120, 6), arm(120, 2), 0.1, 0.8, 1.336862910827053, Z80, 2.0, true),
            ("small increase, many samples, 95 %", arm(20_000, 260), arm(20_000, 200), 0.1, 0.95, 1.7956910222755054, Z95, 0.3, true),
            ("small increase, many samples, 99 %", arm(20_000, 260), arm(20_000, 200), 0.1, 0.99, 1.7956910222755054, Z99, 0.3, false),
            ("early ramp, clear", arm(100, 12), arm(1900, 19), 0.0, 0.95, 3.3766955895077015, Z95, 11.0, true),
            ("early ramp, noisy", arm(100, 3), arm(1900, 19), 0.0, 0.95, 1.1620632093951293, Z95, 2.0, false),
            ("no control events", arm(200, 10), arm(200, 0), 0.1, 0.95, 3.244428422615251, Z95, INF, true),
            ("no events at all", arm(500, 0), arm(500, 0), 0.1, 0.95, 0.0, Z95, 0.0, false),
            ("capped treatment, no control events", arm(100, 250), arm(100, 0), 0.1, 0.95, INF, Z95, INF, true),
            ("both capped", arm(100, 150), arm(100, 100), 0.1, 0.95, -INF, Z95, 0.0, false),
            ("both capped, no limit", arm(100, 100), arm(100, 100), 0.0, 0.95, 0.0, Z95, 0.0, false),
            ("exactly min_samples", arm(100, 30), arm(100, 1), 0.1, 0.95, 6.133973528913118, Z95, 29.0, true),
        ];
        for (what, t, c, l, confidence, z, threshold, increase, fails) in cases {
            let GuardOutcome::Tested(r) = compare(t, c, &query(l, confidence, 100)) else {
                panic!("{what}: no verdict");
            };
            assert_eq!((r.treatment, r.control), (t, c), "{what}");
            assert!(close(r.z, z), "{what}: z {} != {z}", r.z);
            assert!(
                close(r.threshold_z, threshold),
                "{what}: threshold {} != {threshold}",
                r.threshold_z
            );
            assert!(
                close(r.relative_increase, increase),
                "{what}: increase {} != {increase}",
                r.relative_increase
            );
            assert_eq!(r.fails, fails, "{what}: {r:?}");
        }
    }

    #[test]
    fn too_few_exposures_give_no_verdict() {
        let cases = [
            ("small treatment", arm(99, 50), arm(1000, 10), 100),
            ("small control", arm(1000, 50), arm(99, 0), 100),
            ("both small", arm(10, 10), arm(10, 0), 100),
            ("no exposures at all", arm(0, 0), arm(0, 0), 100),
            ("no exposures, min_samples 0", arm(0, 3), arm(10, 0), 0),
        ];
        for (what, t, c, min_samples) in cases {
            assert_eq!(
                compare(t, c, &query(0.1, 0.95, min_samples)),
                GuardOutcome::NoData {
                    treatment: t,
                    control: c
                },
                "{what}"
            );
        }
    }

    #[test]
    fn quantiles_match_the_standard_normal() {
        for (confidence, expected) in [
            (0.5, 0.0),
            (0.8, 0.8416212335729144),
            (0.9, 1.2815515655446008),
            (0.95, 1.6448536269514715),
            (0.99, 2.3263478740408408),
            (1.0, f64::INFINITY),
            (2.0, f64::INFINITY),
            (f64::NAN, f64::INFINITY),
            (0.0, f64::NEG_INFINITY),
        ] {
            let z = critical_z(confidence);
            assert!(close(z, expected), "{confidence}: {z} != {expected}");
        }
    }

    #[test]
    fn rates_are_capped_at_one() {
        assert_eq!(arm(0, 5).rate(), 0.0);
        assert_eq!(arm(4, 1).rate(), 0.25);
        assert_eq!(arm(4, 9).rate(), 1.0);
    }

    #[test]
    fn the_first_variant_is_treatment_and_the_rest_control() {
        let three: BTreeMap<String, VariantCounts> = serde_json::from_value(serde_json::json!({
            "blue": { "exposures": 100, "events": { "checkout_error": 7, "purchase": 40 } },
            "green": { "exposures": 300, "events": { "checkout_error": 3 } },
            "red": { "exposures": 50, "events": { "purchase": 9 } },
        }))
        .expect("counts as the server sends them");
        assert_eq!(
            arms(&three, "blue", "checkout_error"),
            (arm(100, 7), arm(350, 3))
        );
        assert_eq!(arms(&three, "red", "purchase"), (arm(50, 9), arm(400, 40)));
        // The first variant not served yet, an event never tracked.
        assert_eq!(
            arms(&three, "on", "checkout_error"),
            (arm(0, 0), arm(450, 10))
        );
        assert_eq!(arms(&three, "blue", "other"), (arm(100, 0), arm(350, 0)));
        assert_eq!(arms(&BTreeMap::new(), "on", "e"), (arm(0, 0), arm(0, 0)));
    }

    #[test]
    fn windows_are_whole_minutes() {
        for (secs, expected) in [
            (600, "10m"),
            (60, "1m"),
            (90, "2m"),
            (30, "1m"),
            (0, "1m"),
            (31 * 86_400, "44640m"),
        ] {
            assert_eq!(window_param(Duration::from_secs(secs)), expected);
        }
    }

    #[test]
    fn measurements_take_the_verdict_from_the_test() {
        let q = query(0.1, 0.95, 100);
        let tested = |t, c| Ok(compare(t, c, &q));
        let cases = [
            (
                tested(arm(1000, 100), arm(1000, 10)),
                OnNoData::Fail,
                Verdict::Fail,
                Some(9.0),
                "guard 9 (treatment 100/1000 = 10.00 %, control 10/1000 = 1.00 %: \
                 z 8.81 > 1.64, the increase exceeds 10 % at 95 % confidence)",
            ),
            // The observed increase is far above the limit, but the sample is too small
            // to show it: the guard passes and says why.
            (
                tested(arm(120, 6), arm(120, 2)),
                OnNoData::Fail,
                Verdict::Pass,
                Some(2.0),
                "guard 2 (treatment 6/120 = 5.00 %, control 2/120 = 1.67 %: \
                 z 1.34 <= 1.64, not shown to exceed 10 % at 95 % confidence)",
            ),
            (
                tested(arm(1000, 50), arm(1000, 50)),
                OnNoData::Fail,
                Verdict::Pass,
                Some(0.0),
                "guard 0 (treatment 50/1000 = 5.00 %, control 50/1000 = 5.00 %: \
                 z -0.49 <= 1.64, not shown to exceed 10 % at 95 % confidence)",
            ),
            (
                tested(arm(200, 10), arm(200, 0)),
                OnNoData::Fail,
                Verdict::Fail,
                None,
                "guard: treatment 10/200 = 5.00 %, control 0/200 = 0.00 %: \
                 z 3.24 > 1.64, the increase exceeds 10 % at 95 % confidence",
            ),
            (
                tested(arm(40, 12), arm(1000, 10)),
                OnNoData::Fail,
                Verdict::Fail,
                None,
                "guard: no data (counted as failed): treatment 40 exposures, control 1000: \
                 each arm needs 100",
            ),
            (
                tested(arm(40, 12), arm(1000, 10)),
                OnNoData::Pass,
                Verdict::Pass,
                None,
                "guard: no data (counted as passed): treatment 40 exposures, control 1000: \
                 each arm needs 100",
            ),
            (
                tested(arm(1000, 12), arm(0, 0)),
                OnNoData::Ignore,
                Verdict::Ignored,
                None,
                "guard: no data (ignored): treatment 1000 exposures, control 0: each arm \
                 needs 100",
            ),
        ];
        for (outcome, on_no_data, verdict, value, explained) in cases {
            let m = measurement("guard", &q, outcome, on_no_data);
            assert_eq!(
                (m.verdict, m.value, m.max, m.min, m.error.as_deref()),
                (verdict, value, None, None, None)
            );
            assert_eq!(m.explain(), explained);
        }
    }

    #[test]
    fn a_flag_server_error_fails_the_measurement() {
        let error = MetricError::FlagServer {
            context: "reading flag `f` in `production`".into(),
            source: switchyard_sdk::Error::Api {
                status: 404,
                code: "not_found".into(),
                message: "flag `f` does not exist in `production`".into(),
            },
        };
        let m = measurement("guard", &query(0.1, 0.95, 100), Err(error), OnNoData::Pass);
        assert_eq!(
            (m.verdict, m.value, m.detail.as_deref()),
            (Verdict::Fail, None, None)
        );
        assert_eq!(
            m.explain(),
            "guard: flag server: reading flag `f` in `production`: admin API 404: not_found: \
             flag `f` does not exist in `production`"
        );
    }

    #[test]
    fn percentages_drop_trailing_zeros() {
        for (fraction, text) in [
            (0.1, "10"),
            (0.125, "12.5"),
            (0.95, "95"),
            (0.999, "99.9"),
            (0.0, "0"),
            (2.0, "200"),
        ] {
            assert_eq!(percent(fraction), text);
        }
    }
}
