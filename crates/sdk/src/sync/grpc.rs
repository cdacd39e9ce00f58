//! The gRPC sync transport (feature `grpc`): `switchyard.v1.Sync/Stream`, the same
//! snapshot and change documents as the SSE stream, as a server stream. The channel
//! is HTTP/2 with keep-alive pings, so a silent, dead connection is noticed.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::Code;

use super::incoming::{Incoming, IncomingKind, MAX_EVENT_BYTES, OPEN_TIMEOUT};
use crate::error::Error;

#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used
)]
mod proto {
    tonic::include_proto!("switchyard.v1");
}

use proto::sync_client::SyncClient;
use proto::sync_event::Kind;
use proto::StreamRequest;

/// How often the channel pings the server, and how long it waits for the answer.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The server's `Sync` service.
#[derive(Clone)]
pub(crate) struct SyncEndpoint {
    url: String,
    channel: Channel,
    authorization: MetadataValue<Ascii>,
}

impl SyncEndpoint {
    /// A lazily connecting channel to `url` (`http://host:port` of the gRPC API).
    pub(crate) fn new(url: &str, token: &str) -> Result<SyncEndpoint, Error> {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| Error::Unreachable {
                url: url.to_owned(),
                source: Box::new(e),
            })?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let authorization = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::Unauthorized {
                status: 401,
                message: "the token cannot be sent as gRPC metadata".to_owned(),
            })?;
        Ok(SyncEndpoint {
            url: url.to_owned(),
            channel: endpoint.connect_lazy(),
            authorization,
        })
    }

    /// Opens the stream, resuming after `last`. The error's flag says whether nothing
    /// answered at all.
    pub(crate) async fn open(&self, last: Option<u64>) -> Result<SyncStream, (Error, bool)> {
        let mut request = tonic::Request::new(StreamRequest {
            after_revision: last,
            environment: String::new(),
        });
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        let mut client =
            SyncClient::new(self.channel.clone()).max_decoding_message_size(MAX_EVENT_BYTES);
        match tokio::time::timeout(OPEN_TIMEOUT, client.stream(request)).await {
            Ok(Ok(response)) => Ok(SyncStream(response.into_inner())),
            Ok(Err(status)) => Err(self.error(status)),
            Err(_) => Err((
                Error::Unreachable {
                    url: self.url.clone(),
                    source: format!("the stream did not open within {OPEN_TIMEOUT:?}").into(),
                },
                true,
            )),
        }
    }

    fn error(&self, status: tonic::Status) -> (Error, bool) {
        let refused = |code: u16| Error::Unauthorized {
            status: code,
            message: status.message().to_owned(),
        };
        match status.code() {
            Code::Unauthenticated => (refused(401), false),
            Code::PermissionDenied => (refused(403), false),
            code => (
                Error::Unreachable {
                    url: self.url.clone(),
                    source: Box::new(status),
                },
                code == Code::Unavailable,
            ),
        }
    }
}

/// An open `Sync` stream.
pub(crate) struct SyncStream(tonic::Streaming<proto::SyncEvent>);

impl SyncStream {
    /// The next event; `Ok(None)` when the server ended the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Incoming>, String> {
        let Some(event) = self.0.message().await.map_err(|s| s.to_string())? else {
            return Ok(None);
        };
        let kind = match event.kind() {
            Kind::Snapshot => IncomingKind::Snapshot,
            Kind::Change => IncomingKind::Change,
            Kind::Unspecified => IncomingKind::Other,
        };
        Ok(Some(Incoming {
            kind,
            revision: Some(event.revision),
            document: event.document,
        }))
    }
}
