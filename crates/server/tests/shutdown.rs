//! Graceful shutdown: the real binary exits 0 soon after SIGTERM, even with an SDK
//! stream connected and a client holding an idle keep-alive connection.
#![cfg(unix)]

use futures_util::StreamExt;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_testkit::server_process::{ServerProcess, ADMIN, DEADLINE};

#[tokio::test]
async fn sigterm_exits_zero_with_clients_connected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(dir.path()).await;
    // A pooled client keeps its connection open (idle) after these requests.
    let client = reqwest::Client::new();
    let response = client
        .put(server.url("/v1/admin/envs/production"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("create env");
    assert_eq!(response.status().as_u16(), 201);
    let response = client
        .post(server.url("/v1/admin/tokens"))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": "sdk", "kind": "sdk", "env": "production" }))
        .send()
        .await
        .expect("create token");
    assert_eq!(response.status().as_u16(), 201);
    let token: Value = response.json().await.expect("token JSON");
    let token = token["token"].as_str().expect("token");

    // A connected SDK stream: wait for its first event so it is surely open.
    let stream = reqwest::Client::new()
        .get(server.url("/v1/sdk/stream"))
        .bearer_auth(token)
        .send()
        .await
        .expect("open stream");
    assert_eq!(stream.status().as_u16(), 200);
    let mut stream = stream.bytes_stream();
    let first = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("first event within the deadline");
    assert!(matches!(first, Some(Ok(_))), "{first:?}");

    server.signal(Signal::SIGTERM);
    let status = server.wait().await;
    assert!(
        status.success(),
        "exit status {status:?}; output:\n{}",
        server.output()
    );
    assert!(
        server.output().contains("shutting down"),
        "{}",
        server.output()
    );
    // The stream was ended, not left hanging.
    let rest = tokio::time::timeout(DEADLINE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(rest.is_ok(), "the SSE stream did not end");

    // What was written before the signal is there after a restart.
    let server = ServerProcess::start(dir.path()).await;
    let response = client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, json!({ "status": "ready", "environments": 1 }));
}
