//! Certificates made at test time (rcgen): a CA, a server certificate for `localhost`
//! and `127.0.0.1` signed by it, and a client certificate signed by it, written as PEM
//! files into a directory. For tests only (feature `test-pki`).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// PEM files of a test PKI.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate (what clients trust, and what client certificates chain to).
    pub ca: PathBuf,
    /// The server's certificate (for `localhost` and `127.0.0.1`) and key.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// A client certificate the CA signed, and its key.
    pub client_cert: PathBuf,
    /// The client's private key.
    pub client_key: PathBuf,
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

impl TestPki {
    /// A new CA and certificates in `dir`; `server_name` is the server certificate's
    /// common name (tests reload a certificate and tell the two apart by it).
    pub fn new(dir: &Path, server_name: &str) -> TestPki {
        std::fs::create_dir_all(dir).expect("PKI directory");
        let ca = ca();
        let leaf = |names: Vec<String>, common: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("names");
            params.distinguished_name.push(DnType::CommonName, common);
            let cert = params.signed_by(&key, &*ca).expect("signed");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) =
            leaf(vec!["localhost".into(), "127.0.0.1".into()], server_name);
        let (client_cert, client_key) = leaf(vec!["client".into()], "switchyard test client");
        TestPki {
            ca: write(dir, "ca.pem", &ca.pem()),
            server_cert: write(dir, &format!("{server_name}.pem"), &server_cert),
            server_key: write(dir, &format!("{server_name}.key"), &server_key),
            client_cert: write(dir, "client.pem", &client_cert),
            client_key: write(dir, "client.key", &client_key),
        }
    }

    /// A server certificate for the same names, signed by another CA of its own (one
    /// the clients do not trust).
    pub fn untrusted_server(dir: &Path) -> (PathBuf, PathBuf) {
        let other = TestPki::new(&dir.join("untrusted"), "untrusted");
        (other.server_cert, other.server_key)
    }
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "switchyard test CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}
