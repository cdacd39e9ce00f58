//! SDK sync over a real socket: `GET /v1/sdk/snapshot`, `GET /v1/sdk/stream` (SSE)
//! and `POST /v1/sdk/metrics`.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{self, boolean_flag, start, unit_sketch, TestServer, ADMIN};
use switchyard_testkit::sse::{self, Frame, SseStream};

/// How long to wait for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Snapshot

/// `GET /v1/sdk/snapshot{query}`: status, `ETag`, body.
async fn snapshot(
    server: &TestServer,
    query: &str,
    token: &str,
    if_none_match: Option<&str>,
) -> (u16, Option<String>, String) {
    let mut request = server
        .http
        .get(server.url(&format!("/v1/sdk/snapshot{query}")))
        .bearer_auth(token);
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().expect("ascii etag").to_owned());
    (status, etag, response.text().await.expect("body"))
}

/// An environment `env` with flag `checkout`, and an sdk token for it.
async fn env_with_flag(server: &TestServer, env: &str) -> String {
    server.create_env(env).await;
    server.put_flag(env, boolean_flag("checkout")).await;
    server.token(&format!("{env}-sdk"), "sdk", Some(env)).await
}

fn revision(server: &TestServer, env: &str) -> u64 {
    server.state.envs.get(env).expect("env exists").revision
}

#[tokio::test]
async fn snapshot_has_an_etag_and_is_304_until_the_next_write() {
    let server = start().await;
    let sdk = env_with_flag(&server, "prod").await;
    let rev = revision(&server, "prod");

    let (status, etag, body) = snapshot(&server, "", &sdk, None).await;
    assert_eq!(status, 200, "{body}");
    let etag = etag.expect("ETag header");
    assert_eq!(etag, format!("\"{rev}\""));
    let doc: Value = serde_json::from_str(&body).expect("JSON snapshot");
    assert_eq!(doc["environment"], "prod");
    assert_eq!(doc["revision"], rev);
    assert_eq!(doc["flags"][0]["key"], "checkout");
    assert_eq!(doc["segments"], json!([]));

    // Unchanged: 304 with an empty body, also for a weak tag or a list of tags.
    for tag in [etag.clone(), format!("W/{etag}"), format!("\"0\", {etag}")] {
        let (status, again, body) = snapshot(&server, "", &sdk, Some(&tag)).await;
        assert_eq!(status, 304, "If-None-Match: {tag}");
        assert_eq!(again.as_deref(), Some(etag.as_str()));
        assert!(body.is_empty(), "304 body: {body}");
    }
    // Another tag: the document.
    let (status, _, _) = snapshot(&server, "", &sdk, Some("\"12345\"")).await;
    assert_eq!(status, 200);

    // A write moves the revision on: the old tag no longer matches.
    server.put_flag("prod", boolean_flag("search")).await;
    let (status, new_etag, body) = snapshot(&server, "", &sdk, Some(&etag)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(new_etag, Some(format!("\"{}\"", rev + 1)));
    let doc: Value = serde_json::from_str(&body).expect("JSON snapshot");
    assert_eq!(doc["revision"], rev + 1);
    let keys: Vec<&str> = doc["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(|f| f["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, ["checkout", "search"]);
    server.stop().await;
}

#[tokio::test]
async fn sdk_endpoints_check_the_token_class_and_take_the_env_from_the_token() {
    let server = start().await;
    let sdk = env_with_flag(&server, "prod").await;
    server.create_env("dev").await;
    server.put_flag("dev", boolean_flag("dev-only")).await;
    let eval = server.token("prod-eval", "eval", Some("prod")).await;
    let metrics = json!({ "exposures": [{ "flag": "checkout", "variant": "on", "count": 1 }] });

    // No token: 401 everywhere.
    for (method, path) in [
        ("GET", "/v1/sdk/snapshot"),
        ("GET", "/v1/sdk/stream"),
        ("POST", "/v1/sdk/metrics"),
    ] {
        let (status, body) = server.call(method, path, None, Some(metrics.clone())).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _) = server
            .call(method, path, Some("swy_nope_nope"), Some(metrics.clone()))
            .await;
        assert_eq!(status, 401, "{method} {path} with an unknown token");
        // Eval tokens may evaluate, not sync or report.
        let (status, body) = server
            .call(method, path, Some(&eval), Some(metrics.clone()))
            .await;
        assert_eq!(status, 403, "{method} {path} with an eval token: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }

    // The sdk token reads its own environment; naming another one is refused.
    let (status, _, body) = snapshot(&server, "", &sdk, None).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["environment"], "prod");
    assert_eq!(doc["flags"][0]["key"], "checkout");
    let (status, _, _) = snapshot(&server, "?env=prod", &sdk, None).await;
    assert_eq!(status, 200);
    let (status, _, body) = snapshot(&server, "?env=dev", &sdk, None).await;
    assert_eq!(status, 403, "{body}");

    // Admin tokens name the environment.
    let (status, _, body) = snapshot(&server, "?env=dev", ADMIN, None).await;
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["environment"], "dev");
    assert_eq!(doc["flags"][0]["key"], "dev-only");
    let (status, _, body) = snapshot(&server, "", ADMIN, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("?env="), "{body}");
    let (status, _, body) = snapshot(&server, "?env=nowhere", ADMIN, None).await;
    assert_eq!(status, 404, "{body}");
    let mut stream = connect(&server.base, ADMIN, "?env=dev", None).await;
    let first = stream.next_event().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.json()["environment"], "dev");

    // Metrics: an admin token (a relay forwarding its SDKs' reports) names
    // the environment with `?env=`, as for snapshots.
    let (status, body) = server
        .call(
            "POST",
            "/v1/sdk/metrics",
            Some(ADMIN),
            Some(metrics.clone()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("?env="), "{body}");
    let (status, body) = server
        .call(
            "POST",
            "/v1/sdk/metrics?env=dev",
            Some(ADMIN),
            Some(metrics.clone()),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = server
        .call("POST", "/v1/sdk/metrics", Some(&sdk), Some(metrics))
        .await;
    assert_eq!(status, 202, "{body}");
    drop(stream);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Server-Sent Events

/// Opens `/v1/sdk/stream{query}`, optionally resuming after `last_event_id`.
async fn connect(base: &str, token: &str, query: &str, last_event_id: Option<&str>) -> SseStream {
    // No client timeout: it would cut the (endless) body.
    let mut request = reqwest::Client::new()
        .get(format!("{base}/v1/sdk/stream{query}"))
        .bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    sse::open(request).await
}

/// A server on `dir` (kept across restarts) with its own heartbeat interval.
async fn start_on(dir: &Path, heartbeat: Option<Duration>) -> TestServer {
    let mut builder = in_process::Builder::default();
    if let Some(heartbeat) = heartbeat {
        builder = builder.heartbeat(heartbeat);
    }
    builder.embedded_in(dir).await
}

#[tokio::test]
async fn a_client_sees_a_kill_within_one_event() {
    let server = start().await;
    let sdk = env_with_flag(&server, "prod").await;
    server.create_env("dev").await;
    let rev = revision(&server, "prod");

    let mut stream = connect(&server.base, &sdk, "", None).await;
    let first = stream.next_event().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.id(), rev);
    let doc = first.json();
    assert_eq!(doc["environment"], "prod");
    assert_eq!(doc["revision"], rev);
    assert_eq!(doc["flags"][0]["key"], "checkout");
    assert_eq!(doc["flags"][0]["enabled"], true);

    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/envs/prod/flags/checkout/kill",
            Some(ADMIN),
            Some(json!({ "reason": "incident" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let change = stream.next_event().await;
    assert_eq!(change.event, "change");
    assert_eq!(change.id(), rev + 1);
    let doc = change.json();
    assert_eq!(doc["environment"], "prod");
    assert_eq!(doc["revision"], rev + 1);
    assert_eq!(doc["flags"][0]["key"], "checkout");
    assert_eq!(doc["flags"][0]["enabled"], false);

    // Writes elsewhere are not sent; the next event is this environment's next revision.
    server.put_flag("dev", boolean_flag("elsewhere")).await;
    let (status, _) = server
        .call(
            "DELETE",
            "/v1/admin/envs/prod/flags/checkout",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let change = stream.next_event().await;
    assert_eq!((change.event.as_str(), change.id()), ("change", rev + 2));
    let doc = change.json();
    assert_eq!(doc["environment"], "prod");
    assert_eq!(doc["deleted_flags"], json!(["checkout"]));
    assert_eq!(doc["flags"], json!([]));
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn resuming_with_last_event_id_replays_exactly_the_missed_revisions() {
    let server = start().await;
    let sdk = env_with_flag(&server, "prod").await;
    let seen = revision(&server, "prod");
    for key in ["a", "b", "c"] {
        server.put_flag("prod", boolean_flag(key)).await;
    }

    let mut stream = connect(&server.base, &sdk, "", Some(&seen.to_string())).await;
    for (offset, key) in ["a", "b", "c"].iter().enumerate() {
        let change = stream.next_event().await;
        assert_eq!(change.event, "change", "{change:?}");
        assert_eq!(change.id(), seen + 1 + offset as u64);
        assert_eq!(change.json()["flags"][0]["key"], *key);
    }
    // Nothing else was queued: the next event is the next write, not a snapshot.
    server.put_flag("prod", boolean_flag("d")).await;
    let change = stream.next_event().await;
    assert_eq!((change.event.as_str(), change.id()), ("change", seen + 4));
    assert_eq!(change.json()["flags"][0]["key"], "d");
    drop(stream);

    // Up to date already: nothing is replayed, the next event is the next change.
    let current = revision(&server, "prod");
    let mut stream = connect(&server.base, &sdk, "", Some(&current.to_string())).await;
    server.put_flag("prod", boolean_flag("e")).await;
    let change = stream.next_event().await;
    assert_eq!(
        (change.event.as_str(), change.id()),
        ("change", current + 1)
    );
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_or_too_old_last_event_id_gets_a_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_on(dir.path(), None).await;
    let (status, _) = server
        .call("PUT", "/v1/admin/envs/prod", Some(ADMIN), None)
        .await;
    assert_eq!(status, 201);
    for key in ["a", "b", "c"] {
        let (status, body) = server
            .call(
                "PUT",
                &format!("/v1/admin/envs/prod/flags/{key}"),
                Some(ADMIN),
                Some(boolean_flag(key)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(ADMIN),
            Some(json!({ "name": "sdk", "kind": "sdk", "env": "prod" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sdk = body["token"].as_str().expect("token").to_owned();

    // From the future, or not a revision at all.
    for last in ["999", "not-a-revision", ""] {
        let mut stream = connect(&server.base, &sdk, "", Some(last)).await;
        let first = stream.next_event().await;
        assert_eq!(first.event, "snapshot", "Last-Event-ID: {last}");
        assert_eq!(first.id(), 3);
        assert_eq!(first.json()["flags"].as_array().map(Vec::len), Some(3));
    }
    server.stop().await;

    // After a restart the change history is empty, so revision 1 is too old to resume from.
    let server = start_on(dir.path(), None).await;
    let mut stream = connect(&server.base, &sdk, "", Some("1")).await;
    let first = stream.next_event().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.id(), 3);
    assert_eq!(first.json()["revision"], 3);
    // And it is live from there.
    let (status, _) = server
        .call(
            "PUT",
            "/v1/admin/envs/prod/flags/d",
            Some(ADMIN),
            Some(boolean_flag("d")),
        )
        .await;
    assert_eq!(status, 201);
    let change = stream.next_event().await;
    assert_eq!((change.event.as_str(), change.id()), ("change", 4));
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn heartbeats_arrive_on_an_idle_stream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_on(dir.path(), Some(Duration::from_millis(50))).await;
    let (status, _) = server
        .call("PUT", "/v1/admin/envs/prod", Some(ADMIN), None)
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(ADMIN),
            Some(json!({ "name": "sdk", "kind": "sdk", "env": "prod" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sdk = body["token"].as_str().expect("token").to_owned();

    let mut stream = connect(&server.base, &sdk, "", None).await;
    assert_eq!(stream.next_event().await.event, "snapshot");
    for _ in 0..3 {
        let frame = stream.next_frame().await.expect("stream open");
        assert_eq!(frame, Frame::Comment("heartbeat".to_owned()));
    }
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn the_default_heartbeat_is_15_seconds() {
    let server = start().await;
    assert_eq!(server.state.sse_heartbeat, Duration::from_secs(15));
    server.stop().await;
}

#[tokio::test]
async fn stop_completes_while_a_stream_is_open_and_ends_it() {
    let server = start().await;
    let sdk = env_with_flag(&server, "prod").await;
    let telemetry = server.state.telemetry.clone();
    let mut first = connect(&server.base, &sdk, "", None).await;
    let mut second = connect(&server.base, &sdk, "", None).await;
    assert_eq!(first.next_event().await.event, "snapshot");
    assert_eq!(second.next_event().await.event, "snapshot");
    eventually(WAIT, "two SSE clients counted", || {
        let n = telemetry.sse_clients.get();
        async move { (n == 2).then_some(()) }
    })
    .await;
    drop(second);
    eventually(WAIT, "one SSE client counted", || {
        let n = telemetry.sse_clients.get();
        async move { (n == 1).then_some(()) }
    })
    .await;

    server.stop().await;
    assert_eq!(first.next_frame().await, None, "the stream ended");
    assert_eq!(telemetry.sse_clients.get(), 0);
}

// ---------------------------------------------------------------------------
// Metrics

async fn flag_metrics(server: &TestServer, env: &str, flag: &str) -> Value {
    let (status, body) = server
        .call(
            "GET",
            &format!("/v1/admin/envs/{env}/flags/{flag}/metrics?window=5m"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["variants"].clone()
}

#[tokio::test]
async fn metrics_batches_add_up_per_variant_and_event() {
    let server = start().await;
    let sdk = env_with_flag(&server, "prod").await;
    let first = json!({
        "exposures": [
            { "flag": "checkout", "variant": "on", "count": 5 },
            { "flag": "checkout", "variant": "off", "count": 7 },
            { "flag": "other", "variant": "on", "count": 100 }
        ],
        "events": [
            { "event": "purchase", "flag": "checkout", "variant": "on", "count": 2 },
            { "event": "error", "flag": "checkout", "variant": "off", "count": 1 }
        ]
    });
    let (status, body) = server
        .call("POST", "/v1/sdk/metrics", Some(&sdk), Some(first))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({ "accepted": { "exposures": 3, "events": 2 } }));
    let second = json!({
        "exposures": [
            { "flag": "checkout", "variant": "on", "count": 10 },
            { "flag": "checkout", "variant": "on", "count": 1 }
        ],
        "events": [
            { "event": "purchase", "flag": "checkout", "variant": "on", "count": 3 },
            { "event": "error", "flag": "checkout", "variant": "on", "count": 4 }
        ]
    });
    let (status, body) = server
        .call("POST", "/v1/sdk/metrics", Some(&sdk), Some(second))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({ "accepted": { "exposures": 2, "events": 2 } }));
    // Only events: exposures may be omitted.
    let third = json!({
        "events": [{ "event": "error", "flag": "checkout", "variant": "off", "count": 2 }]
    });
    let (status, body) = server
        .call("POST", "/v1/sdk/metrics", Some(&sdk), Some(third))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({ "accepted": { "exposures": 0, "events": 1 } }));

    assert_eq!(
        flag_metrics(&server, "prod", "checkout").await,
        json!({
            "off": { "exposures": 7, "events": { "error": 3 } },
            "on": { "exposures": 16, "events": { "error": 4, "purchase": 5 } }
        })
    );
    assert_eq!(
        flag_metrics(&server, "prod", "other").await,
        json!({ "on": { "exposures": 100, "events": {} } })
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_metrics_bodies_get_400_naming_the_field_and_record_nothing() {
    let server = start().await;
    let sdk = env_with_flag(&server, "prod").await;
    let ok = json!({ "flag": "checkout", "variant": "on", "count": 1 });
    let ok_event = json!({ "event": "buy", "flag": "checkout", "variant": "on", "count": 1 });
    let too_many: Vec<Value> = (0..10_001).map(|_| ok.clone()).collect();
    let cases = [
        (
            json!({ "exposures": [ok.clone(), ok.clone(), ok.clone(),
                { "flag": "checkout", "variant": "on", "count": 0 }] }),
            "exposures[3].count",
        ),
        (
            json!({ "exposures": [{ "flag": "checkout", "variant": "", "count": 1 }] }),
            "exposures[0].variant",
        ),
        (
            json!({ "exposures": [ok.clone(), { "flag": "", "variant": "on", "count": 1 }] }),
            "exposures[1].flag",
        ),
        (
            json!({ "exposures": [ok.clone()],
                    "events": [ok_event.clone(), { "event": "", "flag": "checkout", "variant": "on", "count": 1 }] }),
            "events[1].event",
        ),
        (
            json!({ "events": [{ "event": "buy", "flag": "checkout", "variant": "on", "count": 0 }] }),
            "events[0].count",
        ),
        (
            json!({ "events": [{ "event": "buy", "flag": "checkout", "variant": "", "count": 3 }] }),
            "events[0].variant",
        ),
        (
            json!({ "exposures": [ok.clone()], "exposure": [] }),
            "exposure",
        ),
        (
            json!({ "exposures": [{ "flag": "checkout", "variant": "on", "count": 1, "extra": 1 }] }),
            "extra",
        ),
        (
            json!({ "exposures": [{ "flag": "checkout", "variant": "on", "count": -1 }] }),
            "exposures[0].count",
        ),
        (
            json!({ "exposures": [{ "flag": "checkout", "variant": "on" }] }),
            "count",
        ),
        (json!({ "exposures": too_many }), "10000"),
        (
            json!({ "window_ms": 1000, "exposures": [ok.clone(),
                { "flag": "checkout", "variant": "on", "count": 1, "units": [7 << 8] }] }),
            "exposures[1].units: register 7 has rank 0",
        ),
        (
            json!({ "window_ms": 1000, "exposures": [
                { "flag": "checkout", "variant": "on", "count": 1, "units": [1 << 22 | 1] }] }),
            "exposures[0].units: register 16384 is out of range",
        ),
        (
            json!({ "exposures": [{ "flag": "checkout", "variant": "on", "count": 1, "units": [1 << 8 | 1] }] }),
            "window_ms: required with units",
        ),
        (
            json!({ "window_ms": 86_400_001u64, "exposures": [
                { "flag": "checkout", "variant": "on", "count": 1, "units": [1 << 8 | 1] }] }),
            "window_ms",
        ),
        (
            json!({ "window_ms": 10, "events": [{ "event": "buy", "flag": "checkout", "variant": "on",
                "count": 1, "values": { "count": 0, "sum": 1.0, "sum_squares": 1.0 } }] }),
            "events[0].values",
        ),
        (json!([]), "JSON object"),
        (json!("exposures"), "JSON object"),
    ];
    for (body, named) in cases {
        let (status, answer) = server
            .call("POST", "/v1/sdk/metrics", Some(&sdk), Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(named), "`{named}` not in `{message}`");
    }
    // No body at all.
    let response = server
        .http
        .post(server.url("/v1/sdk/metrics"))
        .bearer_auth(&sdk)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);

    // Nothing from a rejected batch was recorded, not even its valid entries.
    assert_eq!(flag_metrics(&server, "prod", "checkout").await, json!({}));
    assert_eq!(
        flag_units(&server, "prod", "checkout", "0").await["variants"],
        json!({})
    );
    server.stop().await;
}

async fn flag_units(server: &TestServer, env: &str, flag: &str, since: &str) -> Value {
    let (status, body) = server
        .call(
            "GET",
            &format!("/v1/admin/envs/{env}/flags/{flag}/units?since={since}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn units_merge_across_batches_and_are_read_since_a_time() {
    let server = start().await;
    let sdk = env_with_flag(&server, "prod").await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        - 60_000;
    // Two SDK instances: overlapping users, one event tracked by five users with values.
    for (range, window) in [(0..300, 1_000), (200..400, 2_000)] {
        let body = json!({
            "window_ms": window,
            "exposures": [{ "flag": "checkout", "variant": "on", "count": 500, "units": unit_sketch(range) }],
            "events": [{ "event": "error", "flag": "checkout", "variant": "on", "count": 9,
                "units": unit_sketch(0..5), "values": { "count": 9, "sum": 18.0, "sum_squares": 40.0 } }]
        });
        let (status, answer) = server
            .call("POST", "/v1/sdk/metrics", Some(&sdk), Some(body))
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    let seen = flag_units(&server, "prod", "checkout", &before.to_string()).await;
    let on = &seen["variants"]["on"];
    let distinct = on["units"].as_u64().expect("units");
    assert!(
        distinct.abs_diff(400) <= 4,
        "the union of 0..300 and 200..400: {seen}"
    );
    assert_eq!(on["events"]["error"]["units"], 5, "{seen}");
    assert_eq!(on["events"]["error"]["values"]["count"], 18, "{seen}");
    assert_eq!(on["events"]["error"]["values"]["sum"], 36.0, "{seen}");
    assert_eq!(seen["relative_error"], 1.04 / 128.0);
    // Counts that began before `since` are not read.
    let later = flag_units(&server, "prod", "checkout", "2099-01-01T00:00:00Z").await;
    assert_eq!(later["variants"], json!({}));
    // `since` is required and must be a time.
    for query in ["", "?since=yesterday"] {
        let (status, answer) = server
            .call(
                "GET",
                &format!("/v1/admin/envs/prod/flags/checkout/units{query}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("since"),
            "{answer}"
        );
    }
    let (status, _) = server
        .call(
            "GET",
            "/v1/admin/envs/nope/flags/checkout/units?since=0",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}
