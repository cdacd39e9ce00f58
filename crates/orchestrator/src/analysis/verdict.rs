//! What an analysis found: [`Measurement`]s and their [`Verdict`]s.
//!
//! *Architecture Invariant*: plain data with no I/O (no HTTP client, no error type
//! carrying one), so the pure [`crate::machine`] can hold measurements in its state.

use serde::{Deserialize, Serialize};

/// One measured value with the thresholds it was judged against and the verdict, so a
/// report can say exactly why a release was rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The metric's name (`health` for a service's health checks).
    pub metric: String,
    /// What was measured; absent when there was no data or the measurement failed.
    pub value: Option<f64>,
    /// The smallest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the measurement could not be taken, or why a check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How the verdict was reached when the value and thresholds alone do not say it
    /// (a guard metric's counts and test statistic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A measurement's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the thresholds.
    Pass,
    /// Outside them, or no data under `on_no_data: fail`, or not measurable.
    Fail,
    /// No data under `on_no_data: ignore`.
    Ignored,
}

impl Measurement {
    /// One line saying what was measured against what, e.g. `error-rate 0.2 > max 0.01`,
    /// followed by the detail in parentheses when there is one.
    pub fn explain(&self) -> String {
        match (&self.detail, self.value, &self.error) {
            // A test's verdict without a number to show (e.g. too few samples).
            (Some(detail), None, None) => format!("{}: {detail}", self.metric),
            (Some(detail), _, _) => format!("{} ({detail})", self.explain_value()),
            (None, _, _) => self.explain_value(),
        }
    }

    fn explain_value(&self) -> String {
        let name = &self.metric;
        if let Some(error) = &self.error {
            return format!("{name}: {error}");
        }
        let Some(value) = self.value else {
            return format!("{name}: no data ({})", verdict_word(self.verdict));
        };
        match (self.min, self.max) {
            (_, Some(max)) if value > max => format!("{name} {value} > max {max}"),
            (Some(min), _) if value < min => format!("{name} {value} < min {min}"),
            (Some(min), Some(max)) => format!("{name} {value} within {min}..{max}"),
            (_, Some(max)) => format!("{name} {value} <= max {max}"),
            (Some(min), _) => format!("{name} {value} >= min {min}"),
            (None, None) => format!("{name} {value}"),
        }
    }
}

pub(crate) fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "counted as passed",
        Verdict::Fail => "counted as failed",
        Verdict::Ignored => "ignored",
    }
}
