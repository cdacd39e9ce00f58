//! OFREP over a real socket: response shapes field by field, every status the spec
//! names (and ours: 401, 403, 413), and the bulk `ETag` / `If-None-Match` cycle.

use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::{json, Value};
use switchyard_core::{evaluate, Context};
use switchyard_testkit::in_process::{boolean_flag, deferring_flag, start, TestServer, ADMIN};
use switchyard_testkit::sse;

const ONE: &str = "/ofrep/v1/evaluate/flags";

/// A server with environments `prod` (flags `checkout` and `banner`) and `dev`
/// (flag `dev-only`), and an sdk token for `prod`.
async fn setup() -> (TestServer, String) {
    let server = start().await;
    server.create_env("prod").await;
    server.create_env("dev").await;
    server.put_flag("prod", boolean_flag("checkout")).await;
    server
        .put_flag(
            "prod",
            json!({
                "key": "banner", "kind": "string",
                "variants": {"blue": "blue", "green": "green"}, "off_variant": "blue",
                "default": {"variant": "green"}
            }),
        )
        .await;
    server.put_flag("dev", boolean_flag("dev-only")).await;
    let token = server.token("web", "sdk", Some("prod")).await;
    (server, token)
}

/// POSTs raw bytes with optional bearer token and extra headers; returns status,
/// headers and JSON body (Null when empty).
async fn post_raw(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .http
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, body)
}

fn flag_path(key: &str) -> String {
    format!("{ONE}/{key}")
}

fn object_keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn single_flag_success_has_the_spec_shape() {
    let (server, token) = setup().await;
    let ctx = json!({"context": {"targetingKey": "u1", "groups": ["beta"]}});
    let (status, body) = server
        .call("POST", &flag_path("checkout"), Some(&token), Some(ctx))
        .await;
    assert_eq!(status, 200, "{body}");
    let version = body["metadata"]["flag_version"]
        .as_u64()
        .expect("flag_version");
    assert!(version >= 1, "{body}");
    assert_eq!(
        body,
        json!({
            "key": "checkout", "value": true, "reason": "TARGETING_MATCH", "variant": "on",
            "metadata": {"flag_version": version, "rule_id": "beta"}
        })
    );

    // No rule matches: the default, and no rule_id.
    let ctx = json!({"context": {"targetingKey": "u2", "country": "IT"}});
    let (status, body) = server
        .call("POST", &flag_path("checkout"), Some(&token), Some(ctx))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "key": "checkout", "value": false, "reason": "DEFAULT", "variant": "off",
            "metadata": {"flag_version": version}
        })
    );

    // A string flag without rules is STATIC; an eval token may evaluate too.
    let eval = server.token("front", "eval", Some("prod")).await;
    let ctx = json!({"context": {"targetingKey": "u3"}});
    let (status, body) = server
        .call("POST", &flag_path("banner"), Some(&eval), Some(ctx))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            &body["key"],
            &body["value"],
            &body["reason"],
            &body["variant"]
        ),
        (
            &json!("banner"),
            &json!("green"),
            &json!("STATIC"),
            &json!("green")
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn split_disabled_and_prerequisite_reasons() {
    let (server, token) = setup().await;
    server
        .put_flag(
            "prod",
            json!({
                "key": "ramp", "kind": "boolean", "variants": {"on": true, "off": false},
                "off_variant": "off",
                "default": {"rollout": {"split": [{"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]}}
            }),
        )
        .await;
    let state = server.state.envs.get("prod").expect("prod");
    let mut served = std::collections::BTreeSet::new();
    for user in ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"] {
        let expected = evaluate(&state.snapshot, "ramp", &Context::new(user));
        let (status, body) = server
            .call(
                "POST",
                &flag_path("ramp"),
                Some(&token),
                Some(json!({"context": {"targetingKey": user}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["reason"], "SPLIT", "{body}");
        assert_eq!(Some(&body["value"]), expected.value, "{user}: {body}");
        assert_eq!(body["variant"].as_str(), expected.variant, "{user}: {body}");
        assert_eq!(object_keys(&body["metadata"]), ["flag_version"], "{body}");
        served.insert(body["variant"].as_str().expect("variant").to_owned());
    }
    assert_eq!(
        served.len(),
        2,
        "these users fall on both sides of the split"
    );

    // A flag whose prerequisite is not met serves its off variant: DISABLED, with the
    // precise reason in metadata.
    server
        .put_flag(
            "prod",
            json!({
                "key": "gated", "kind": "boolean", "variants": {"on": true, "off": false},
                "off_variant": "off", "default": {"variant": "on"},
                "prerequisites": [{"flag": "checkout", "variant": "on"}]
            }),
        )
        .await;
    let ctx = json!({"context": {"targetingKey": "u1"}});
    let (status, body) = server
        .call("POST", &flag_path("gated"), Some(&token), Some(ctx.clone()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["value"], &body["reason"], &body["variant"]),
        (&json!(false), &json!("DISABLED"), &json!("off"))
    );
    assert_eq!(body["metadata"]["reason_detail"], "PREREQUISITE_FAILED");
    let beta = json!({"context": {"targetingKey": "u1", "groups": ["beta"]}});
    let (_, body) = server
        .call("POST", &flag_path("gated"), Some(&token), Some(beta))
        .await;
    assert_eq!(
        (&body["value"], &body["reason"]),
        (&json!(true), &json!("DEFAULT"))
    );

    // Killed: DISABLED, the off variant, no reason_detail.
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/envs/prod/flags/checkout/kill",
            Some(ADMIN),
            Some(json!({"reason": "incident"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let beta = json!({"context": {"targetingKey": "u1", "groups": ["beta"]}});
    let (status, body) = server
        .call("POST", &flag_path("checkout"), Some(&token), Some(beta))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["value"], &body["reason"], &body["variant"]),
        (&json!(false), &json!("DISABLED"), &json!("off"))
    );
    assert_eq!(object_keys(&body["metadata"]), ["flag_version"], "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_flag_that_defers_leaves_the_value_out_so_the_code_default_applies() {
    let (server, token) = setup().await;
    server.put_flag("prod", deferring_flag("deferring")).await;
    let ctx = json!({"context": {"targetingKey": "u1"}});
    let (status, body) = server
        .call(
            "POST",
            &flag_path("deferring"),
            Some(&token),
            Some(ctx.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // OFREP ADR 0006: no `value` (and no variant) means "use your code default".
    assert_eq!(object_keys(&body), ["key", "metadata", "reason"], "{body}");
    assert_eq!(body["reason"], "DISABLED", "{body}");
    let (status, body) = server.call("POST", ONE, Some(&token), Some(ctx)).await;
    assert_eq!(status, 200, "{body}");
    let entry = body["flags"]
        .as_array()
        .and_then(|f| f.iter().find(|e| e["key"] == "deferring"))
        .unwrap_or_else(|| panic!("the bulk answer lists it: {body}"));
    assert_eq!(object_keys(entry), ["key", "metadata", "reason"], "{entry}");
    server.stop().await;
}

#[tokio::test]
async fn single_flag_errors_have_the_spec_shape() {
    let (server, token) = setup().await;
    let ok = br#"{"context": {"targetingKey": "u1"}}"#.to_vec();

    // 404: {key, errorCode: FLAG_NOT_FOUND, errorDetails}. Flags of other environments
    // do not exist for this token.
    for missing in ["nope", "dev-only"] {
        let (status, _, body) =
            post_raw(&server, &flag_path(missing), Some(&token), &[], ok.clone()).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(object_keys(&body), ["errorCode", "errorDetails", "key"]);
        assert_eq!(body["key"], missing);
        assert_eq!(body["errorCode"], "FLAG_NOT_FOUND");
        assert!(
            body["errorDetails"]
                .as_str()
                .expect("details")
                .contains(missing),
            "{body}"
        );
    }

    // 400: {key, errorCode, errorDetails} with the spec's codes.
    let cases: [(&[u8], &str, &str); 7] = [
        (b"{not json", "PARSE_ERROR", "not valid JSON"),
        (b"", "PARSE_ERROR", "empty"),
        (b"[1, 2]", "PARSE_ERROR", "JSON object"),
        (b"{}", "INVALID_CONTEXT", "`context` is required"),
        (
            br#"{"context": 7}"#,
            "INVALID_CONTEXT",
            "must be a JSON object",
        ),
        (
            br#"{"context": {"targetingKey": 5}}"#,
            "INVALID_CONTEXT",
            "targetingKey",
        ),
        (
            br#"{"context": {"targetingKey": "u1", "address": {"city": "Rome"}}}"#,
            "INVALID_CONTEXT",
            "address",
        ),
    ];
    for (body, code, detail) in cases {
        let (status, _, response) = post_raw(
            &server,
            &flag_path("checkout"),
            Some(&token),
            &[],
            body.to_vec(),
        )
        .await;
        let input = String::from_utf8_lossy(body);
        assert_eq!(status, 400, "{input}: {response}");
        assert_eq!(
            object_keys(&response),
            ["errorCode", "errorDetails", "key"],
            "{input}"
        );
        assert_eq!(response["key"], "checkout", "{input}");
        assert_eq!(response["errorCode"], code, "{input}: {response}");
        let details = response["errorDetails"].as_str().expect("details");
        assert!(details.contains(detail), "{input}: {details}");
    }

    // Too many attributes is an invalid context, not a 500.
    let mut context = serde_json::Map::new();
    context.insert("targetingKey".into(), json!("u1"));
    for i in 0..1_001 {
        context.insert(format!("a{i}"), json!(i));
    }
    let body = serde_json::to_vec(&json!({ "context": context })).expect("json");
    let (status, _, response) =
        post_raw(&server, &flag_path("checkout"), Some(&token), &[], body).await;
    assert_eq!(
        (status, &response["errorCode"]),
        (400, &json!("INVALID_CONTEXT"))
    );
    server.stop().await;
}

#[tokio::test]
async fn auth_and_size_errors_on_both_endpoints() {
    let (server, token) = setup().await;
    let ok = br#"{"context": {"targetingKey": "u1"}}"#.to_vec();
    let paths = [flag_path("checkout"), ONE.to_owned()];
    for path in &paths {
        let (status, _, body) = post_raw(&server, path, None, &[], ok.clone()).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _, body) =
            post_raw(&server, path, Some("swy_000000000000_bad"), &[], ok.clone()).await;
        assert_eq!(status, 401, "{path}: {body}");

        // Admin tokens have no environment.
        let (status, _, body) = post_raw(&server, path, Some(ADMIN), &[], ok.clone()).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains("not bound to an environment"), "{message}");

        // Over the body limit.
        let mut big = br#"{"context": {"targetingKey": "u1", "pad": ""#.to_vec();
        big.extend(std::iter::repeat_n(b'x', switchyard_server::http::MAX_BODY));
        big.extend(br#""}}"#);
        let (status, _, body) = post_raw(&server, path, Some(&token), &[], big).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert_eq!(body["error"]["code"], "payload_too_large");
    }
    server.stop().await;
}

#[tokio::test]
async fn bulk_evaluates_the_token_environment() {
    let (server, token) = setup().await;
    let body = br#"{"context": {"targetingKey": "u1", "groups": ["beta"]}}"#.to_vec();
    let (status, headers, response) = post_raw(&server, ONE, Some(&token), &[], body).await;
    assert_eq!(status, 200, "{response}");
    let tag = headers[ETAG].to_str().expect("etag");
    assert!(
        tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
        "{tag}"
    );
    assert_eq!(
        object_keys(&response),
        ["eventStreams", "flags", "metadata"]
    );
    let revision = server.state.envs.get("prod").expect("prod").revision;
    assert_eq!(
        response["metadata"],
        json!({"environment": "prod", "revision": revision})
    );
    let flags = response["flags"].as_array().expect("flags");
    let mut keys: Vec<&str> = flags
        .iter()
        .map(|f| f["key"].as_str().expect("key"))
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["banner", "checkout"], "only prod's flags");
    let checkout = flags
        .iter()
        .find(|f| f["key"] == "checkout")
        .expect("checkout");
    let version = checkout["metadata"]["flag_version"].clone();
    assert_eq!(
        checkout,
        &json!({
            "key": "checkout", "value": true, "reason": "TARGETING_MATCH", "variant": "on",
            "metadata": {"flag_version": version, "rule_id": "beta"}
        })
    );

    // The dev token sees dev's flags only.
    let dev = server.token("dev-sdk", "eval", Some("dev")).await;
    let body = br#"{"context": {"targetingKey": "u1"}}"#.to_vec();
    let (status, _, response) = post_raw(&server, ONE, Some(&dev), &[], body).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["flags"][0]["key"], "dev-only");
    assert_eq!(response["flags"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn bulk_errors_have_the_spec_shape() {
    let (server, token) = setup().await;
    let cases: [(&[u8], &str); 3] = [
        (b"nope", "PARSE_ERROR"),
        (b"{}", "INVALID_CONTEXT"),
        (
            br#"{"context": {"targetingKey": "u1", "tags": [1, 2]}}"#,
            "INVALID_CONTEXT",
        ),
    ];
    for (body, code) in cases {
        let (status, headers, response) =
            post_raw(&server, ONE, Some(&token), &[], body.to_vec()).await;
        let input = String::from_utf8_lossy(body);
        assert_eq!(status, 400, "{input}: {response}");
        assert_eq!(
            object_keys(&response),
            ["errorCode", "errorDetails"],
            "{input}"
        );
        assert_eq!(response["errorCode"], code, "{input}");
        assert!(!response["errorDetails"]
            .as_str()
            .expect("details")
            .is_empty());
        assert!(headers.get(ETAG).is_none(), "no ETag on errors");
    }
    server.stop().await;
}

#[tokio::test]
async fn bulk_etag_and_if_none_match_cycle() {
    let (server, token) = setup().await;
    let body = br#"{"context": {"targetingKey": "u1"}}"#.to_vec();
    let (status, headers, _) = post_raw(&server, ONE, Some(&token), &[], body.clone()).await;
    assert_eq!(status, 200);
    let tag = headers[ETAG].to_str().expect("etag").to_owned();

    // Same context, nothing changed: the same tag, and 304 with no body when sent back.
    let (status, headers, _) = post_raw(&server, ONE, Some(&token), &[], body.clone()).await;
    assert_eq!(
        (status, headers[ETAG].to_str().expect("etag")),
        (200, tag.as_str())
    );
    let (status, headers, response) = post_raw(
        &server,
        ONE,
        Some(&token),
        &[(IF_NONE_MATCH.as_str(), &tag)],
        body.clone(),
    )
    .await;
    assert_eq!(status, 304);
    assert_eq!(response, Value::Null, "a 304 has no body");
    assert_eq!(headers[ETAG].to_str().expect("etag"), tag);
    // In a list, or weak, it matches too; a stale tag does not.
    let listed = format!("\"stale\", W/{tag}");
    let (status, _, _) = post_raw(
        &server,
        ONE,
        Some(&token),
        &[(IF_NONE_MATCH.as_str(), &listed)],
        body.clone(),
    )
    .await;
    assert_eq!(status, 304);
    let (status, _, response) = post_raw(
        &server,
        ONE,
        Some(&token),
        &[(IF_NONE_MATCH.as_str(), "\"stale\"")],
        body.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(response["flags"].is_array());

    // Another context: another tag, and the old one does not match it.
    let other = br#"{"context": {"targetingKey": "u2"}}"#.to_vec();
    let (status, headers, response) = post_raw(
        &server,
        ONE,
        Some(&token),
        &[(IF_NONE_MATCH.as_str(), &tag)],
        other,
    )
    .await;
    assert_eq!(status, 200, "{response}");
    assert_ne!(headers[ETAG].to_str().expect("etag"), tag);

    // A flag change: a new tag, and the old one no longer yields 304.
    let mut changed = boolean_flag("checkout");
    changed["default"] = json!({"variant": "on"});
    server.put_flag("prod", changed).await;
    let (status, headers, response) = post_raw(
        &server,
        ONE,
        Some(&token),
        &[(IF_NONE_MATCH.as_str(), &tag)],
        body.clone(),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    let new_tag = headers[ETAG].to_str().expect("etag").to_owned();
    assert_ne!(new_tag, tag);
    let checkout = response["flags"]
        .as_array()
        .and_then(|flags| flags.iter().find(|f| f["key"] == "checkout"))
        .expect("checkout");
    assert_eq!(checkout["value"], true, "the change is served");
    let (status, _, _) = post_raw(
        &server,
        ONE,
        Some(&token),
        &[(IF_NONE_MATCH.as_str(), &new_tag)],
        body,
    )
    .await;
    assert_eq!(status, 304);
    server.stop().await;
}

#[tokio::test]
async fn anonymous_contexts_are_evaluated() {
    let (server, token) = setup().await;
    for body in [
        &br#"{"context": {"country": "IT"}}"#[..],
        br#"{"context": {}}"#,
        br#"{"context": {"targetingKey": null}}"#,
    ] {
        let (status, _, response) = post_raw(
            &server,
            &flag_path("checkout"),
            Some(&token),
            &[],
            body.to_vec(),
        )
        .await;
        assert_eq!(status, 200, "{}: {response}", String::from_utf8_lossy(body));
        assert_eq!(response["key"], "checkout");
        let (status, _, response) = post_raw(&server, ONE, Some(&token), &[], body.to_vec()).await;
        assert_eq!(
            status,
            200,
            "bulk {}: {response}",
            String::from_utf8_lossy(body)
        );
    }
    server.stop().await;
}

/// The request URI of the bulk answer's one event stream.
fn stream_uri(bulk: &Value) -> String {
    let streams = bulk["eventStreams"].as_array().expect("eventStreams");
    assert_eq!(streams.len(), 1, "{bulk}");
    assert_eq!(streams[0]["type"], "sse", "{bulk}");
    assert_eq!(streams[0]["inactivityDelaySec"], 120, "{bulk}");
    streams[0]["endpoint"]["requestUri"]
        .as_str()
        .expect("a request URI")
        .to_owned()
}

#[tokio::test]
async fn the_bulk_answer_announces_a_stream_that_tells_of_every_change() {
    let (server, token) = setup().await;
    let ctx = json!({"context": {"targetingKey": "u1"}});
    let (status, bulk) = server.call("POST", ONE, Some(&token), Some(ctx)).await;
    assert_eq!(status, 200, "{bulk}");
    let uri = stream_uri(&bulk);
    assert!(uri.starts_with("/ofrep/v1/events?ticket="), "{uri}");
    assert!(!uri.contains(&token), "the URL never holds the token");

    // No Authorization header: the ticket is the credential.
    let mut stream = sse::open(reqwest::Client::new().get(server.url(&uri))).await;
    let revision = server.state.envs.get("prod").expect("prod").revision;
    server.kill("prod", "checkout").await;
    let event = stream.next_event().await;
    assert_eq!(event.event, "message");
    assert_eq!(event.json(), json!({"type": "refetchEvaluation"}));
    assert_eq!(event.id(), revision + 1);
    // Another environment's change says nothing here; this one's next does.
    server.put_flag("dev", boolean_flag("dev-two")).await;
    server.put_flag("prod", boolean_flag("prod-two")).await;
    assert_eq!(stream.next_event().await.id(), revision + 2);

    // A provider reconnecting behind hears at once that it missed a change.
    let mut behind = sse::open(
        reqwest::Client::new()
            .get(server.url(&uri))
            .header("last-event-id", revision.to_string()),
    )
    .await;
    assert_eq!(behind.next_event().await.id(), revision + 1);
    server.stop().await;
}

#[tokio::test]
async fn stream_tickets_are_checked() {
    let (server, token) = setup().await;
    let (_, bulk) = server
        .call("POST", ONE, Some(&token), Some(json!({"context": {}})))
        .await;
    let uri = stream_uri(&bulk);
    let get = |path: String| {
        let request = server.http.get(server.url(&path));
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("a JSON error");
            (
                status,
                body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    let (status, message) = get("/ofrep/v1/events".to_owned()).await;
    assert_eq!(status, 400, "{message}");
    assert!(
        message.contains("`ticket` query parameter missing"),
        "{message}"
    );
    let (status, message) = get("/ofrep/v1/events?ticket=nonsense".to_owned()).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("malformed"), "{message}");
    let forged = format!("{}0", uri.trim_end_matches(|c: char| c.is_ascii_hexdigit()));
    let (status, _) = get(forged).await;
    assert_eq!(status, 401);
    // Revoking the token ends its tickets.
    let (status, body) = server
        .call("DELETE", "/v1/admin/tokens/web", Some(ADMIN), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, message) = get(uri).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("revoked"), "{message}");
    server.stop().await;
}
