//! Relays over real server processes: server → relay → relay, an SDK stream on the
//! second relay sees a kill made on the server as its next event and can move to
//! the first relay and resume; writes are refused naming the upstream; a relay
//! started while its upstream is down serves its last snapshot (readiness says
//! `degraded` with revision and age) and catches up; an upstream restarted is
//! resumed without a full reload; SDK metrics reach the server exactly once; a bad
//! token is checked upstream once, not per request; OFREP bulk `ETag`s are the
//! server's, so `If-None-Match` gets 304 from a relay; flagd evaluation answers as
//! the server does; a client resuming from before a relay's history gets a snapshot.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_server::grpc::convert::{json_to_struct, to_json};
use switchyard_server::grpc::proto::switchyard::evaluation_client::EvaluationClient;
use switchyard_server::grpc::proto::switchyard::EvaluateRequest;
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{boolean_flag, ADMIN};
use switchyard_testkit::server_process::{Launch, ServerProcess};
use switchyard_testkit::sse::{self, SseStream};

const ENV: &str = "production";
const PATIENCE: Duration = Duration::from_secs(20);

/// Sends a request with `token`; status and JSON body.
async fn call(base: &str, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `production` with the flag `checkout`, and an sdk token for it.
async fn seed(base: &str) -> String {
    let (status, body) = call(
        base,
        "PUT",
        &format!("/v1/admin/envs/{ENV}"),
        ADMIN,
        Value::Null,
    )
    .await;
    assert!(status == 201 || status == 200, "{body}");
    let path = format!("/v1/admin/envs/{ENV}/flags/checkout");
    let (status, body) = call(base, "PUT", &path, ADMIN, boolean_flag("checkout")).await;
    assert_eq!(status, 201, "{body}");
    let token = json!({"name": "relay-sdk", "kind": "sdk", "env": ENV});
    let (status, body) = call(base, "POST", "/v1/admin/tokens", ADMIN, token).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

/// A relay of `upstream` reading it with `token`, its state in `data`.
async fn relay(
    data: &Path,
    upstream: &str,
    token: &str,
    http_addr: Option<std::net::SocketAddr>,
) -> ServerProcess {
    let mut launch = Launch {
        args: &[],
        admin_token: None,
        ..Launch::default()
    };
    if let Some(addr) = http_addr {
        launch.http_addr = addr;
    }
    let args = [
        "--upstream",
        upstream,
        "--upstream-token",
        token,
        "--upstream-metrics-interval",
        "200ms",
    ];
    launch.args = &args;
    ServerProcess::start_with(data, launch).await
}

/// The environment's revision as the server at `base` serves it.
async fn revision(base: &str, token: &str) -> Option<u64> {
    let (status, body) = call(base, "GET", "/v1/sdk/snapshot", token, Value::Null).await;
    (status == 200).then(|| body["revision"].as_u64()).flatten()
}

/// Opens the SDK stream of the server at `base`, resuming after `after`.
async fn stream(base: &str, token: &str, after: Option<u64>) -> SseStream {
    let mut request = reqwest::Client::new()
        .get(format!("{base}/v1/sdk/stream"))
        .bearer_auth(token);
    if let Some(after) = after {
        request = request.header("last-event-id", after.to_string());
    }
    sse::open(request).await
}

/// Whether the flag `checkout` in a document is killed (`enabled: false`).
fn killed(document: &Value) -> bool {
    document["flags"]
        .as_array()
        .and_then(|flags| flags.iter().find(|f| f["key"] == "checkout"))
        .is_some_and(|flag| flag["enabled"] == json!(false))
}

/// One sample of `/metrics` at `base` whose line starts with `series`.
async fn sample(base: &str, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn readiness(base: &str) -> Value {
    reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json")
}

async fn stop(mut server: ServerProcess) {
    server.signal(Signal::SIGTERM);
    let status = server.wait().await;
    assert!(
        status.success(),
        "stopped with {status}:\n{}",
        server.output()
    );
}

#[tokio::test]
async fn a_chain_of_relays_serves_reads_with_the_servers_revisions_and_refuses_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&dir.path().join("server")).await;
    let sdk = seed(&server.base).await;
    // The first relay reads every environment (admin token), the second one
    // environment through the first (sdk token).
    let first = relay(&dir.path().join("first"), &server.base, ADMIN, None).await;
    let second = relay(&dir.path().join("second"), &first.base, &sdk, None).await;
    let at_start = revision(&server.base, &sdk).await.expect("server revision");
    let on_second: u64 = eventually(
        PATIENCE,
        "the second relay at the server's revision",
        || async {
            revision(&second.base, &sdk)
                .await
                .filter(|r| *r == at_start)
        },
    )
    .await;
    assert_eq!(on_second, at_start);

    // An OFREP provider on the second relay is told where to listen for changes.
    let (status, bulk) = call(
        &second.base,
        "POST",
        "/ofrep/v1/evaluate/flags",
        &sdk,
        json!({"context": {"targetingKey": "u1"}}),
    )
    .await;
    assert_eq!(status, 200, "{bulk}");
    let uri = bulk["eventStreams"][0]["endpoint"]["requestUri"]
        .as_str()
        .unwrap_or_else(|| panic!("the bulk answer announces an event stream: {bulk}"))
        .to_owned();
    let mut ofrep_events = sse::open(reqwest::Client::new().get(second.url(&uri))).await;

    let mut events = stream(&second.base, &sdk, None).await;
    let snapshot = events.next_event().await;
    assert_eq!(
        (snapshot.event.as_str(), snapshot.id()),
        ("snapshot", at_start)
    );
    assert!(!killed(&snapshot.json()));

    let kill = format!("/v1/admin/envs/{ENV}/flags/checkout/kill");
    let (status, body) = call(&server.base, "POST", &kill, ADMIN, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    let change = events.next_event().await;
    assert_eq!(
        (change.event.as_str(), change.id()),
        ("change", at_start + 1),
        "the kill is the next event, with the server's revision: {change:?}"
    );
    assert!(killed(&change.json()), "{}", change.data);
    let refetch = ofrep_events.next_event().await;
    assert_eq!(refetch.id(), at_start + 1, "{refetch:?}");
    assert!(refetch.data.contains("refetchEvaluation"), "{refetch:?}");

    // Evaluation on the second relay (OFREP) serves the kill.
    let (status, body) = call(
        &second.base,
        "POST",
        "/ofrep/v1/evaluate/flags/checkout",
        &sdk,
        json!({"context": {"targetingKey": "u1", "groups": ["beta"]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], json!(false), "{body}");
    // And gRPC evaluation, its token checked through both relays.
    let grpc = second.grpc_addr.expect("gRPC address");
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .expect("url")
        .connect()
        .await
        .expect("gRPC connects");
    let mut request = tonic::Request::new(EvaluateRequest {
        flag_key: "checkout".to_owned(),
        context: Some(json_to_struct(
            json!({"targetingKey": "u1", "groups": ["beta"]})
                .as_object()
                .expect("object"),
        )),
        environment: String::new(),
    });
    let bearer = format!("Bearer {sdk}").parse().expect("metadata");
    request.metadata_mut().insert("authorization", bearer);
    let answer = EvaluationClient::new(channel)
        .evaluate(request)
        .await
        .expect("gRPC evaluation on the relay")
        .into_inner();
    let result = answer.result.expect("a result");
    assert_eq!(
        result.value.as_ref().map(to_json),
        Some(json!(false)),
        "{result:?}"
    );

    // An SDK that moves to the first relay resumes after what it has: no snapshot.
    let mut moved = stream(&first.base, &sdk, Some(at_start)).await;
    let resumed = moved.next_event().await;
    assert_eq!(
        (resumed.event.as_str(), resumed.id()),
        ("change", at_start + 1)
    );

    // Writes go to the server.
    let put = format!("/v1/admin/envs/{ENV}/flags/another");
    for relay in [&first, &second] {
        let (status, body) = call(&relay.base, "PUT", &put, ADMIN, boolean_flag("another")).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "relay_read_only", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        let upstream = if std::ptr::eq(relay, &first) {
            &server.base
        } else {
            &first.base
        };
        assert!(
            message.contains(upstream.as_str()),
            "names the upstream: {message}"
        );
    }
    let (status, _) = call(&server.base, "GET", &put, ADMIN, Value::Null).await;
    assert_eq!(status, 404, "nothing was written anywhere");

    // A bad token: asked upstream once, then answered from the cache.
    for _ in 0..5 {
        let (status, _) = call(
            &second.base,
            "GET",
            "/v1/sdk/snapshot",
            "swy_bad_token",
            Value::Null,
        )
        .await;
        assert_eq!(status, 401);
    }
    let checks = sample(
        &second.base,
        "switchyard_relay_token_checks_total{result=\"invalid\"}",
    )
    .await;
    assert_eq!(checks, Some(1.0), "one check for five requests");
    let behind = sample(
        &second.base,
        &format!("switchyard_relay_revisions_behind{{env=\"{ENV}\"}}"),
    )
    .await;
    assert_eq!(behind, Some(0.0));
    assert_eq!(readiness(&second.base).await["status"], "ready");

    drop(events);
    drop(moved);
    drop(ofrep_events);
    stop(second).await;
    stop(first).await;
    stop(server).await;
}

#[tokio::test]
async fn a_relay_started_while_the_upstream_is_down_serves_its_last_snapshot_and_catches_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server_data = dir.path().join("server");
    let server = ServerProcess::start(&server_data).await;
    let sdk = seed(&server.base).await;
    let relay_data = dir.path().join("relay");
    let first_run = relay(&relay_data, &server.base, &sdk, None).await;
    let at_start = revision(&server.base, &sdk).await.expect("server revision");
    // The relay knows the sdk token once it has been used through it.
    assert_eq!(revision(&first_run.base, &sdk).await, Some(at_start));
    stop(first_run).await;
    let (addr, grpc_addr) = (server.addr, server.grpc_addr.expect("grpc address"));
    stop(server).await;

    // Upstream down: the relay starts from disk, degraded, and serves.
    let relay = relay(&relay_data, &format!("http://{addr}"), &sdk, None).await;
    let ready = readiness(&relay.base).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    let env = &ready["upstream"]["environments"][0];
    assert_eq!(
        (
            env["name"].as_str(),
            env["revision"].as_u64(),
            env["connected"].as_bool()
        ),
        (Some(ENV), Some(at_start), Some(false)),
        "{ready}"
    );
    assert!(env["age_seconds"].is_u64(), "{ready}");
    assert_eq!(
        revision(&relay.base, &sdk).await,
        Some(at_start),
        "the last snapshot is served"
    );
    let mut events = stream(&relay.base, &sdk, None).await;
    assert_eq!(events.next_event().await.id(), at_start);

    // The upstream comes back where it was; the relay catches up, and a kill made
    // there reaches the relay's stream as a change (the stream stayed open).
    let server = ServerProcess::start_on(&server_data, addr, grpc_addr).await;
    eventually(PATIENCE, "the relay in step again", || async {
        let ready = readiness(&relay.base).await;
        (ready["status"] == "ready")
            .then_some(())
            .ok_or(ready.to_string())
    })
    .await;
    let snapshots = sample(&relay.base, "switchyard_relay_snapshots_received_total").await;
    let kill = format!("/v1/admin/envs/{ENV}/flags/checkout/kill");
    let (status, body) = call(&server.base, "POST", &kill, ADMIN, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    let change = events.next_event().await;
    assert_eq!(
        (change.event.as_str(), change.id()),
        ("change", at_start + 1)
    );
    assert!(killed(&change.json()));
    assert_eq!(
        sample(&relay.base, "switchyard_relay_snapshots_received_total").await,
        snapshots,
        "the restarted upstream was resumed, not reloaded"
    );

    drop(events);
    stop(relay).await;
    stop(server).await;
}

#[tokio::test]
async fn metrics_from_sdks_on_relays_reach_the_server_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&dir.path().join("server")).await;
    let sdk = seed(&server.base).await;
    let first = relay(&dir.path().join("first"), &server.base, ADMIN, None).await;
    let second = relay(&dir.path().join("second"), &first.base, &sdk, None).await;
    let batch = |count: u64| {
        json!({"exposures": [{"flag": "checkout", "variant": "on", "count": count}],
               "events": [{"event": "purchase", "flag": "checkout", "variant": "on", "count": 1}]})
    };
    let mut sent = 0;
    for (relay, count) in [(&first, 3), (&second, 4), (&second, 5), (&first, 6)] {
        let (status, body) = call(&relay.base, "POST", "/v1/sdk/metrics", &sdk, batch(count)).await;
        assert_eq!(status, 202, "{body}");
        sent += count;
    }
    let metrics = format!("/v1/admin/envs/{ENV}/flags/checkout/metrics?window=5m");
    let counted = |body: &Value| {
        (
            body["variants"]["on"]["exposures"].as_u64().unwrap_or(0),
            body["variants"]["on"]["events"]["purchase"]
                .as_u64()
                .unwrap_or(0),
        )
    };
    eventually(PATIENCE, "every exposure at the server", || async {
        let (_, body) = call(&server.base, "GET", &metrics, ADMIN, Value::Null).await;
        (counted(&body).0 >= sent)
            .then_some(())
            .ok_or(body.to_string())
    })
    .await;
    // Once the relays have nothing left to send, the counts are exact.
    for relay in [&second, &first] {
        eventually(PATIENCE, "the relay's batches forwarded", || async {
            sample(
                &relay.base,
                "switchyard_relay_metrics_forwarded_batches_total",
            )
            .await
            .filter(|n| *n >= 1.0)
        })
        .await;
    }
    let (_, body) = call(&server.base, "GET", &metrics, ADMIN, Value::Null).await;
    assert_eq!(counted(&body), (sent, 4), "{body}");

    // A batch sent again under its idempotency key (a lost answer) counts once.
    let again = reqwest::Client::new()
        .post(server.url(&format!("/v1/sdk/metrics?env={ENV}")))
        .bearer_auth(ADMIN)
        .header("idempotency-key", "relay-batch-1");
    for _ in 0..2 {
        let response = again
            .try_clone()
            .expect("clone")
            .json(&batch(10))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 202);
    }
    let (_, body) = call(&server.base, "GET", &metrics, ADMIN, Value::Null).await;
    assert_eq!(counted(&body), (sent + 10, 5), "{body}");

    // Keys an SDK on the second relay evaluated without finding them travel up both
    // relays, so the server lists them as unknown flags.
    let unknown = json!({"unknown_flags": ["phantom"]});
    let (status, body) = call(&second.base, "POST", "/v1/sdk/metrics", &sdk, unknown).await;
    assert_eq!(status, 202, "{body}");
    let lifecycle = format!("/v1/admin/envs/{ENV}/lifecycle");
    eventually(PATIENCE, "the unknown key at the server", || async {
        let (_, body) = call(&server.base, "GET", &lifecycle, ADMIN, Value::Null).await;
        body["unknown"]
            .as_array()
            .is_some_and(|u| u.iter().any(|u| u["key"] == "phantom"))
            .then_some(())
            .ok_or(body.to_string())
    })
    .await;
    for relay in [&first, &second] {
        assert_eq!(
            sample(
                &relay.base,
                "switchyard_relay_metrics_dropped_entries_total"
            )
            .await,
            Some(0.0)
        );
    }
    stop(second).await;
    stop(first).await;
    stop(server).await;
}

/// `POST /ofrep/v1/evaluate/flags` at `base` with `if_none_match`: status and `ETag`.
async fn bulk(base: &str, token: &str, if_none_match: Option<&str>) -> (u16, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/ofrep/v1/evaluate/flags"))
        .bearer_auth(token)
        .json(&json!({"context": {"targetingKey": "u1"}}));
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let response = request.send().await.expect("bulk evaluation sent");
    let tag = response
        .headers()
        .get("etag")
        .and_then(|tag| tag.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), tag)
}

#[tokio::test]
async fn a_relay_answers_ofrep_bulk_if_none_match_with_the_servers_etags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&dir.path().join("server")).await;
    let sdk = seed(&server.base).await;
    let relay = relay(&dir.path().join("relay"), &server.base, &sdk, None).await;
    let at_start = revision(&server.base, &sdk).await.expect("server revision");
    assert_eq!(revision(&relay.base, &sdk).await, Some(at_start));

    // The tag hashes the environment, its revision and the request: a provider that
    // moves between the server and a relay keeps getting 304 for what it has.
    let (status, tag) = bulk(&server.base, &sdk, None).await;
    assert_eq!(status, 200);
    let tag = tag.expect("the server tags its bulk answer");
    let (status, on_relay) = bulk(&relay.base, &sdk, None).await;
    assert_eq!(
        (status, on_relay.as_deref()),
        (200, Some(tag.as_str())),
        "the relay tags the same answer the same way"
    );
    let (status, unchanged) = bulk(&relay.base, &sdk, Some(&tag)).await;
    assert_eq!(
        (status, unchanged.as_deref()),
        (304, Some(tag.as_str())),
        "nothing changed: 304 from the relay"
    );
    let (status, _) = bulk(&relay.base, &sdk, Some("\"stale\"")).await;
    assert_eq!(status, 200, "a tag the relay did not make is not matched");

    // A kill on the server: once the relay has it, the old tag no longer matches
    // there, and the new tag is the server's again.
    let kill = format!("/v1/admin/envs/{ENV}/flags/checkout/kill");
    let (status, body) = call(&server.base, "POST", &kill, ADMIN, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    eventually(PATIENCE, "the relay at the kill's revision", || async {
        revision(&relay.base, &sdk)
            .await
            .filter(|r| *r == at_start + 1)
    })
    .await;
    let (status, changed) = bulk(&relay.base, &sdk, Some(&tag)).await;
    assert_eq!(status, 200, "the old tag no longer matches after the kill");
    let changed = changed.expect("a new tag");
    assert_ne!(changed, tag);
    assert_eq!(
        bulk(&server.base, &sdk, None).await.1,
        Some(changed.clone())
    );
    assert_eq!(bulk(&relay.base, &sdk, Some(&changed)).await.0, 304);

    stop(relay).await;
    stop(server).await;
}

#[tokio::test]
async fn flagd_evaluation_on_a_relay_answers_as_the_server_and_follows_a_kill() {
    use switchyard_server::grpc::proto::flagd::service_client::ServiceClient;
    use switchyard_server::grpc::proto::flagd::ResolveBooleanRequest;

    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&dir.path().join("server")).await;
    let sdk = seed(&server.base).await;
    let relay = relay(&dir.path().join("relay"), &server.base, &sdk, None).await;
    let resolve = |grpc: std::net::SocketAddr| {
        let sdk = sdk.clone();
        async move {
            let mut client = ServiceClient::connect(format!("http://{grpc}"))
                .await
                .expect("flagd service connects");
            let mut request = tonic::Request::new(ResolveBooleanRequest {
                flag_key: "checkout".to_owned(),
                context: Some(json_to_struct(
                    json!({"targetingKey": "u1", "groups": ["beta"]})
                        .as_object()
                        .expect("object"),
                )),
            });
            let bearer = format!("Bearer {sdk}").parse().expect("metadata");
            request.metadata_mut().insert("authorization", bearer);
            let answer = client
                .resolve_boolean(request)
                .await
                .expect("ResolveBoolean answers")
                .into_inner();
            (answer.value, answer.variant, answer.reason)
        }
    };
    let server_grpc = server.grpc_addr.expect("server gRPC address");
    let relay_grpc = relay.grpc_addr.expect("relay gRPC address");

    let on_server = resolve(server_grpc).await;
    assert_eq!(
        (on_server.0, on_server.1.as_str()),
        (true, "on"),
        "the beta rule serves on: {on_server:?}"
    );
    assert_eq!(
        resolve(relay_grpc).await,
        on_server,
        "the relay answers alike"
    );

    let kill = format!("/v1/admin/envs/{ENV}/flags/checkout/kill");
    let (status, body) = call(&server.base, "POST", &kill, ADMIN, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    let killed_on_server = resolve(server_grpc).await;
    assert_eq!(
        (killed_on_server.0, killed_on_server.1.as_str()),
        (false, "off"),
        "{killed_on_server:?}"
    );
    let killed_on_relay = eventually(PATIENCE, "the kill served by the relay", || async {
        let answer = resolve(relay_grpc).await;
        (answer == killed_on_server)
            .then_some(answer.clone())
            .ok_or(format!("{answer:?}"))
    })
    .await;
    assert_eq!(killed_on_relay.2, killed_on_server.2, "the same reason");

    stop(relay).await;
    stop(server).await;
}

#[tokio::test]
async fn resuming_from_before_a_relays_history_gets_a_snapshot_where_the_server_resumes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&dir.path().join("server")).await;
    let sdk = seed(&server.base).await;
    // The relay starts from the server's snapshot: its history begins after it.
    let relay = relay(&dir.path().join("relay"), &server.base, &sdk, None).await;
    let at_start = revision(&server.base, &sdk).await.expect("server revision");
    assert!(at_start >= 1, "seeding made revisions: {at_start}");
    assert_eq!(revision(&relay.base, &sdk).await, Some(at_start));
    let kill = format!("/v1/admin/envs/{ENV}/flags/checkout/kill");
    let (status, body) = call(&server.base, "POST", &kill, ADMIN, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    eventually(PATIENCE, "the relay at the kill's revision", || async {
        revision(&relay.base, &sdk)
            .await
            .filter(|r| *r == at_start + 1)
    })
    .await;

    // After what the relay's history holds: the missed change.
    let mut resumed = stream(&relay.base, &sdk, Some(at_start)).await;
    let change = resumed.next_event().await;
    assert_eq!(
        (change.event.as_str(), change.id()),
        ("change", at_start + 1)
    );
    assert!(killed(&change.json()));

    // From before it (a gap for the relay): the whole environment as it is now,
    // while the server, whose history goes back further, resumes the same client.
    let before = at_start - 1;
    let mut on_relay = stream(&relay.base, &sdk, Some(before)).await;
    let snapshot = on_relay.next_event().await;
    assert_eq!(
        (snapshot.event.as_str(), snapshot.id()),
        ("snapshot", at_start + 1),
        "{snapshot:?}"
    );
    assert!(killed(&snapshot.json()), "{}", snapshot.data);
    let mut on_server = stream(&server.base, &sdk, Some(before)).await;
    let first = on_server.next_event().await;
    assert_eq!(
        (first.event.as_str(), first.id()),
        ("change", at_start),
        "{first:?}"
    );

    drop((resumed, on_relay, on_server));
    stop(relay).await;
    stop(server).await;
}
