//! What only the orchestrator's integration tests share (the real-process rigs are in
//! `switchyard-testkit`).
//!
//! In `tests/support/`, so Cargo does not build it as a test target of its own; each
//! test uses part of it.
#![allow(dead_code)]
pub mod api;
pub mod daemon;
pub mod fake_kube;
pub mod flag_server;
pub mod release;
