//! `switchyard-sdk`: what services embed to evaluate Switchyard flags locally.
//!
//! ```no_run
//! # async fn run() -> Result<(), switchyard_sdk::Error> {
//! use switchyard_sdk::{Client, Context};
//!
//! let client = Client::builder("http://127.0.0.1:8080", "swy_...").build().await?;
//! let ctx = Context::new("user-42").group("beta").attr("country", "IT");
//! if client.is_enabled("new-checkout", &ctx) { /* the new path */ }
//! # Ok(()) }
//! ```
//!
//! The client keeps the environment's flags in memory, synced in the background,
//! and evaluates them with `switchyard-core`: no network on the hot path.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
mod client;
mod error;
mod metrics;
mod sync;

pub use client::{ChangeNotice, Client, ClientBuilder, Detail, Loaded, Status, Transport, Variant};
pub use error::Error;
pub use switchyard_core::{Context, ErrorCode, Reason};
