//! The ramp as written — weight steps, approvals and time-based ramps — checked
//! against the written step indices and turned into the plan's steps: a `ramp: { to,
//! over, every }` step becomes one weight step per `every`, rising evenly from the
//! weight before it to `to`, each held (and analysed) for `every`.

use std::time::Duration;

use super::validate::check_gate;
use super::{Problem, Step};

/// At most this many steps from one ramp.
pub const MAX_RAMP_STEPS: u64 = 1000;

/// A time-based ramp: from the weight before it to `to`, a step every `every` for
/// `over`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// The weight reached at the end, in percent.
    pub to: u32,
    /// How long the ramp takes.
    #[serde(with = "super::schema::duration")]
    pub over: Duration,
    /// How long each step is held (and analysed).
    #[serde(with = "super::schema::duration")]
    pub every: Duration,
}

/// The plan's steps from the written ones, every problem reported at its written path
/// (`steps[i]`); a step with a problem is kept as written (the plan is refused anyway,
/// and no other rule then reports its absence).
pub(super) fn read(written: Vec<Step>, problems: &mut Vec<Problem>) -> Vec<Step> {
    let mut problem = |path: String, message: String| problems.push(Problem { path, message });
    let mut steps = Vec::with_capacity(written.len());
    let mut previous = 0;
    for (i, step) in written.into_iter().enumerate() {
        let at = format!("steps[{i}]");
        for (j, gate) in step.gates.iter().enumerate() {
            check_gate(&format!("{at}.gates[{j}]"), gate, &mut problem);
        }
        if let Some(ramp) = &step.ramp {
            if step.weight.is_some() || step.approve || step.hold.is_some() {
                problem(
                    at.clone(),
                    "a `ramp` step has no `weight`, `hold` or `approve` (it sets its own)".into(),
                );
                steps.push(step);
                continue;
            }
            match expand(ramp, previous, &step) {
                Ok(expanded) => {
                    previous = ramp.to;
                    steps.extend(expanded);
                }
                Err((field, message)) => {
                    problem(format!("{at}.ramp{field}"), message);
                    steps.push(step);
                }
            }
            continue;
        }
        match (step.weight, step.approve) {
            (Some(_), true) | (None, false) => problem(
                at.clone(),
                "a step has either `weight`, `ramp` or `approve: true`".into(),
            ),
            (None, true) if step.hold.is_some() => problem(
                format!("{at}.hold"),
                "`hold` belongs to a weight step".into(),
            ),
            (Some(w), false) if !(1..=100).contains(&w) => {
                problem(format!("{at}.weight"), "must be between 1 and 100".into())
            }
            (Some(w), false) if w < previous => problem(
                format!("{at}.weight"),
                format!("weights never decrease: {w} follows {previous}"),
            ),
            (Some(w), false) => previous = w,
            (None, true) => {}
        }
        steps.push(step);
    }
    steps
}

/// The weight steps of `ramp` after weight `from`: `n = ⌈over / every⌉` steps, step `k`
/// at `from + ⌈(to − from)·k / n⌉` (so the last is `to`), each held `every`; the
/// written step's gates guard the first. Or the problem, with its field.
fn expand(ramp: &Ramp, from: u32, written: &Step) -> Result<Vec<Step>, (&'static str, String)> {
    if !(1..=100).contains(&ramp.to) {
        return Err((".to", "must be between 1 and 100".into()));
    }
    if ramp.to <= from {
        return Err((
            ".to",
            format!(
                "a ramp rises: {} does not exceed the weight before it, {from}",
                ramp.to
            ),
        ));
    }
    if ramp.every.is_zero() {
        return Err((".every", "must be longer than 0s".into()));
    }
    if ramp.every > ramp.over {
        return Err((".every", "must not be longer than `over`".into()));
    }
    let count = ramp.over.as_millis().div_ceil(ramp.every.as_millis());
    if count > u128::from(MAX_RAMP_STEPS) {
        return Err((
            ".every",
            format!("{count} steps; a ramp has at most {MAX_RAMP_STEPS} (make `every` longer)"),
        ));
    }
    // At most 1000 steps and 100 points, so every product fits and every cast is exact.
    let n = count as u32;
    let rise = ramp.to - from;
    Ok((1..=n)
        .map(|k| Step {
            weight: Some(from + (rise * k).div_ceil(n)),
            hold: Some(ramp.every),
            approve: false,
            gates: if k == 1 {
                written.gates.clone()
            } else {
                Vec::new()
            },
            ramp: None,
        })
        .collect())
}
