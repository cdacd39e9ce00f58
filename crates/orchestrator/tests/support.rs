//! Real processes for the orchestrator's integration tests.
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
#[path = "support/haproxy.rs"]
pub mod haproxy;
#[path = "support/prometheus.rs"]
pub mod prometheus;
// The server's test helper: one `redis-server` rig for both crates' tests (it runs
// with an fsynced append-only file, so a restart keeps what was acknowledged).
#[path = "../../server/tests/redis_process.rs"]
pub mod redis;
