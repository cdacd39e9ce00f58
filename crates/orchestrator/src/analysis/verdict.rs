//! What an analysis found: [`Measurement`]s and their [`Verdict`]s — core's
//! `release` types, which the API's reports carry as they are.
//!
//! *Architecture Invariant*: plain data with no I/O (no HTTP client, no error type
//! carrying one), so the pure [`crate::machine`] can hold measurements in its state.

pub use switchyard_core::release::{Measurement, Verdict};
