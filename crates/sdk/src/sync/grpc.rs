//! The gRPC sync transport (feature `grpc`): `switchyard.v1.Sync/Stream`, the same
//! snapshot and change documents as the SSE stream, as a server stream. The channel
//! is HTTP/2 with keep-alive pings, so a silent, dead connection is noticed. An
//! `https://` URL is spoken over TLS: tonic's rustls on aws-lc-rs, trusting the
//! system's roots or, when the client was given a CA file, that file's certificates
//! alone. Several URLs (the fallback servers' gRPC APIs) are tried in turn when the
//! one in use cannot be reached.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::Code;

use super::incoming::{Incoming, IncomingKind, MAX_EVENT_BYTES, OPEN_TIMEOUT};
use crate::error::Error;
use crate::state::Servers;

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

/// The servers' `Sync` services.
#[derive(Clone)]
pub(crate) struct SyncEndpoint {
    /// The gRPC APIs' URLs and which one is in use.
    servers: Arc<Servers>,
    /// One channel per URL, in the same order.
    channels: Arc<[Channel]>,
    authorization: MetadataValue<Ascii>,
}

/// A lazily connecting channel to `url` (`http://host:port` or `https://host:port` of
/// the gRPC API), over TLS trusting `tls` when it is given.
fn channel(url: &str, tls: Option<&ClientTlsConfig>) -> Result<Channel, Error> {
    let unusable = |e: tonic::transport::Error| Error::Unreachable {
        url: url.to_owned(),
        source: Box::new(e),
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(unusable)?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if let Some(tls) = tls.filter(|_| url.starts_with("https://")) {
        endpoint = endpoint.tls_config(tls.clone()).map_err(unusable)?;
    }
    Ok(endpoint.connect_lazy())
}

/// What an `https://` gRPC URL trusts: the certificates in `ca` alone, else the
/// system's roots (read when a channel first connects).
fn tls_config(ca: Option<&Path>) -> Result<ClientTlsConfig, Error> {
    let config = ClientTlsConfig::new().timeout(Duration::from_secs(5));
    let Some(ca) = ca else {
        return Ok(config.with_native_roots());
    };
    // The REST client has read and checked the same file already.
    let pem = std::fs::read(ca).map_err(|e| Error::CaFile {
        path: ca.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(config.ca_certificate(Certificate::from_pem(pem)))
}

impl SyncEndpoint {
    /// Lazily connecting channels to each of `servers` (gRPC APIs), trusting the PEM
    /// certificates in `ca` alone for `https://` ones when it is given.
    pub(crate) fn new(
        servers: Servers,
        token: &str,
        ca: Option<&Path>,
    ) -> Result<SyncEndpoint, Error> {
        let tls = if servers.urls().iter().any(|u| u.starts_with("https://")) {
            Some(tls_config(ca)?)
        } else {
            None
        };
        let channels = servers
            .urls()
            .iter()
            .map(|url| channel(url, tls.as_ref()))
            .collect::<Result<Arc<[Channel]>, Error>>()?;
        let authorization = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::Unauthorized {
                status: 401,
                message: "the token cannot be sent as gRPC metadata".to_owned(),
            })?;
        Ok(SyncEndpoint {
            servers: Arc::new(servers),
            channels,
            authorization,
        })
    }

    /// The URL in use.
    pub(crate) fn url(&self) -> &str {
        self.servers.url()
    }

    /// Moves on to the next gRPC API, after the one in use could not be reached.
    pub(crate) fn fail_over(&self) {
        let failed = self.url().to_owned();
        self.servers.fail_over(&failed);
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
        let channel = self.channels[self.servers.index()].clone();
        let mut client = SyncClient::new(channel).max_decoding_message_size(MAX_EVENT_BYTES);
        match tokio::time::timeout(OPEN_TIMEOUT, client.stream(request)).await {
            Ok(Ok(response)) => Ok(SyncStream(response.into_inner())),
            Ok(Err(status)) => Err(self.error(status)),
            Err(_) => Err((
                Error::Unreachable {
                    url: self.url().to_owned(),
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
                    url: self.url().to_owned(),
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
        let document = String::from_utf8(event.document)
            .map_err(|e| format!("the event's document is not UTF-8: {e}"))?;
        Ok(Some(Incoming {
            kind,
            revision: Some(event.revision),
            document,
        }))
    }
}
