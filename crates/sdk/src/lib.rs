//! `switchyard-sdk`: the client library services embed.
//!
//! Not built yet. It will keep an environment's flags in memory, synced live from the
//! server, and answer `is_enabled` / `variant` locally through
//! [`switchyard_core::evaluate`] with no network on the hot path. See `ARCHITECTURE.md`.
#![deny(missing_docs)]
