//! The server binary over TLS with certificates made at test time: the SDK (live SSE
//! stream, and its gRPC transport at an `https://` URL) and the admin client over
//! HTTPS trusting the test CA, gRPC over TLS, the certificate swapped on SIGHUP
//! without dropping an open stream, and admin tokens accepted only with a client
//! certificate when the server asks for one.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_sdk::admin::AdminClient;
use switchyard_sdk::{Client, Context, Status, Transport};
use switchyard_testkit::server_process::{Launch, ServerProcess, ADMIN};
use switchyard_testkit::{eventually, unused_addr};
use switchyard_tls::test_pki::TestPki;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;

const PATIENCE: Duration = Duration::from_secs(20);

/// A server on the embedded store in `dir` serving `pki`'s certificate, asking for
/// client certificates of its CA and requiring one for admin tokens.
async fn start(dir: &std::path::Path, pki: &TestPki) -> ServerProcess {
    let path = |p: &std::path::Path| p.to_str().expect("UTF-8 path").to_owned();
    let args = [
        "--tls-cert".to_owned(),
        path(&pki.server_cert),
        "--tls-key".to_owned(),
        path(&pki.server_key),
        "--tls-client-ca".to_owned(),
        path(&pki.ca),
        "--admin-needs-client-certificate".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start_with(
        &dir.join("data"),
        Launch {
            args: &args,
            ..Launch::default()
        },
    )
    .await
}

/// An HTTPS client trusting `ca` only, presenting the client certificate when asked.
fn https(pki: &TestPki, with_client_certificate: bool) -> reqwest::Client {
    let ca = std::fs::read(&pki.ca).expect("CA");
    let mut builder = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("PEM"));
    if with_client_certificate {
        let mut pem = std::fs::read(&pki.client_cert).expect("cert");
        pem.extend(std::fs::read(&pki.client_key).expect("key"));
        builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    builder.build().expect("client")
}

/// Kills `checkout` over HTTPS with the client certificate.
async fn kill(client: &reqwest::Client, base: &str) {
    let response = client
        .post(format!("{base}/v1/admin/envs/prod/flags/checkout/kill"))
        .bearer_auth(ADMIN)
        .json(&json!({"reason": "incident"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

/// A gRPC health check over TLS trusting `ca`; whether it answered SERVING.
async fn grpc_serving(addr: std::net::SocketAddr, ca: &std::path::Path) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("CA") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(switchyard_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = rustls::pki_types::ServerName::try_from("localhost")
                    .expect("name")
                    .to_owned();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await;
    let Ok(channel) = channel else { return false };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    answer.is_ok_and(|a| a.into_inner().status == 1)
}

#[tokio::test]
async fn sdks_admins_and_grpc_speak_tls_and_a_new_certificate_leaves_streams_open() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = TestPki::new(&dir.path().join("pki"), "first");
    let mut server = start(dir.path(), &pki).await;
    let base = server.base.replacen("http://", "https://", 1);

    // Admin tokens need the client certificate; with it, set up over HTTPS.
    let certified = https(&pki, true);
    let plain = https(&pki, false);
    let refused = plain
        .get(format!("{base}/v1/admin/envs"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 403);
    let message = refused.text().await.unwrap_or_default();
    assert!(message.contains("--tls-client-ca"), "{message}");
    let setup = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        certified
            .request(method, format!("{base}{path}"))
            .bearer_auth(ADMIN)
            .json(&body)
    };
    let response = setup(reqwest::Method::PUT, "/v1/admin/envs/prod", json!(null))
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success(), "{}", response.status());
    let flag = switchyard_testkit::in_process::boolean_flag("checkout");
    let response = setup(
        reqwest::Method::PUT,
        "/v1/admin/envs/prod/flags/checkout",
        flag,
    )
    .send()
    .await
    .expect("sent");
    assert_eq!(response.status(), 201);
    let token: serde_json::Value = setup(
        reqwest::Method::POST,
        "/v1/admin/tokens",
        json!({"name": "web", "kind": "sdk", "env": "prod"}),
    )
    .send()
    .await
    .expect("sent")
    .json()
    .await
    .expect("token");
    let sdk_token = token["token"].as_str().expect("secret").to_owned();

    // The SDK trusts the test CA through its option; without it, the system roots
    // do not know the test CA and the first snapshot cannot be had.
    let untrusting = Client::builder(&base, &sdk_token)
        .initial_sync_timeout(Duration::from_secs(2))
        .build()
        .await;
    assert!(
        untrusting.is_err(),
        "the system roots do not know the test CA"
    );
    let sdk = Client::builder(&base, &sdk_token)
        .ca_file(&pki.ca)
        .build()
        .await
        .expect("SDK over HTTPS");
    let user = Context::new("user-1").group("beta");
    assert!(sdk.is_enabled("checkout", &user));
    // The gRPC transport at an `https://` URL, trusting the same CA file; one client
    // straight at the gRPC API, one whose first gRPC URL answers nothing, so it fails
    // over to the next. Polls are an hour apart: only their streams can deliver the
    // kill below in time.
    let grpc = format!(
        "https://127.0.0.1:{}",
        server.grpc_addr.expect("gRPC").port()
    );
    let over_grpc = |grpc_url: String, fallbacks: Vec<String>| {
        Client::builder(&base, &sdk_token)
            .ca_file(&pki.ca)
            .transport(Transport::Grpc)
            .grpc_url(grpc_url)
            .grpc_fallback_urls(fallbacks)
            .poll_interval(Duration::from_secs(3600))
            .build()
    };
    let grpc_sdk = over_grpc(grpc.clone(), Vec::new())
        .await
        .expect("SDK on gRPC over TLS");
    let failing_over = over_grpc(format!("https://{}", unused_addr()), vec![grpc.clone()])
        .await
        .expect("SDK on gRPC with a fallback");
    let response = setup(
        reqwest::Method::PUT,
        "/v1/admin/envs/prod/flags/added",
        switchyard_testkit::in_process::boolean_flag("added"),
    )
    .send()
    .await
    .expect("sent");
    assert_eq!(response.status(), 201);
    for client in [&grpc_sdk, &failing_over] {
        assert!(client.is_enabled("checkout", &user));
        eventually(
            PATIENCE,
            "a flag added, heard on the gRPC stream",
            || async { client.is_enabled("added", &user).then_some(()) },
        )
        .await;
        assert_eq!(client.status(), Status::Ready);
    }
    // The admin client (CLI, orchestrator) reads over HTTPS with the CA file too; an
    // admin token without a client certificate is refused, saying why.
    let admin = AdminClient::with_ca(&base, ADMIN, Some(&pki.ca)).expect("admin client");
    let error = admin
        .environments()
        .await
        .expect_err("no client certificate");
    assert!(error.to_string().contains("client certificate"), "{error}");
    assert!(grpc_serving(server.grpc_addr.expect("gRPC"), &pki.ca).await);

    // A certificate from another CA, swapped in on SIGHUP: the SDK's open stream
    // keeps going (it hears the next kill), new handshakes get the new certificate.
    let second = TestPki::new(&dir.path().join("second"), "second");
    std::fs::copy(&second.server_cert, &pki.server_cert).expect("copy");
    std::fs::copy(&second.server_key, &pki.server_key).expect("copy");
    server.signal(nix::sys::signal::Signal::SIGHUP);
    server.wait_for_output("TLS certificate reloaded").await;
    let new_ca = https(&second, false);
    let answer = new_ca
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("new certificate");
    assert_eq!(answer.status(), 200);
    // (A new client: `plain`'s pooled connection keeps the certificate it was opened
    // with, as every open connection does.)
    let fresh = https(&pki, false);
    assert!(
        fresh.get(format!("{base}/healthz")).send().await.is_err(),
        "the old CA no longer matches"
    );
    assert!(grpc_serving(server.grpc_addr.expect("gRPC"), &second.ca).await);
    // The client certificate is still of the first CA, which the server still trusts
    // for clients (--tls-client-ca did not change).
    let certified_second = {
        let ca = std::fs::read(&second.ca).expect("CA");
        let mut pem = std::fs::read(&pki.client_cert).expect("cert");
        pem.extend(std::fs::read(&pki.client_key).expect("key"));
        reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("PEM"))
            .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
            .build()
            .expect("client")
    };
    kill(&certified_second, &base).await;
    eventually(
        PATIENCE,
        "the SDK hears the kill on its open stream",
        || async { (!sdk.is_enabled("checkout", &user)).then_some(()) },
    )
    .await;
    for (client, what) in [(&grpc_sdk, "gRPC"), (&failing_over, "failed-over gRPC")] {
        eventually(
            PATIENCE,
            &format!("the SDK hears the kill on its {what} stream over TLS"),
            || async { (!client.is_enabled("checkout", &user)).then_some(()) },
        )
        .await;
    }
    server.kill().await;
}
