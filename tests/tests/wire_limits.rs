//! Flags at exactly the limits on variant values (`MAX_VALUE_DEPTH` levels of
//! nesting, `MAX_VALUE_BYTES` of JSON) and a few random accepted ones decode in every
//! wire form, with the real consumers: the SDK `Client` over SSE and over gRPC Sync,
//! the SDK snapshot, raw SSE change events, OFREP single and bulk, REST evaluation,
//! the flagd gRPC answer, the audit query, and a second replica on the same Redis.
//! One level over the limit is a 422 naming the path, and the environment keeps
//! syncing (the user-visible bug of issue 15: one deep flag stopped every SDK).
use std::time::Duration;

use serde_json::{json, Map, Value};
use switchyard_core::validation::{MAX_VALUE_BYTES, MAX_VALUE_DEPTH};
use switchyard_core::{validate_flag, Flag};
use switchyard_e2e::{admin, env_revision, env_with_sdk_token, on_flag, typed};
use switchyard_sdk::{Client, Context, Status, Transport};
use switchyard_server::grpc::convert;
use switchyard_server::grpc::proto::flagd::service_client::ServiceClient;
use switchyard_server::grpc::proto::flagd::{ResolveAllRequest, ResolveObjectRequest};
use switchyard_testkit::in_process::{self, ADMIN};
use switchyard_testkit::redis::RedisProcess;
use switchyard_testkit::{eventually, wait_until, DEADLINE};

/// `value` inside `levels` objects: `{"a": {"a": … value …}}`.
fn nested(levels: usize, value: Value) -> Value {
    (0..levels).fold(value, |inner, _| json!({ "a": inner }))
}

fn json_flag(key: &str, value: Value) -> Value {
    json!({
        "key": key, "kind": "json", "variants": {"big": value, "off": {}},
        "off_variant": "off", "default": {"variant": "big"}
    })
}

/// Deterministic random objects (SplitMix64) within the limits, some near them.
fn random_values(seed: u64, count: usize) -> Vec<Value> {
    let mut state = seed;
    let mut next = move |bound: u64| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % bound
    };
    let mut values = Vec::new();
    while values.len() < count {
        let depth = MAX_VALUE_DEPTH as u64 - next(4);
        let mut value = match next(4) {
            0 => json!(null),
            1 => json!(next(1_000_000)),
            2 => json!("é\"\n\u{1}".repeat(next(2_000) as usize)),
            _ => json!(["x".repeat(next(60_000) as usize), true, 1.5]),
        };
        // The top level is an object: flagd's ResolveObject answers objects only.
        for level in (0..depth).rev() {
            value = if level > 0 && next(2) == 0 {
                json!([value, next(10)])
            } else {
                let mut fields = Map::new();
                fields.insert(format!("k{}", next(100)), value);
                fields.insert("n".to_owned(), json!(next(10)));
                Value::Object(fields)
            };
        }
        let flag: Flag = serde_json::from_value(json_flag("r", value.clone())).expect("parses");
        if validate_flag(&flag).is_ok() {
            values.push(value);
        }
    }
    values
}

async fn post(http: &reqwest::Client, url: &str, token: &str, body: Value) -> Value {
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url} does not decode: {e}"))
}

/// The `change` events an SSE stream replays after `after`, up to revision `until`,
/// each decoded with serde_json.
async fn sse_changes(base: &str, token: &str, after: u64, until: u64) -> Vec<Value> {
    let mut response = reqwest::Client::new()
        .get(format!("{base}/v1/sdk/stream"))
        .bearer_auth(token)
        .header("Last-Event-ID", after.to_string())
        .send()
        .await
        .expect("stream opens");
    assert!(response.status().is_success(), "{}", response.status());
    let mut text = String::new();
    let mut changes = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while changes.len() < (until - after) as usize {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("change events in time")
            .expect("stream readable")
            .expect("stream still open");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if frame.starts_with("event: change") {
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("data line");
                let change: Value = serde_json::from_str(data)
                    .unwrap_or_else(|e| panic!("SSE change event does not decode: {e}"));
                changes.push(change);
            }
        }
    }
    changes
}

fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

#[tokio::test]
async fn values_at_the_limits_decode_in_every_wire_form() {
    let redis = RedisProcess::start();
    let server = in_process::Builder::default()
        .grpc(None)
        .redis(&redis.url())
        .await;
    let replica = in_process::start_redis(&redis.url()).await;
    let grpc = server.grpc.clone().expect("gRPC address");
    let admin = &admin(&server.base);
    let token = env_with_sdk_token(admin, "prod").await;
    admin
        .put_flag("prod", &typed(on_flag("killswitch")), None)
        .await
        .expect("put flag");

    let sse = Client::builder(&server.base, &token)
        .poll_interval(Duration::from_secs(3600))
        .build()
        .await
        .expect("SSE client builds");
    let over_grpc = Client::builder(&server.base, &token)
        .transport(Transport::Grpc)
        .grpc_url(&grpc)
        .poll_interval(Duration::from_secs(3600))
        .build()
        .await
        .expect("gRPC client builds");
    let ctx = Context::new("user-1");
    assert!(sse.is_enabled("killswitch", &ctx) && over_grpc.is_enabled("killswitch", &ctx));
    let before = env_revision(admin, "prod").await;

    // Exactly at the limits: the deepest value is all objects, the costliest shape
    // in a protobuf `Struct`; the largest is exactly MAX_VALUE_BYTES as JSON.
    let deepest = nested(MAX_VALUE_DEPTH, json!("leaf"));
    let filler = MAX_VALUE_BYTES - r#"{"s":""}"#.len();
    let largest = json!({ "s": "x".repeat(filler) });
    assert_eq!(
        serde_json::to_string(&largest).expect("json").len(),
        MAX_VALUE_BYTES
    );
    let mut values = vec![
        ("deepest".to_owned(), deepest),
        ("largest".to_owned(), largest),
    ];
    for (i, value) in random_values(15, 3).into_iter().enumerate() {
        values.push((format!("random-{i}"), value));
    }
    for (key, value) in &values {
        admin
            .put_flag("prod", &typed(json_flag(key, value.clone())), None)
            .await
            .expect("put flag");
    }
    let after = env_revision(admin, "prod").await;

    // The SDK over SSE and over gRPC Sync apply every change, then a kill.
    for (client, name) in [(&sse, "SSE"), (&over_grpc, "gRPC")] {
        wait_until(
            DEADLINE,
            &format!("{name} client at revision {after}"),
            || client.revision() == after,
        )
        .await;
        for (key, value) in &values {
            assert_eq!(
                &client.json_value(key, &ctx, json!(null)),
                value,
                "{name} {key}"
            );
        }
    }
    admin.kill("prod", "killswitch", "e2e").await.expect("kill");
    wait_until(DEADLINE, "the kill over SSE and gRPC", || {
        !sse.is_enabled("killswitch", &ctx) && !over_grpc.is_enabled("killswitch", &ctx)
    })
    .await;

    // The SDK snapshot and the raw SSE change events.
    let http = reqwest::Client::new();
    let snapshot = http
        .get(format!("{}/v1/sdk/snapshot", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("snapshot")
        .text()
        .await
        .expect("body");
    let snapshot: Value = serde_json::from_str(&snapshot).expect("the snapshot decodes");
    let flags = snapshot["flags"].as_array().expect("flags");
    for (key, value) in &values {
        let flag = flags.iter().find(|f| f["key"] == key.as_str()).expect(key);
        assert_eq!(&flag["variants"]["big"], value, "snapshot {key}");
    }
    let changes = sse_changes(&server.base, &token, before, after).await;
    assert_eq!(changes.len(), values.len());

    // OFREP single and bulk, REST evaluation single and bulk.
    let context = json!({"context": {"targetingKey": "user-1"}});
    let ofrep_bulk = post(
        &http,
        &format!("{}/ofrep/v1/evaluate/flags", server.base),
        &token,
        context.clone(),
    )
    .await;
    let rest_bulk = post(
        &http,
        &format!("{}/v1/evaluate/prod", server.base),
        &token,
        json!({"targetingKey": "user-1"}),
    )
    .await;
    for (key, value) in &values {
        let one = post(
            &http,
            &format!("{}/ofrep/v1/evaluate/flags/{key}", server.base),
            &token,
            context.clone(),
        )
        .await;
        assert_eq!(&one["value"], value, "OFREP {key}");
        let in_bulk = ofrep_bulk["flags"]
            .as_array()
            .expect("OFREP flags")
            .iter()
            .find(|f| f["key"] == key.as_str())
            .expect(key);
        assert_eq!(&in_bulk["value"], value, "OFREP bulk {key}");
        let rest = post(
            &http,
            &format!("{}/v1/evaluate/prod/{key}", server.base),
            &token,
            json!({"targetingKey": "user-1"}),
        )
        .await;
        assert_eq!(&rest["value"], value, "REST {key}");
        assert_eq!(&rest_bulk["flags"][key]["value"], value, "REST bulk {key}");
    }

    // flagd: ResolveObject and ResolveAll, decoded by tonic/prost.
    let mut flagd = ServiceClient::connect(grpc.clone())
        .await
        .expect("flagd connects");
    for (key, value) in &values {
        let answer = flagd
            .resolve_object(with_token(
                &token,
                ResolveObjectRequest {
                    flag_key: key.clone(),
                    context: None,
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("flagd ResolveObject {key}: {e}"))
            .into_inner();
        let got = Value::Object(convert::struct_to_json(&answer.value.expect("a value")));
        assert_eq!(&got, value, "flagd {key}");
    }
    let all = flagd
        .resolve_all(with_token(&token, ResolveAllRequest { context: None }))
        .await
        .expect("flagd ResolveAll")
        .into_inner();
    for (key, _) in &values {
        assert!(all.flags.contains_key(key), "flagd ResolveAll {key}");
    }

    // The audit log holds whole flags (before/after) and still decodes.
    let (status, audit) = server
        .call(
            "GET",
            "/v1/admin/audit?env=prod&limit=1000",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    for (key, value) in &values {
        let entry = audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["target"] == key.as_str() && e["action"] == "flag.put")
            .expect(key);
        assert_eq!(&entry["after"]["variants"]["big"], value, "audit {key}");
    }

    // The other replica received every change through Redis.
    for (key, value) in &values {
        let found = eventually(DEADLINE, &format!("{key} on the replica"), || async {
            let (status, flag) = replica
                .call(
                    "GET",
                    &format!("/v1/admin/envs/prod/flags/{key}"),
                    Some(ADMIN),
                    None,
                )
                .await;
            (status == 200).then_some(flag)
        })
        .await;
        assert_eq!(&found["variants"]["big"], value, "replica {key}");
    }

    // One level over: 422 naming the path; a body past serde_json's limit: 400.
    let too_deep = json_flag("too-deep", nested(MAX_VALUE_DEPTH + 1, json!("leaf")));
    let (status, body) = server
        .call(
            "PUT",
            "/v1/admin/envs/prod/flags/too-deep",
            Some(ADMIN),
            Some(too_deep),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!(
            "variants.big: nested {} levels deep; at most {MAX_VALUE_DEPTH} are allowed",
            MAX_VALUE_DEPTH + 1
        )),
        "{message}"
    );
    let too_large = json_flag("too-large", json!({ "s": "x".repeat(filler + 1) }));
    let (status, body) = server
        .call(
            "PUT",
            "/v1/admin/envs/prod/flags/too-large",
            Some(ADMIN),
            Some(too_large),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("variants.big: is 65537 bytes as JSON")),
        "{body}"
    );
    let unparsable = format!(
        r#"{{"key":"x","kind":"json","variants":{{"big":{}1{}}},"off_variant":"big","default":{{"variant":"big"}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let response = http
        .put(format!("{}/v1/admin/envs/prod/flags/x", server.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(unparsable)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid JSON body: nested more than 127 levels deep")),
        "{body}"
    );

    // The environment keeps syncing.
    admin
        .revive("prod", "killswitch", "e2e")
        .await
        .expect("revive");
    wait_until(DEADLINE, "the revive over SSE and gRPC", || {
        sse.is_enabled("killswitch", &ctx) && over_grpc.is_enabled("killswitch", &ctx)
    })
    .await;
    assert_eq!(sse.status(), Status::Ready);
    assert_eq!(over_grpc.status(), Status::Ready);

    sse.close().await;
    over_grpc.close().await;
    replica.stop().await;
    server.stop().await;
}
