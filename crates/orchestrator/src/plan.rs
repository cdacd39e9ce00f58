//! Release plans: the YAML a person writes, parsed and validated into a [`Plan`].
//!
//! Parsing happens in two passes. Serde reads the document (errors carry the field path
//! through `serde_path_to_error`), then [`Plan::validate`] checks what serde cannot:
//! unique names, known dependencies, an acyclic graph, monotonic weights, thresholds.
//! Every problem is reported with its path (`services[1].depends_on[0]`), all at once.
//!
//! A plan names its environments `environment: x` or `environments: [x, y]`; both are
//! read into the one list [`Plan::environments`] ([`PlanWritten`] is the plan as
//! written), and writing both is a problem.
//!
//! Files: `schema.rs` the types, `parse.rs` reading (and re-reading for every schema
//! problem), `validate.rs` the rules.

use std::fmt;

use serde::Serialize;
use switchyard_core::api_error::FieldProblem;

mod gates;
mod outline;
mod parse;
mod schema;
mod steps;
#[cfg(test)]
mod tests;
mod validate;

pub use gates::{Gate, GateCheck, Gates, Notify, NotifyEvent, NotifyFormat};
pub use outline::flag_keys;
pub use schema::{
    Analysis, Canary, FlagRef, GatewayApiCanary, GuardQuery, HaproxyCanary, HealthCheck,
    HealthTarget, Metric, NginxIngressCanary, OnFailure, OnNoData, Plan, PlanWritten,
    PrometheusQuery, Rollback, Service, Step, StepKind, WebhookCanary,
};
pub use steps::{Ramp, MAX_RAMP_STEPS};

/// A plan that could not be read, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The YAML could not be read into a plan.
    #[error("{path}: {message}")]
    Syntax {
        /// Where in the document.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The plan was read but is not valid.
    #[error("invalid release plan:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field, e.g. `steps[2].weight`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl From<Problem> for FieldProblem {
    fn from(problem: Problem) -> Self {
        FieldProblem {
            path: problem.path,
            message: problem.message,
        }
    }
}

impl From<FieldProblem> for Problem {
    fn from(problem: FieldProblem) -> Self {
        Problem {
            path: problem.path,
            message: problem.message,
        }
    }
}

impl From<Problem> for PlanError {
    fn from(problem: Problem) -> Self {
        PlanError::Syntax {
            path: problem.path,
            message: problem.message,
        }
    }
}

impl Plan {
    /// The step at `index` as what it does.
    pub fn step(&self, index: usize) -> Option<StepKind> {
        let step = self.steps.get(index)?;
        Some(match step.weight {
            Some(w) if !step.approve => {
                StepKind::Weight(w, step.hold.unwrap_or(self.analysis.interval))
            }
            _ => StepKind::Approve,
        })
    }

    /// Where environment `index` is written: `environment` when the plan has one,
    /// `environments[index]` when it has several.
    pub fn environment_path(&self, index: usize) -> String {
        if self.environments.len() > 1 {
            format!("environments[{index}]")
        } else {
            "environment".to_owned()
        }
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The weight of the first weight step (100 when every step is an approval): the
    /// share the pre-checks allow a ramped flag to serve already.
    pub fn first_weight(&self) -> u32 {
        (0..self.steps.len())
            .find_map(|i| match self.step(i) {
                Some(StepKind::Weight(w, _)) => Some(w),
                _ => None,
            })
            .unwrap_or(100)
    }

    /// The largest weight any step sets.
    pub fn max_weight(&self) -> u32 {
        self.steps
            .iter()
            .filter_map(|s| s.weight)
            .max()
            .unwrap_or(0)
    }
}
