//! `switchyard-orchestrator`: runs release plans that ramp a canary's traffic weight and
//! a flag's percentage together, analyse metrics between steps and roll back by
//! themselves.
//!
//! The shape: [`plan`] reads and validates the YAML; [`machine`] is a pure state
//! machine `step(&Plan, &State, Event, now) -> (State, Vec<Action>)`; the [`driver`]
//! performs the actions through the [`routers::TrafficRouter`],
//! [`flags::FlagControl`] and [`analysis::MetricSource`] traits and persists every
//! transition through [`store::StateStore`] before acting on it. The daemon serves an
//! HTTP API over running releases; the CLI talks to it.

pub mod analysis;
pub mod cli;
pub mod daemon;
pub mod dag;
pub mod driver;
pub mod flags;
pub mod gates;
pub mod machine;
pub mod plan;
pub mod report;
pub mod routers;
pub mod store;
pub mod telemetry;
