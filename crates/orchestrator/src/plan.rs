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
mod regions;
mod schema;
mod steps;
mod strategy;
#[cfg(test)]
mod tests;
mod validate;

pub use gates::{Gate, GateCheck, Gates, Notify, NotifyEvent, NotifyFormat};
pub use outline::flag_keys;
pub use regions::{Region, RegionFailure, Regions, Waves};
pub use schema::{
    Analysis, Canary, FlagRef, GatewayApiCanary, GuardQuery, HaproxyCanary, HealthCheck,
    HealthTarget, Metric, NginxIngressCanary, OnFailure, OnNoData, Plan, PlanWritten,
    PrometheusQuery, Rollback, Servers, Service, Step, StepKind, WebhookCanary,
};
pub use steps::{Ramp, MAX_RAMP_STEPS};
pub use strategy::{Batch, BlueGreen, Hotfix, Rolling, Strategy};

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
    /// Gives every service the steps it runs: its strategy's expansion of the plan's
    /// steps, or the hotfix's single step. Done whenever a plan is read.
    pub fn expand_steps(&mut self) {
        for service in &mut self.services {
            service.steps = match &self.hotfix {
                Some(hotfix) => hotfix.steps(self.analysis.interval),
                None => {
                    let strategy = service.strategy.as_ref().unwrap_or(&self.strategy);
                    let servers = match &service.canary {
                        Canary::Haproxy(h) => h.canary.0.len() as u32,
                        _ => 1,
                    };
                    let steps = strategy.steps(&self.steps, servers, self.analysis.interval);
                    let region = service
                        .region
                        .as_deref()
                        .and_then(|name| self.regions.as_ref().and_then(|r| r.region(name)));
                    match region {
                        Some(region) if *strategy == Strategy::Canary => {
                            regions::capped(&steps, region.max_weight)
                        }
                        _ => steps,
                    }
                }
            };
        }
    }

    /// The strategy service `i` follows.
    pub fn strategy_of(&self, i: usize) -> &Strategy {
        self.services
            .get(i)
            .and_then(|s| s.strategy.as_ref())
            .unwrap_or(&self.strategy)
    }

    /// The steps service `i` runs (see [`Plan::expand_steps`]).
    pub fn steps_of(&self, i: usize) -> &[Step] {
        self.services.get(i).map_or(&[][..], |s| &s.steps[..])
    }

    /// The steps the service named `name` runs.
    pub fn steps_of_service(&self, name: &str) -> &[Step] {
        self.service(name).map_or(&[][..], |s| &s.steps[..])
    }

    /// Service `i`'s step at `index` as what it does.
    pub fn step(&self, i: usize, index: usize) -> Option<StepKind> {
        let step = self.steps_of(i).get(index)?;
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

    /// The weight of service `i`'s first weight step (100 when every step is an
    /// approval): the share the pre-checks allow a ramped flag to serve already.
    pub fn first_weight(&self, i: usize) -> u32 {
        (0..self.steps_of(i).len())
            .find_map(|index| match self.step(i, index) {
                Some(StepKind::Weight(w, _)) => Some(w),
                _ => None,
            })
            .unwrap_or(100)
    }

    /// The blue-green services with a router: their previous version is retired once
    /// the release has been promoted for `keep_previous`.
    pub fn retiring(&self) -> Vec<usize> {
        (0..self.services.len())
            .filter(|&i| {
                matches!(self.strategy_of(i), Strategy::BlueGreen(_))
                    && !matches!(self.services[i].canary, Canary::None)
            })
            .collect()
    }

    /// How long after its promotion the release may be switched back: the shortest
    /// `keep_previous` of its blue-green services, if any has one.
    pub fn keep_previous(&self) -> Option<std::time::Duration> {
        (0..self.services.len())
            .filter_map(|i| match self.strategy_of(i) {
                Strategy::BlueGreen(b) => b.keep_previous,
                _ => None,
            })
            .min()
    }
}
