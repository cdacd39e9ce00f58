use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use rustls::ClientConfig;

use super::test_pki::TestPki;
use super::*;

/// A client configuration trusting `ca` (a PEM file of one or more certificates) when
/// given, otherwise the system's roots.
fn client_config(ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for certificate in read_certificates(ca)? {
                roots.add(certificate).map_err(|source| TlsError::Rustls {
                    what: format!("a CA certificate in {}", ca.display()),
                    source,
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "a system root certificate could not be read");
            }
            // Some unusable system certificates are normal; the rest still count.
            roots.add_parsable_certificates(found.certs);
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "TLS protocol versions".into(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Connects with `config` to `addr` as `localhost`; the negotiated ALPN protocol.
async fn handshake(config: ClientConfig, addr: SocketAddr) -> std::io::Result<Option<Vec<u8>>> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(b"ping").await?;
    let mut answer = [0_u8; 4];
    tls.read_exact(&mut answer).await?;
    assert_eq!(&answer, b"pong");
    Ok(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
}

/// Serves `ping` → `pong` over TLS with `certificate`; the address.
async fn serve(certificate: Arc<Certificate>, alpn: Alpn) -> SocketAddr {
    let config = server_config(certificate, &ClientAuth::None, alpn).expect("config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut incoming = Incoming::new(listener, config).expect("incoming");
    let addr = incoming.local_addr();
    tokio::spawn(async move {
        while let Some((mut tls, _)) = incoming.next().await {
            tokio::spawn(async move {
                let mut ping = [0_u8; 4];
                if tls.read_exact(&mut ping).await.is_ok() {
                    let _ = tls.write_all(b"pong").await;
                }
            });
        }
    });
    addr
}

fn leaf_name(chain: &[CertificateDer<'_>]) -> bool {
    // The common name is in the DER as plain text; enough to tell two apart.
    let der = chain[0].as_ref();
    der.windows(b"second".len()).any(|w| w == b"second")
}

#[tokio::test]
async fn a_client_trusting_the_ca_connects_and_a_reloaded_certificate_serves_new_handshakes() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = TestPki::new(dir.path(), "first");
    let certificate = Certificate::load(&pki.server_cert, &pki.server_key).expect("loads");
    let addr = serve(Arc::clone(&certificate), Alpn::Http).await;

    let trusting = || client_config(Some(&pki.ca)).expect("client config");
    let mut offering = trusting();
    offering.alpn_protocols = vec![b"h2".to_vec()];
    assert_eq!(
        handshake(offering, addr).await.expect("TLS"),
        Some(b"h2".to_vec())
    );
    // The system roots do not include the test CA.
    assert!(handshake(client_config(None).expect("system roots"), addr)
        .await
        .is_err());

    // Unchanged files: nothing to do. New files: the next handshake sees them.
    assert!(!certificate.reload().expect("reload"));
    let second = TestPki::new(&dir.path().join("second"), "second");
    std::fs::copy(&second.server_cert, &pki.server_cert).expect("copy");
    std::fs::copy(&second.server_key, &pki.server_key).expect("copy");
    certificate.force_reload().expect("reload");
    assert!(leaf_name(&certificate.chain()));
    // Signed by the second CA now: a client of the first no longer trusts it.
    assert!(handshake(trusting(), addr).await.is_err());
    let second_client = client_config(Some(&second.ca)).expect("config");
    handshake(second_client, addr)
        .await
        .expect("TLS with the new certificate");
}

#[tokio::test]
async fn broken_files_are_refused_naming_the_file_and_the_old_certificate_stays() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = TestPki::new(dir.path(), "first");
    let missing = dir.path().join("missing.pem");
    let error = Certificate::load(&missing, &pki.server_key).expect_err("missing");
    assert!(error.to_string().contains("missing.pem"), "{error}");
    let error =
        Certificate::load(&pki.server_key, &pki.server_key).expect_err("a key, not a certificate");
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
    let error = Certificate::load(&pki.server_cert, &pki.client_key).expect_err("another key");
    assert!(error.to_string().contains("client.key"), "{error}");

    let certificate = Certificate::load(&pki.server_cert, &pki.server_key).expect("loads");
    let before = certificate.chain();
    std::fs::write(&pki.server_cert, "not PEM").expect("write");
    assert!(certificate.reload().is_err());
    assert_eq!(certificate.chain(), before, "the served certificate stays");
}

#[tokio::test]
async fn a_grpc_listener_offers_http2_only() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = TestPki::new(dir.path(), "first");
    let certificate = Certificate::load(&pki.server_cert, &pki.server_key).expect("loads");
    let addr = serve(certificate, Alpn::Grpc).await;
    let mut http1 = client_config(Some(&pki.ca)).expect("config");
    http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    assert!(handshake(http1, addr).await.is_err(), "no common protocol");
}
