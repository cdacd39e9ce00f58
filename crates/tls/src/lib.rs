//! TLS for every Switchyard process, on one crypto provider (aws-lc-rs: the one kube's
//! client brings, so the workspace links no second one).
//!
//! - [`Certificate`]: a server certificate and key from PEM files, swapped in place by
//!   [`Certificate::reload`] (on SIGHUP or when the files change) — connections already
//!   open keep theirs, new handshakes get the new one.
//! - [`server_config`]: rustls' server configuration over it, with ALPN for HTTP/1.1
//!   and HTTP/2 or HTTP/2 alone (gRPC), optionally asking for client certificates
//!   signed by a CA ([`ClientAuth`]).
//! - [`Incoming`]: TLS connections accepted from a `TcpListener`, handshakes run
//!   concurrently (a slow or broken client never holds up the next one).
//!
//! Clients (SDK, CLI, orchestrator, the server's own outbound calls) use reqwest, whose
//! rustls runs on the same provider and trusts the system's roots (`SSL_CERT_FILE`
//! adds a private CA) or a CA file given to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// The crypto provider of every TLS configuration here.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What went wrong setting TLS up; each names the file it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The key does not fit the certificate, or rustls refused the configuration.
    #[error("{what}: {source}")]
    Rustls {
        /// What was being set up.
        what: String,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
}

fn file_error(path: &Path, why: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        why: why.to_string(),
    }
}

/// Every certificate in a PEM file (at least one).
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certificates.is_empty() {
        return Err(file_error(
            path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
        ));
    }
    Ok(certificates)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A server certificate chain and its key, read from PEM files and replaceable while
/// serving.
pub struct Certificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// The files' modification times when last loaded.
    loaded: ArcSwap<(Option<SystemTime>, Option<SystemTime>)>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads the chain (leaf first) from `cert_path` and its private key from
    /// `key_path`; the key must match the leaf.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let (key, stamps) = Self::read(cert_path, key_path)?;
        Ok(Arc::new(Certificate {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: ArcSwap::from_pointee(key),
            loaded: ArcSwap::from_pointee(stamps),
        }))
    }

    #[allow(clippy::type_complexity)]
    fn read(
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<(CertifiedKey, (Option<SystemTime>, Option<SystemTime>)), TlsError> {
        // Stamps first: a file replaced while being read is read again next time.
        let stamps = (modified(cert_path), modified(key_path));
        let chain = read_certificates(cert_path)?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
            file_error(
                key_path,
                format!("no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
            )
        })?;
        let certified =
            CertifiedKey::from_der(chain, key, &provider()).map_err(|source| TlsError::Rustls {
                what: format!(
                    "the key in {} and the certificate in {}",
                    key_path.display(),
                    cert_path.display()
                ),
                source,
            })?;
        Ok((certified, stamps))
    }

    /// Reads the files again and serves the new certificate from the next handshake;
    /// on error the current one stays. `Ok(false)` when neither file changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let stamps = (modified(&self.cert_path), modified(&self.key_path));
        if stamps == **self.loaded.load() {
            return Ok(false);
        }
        self.force_reload()?;
        Ok(true)
    }

    /// Reads the files again whether or not they changed (SIGHUP).
    pub fn force_reload(&self) -> Result<(), TlsError> {
        let (key, stamps) = Self::read(&self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(key));
        self.loaded.store(Arc::new(stamps));
        Ok(())
    }

    /// The chain served now (leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.load().cert.clone()
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Whether clients present certificates.
#[derive(Debug, Clone, Default)]
pub enum ClientAuth {
    /// They are not asked to.
    #[default]
    None,
    /// They may present one signed by a CA in this file; the server decides per
    /// request what needs one ([`client_certified`]).
    Optional(PathBuf),
}

/// ALPN protocols a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP/2 and HTTP/1.1 (the REST API, the console, SSE).
    Http,
    /// HTTP/2 only (gRPC).
    Grpc,
}

/// The server configuration for `certificate`.
pub fn server_config(
    certificate: Arc<Certificate>,
    client_auth: &ClientAuth,
    alpn: Alpn,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "TLS protocol versions".into(),
            source,
        })?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(ca)? {
                roots.add(certificate).map_err(|source| TlsError::Rustls {
                    what: format!("a CA certificate in {}", ca.display()),
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| file_error(ca, format!("cannot verify clients with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(certificate);
    config.alpn_protocols = match alpn {
        Alpn::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::Grpc => vec![b"h2".to_vec()],
    };
    Ok(Arc::new(config))
}

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS connections accepted on a listener: each handshake runs in its own task, and
/// finished ones are handed out in order of completion.
pub struct Incoming {
    local: SocketAddr,
    done: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl Incoming {
    /// Accepts on `listener` with `config` until this is dropped.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, done) = mpsc::channel(256);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    () = sender.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Out of descriptors and the like: wait, then go on.
                            tracing::warn!(%error, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Incoming { local, done })
    }

    /// The next connection whose handshake finished; `None` never (the accepting
    /// task lives as long as this).
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.done.recv().await
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Whether a finished handshake's client presented a verified certificate.
pub fn client_certified(stream: &TlsStream<TcpStream>) -> bool {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|chain| !chain.is_empty())
}

#[cfg(any(test, feature = "test-pki"))]
pub mod test_pki;

#[cfg(test)]
mod tests;
