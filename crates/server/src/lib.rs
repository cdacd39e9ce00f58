//! `switchyard-server`: the flag server.
//!
//! Not built yet. It will store flags per environment (embedded `redb` by default,
//! Redis for many replicas), evaluate them over REST, OFREP and gRPC against an
//! atomically swapped [`switchyard_core::Snapshot`], and stream every change to SDKs.
//! See `ARCHITECTURE.md` and PRODUCT.md §2.
