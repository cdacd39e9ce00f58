//! The streaming clients under measurement: SSE clients each on their own TCP
//! connection, gRPC `switchyard.v1.Sync` clients over shared channels. Every client
//! reports the moment its socket delivered each event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use switchyard_server::grpc::proto::switchyard::sync_client::SyncClient;
use switchyard_server::grpc::proto::switchyard::sync_event::Kind as GrpcKind;
use switchyard_server::grpc::proto::switchyard::StreamRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::replica::Replica;
use crate::sse::{find, Body};
use crate::{EventKind, Note};

/// What every client task holds.
pub(crate) struct ClientSpec {
    pub(crate) client: usize,
    pub(crate) notes: mpsc::UnboundedSender<Note>,
    /// Bounds how many clients connect at once; released once the snapshot is in.
    pub(crate) gate: Arc<Semaphore>,
}

impl ClientSpec {
    fn event(&self, kind: EventKind, revision: u64, arrived: Instant) {
        let _ = self.notes.send(Note::Event {
            client: self.client,
            kind,
            revision,
            arrived,
        });
    }

    /// Reports how a client's stream ended (it only ends on errors).
    pub(crate) fn report(&self, outcome: Result<()>) {
        let error = outcome.err().unwrap_or_else(|| anyhow!("the stream ended"));
        let _ = self.notes.send(Note::Failed {
            client: self.client,
            error,
        });
    }

    async fn admit(&self) -> Result<OwnedSemaphorePermit> {
        Arc::clone(&self.gate)
            .acquire_owned()
            .await
            .context("the connect gate closed")
    }
}

/// The read buffer while the (possibly large) snapshot arrives, and afterwards.
const SNAPSHOT_BUFFER: usize = 64 * 1024;
const STREAM_BUFFER: usize = 4 * 1024;

/// One SSE client on its own TCP connection: `GET /v1/sdk/stream`, then events until
/// the server closes the stream.
pub(crate) async fn sse_client(spec: &ClientSpec, addr: SocketAddr, token: &str) -> Result<()> {
    let mut permit = Some(spec.admit().await?);
    let mut socket = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    socket.set_nodelay(true)?;
    let request = format!(
        "GET /v1/sdk/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;

    let mut buffer = vec![0u8; SNAPSHOT_BUFFER];
    let mut filled = 0;
    let head_end = loop {
        let n = socket.read(&mut buffer[filled..]).await?;
        if n == 0 {
            bail!("the server closed the connection before answering");
        }
        filled += n;
        if let Some(end) = find(&buffer[..filled], b"\r\n\r\n") {
            break end + 4;
        }
        if filled == buffer.len() {
            bail!("the response head is larger than {SNAPSHOT_BUFFER} bytes");
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        let status = head.lines().next().unwrap_or_default().to_owned();
        bail!(
            "GET /v1/sdk/stream: {status} {}",
            String::from_utf8_lossy(&buffer[head_end..filled])
        );
    }
    let mut body = Body::new(head.contains("\r\ntransfer-encoding: chunked"));
    let mut events = Vec::new();
    let mut arrived = Instant::now();
    let mut start = head_end;
    loop {
        body.feed(&buffer[start..filled], &mut events)?;
        for (kind, id) in events.drain(..) {
            let revision = id.with_context(|| format!("a {kind:?} event without an id"))?;
            spec.event(kind, revision, arrived);
            if kind == EventKind::Snapshot && permit.take().is_some() {
                buffer = vec![0u8; STREAM_BUFFER];
            }
        }
        if body.done() {
            bail!("the server ended the stream");
        }
        filled = socket.read(&mut buffer).await?;
        arrived = Instant::now();
        if filled == 0 {
            bail!("the server closed the connection");
        }
        start = 0;
    }
}

/// The gRPC connections: channel j goes to replica j mod R.
pub(crate) struct GrpcChannels {
    /// Per replica, its channels.
    per_replica: Vec<Vec<Channel>>,
}

impl GrpcChannels {
    pub(crate) fn new(replicas: &[Replica], channels: usize) -> Result<GrpcChannels> {
        let mut per_replica = vec![Vec::new(); replicas.len()];
        for j in 0..channels {
            let replica = &replicas[j % replicas.len()];
            let endpoint = Endpoint::from_shared(format!("http://{}", replica.grpc))?
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(10));
            // Connects on first use, i.e. inside the connect gate.
            per_replica[j % replicas.len()].push(endpoint.connect_lazy());
        }
        Ok(GrpcChannels { per_replica })
    }

    /// Client i streams from replica i mod R, over one of that replica's channels.
    pub(crate) fn for_client(&self, client: usize, replicas: usize) -> Channel {
        let own = &self.per_replica[client % replicas];
        own[(client / replicas) % own.len()].clone()
    }
}

/// One `switchyard.v1.Sync/Stream` call.
pub(crate) async fn grpc_client(
    spec: &ClientSpec,
    channel: Channel,
    auth: MetadataValue<Ascii>,
) -> Result<()> {
    let mut permit = Some(spec.admit().await?);
    let mut client = SyncClient::new(channel).max_decoding_message_size(1 << 30);
    let mut request = tonic::Request::new(StreamRequest {
        after_revision: None,
        environment: String::new(),
    });
    request.metadata_mut().insert("authorization", auth);
    let mut stream = client
        .stream(request)
        .await
        .context("Sync/Stream")?
        .into_inner();
    while let Some(event) = stream.message().await.context("Sync/Stream")? {
        let arrived = Instant::now();
        let kind = match event.kind() {
            GrpcKind::Snapshot => EventKind::Snapshot,
            GrpcKind::Change => EventKind::Change,
            GrpcKind::Unspecified => EventKind::Other,
        };
        spec.event(kind, event.revision, arrived);
        if kind == EventKind::Snapshot {
            permit.take();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Limits and memory
