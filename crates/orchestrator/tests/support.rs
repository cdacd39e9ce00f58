//! What only the orchestrator's integration tests share (the real-process rigs are in
//! `switchyard-testkit`).
//!
//! Cargo also builds this file as a test target of its own, where it is the crate root
//! and a plain `mod haproxy;` would load `tests/haproxy.rs` (the integration test).
//! `#[path]` is relative to this file in both roles, so it always finds `support/…`.
#![allow(dead_code)]
#[path = "support/api.rs"]
pub mod api;
#[path = "support/daemon.rs"]
pub mod daemon;
#[path = "support/fake_kube.rs"]
pub mod fake_kube;
#[path = "support/flag_server.rs"]
pub mod flag_server;
