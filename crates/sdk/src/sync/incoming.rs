//! A stream event whatever the transport (SSE or gRPC), and the limits both apply.

use std::time::Duration;

/// How long opening the stream may take (up to the response headers).
pub(super) const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest SSE event accepted (a snapshot of a very large environment).
pub(super) const MAX_EVENT_BYTES: usize = 256 * 1024 * 1024;

/// The kind of a stream event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IncomingKind {
    /// The whole environment.
    Snapshot,
    /// One revision's change.
    Change,
    /// Something this client does not know.
    Other,
}

/// One event of a stream, whatever the transport.
#[derive(Debug, Clone)]
pub(super) struct Incoming {
    pub(super) kind: IncomingKind,
    /// The revision the event announces, when it says (the document says too).
    pub(super) revision: Option<u64>,
    /// The JSON document.
    pub(super) document: String,
}
