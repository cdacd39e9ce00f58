//! Opening the stream (SSE or gRPC) and reading its events.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;

use super::endpoint::Endpoint;
use super::incoming::Incoming;
use crate::error::Error;
use switchyard_core::sse::{SseEvent, SseParser};

/// A stream silent this long is dead (the server sends a heartbeat every 15 s).
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the stream comes from.
#[derive(Clone)]
pub(super) enum Source {
    /// `GET /v1/sdk/stream`.
    Sse(Endpoint),
    /// `switchyard.v1.Sync/Stream`.
    #[cfg(feature = "grpc")]
    Grpc(super::grpc::SyncEndpoint),
}

impl Source {
    /// Whether the stream comes from the REST API (the address snapshots are polled at).
    pub(super) fn is_rest(&self) -> bool {
        matches!(self, Source::Sse(_))
    }

    /// Moves on to the next server, after the one in use could not be reached.
    pub(super) fn fail_over(&self) {
        match self {
            Source::Sse(endpoint) => {
                let failed = endpoint.url().to_owned();
                endpoint.servers.fail_over(&failed);
            }
            #[cfg(feature = "grpc")]
            Source::Grpc(endpoint) => endpoint.fail_over(),
        }
    }

    /// Opens the stream, resuming after `last`. The error's flag says whether nothing
    /// answered at all (rather than an error answer).
    pub(super) async fn open(&self, last: Option<u64>) -> Result<Events, (Error, bool)> {
        match self {
            Source::Sse(endpoint) => {
                let response = endpoint.open_stream(last).await?;
                Ok(Events::Sse {
                    body: Box::pin(response.bytes_stream()),
                    parser: SseParser::new(super::incoming::MAX_EVENT_BYTES),
                    pending: VecDeque::new(),
                })
            }
            #[cfg(feature = "grpc")]
            Source::Grpc(endpoint) => endpoint.open(last).await.map(Events::Grpc),
        }
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open stream.
pub(super) enum Events {
    Sse {
        body: ByteStream,
        parser: SseParser,
        pending: VecDeque<SseEvent>,
    },
    #[cfg(feature = "grpc")]
    Grpc(super::grpc::SyncStream),
}

impl Events {
    /// The next event; `Ok(None)` when the stream ended, `Err` when it broke or went
    /// silent.
    pub(super) async fn next(&mut self) -> Result<Option<Incoming>, String> {
        match self {
            Events::Sse {
                body,
                parser,
                pending,
            } => loop {
                if let Some(event) = pending.pop_front() {
                    return Ok(Some(Incoming::from(event)));
                }
                // Any bytes (heartbeats included) prove the connection alive.
                let chunk = tokio::time::timeout(STREAM_IDLE_TIMEOUT, body.next())
                    .await
                    .map_err(|_| format!("nothing received for {STREAM_IDLE_TIMEOUT:?}"))?;
                let bytes = match chunk {
                    None => return Ok(None),
                    Some(chunk) => chunk.map_err(|e| e.to_string())?,
                };
                let mut parsed = Vec::new();
                parser.feed(&bytes, &mut parsed)?;
                pending.extend(parsed);
            },
            #[cfg(feature = "grpc")]
            Events::Grpc(stream) => stream.next().await,
        }
    }
}
