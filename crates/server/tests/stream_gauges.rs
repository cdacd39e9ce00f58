//! `switchyard_streams{protocol}` over real sockets: each kind of stream (SDK SSE,
//! OFREP events, gRPC `Sync`, flagd's event stream, the console's live updates) counts under its own protocol while
//! it is open and no longer once the client goes; `switchyard_sse_clients` keeps
//! counting SSE and OFREP streams as before.

use std::time::Duration;

use serde_json::json;
use switchyard_server::grpc::proto::flagd;
use switchyard_server::grpc::proto::flagd::service_client::ServiceClient as FlagdV1Client;
use switchyard_server::grpc::proto::switchyard::sync_client::SyncClient;
use switchyard_server::grpc::proto::switchyard::StreamRequest;
use switchyard_testkit::console::ConsoleSession;
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{boolean_flag, Builder, TestServer, ADMIN};
use switchyard_testkit::sse;
use tonic::transport::Channel;

const ENV: &str = "prod";
const PATIENCE: Duration = Duration::from_secs(20);
const PROTOCOLS: [&str; 5] = ["sse", "ofrep", "grpc_sync", "flagd", "console"];

/// Every series of `switchyard_streams` and `switchyard_sse_clients`, in the order
/// of [`PROTOCOLS`] then the SSE clients.
async fn gauges(server: &TestServer) -> Vec<Option<i64>> {
    let (_, body) = server.call("GET", "/metrics", None, None).await;
    let text = body.as_str().unwrap_or_default().to_owned();
    let value = |series: String| {
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    PROTOCOLS
        .iter()
        .map(|protocol| value(format!(r#"switchyard_streams{{protocol="{protocol}"}} "#)))
        .chain([value("switchyard_sse_clients ".to_owned())])
        .collect()
}

/// Waits until the gauges read `want` ([`PROTOCOLS`], then the SSE clients).
async fn until_gauges(server: &TestServer, want: [i64; 6], what: &str) {
    let want: Vec<Option<i64>> = want.into_iter().map(Some).collect();
    eventually(PATIENCE, what, || {
        let want = &want;
        async move { (gauges(server).await == *want).then_some(()) }
    })
    .await;
}

/// `message` with `authorization: Bearer <token>` metadata.
fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().expect("metadata value");
    request.metadata_mut().insert("authorization", value);
    request
}

#[tokio::test]
async fn each_protocol_counts_its_open_streams_until_they_close() {
    // Frequent heartbeats: a closed SSE stream is noticed when the server next writes.
    let server = Builder::default()
        .grpc(None)
        .heartbeat(Duration::from_millis(100))
        .embedded()
        .await;
    server.create_env(ENV).await;
    server.put_flag(ENV, boolean_flag("checkout")).await;
    let token = server.token("sdk", "sdk", Some(ENV)).await;
    until_gauges(&server, [0; 6], "every series at 0 before any stream").await;

    let sdk_sse = sse::open(
        reqwest::Client::new()
            .get(server.url("/v1/sdk/stream"))
            .bearer_auth(&token),
    )
    .await;
    until_gauges(&server, [1, 0, 0, 0, 0, 1], "one SDK SSE stream").await;

    let (status, bulk) = server
        .call(
            "POST",
            "/ofrep/v1/evaluate/flags",
            Some(&token),
            Some(json!({"context": {"targetingKey": "u1"}})),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    let uri = bulk["eventStreams"][0]["endpoint"]["requestUri"]
        .as_str()
        .expect("an OFREP event stream")
        .to_owned();
    let ofrep = sse::open(reqwest::Client::new().get(server.url(&uri))).await;
    until_gauges(&server, [1, 1, 0, 0, 0, 2], "an OFREP stream too").await;

    let url = server.grpc.clone().expect("gRPC address");
    let channel = Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("gRPC connects");
    let mut sync = SyncClient::new(channel.clone())
        .stream(authed(
            StreamRequest {
                after_revision: None,
                environment: String::new(),
            },
            &token,
        ))
        .await
        .expect("a Sync stream")
        .into_inner();
    tokio::time::timeout(PATIENCE, sync.message())
        .await
        .expect("a snapshot in time")
        .expect("a snapshot")
        .expect("not the end");
    until_gauges(&server, [1, 1, 1, 0, 0, 2], "a gRPC Sync stream too").await;

    let mut events = FlagdV1Client::new(channel)
        .event_stream(authed(flagd::EventStreamRequest {}, &token))
        .await
        .expect("a flagd event stream")
        .into_inner();
    let ready = tokio::time::timeout(PATIENCE, events.message())
        .await
        .expect("an event in time")
        .expect("an event")
        .expect("not the end");
    assert_eq!(ready.r#type, "provider_ready");
    until_gauges(&server, [1, 1, 1, 1, 0, 2], "a flagd event stream too").await;

    let session = ConsoleSession::sign_in(server.url("").trim_end_matches('/'), ADMIN).await;
    let console = sse::open(
        reqwest::Client::new()
            .get(server.url(&format!("/console/events?env={ENV}")))
            .header("cookie", &session.cookie),
    )
    .await;
    until_gauges(&server, [1, 1, 1, 1, 1, 2], "the console's live stream too").await;

    // Each one that closes leaves its own series, and only that one.
    drop(sdk_sse);
    until_gauges(&server, [0, 1, 1, 1, 1, 1], "the SDK SSE stream gone").await;
    drop(ofrep);
    until_gauges(&server, [0, 0, 1, 1, 1, 0], "the OFREP stream gone").await;
    drop(sync);
    until_gauges(&server, [0, 0, 0, 1, 1, 0], "the Sync stream gone").await;
    drop(events);
    until_gauges(&server, [0, 0, 0, 0, 1, 0], "the flagd stream gone").await;
    drop(console);
    until_gauges(&server, [0; 6], "the console's stream gone").await;
    server.stop().await;
}
