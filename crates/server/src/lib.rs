//! `switchyard-server`: the flag server.
//!
//! Stores flags per environment ([`store`]: embedded `redb` by default, Redis shared
//! by replicas that follow each other through [`replication`]), keeps a
//! compiled, immutable snapshot of each environment in memory ([`environments`]),
//! and serves evaluation (REST, OFREP), SDK sync (snapshot, SSE) and the admin API
//! ([`http`]), and the web console ([`console`]). As a [`relay`], its store is
//! another server, followed over its SDK stream. See ARCHITECTURE.md.

pub mod auth;
pub mod config;
pub mod console;
pub mod demo;
pub mod domain;
pub mod environments;
pub mod error;
pub mod grpc;
pub mod http;
pub mod idempotency;
pub mod limits;
pub mod orchestrator;
pub mod relay;
pub mod replication;
pub mod scope;
pub mod server;
pub mod state;
pub mod store;
pub mod subscription;
pub mod telemetry;
pub mod tls;
pub mod units;
pub mod usage;

pub use server::Server;
