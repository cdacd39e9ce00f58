#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
mod client;
mod error;
mod metrics;
#[cfg(feature = "openfeature")]
pub mod openfeature;
mod sync;

pub use client::{ChangeNotice, Client, ClientBuilder, Detail, Loaded, Status, Transport, Variant};
pub use error::Error;
pub use switchyard_core::{Context, ErrorCode, Reason};
