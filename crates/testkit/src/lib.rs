//! Switchyard's test kit: what the tests of every crate share, written once.
//!
//! - [`allocations`]: a counting global allocator, for "this allocates nothing" tests.
//! - [`free_port`] / [`unused_addr`]: loopback ports nothing listens on.
//! - [`eventually`] / [`wait_until`]: poll a condition with a deadline (tests never
//!   `sleep` to synchronise).
//! - Behind features, real processes and servers: `process` (any program as a child
//!   logging to a file, [`child::ChildProcess`]), `http` (an axum app on a free port,
//!   [`http::serve`]), `redis` ([`redis::RedisProcess`]),
//!   `server` (the flag server in process, [`in_process`], and its binary as a child,
//!   [`server_process`], and a reader of its event streams, [`sse`]), `haproxy`, `prometheus` and `browser` (headless Chromium over
//!   WebDriver, for the console).
//!
//! Without features it depends on nothing of Switchyard, so `switchyard-core` can use
//! it as a dev-dependency without a cycle. Every rig fails loudly with a clear message
//! when its binary is missing: a test that cannot run here does not skip.

pub mod allocations;
#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "process")]
pub mod child;
#[cfg(feature = "server")]
pub mod console;
#[cfg(feature = "fuzz")]
pub mod fuzz;
mod poll;
mod port;

#[cfg(feature = "haproxy")]
pub mod haproxy;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "server")]
pub mod in_process;
#[cfg(any(feature = "haproxy", feature = "prometheus"))]
mod path;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
pub mod redis_ha;
#[cfg(feature = "server")]
pub mod server_process;
#[cfg(feature = "server")]
pub mod sse;

pub use poll::{eventually, wait_until, Attempt, DEADLINE};
pub use port::{free_port, unused_addr};
