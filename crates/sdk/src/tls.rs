//! HTTPS for the SDK's HTTP clients: reqwest's rustls (aws-lc-rs) trusts the
//! system's roots (`SSL_CERT_FILE` adds a private CA to them), or, when a CA file is
//! given, the certificates in it alone.

use std::path::Path;

use crate::Error;

/// `builder`, trusting only the PEM certificates in `ca` when it is given.
pub fn trusting(
    builder: reqwest::ClientBuilder,
    ca: Option<&Path>,
) -> Result<reqwest::ClientBuilder, Error> {
    let Some(ca) = ca else {
        return Ok(builder);
    };
    let bad = |reason: String| Error::CaFile {
        path: ca.to_owned(),
        reason,
    };
    let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(bad(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned(),
        ));
    }
    Ok(builder.tls_certs_only(certificates))
}
