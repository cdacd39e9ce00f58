//! `switchyard-core`: the flag model and the pure evaluation engine shared by the
//! server and the SDK.
//!
//! - [`model`]: the JSON shape of flags and segments (docs/flags.md).
//! - [`validation`]: errors that name the field path and the problem.
//! - [`Snapshot::compile`]: a validated, pre-parsed environment.
//! - [`evaluate`]: pure evaluation — no I/O, clock, randomness, panic, or allocation
//!   after a context's first evaluation against a snapshot.
//! - [`bucketing`]: the documented hash that places users in rollouts.
//! - [`duplicate_keys`]: documents are read strictly, a key written twice is an error.
//! - [`unleash`]: import of Unleash client-API features with Unleash's semantics.
//! - [`sync`]: the snapshot and change documents servers send and SDKs read.
//! - [`admin`]: the admin API's types shared by its server and its client.
//! - [`api_error`]: the error body of every HTTP API (`{"error": {"code", "message"}}`).
//! - [`json_body`]: strict reading of JSON request bodies, every problem with its path.
//! - [`guard`]: the guarded rollout's statistics (always-valid sequential test, sample
//!   ratio check) and the unit sketch that counts distinct users.
//! - [`release`]: the release orchestrator's API documents, shared by its CLI and the
//!   flag server's console.
//!
//! This crate depends on nothing async or networked; CI checks it with `cargo tree`.
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
mod answer_json;
pub mod api_error;
pub mod bucketing;
pub mod context;
pub mod duplicate_keys;
mod evaluation;
pub mod flagd;
pub mod guard;
pub mod json_body;
pub mod model;
pub mod ramp;
pub mod release;
pub mod semver;
mod snapshot;
pub mod sse;
pub mod sync;
mod targeting;
pub mod unleash;
pub mod validation;

pub use answer_json::write_str as write_json_str;
pub use context::{AttributeValue, Context};
pub use evaluation::{evaluate, evaluate_all, ErrorCode, Evaluation, Reason};
pub use model::{Flag, FlagKey, FlagKind, Segment, SegmentKey};
pub use snapshot::Snapshot;
pub use validation::{validate_flag, validate_segment, ValidationError, ValidationErrors};
