//! Serving HTTP and gRPC over TLS (`--tls-cert`, `--tls-key`): the listeners that hand
//! `switchyard_tls::Incoming` connections to axum and tonic, who is on the other end
//! ([`Peer`]: address, and whether it presented a client certificate the
//! `--tls-client-ca` signed), and reloading the certificate on SIGHUP or when its files
//! change — open connections and streams keep going; new handshakes get the new one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use switchyard_tls::{Alpn, Certificate, ClientAuth, Incoming, TlsError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// TLS settings of a server.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The certificate served (reloadable).
    pub certificate: Arc<Certificate>,
    /// Whether clients are asked for certificates.
    pub client_auth: ClientAuth,
    /// Whether admin tokens are accepted only from clients with a certificate the
    /// client CA signed.
    pub admin_needs_client_certificate: bool,
}

impl TlsSettings {
    /// Loads `cert` and `key`; `client_ca` asks clients for certificates it signed.
    pub fn load(
        cert: &std::path::Path,
        key: &std::path::Path,
        client_ca: Option<PathBuf>,
        admin_needs_client_certificate: bool,
    ) -> Result<Self, TlsError> {
        Ok(TlsSettings {
            certificate: Certificate::load(cert, key)?,
            client_auth: client_ca.map_or(ClientAuth::None, ClientAuth::Optional),
            admin_needs_client_certificate,
        })
    }

    fn incoming(&self, listener: TcpListener, alpn: Alpn) -> std::io::Result<Incoming> {
        let config =
            switchyard_tls::server_config(Arc::clone(&self.certificate), &self.client_auth, alpn)
                .map_err(std::io::Error::other)?;
        Incoming::new(listener, config)
    }
}

/// Who is on the other end of an HTTP connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The TCP peer's address.
    pub addr: SocketAddr,
    /// Whether it presented a client certificate the client CA signed.
    pub client_certified: bool,
}

impl Peer {
    /// The peer of the connection a request came on, when the server recorded it
    /// (not for requests handed to the router directly, as in `oneshot` tests).
    pub fn of(extensions: &axum::http::Extensions) -> Option<Peer> {
        extensions
            .get::<axum::extract::ConnectInfo<Peer>>()
            .map(|info| info.0)
    }
}

/// The request's [`Peer`], if known; never rejects.
#[derive(Debug, Clone, Copy)]
pub struct MaybePeer(pub Option<Peer>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for MaybePeer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybePeer(Peer::of(&parts.extensions)))
    }
}

/// HTTPS connections, accepted by `server.rs`'s loop (which reads [`Peer`] from each).
pub struct TlsListener(Incoming);

impl TlsListener {
    /// Serves `settings`' certificate on `listener` (HTTP/2 and HTTP/1.1).
    pub fn new(listener: TcpListener, settings: &TlsSettings) -> std::io::Result<Self> {
        Ok(TlsListener(settings.incoming(listener, Alpn::Http)?))
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.0.next().await {
            Some(accepted) => accepted,
            // The accepting task ends only with this listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}

/// A TLS connection for tonic, which reads the peer's address from it.
pub struct GrpcConnection {
    stream: TlsStream<TcpStream>,
    peer: SocketAddr,
}

impl tonic::transport::server::Connected for GrpcConnection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo {
            local_addr: self.stream.get_ref().0.local_addr().ok(),
            remote_addr: Some(self.peer),
        }
    }
}

impl AsyncRead for GrpcConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// gRPC's TLS connections on `listener` (HTTP/2 only), for tonic's
/// `serve_with_incoming`.
pub fn grpc_incoming(
    listener: TcpListener,
    settings: &TlsSettings,
) -> std::io::Result<impl futures_util::Stream<Item = std::io::Result<GrpcConnection>>> {
    let incoming = settings.incoming(listener, Alpn::Grpc)?;
    Ok(futures_util::stream::unfold(
        incoming,
        |mut incoming| async move {
            let (stream, peer) = incoming.next().await?;
            Some((Ok(GrpcConnection { stream, peer }), incoming))
        },
    ))
}

/// How often the certificate files are checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Reloads `certificate` when its files change (checked every few seconds) and on
/// SIGHUP, until `shutdown`; a file that cannot be read is logged and the served
/// certificate stays.
pub async fn watch_certificate(
    certificate: Arc<Certificate>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let signalled = async {
            match &mut hangup {
                Some(hangup) => {
                    hangup.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = signalled => true,
            () = tokio::time::sleep(WATCH_EVERY) => false,
        };
        let reloaded = if forced {
            certificate.force_reload().map(|()| true)
        } else {
            certificate.reload()
        };
        match reloaded {
            Ok(true) => tracing::info!(?certificate, "TLS certificate reloaded"),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, "cannot reload the TLS certificate; still serving the previous one")
            }
        }
    }
}
