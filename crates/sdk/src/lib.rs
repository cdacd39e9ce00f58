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
mod state;
mod sync;
pub mod tls;

pub use client::{Client, ClientBuilder, Detail, Variant};
pub use error::{DocumentError, Error, TransportError};
pub use state::{ChangeNotice, Status, Transport};
pub use switchyard_core::{Context, ErrorCode, Reason};
