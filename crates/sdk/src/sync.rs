//! Keeping the client's flags current.
//!
//! One background task per client ([`spawn`]) runs the configured transport:
//!
//! - [`Transport::Sse`](crate::Transport::Sse): `GET /v1/sdk/stream`. A `snapshot` event is installed
//!   whole; a `change` event is applied to the current state when it is the next
//!   revision, and anything else (a gap, a change that does not apply) refetches the
//!   snapshot. When the stream ends or fails, the task reconnects after a jittered
//!   exponential back-off (100 ms doubling to 30 s, ±50 %), resuming with
//!   `Last-Event-ID: <revision>` so the server replays only what was missed. While
//!   the stream cannot be opened (an error answer, not an event stream), the
//!   snapshot is polled with `If-None-Match` every `poll_interval` between stream
//!   attempts, so a proxy that refuses streams still leaves the client current.
//!   When nothing answers at all, polling the same address is skipped.
//! - `Transport::Grpc` (feature `grpc`, `grpc.rs`): the same documents from
//!   `switchyard.v1.Sync/Stream`, with the same reconnection and resumption
//!   (`after_revision`); the REST snapshot is polled while the gRPC API cannot be
//!   reached.
//! - [`Transport::Polling`](crate::Transport::Polling): `GET /v1/sdk/snapshot` with `If-None-Match` every
//!   `poll_interval`; after a failure sooner, with the back-off, up to the interval.
//!
//! Status: `Ready` while connected or after a successful poll; `Stale { since }`
//! when the server becomes unreachable after a sync (the last snapshot keeps being
//! served); `Failed` when the token is refused (then retries are slow) or while the
//! server was never reached. The evaluation path never waits for any of this: the
//! task only swaps a new `Arc<Loaded>` into the client's `ArcSwap`.
//!
//! The task holds the client weakly while it waits on the network, so dropping
//! every handle (or `close()`) ends it.
//!
//! Files: `task.rs` the task and its status, `stream.rs` the open stream of either
//! transport, `endpoint.rs` the REST requests, `sse.rs` the `text/event-stream`
//! parser, `grpc.rs` the gRPC stream, `incoming.rs` the event both produce,
//! `backoff.rs` the reconnection delays.

mod backoff;
mod endpoint;
#[cfg(feature = "grpc")]
mod grpc;
mod incoming;
mod sse;
mod stream;
mod task;

pub(crate) use endpoint::fetch_snapshot;
pub(crate) use task::spawn;
