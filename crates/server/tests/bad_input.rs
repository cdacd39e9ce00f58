//! Bad input gets a 4xx with our JSON error, never a 5xx, and never writes anything:
//! one test per class of mistake, then a bounded, deterministic stream of garbage.

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use serde_json::{json, Value};
use switchyard_core::validation::NAME_PATTERN;
use switchyard_server::http::MAX_BODY;
use switchyard_server::scope::{MAX_CONTEXT_ATTRIBUTES, MAX_LIST_ITEMS};
use switchyard_server::state::AppState;
use switchyard_server::store::AuditQuery;
use switchyard_testkit::in_process;
use switchyard_testkit::in_process::{app, boolean_flag, ADMIN};
use tower::ServiceExt;

/// A router with environments `alpha` and `beta`, each with flag `checkout`, and
/// tokens of every kind.
struct Harness {
    router: axum::Router,
    state: AppState,
    sdk_alpha: String,
    eval_alpha: String,
    _dir: tempfile::TempDir,
}

/// Everything a write would change.
#[derive(Debug, PartialEq)]
struct Written {
    revisions: Vec<(String, u64)>,
    audit_entries: usize,
    tokens: usize,
}

/// A response: status and body (JSON when it parses, else the text as a string).
struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    /// Asserts the status and our error shape; returns the error object.
    fn error(&self, status: u16, what: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{what}: {}", self.body);
        let error = &self.body["error"];
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{what}: not our error shape: {}",
            self.body
        );
        error
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

impl Harness {
    async fn new() -> Harness {
        let (router, state, dir) = app().await;
        let mut harness = Harness {
            router,
            state,
            sdk_alpha: String::new(),
            eval_alpha: String::new(),
            _dir: dir,
        };
        for env in ["alpha", "beta"] {
            let reply = harness
                .admin("PUT", &format!("/v1/admin/envs/{env}"), None)
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            let reply = harness
                .admin(
                    "PUT",
                    &format!("/v1/admin/envs/{env}/flags/checkout"),
                    Some(boolean_flag("checkout")),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        }
        for (name, kind) in [("sdk-alpha", "sdk"), ("eval-alpha", "eval")] {
            let reply = harness
                .admin(
                    "POST",
                    "/v1/admin/tokens",
                    Some(json!({ "name": name, "kind": kind, "env": "alpha" })),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            let token = reply.body["token"].as_str().expect("token").to_owned();
            match kind {
                "sdk" => harness.sdk_alpha = token,
                _ => harness.eval_alpha = token,
            }
        }
        harness
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        authorization: Option<HeaderValue>,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply { status, body }
    }

    /// A request with `token` and a raw body.
    async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Reply {
        let authorization = token.map(|t| HeaderValue::from_str(&bearer(t)).expect("header"));
        self.send(method, path, authorization, &[], Body::from(body.to_vec()))
            .await
    }

    /// A request as admin with an optional JSON body.
    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, path, Some(ADMIN), &bytes).await
    }

    async fn written(&self) -> Written {
        let envs = &self.state.envs;
        let revisions = envs
            .names()
            .into_iter()
            .map(|name| {
                let revision = envs.get(&name).expect("listed env").revision;
                (name, revision)
            })
            .collect();
        let query = AuditQuery {
            limit: usize::MAX,
            ..AuditQuery::default()
        };
        let audit_entries = envs.store().audit(&query).await.expect("audit").len();
        let tokens = envs.store().tokens().await.expect("tokens").len();
        Written {
            revisions,
            audit_entries,
            tokens,
        }
    }

    /// Sends a bad request, asserts it fails with `status` and our error shape, and
    /// that nothing was written. Returns the reply.
    async fn rejects(
        &self,
        status: u16,
        method: &str,
        path: &str,
        authorization: Option<HeaderValue>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let before = self.written().await;
        let what = format!(
            "{method} {path} {headers:?} {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        let reply = self
            .send(method, path, authorization, headers, Body::from(body))
            .await;
        reply.error(status, &what);
        assert_eq!(self.written().await, before, "{what} wrote something");
        reply
    }

    /// [`Harness::rejects`] with a bearer token (or none).
    async fn rejects_as(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        let authorization = token.map(|t| HeaderValue::from_str(&bearer(t)).expect("header"));
        self.rejects(status, method, path, authorization, &[], body.into())
            .await
    }
}

fn flag_with(changes: Value) -> Value {
    let mut flag = boolean_flag("checkout");
    for (key, value) in changes.as_object().expect("object") {
        flag[key] = value.clone();
    }
    flag
}

const FLAG: &str = "/v1/admin/envs/alpha/flags/checkout";
const EVALUATE: &str = "/v1/evaluate/alpha/checkout";
const BULK: &str = "/v1/evaluate/alpha";

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413_with_our_error() {
    let h = Harness::new().await;
    let padding = "x".repeat(MAX_BODY);
    let huge_flag = flag_with(json!({ "description": padding })).to_string();
    let huge_context = json!({ "targetingKey": "u-1", "note": padding }).to_string();
    assert!(huge_flag.len() > MAX_BODY && huge_context.len() > MAX_BODY);

    let cases = [
        ("PUT", FLAG, ADMIN, &huge_flag),
        ("PUT", "/v1/admin/envs/alpha/flags/fresh", ADMIN, &huge_flag),
        ("POST", &format!("{FLAG}/kill"), ADMIN, &huge_flag),
        ("POST", "/v1/admin/envs/alpha/kill", ADMIN, &huge_flag),
        ("POST", EVALUATE, &h.eval_alpha, &huge_context),
        ("POST", BULK, &h.sdk_alpha, &huge_context),
    ];
    for (method, path, token, body) in cases {
        let reply = h
            .rejects_as(413, method, path, Some(token), body.as_bytes())
            .await;
        assert_eq!(reply.body["error"]["code"], "payload_too_large");
    }

    // Also without a Content-Length: a chunked body is cut off at the limit.
    let chunks = || {
        (0..=MAX_BODY / 65_536)
            .map(|_| vec![b' '; 65_536])
            .chain([b"{}".to_vec()])
            .map(Ok::<_, std::io::Error>)
    };
    for (path, token) in [(FLAG, ADMIN), (EVALUATE, h.eval_alpha.as_str())] {
        let before = h.written().await;
        let body = Body::from_stream(futures_util::stream::iter(chunks()));
        let method = if path == FLAG { "PUT" } else { "POST" };
        let auth = HeaderValue::from_str(&bearer(token)).expect("header");
        let reply = h.send(method, path, Some(auth), &[], body).await;
        reply.error(413, "chunked");
        assert_eq!(h.written().await, before);
    }
}

#[tokio::test]
async fn invalid_json_is_400() {
    let h = Harness::new().await;
    let broken: [&[u8]; 7] = [
        b"{\"key\": ",
        b"not json",
        b"{\"key\": \"checkout\"} trailing",
        b"[1, 2, 3]",
        b"\"a string\"",
        b"\xff\xfe\x00garbage",
        b"",
    ];
    for body in broken {
        h.rejects_as(400, "PUT", FLAG, Some(ADMIN), body).await;
        h.rejects_as(
            400,
            "PUT",
            "/v1/admin/envs/alpha/flags/new",
            Some(ADMIN),
            body,
        )
        .await;
    }
    // An empty context is the anonymous context; anything else must be a JSON object.
    for body in &broken[..6] {
        h.rejects_as(400, "POST", EVALUATE, Some(&h.eval_alpha), *body)
            .await;
        h.rejects_as(400, "POST", BULK, Some(&h.eval_alpha), *body)
            .await;
        h.rejects_as(400, "POST", &format!("{FLAG}/kill"), Some(ADMIN), *body)
            .await;
        h.rejects_as(400, "POST", "/v1/admin/tokens", Some(ADMIN), *body)
            .await;
    }
    // Deeply nested JSON is refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    h.rejects_as(400, "PUT", FLAG, Some(ADMIN), deep.as_bytes())
        .await;
    h.rejects_as(400, "POST", EVALUATE, Some(&h.eval_alpha), deep.as_bytes())
        .await;
    // Well-formed JSON of the wrong type.
    let reply = h
        .rejects_as(
            400,
            "POST",
            EVALUATE,
            Some(&h.eval_alpha),
            r#"{"targetingKey": 42}"#,
        )
        .await;
    assert!(reply.message().contains("targetingKey"), "{}", reply.body);
    let reply = h
        .rejects_as(
            400,
            "PUT",
            FLAG,
            Some(ADMIN),
            flag_with(json!({ "rules": "none" })).to_string(),
        )
        .await;
    assert!(reply.message().contains("rules"), "{}", reply.body);
}

#[tokio::test]
async fn unknown_fields_are_400_naming_the_field() {
    let h = Harness::new().await;
    let typo_top = flag_with(json!({ "rulez": [] }));
    let mut typo_nested = boolean_flag("checkout");
    typo_nested["rules"][0]["when"] = json!({ "usres": ["u-1"] });
    let cases = [
        ("PUT", FLAG.to_owned(), typo_top.to_string(), "rulez"),
        ("PUT", FLAG.to_owned(), typo_nested.to_string(), "usres"),
        (
            "POST",
            format!("{FLAG}/kill"),
            r#"{"reasn": "typo"}"#.to_owned(),
            "reasn",
        ),
        (
            "POST",
            "/v1/admin/envs/alpha/kill".to_owned(),
            r#"{"tag": "demo", "why": "typo"}"#.to_owned(),
            "why",
        ),
        (
            "POST",
            "/v1/admin/tokens".to_owned(),
            r#"{"name": "n", "kind": "sdk", "env": "alpha", "scope": 1}"#.to_owned(),
            "scope",
        ),
        (
            "POST",
            "/v1/admin/promote".to_owned(),
            r#"{"from": "alpha", "to": "beta", "flagz": []}"#.to_owned(),
            "flagz",
        ),
    ];
    for (method, path, body, field) in cases {
        let reply = h.rejects_as(400, method, &path, Some(ADMIN), body).await;
        assert!(
            reply.message().contains(field),
            "{method} {path}: the message should name `{field}`: {}",
            reply.body
        );
    }
    let reply = h
        .rejects_as(400, "PUT", FLAG, Some(ADMIN), typo_nested.to_string())
        .await;
    assert!(reply.message().contains("rules[0].when"), "{}", reply.body);
}

#[tokio::test]
async fn invalid_flags_are_422_with_field_paths() {
    let h = Harness::new().await;
    let unknown_variant = flag_with(json!({ "default": { "variant": "maybe" } }));
    let bad_weights = flag_with(json!({ "default": { "rollout": { "split": [
        { "variant": "on", "weight": 25_000 }, { "variant": "off", "weight": 74_000 }
    ] } } }));
    let bad_regex = flag_with(json!({ "rules": [{
        "id": "r", "serve": { "variant": "on" },
        "when": { "constraints": [{ "attribute": "email", "op": "matches", "values": ["(unclosed"] }] }
    }] }));
    let wrong_kind = flag_with(json!({ "kind": "string", "variants": { "on": "yes", "off": 0 } }));
    let cases = [
        (unknown_variant, "default", "maybe"),
        (bad_weights, "default.rollout.split", "99000"),
        (
            bad_regex,
            "rules[0].when.constraints[0]",
            "regular expression",
        ),
        (
            wrong_kind,
            "variants",
            "a string flag cannot have a number value",
        ),
    ];
    for (flag, path, mentions) in cases {
        for target in [FLAG, "/v1/admin/envs/alpha/flags/checkout-copy"] {
            let mut flag = flag.clone();
            flag["key"] = json!(target.rsplit('/').next().expect("key"));
            let reply = h
                .rejects_as(422, "PUT", target, Some(ADMIN), flag.to_string())
                .await;
            assert_eq!(reply.body["error"]["code"], "invalid");
            let details = reply.body["error"]["details"]
                .as_array()
                .unwrap_or_else(|| panic!("details: {}", reply.body));
            assert!(
                details.iter().any(|d| {
                    d["path"].as_str().is_some_and(|p| p.starts_with(path))
                        && d["message"].as_str().is_some_and(|m| m.contains(mentions))
                }),
                "expected a problem at `{path}` mentioning `{mentions}`: {}",
                reply.body
            );
        }
    }
}

#[tokio::test]
async fn names_outside_the_name_set_are_400_naming_the_rule() {
    let h = Harness::new().await;
    let rule = NAME_PATTERN;
    let cases = [
        (
            "PUT",
            "/v1/admin/envs/..%2F..%2Fetc".to_owned(),
            None,
            "a name cannot start with `.`",
        ),
        (
            "PUT",
            "/v1/admin/envs/..".to_owned(),
            None,
            "a name cannot start with `.`",
        ),
        (
            "PUT",
            "/v1/admin/envs/.".to_owned(),
            None,
            "a name cannot start with `.`",
        ),
        (
            "PUT",
            "/v1/admin/envs/%20".to_owned(),
            None,
            "a space (U+0020) at byte 0",
        ),
        (
            "PUT",
            "/v1/admin/envs/a%2Fb".to_owned(),
            None,
            "`/` (U+002F) at byte 1",
        ),
        (
            "PUT",
            "/v1/admin/envs/a%5Cb".to_owned(),
            None,
            "`\\` (U+005C) at byte 1",
        ),
        (
            "PUT",
            "/v1/admin/envs/a%3Fb".to_owned(),
            None,
            "`?` (U+003F) at byte 1",
        ),
        (
            "PUT",
            "/v1/admin/envs/alpha/flags/a%E2%80%8Bb".to_owned(),
            Some(boolean_flag("a\u{200b}b")),
            "U+200B at byte 1",
        ),
        (
            "PUT",
            "/v1/admin/envs/alpha/flags/a%E2%80%AEb".to_owned(),
            Some(boolean_flag("a\u{202e}b")),
            "U+202E at byte 1",
        ),
        (
            "PUT",
            "/v1/admin/envs/alpha/segments/a%E2%80%8Bb".to_owned(),
            Some(json!({ "when": { "users": ["u-1"] } })),
            "U+200B at byte 1",
        ),
        (
            "POST",
            "/v1/admin/tokens".to_owned(),
            Some(json!({ "name": "ci\u{200b}", "kind": "sdk", "env": "alpha" })),
            "U+200B at byte 2",
        ),
        (
            "POST",
            "/v1/admin/tokens".to_owned(),
            Some(json!({ "name": "ci/deploy", "kind": "admin" })),
            "`/` (U+002F) at byte 2",
        ),
    ];
    for (method, path, body, mentions) in cases {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let reply = h.rejects_as(400, method, &path, Some(ADMIN), body).await;
        let message = reply.message();
        assert!(
            message.contains(mentions) && message.contains(rule),
            "{method} {path}: expected `{mentions}` and the rule: {}",
            reply.body
        );
        // Invisible and direction-changing characters never reach the message.
        assert!(
            !message.contains(['\u{200b}', '\u{202e}']),
            "{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn names_inside_flags_splits_and_empty_lists_are_422_with_paths() {
    let h = Harness::new().await;
    let cases = [
        (
            flag_with(json!({ "prerequisites": [{ "flag": "a\u{200b}b", "variant": "on" }] })),
            "prerequisites[0].flag",
            "U+200B at byte 1 is not allowed in a name",
        ),
        (
            flag_with(json!({ "rules": [{ "id": "r", "serve": { "variant": "on" },
                "when": { "segments": ["../etc"] } }] })),
            "rules[0].when.segments[0]",
            "a name cannot start with `.`",
        ),
        (
            flag_with(json!({ "rules": [{ "id": "eu ramp", "serve": { "variant": "on" } }] })),
            "rules[0].id",
            "a space (U+0020) at byte 2",
        ),
        (
            flag_with(json!({ "default": { "rollout": { "split": [
                { "variant": "on", "weight": 50_000 }, { "variant": "on", "weight": 50_000 }
            ] } } })),
            "default.rollout.split[1].variant",
            "variant `on` is listed twice",
        ),
        (
            flag_with(json!({ "rules": [{ "id": "r", "serve": { "variant": "on" },
                "when": { "constraints": [{ "attribute": "country", "op": "in", "values": [] }] } }] })),
            "rules[0].when.constraints[0].values",
            "`in` needs at least one value",
        ),
    ];
    for (flag, path, mentions) in cases {
        let reply = h
            .rejects_as(422, "PUT", FLAG, Some(ADMIN), flag.to_string())
            .await;
        let details = reply.body["error"]["details"]
            .as_array()
            .unwrap_or_else(|| panic!("details: {}", reply.body));
        assert!(
            details.iter().any(|d| d["path"] == path
                && d["message"].as_str().is_some_and(|m| m.contains(mentions))),
            "expected a problem at `{path}` mentioning `{mentions}`: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn duplicate_object_keys_are_400_naming_the_key_and_where() {
    let h = Harness::new().await;
    let segment = "/v1/admin/envs/alpha/segments/staff";
    let cases = [
        (
            FLAG,
            r#"{"key": "checkout", "kind": "boolean", "variants": {"on": true, "off": false, "on": false},
                "off_variant": "off", "default": {"variant": "off"}}"#,
            "duplicate key `on` at `variants`",
        ),
        (
            FLAG,
            r#"{"key": "checkout", "kind": "boolean", "variants": {"on": true, "off": false},
                "off_variant": "off", "default": {"variant": "off"}, "default": {"variant": "on"}}"#,
            "duplicate key `default`",
        ),
        (
            FLAG,
            r#"{"key": "checkout", "kind": "boolean", "variants": {"on": true, "off": false},
                "off_variant": "off", "default": {"variant": "off"},
                "rules": [{"id": "r", "serve": {"variant": "on"},
                           "when": {"constraints": [{"attribute": "a", "attribute": "b", "op": "exists"}]}}]}"#,
            "duplicate key `attribute` at `rules[0].when.constraints[0]`",
        ),
        (
            segment,
            r#"{"when": {"users": ["u-1"], "users": ["u-2"]}}"#,
            "duplicate key `users` at `when`",
        ),
    ];
    for (path, body, mentions) in cases {
        let reply = h.rejects_as(400, "PUT", path, Some(ADMIN), body).await;
        assert!(
            reply.message().contains(mentions),
            "{path}: expected `{mentions}`: {}",
            reply.body
        );
    }
    let reply = h
        .rejects_as(
            400,
            "POST",
            "/v1/admin/tokens",
            Some(ADMIN),
            r#"{"name": "ci", "kind": "sdk", "env": "alpha", "env": "beta"}"#,
        )
        .await;
    assert!(
        reply.message().contains("duplicate key `env`"),
        "{}",
        reply.body
    );
    let reply = h
        .rejects_as(
            400,
            "POST",
            EVALUATE,
            Some(&h.eval_alpha),
            r#"{"targetingKey": "u-1", "country": "IT", "country": "DE"}"#,
        )
        .await;
    assert!(
        reply.message().contains("duplicate key `country`"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_body_key_that_differs_from_the_path_is_400() {
    let h = Harness::new().await;
    for key in [json!("other"), json!(42), json!(null), json!("")] {
        let flag = flag_with(json!({ "key": key }));
        let reply = h
            .rejects_as(400, "PUT", FLAG, Some(ADMIN), flag.to_string())
            .await;
        assert!(reply.message().contains("checkout"), "{}", reply.body);
    }
    let flag = flag_with(json!({ "key": "checkout" }));
    let path = "/v1/admin/envs/alpha/flags/other";
    h.rejects_as(400, "PUT", path, Some(ADMIN), flag.to_string())
        .await;
}

#[tokio::test]
async fn unknown_flags_and_environments_are_404() {
    let h = Harness::new().await;
    let nope = "/v1/admin/envs/alpha/flags/nope";
    h.rejects_as(
        404,
        "POST",
        "/v1/evaluate/alpha/nope",
        Some(&h.eval_alpha),
        "{}",
    )
    .await;
    h.rejects_as(404, "POST", "/v1/evaluate/alpha/nope", Some(ADMIN), "")
        .await;
    h.rejects_as(404, "GET", nope, Some(ADMIN), "").await;
    h.rejects_as(404, "DELETE", nope, Some(ADMIN), "").await;
    h.rejects_as(404, "POST", &format!("{nope}/kill"), Some(ADMIN), "")
        .await;
    h.rejects_as(404, "POST", &format!("{nope}/revive"), Some(ADMIN), "")
        .await;
    // Unknown environments.
    for (method, path) in [
        ("GET", "/v1/admin/envs/gamma/flags"),
        ("GET", "/v1/admin/envs/gamma/flags/checkout"),
        ("DELETE", "/v1/admin/envs/gamma/flags/checkout"),
        ("POST", "/v1/admin/envs/gamma/flags/checkout/kill"),
        ("POST", "/v1/evaluate/gamma/checkout"),
        ("POST", "/v1/evaluate/gamma"),
    ] {
        h.rejects_as(404, method, path, Some(ADMIN), "").await;
    }
    let flag = boolean_flag("checkout").to_string();
    h.rejects_as(
        404,
        "PUT",
        "/v1/admin/envs/gamma/flags/checkout",
        Some(ADMIN),
        flag,
    )
    .await;
}

#[tokio::test]
async fn no_token_is_401() {
    let h = Harness::new().await;
    let flag = boolean_flag("checkout").to_string();
    for (method, path, body) in [
        ("GET", "/v1/admin/envs", ""),
        ("PUT", "/v1/admin/envs/gamma", ""),
        ("PUT", FLAG, flag.as_str()),
        ("DELETE", FLAG, ""),
        ("POST", "/v1/admin/tokens", r#"{"name":"x","kind":"admin"}"#),
        ("POST", EVALUATE, "{}"),
        ("POST", BULK, "{}"),
    ] {
        let reply = h.rejects_as(401, method, path, None, body).await;
        assert_eq!(reply.body["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn malformed_or_unknown_authorization_is_401() {
    let h = Harness::new().await;
    let flag = boolean_flag("checkout").to_string();
    let headers: Vec<HeaderValue> = vec![
        HeaderValue::from_static("Basic YWRtaW46YWRtaW4="),
        HeaderValue::from_str(&format!("Token {ADMIN}")).expect("header"),
        HeaderValue::from_str(&format!("Bearer{ADMIN}")).expect("header"),
        HeaderValue::from_static("Bearer"),
        HeaderValue::from_static("Bearer "),
        HeaderValue::from_static(""),
        HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").expect("obs-text header"),
        HeaderValue::from_static("Bearer swy_nope_nope"),
        HeaderValue::from_static("Bearer swy_"),
        HeaderValue::from_str(&format!("Bearer {ADMIN}x")).expect("header"),
    ];
    for value in headers {
        for (method, path, body) in [("PUT", FLAG, flag.as_str()), ("POST", EVALUATE, "{}")] {
            let reply = h
                .rejects(
                    401,
                    method,
                    path,
                    Some(value.clone()),
                    &[],
                    body.as_bytes().to_vec(),
                )
                .await;
            assert_eq!(reply.body["error"]["code"], "unauthorized", "{value:?}");
        }
    }
}

#[tokio::test]
async fn eval_and_sdk_tokens_on_admin_endpoints_are_403() {
    let h = Harness::new().await;
    let flag = boolean_flag("checkout").to_string();
    for token in [&h.eval_alpha, &h.sdk_alpha] {
        for (method, path, body) in [
            ("GET", "/v1/admin/envs", ""),
            ("PUT", "/v1/admin/envs/gamma", ""),
            ("GET", FLAG, ""),
            ("PUT", FLAG, flag.as_str()),
            ("DELETE", FLAG, ""),
            ("POST", &format!("{FLAG}/kill"), ""),
            ("POST", "/v1/admin/tokens", r#"{"name":"x","kind":"admin"}"#),
            ("GET", "/v1/admin/audit", ""),
        ] {
            let reply = h.rejects_as(403, method, path, Some(token), body).await;
            assert_eq!(reply.body["error"]["code"], "forbidden");
        }
    }
}

#[tokio::test]
async fn a_token_of_one_environment_evaluating_another_is_403() {
    let h = Harness::new().await;
    for token in [&h.sdk_alpha, &h.eval_alpha] {
        for path in [
            "/v1/evaluate/beta/checkout",
            "/v1/evaluate/beta",
            "/v1/evaluate/gamma",
        ] {
            let reply = h.rejects_as(403, "POST", path, Some(token), "{}").await;
            assert_eq!(reply.body["error"]["code"], "forbidden");
        }
    }
}

#[tokio::test]
async fn if_match_conflicts_are_412_and_garbage_is_400() {
    let h = Harness::new().await;
    let flag = boolean_flag("checkout").to_string().into_bytes();
    let auth = || Some(HeaderValue::from_str(&bearer(ADMIN)).expect("header"));
    // Strong comparison: a weak tag never matches; an opaque tag that is not one of our
    // versions never does either.
    for version in [
        "\"7\"",
        "W/\"1\"",
        "\"0\"",
        "\"\"",
        "\"abc\"",
        "\"2\", \"3\"",
    ] {
        let reply = h
            .rejects(
                412,
                "PUT",
                FLAG,
                auth(),
                &[("if-match", version)],
                flag.clone(),
            )
            .await;
        assert_eq!(reply.body["error"]["code"], "precondition_failed");
        h.rejects(
            412,
            "DELETE",
            FLAG,
            auth(),
            &[("if-match", version)],
            Vec::new(),
        )
        .await;
    }
    // A flag that does not exist is at no version but 0.
    let fresh = flag_with(json!({ "key": "fresh" }))
        .to_string()
        .into_bytes();
    h.rejects(
        412,
        "PUT",
        "/v1/admin/envs/alpha/flags/fresh",
        auth(),
        &[("if-match", "\"3\"")],
        fresh,
    )
    .await;
    for garbage in [
        "abc",
        "7",
        "-1",
        "\"1\" junk",
        "*, \"1\"",
        "99999999999999999999999",
        "1.5",
    ] {
        let reply = h
            .rejects(
                400,
                "PUT",
                FLAG,
                auth(),
                &[("if-match", garbage)],
                flag.clone(),
            )
            .await;
        assert!(reply.message().contains("If-Match"), "{}", reply.body);
        h.rejects(
            400,
            "DELETE",
            FLAG,
            auth(),
            &[("if-match", garbage)],
            Vec::new(),
        )
        .await;
    }
    // The matching version goes through (the test can tell the difference), also as
    // one member of a list.
    let reply = h
        .send(
            "PUT",
            FLAG,
            auth(),
            &[("if-match", "\"7\", \"1\"")],
            Body::from(flag.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// RFC 9110 §13.1: `If-Match: *` needs the object, `If-None-Match: *` its absence, and
/// kill and revive honour both like every other write.
#[tokio::test]
async fn conditional_writes_follow_rfc_9110() {
    let h = Harness::new().await;
    let auth = || Some(HeaderValue::from_str(&bearer(ADMIN)).expect("header"));
    let flag = boolean_flag("checkout").to_string().into_bytes();
    // Create-only over an existing flag: refused, nothing written.
    let reply = h
        .rejects(
            412,
            "PUT",
            FLAG,
            auth(),
            &[("if-none-match", "*")],
            flag.clone(),
        )
        .await;
    assert!(reply.message().contains("already exists"), "{}", reply.body);
    // Create-only of a new flag: created.
    let fresh = "/v1/admin/envs/alpha/flags/fresh";
    let body = flag_with(json!({ "key": "fresh" })).to_string();
    let reply = h
        .send(
            "PUT",
            fresh,
            auth(),
            &[("if-none-match", "*")],
            Body::from(body.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    // `If-Match: *` over a missing flag: refused; over an existing one: written.
    h.rejects(
        412,
        "PUT",
        "/v1/admin/envs/alpha/flags/missing",
        auth(),
        &[("if-match", "*")],
        flag_with(json!({ "key": "missing" }))
            .to_string()
            .into_bytes(),
    )
    .await;
    let reply = h
        .send(
            "PUT",
            fresh,
            auth(),
            &[("if-match", "*")],
            Body::from(body.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // If-None-Match naming the current version refuses the write.
    h.rejects(
        412,
        "PUT",
        fresh,
        auth(),
        &[("if-none-match", "\"2\"")],
        body.into_bytes(),
    )
    .await;

    // Kill and revive with a stale version: refused, and the flag keeps serving.
    for (action, header) in [
        ("kill", "if-match"),
        ("revive", "if-match"),
        ("kill", "if-none-match"),
    ] {
        let version = if header == "if-match" {
            "\"9\""
        } else {
            "\"1\""
        };
        let reply = h
            .rejects(
                412,
                "POST",
                &format!("{FLAG}/{action}"),
                auth(),
                &[(header, version)],
                Vec::new(),
            )
            .await;
        assert_eq!(reply.body["error"]["code"], "precondition_failed");
    }
    let reply = h.admin("GET", FLAG, None).await;
    assert_eq!(reply.body["enabled"], json!(true), "{}", reply.body);
    // With the current version, the kill goes through.
    let reply = h
        .send(
            "POST",
            &format!("{FLAG}/kill"),
            auth(),
            &[("if-match", "\"1\"")],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["enabled"], json!(false));

    // Environments: their revision is their entity tag.
    let reply = h
        .rejects(
            412,
            "PUT",
            "/v1/admin/envs/alpha",
            auth(),
            &[("if-none-match", "*")],
            Vec::new(),
        )
        .await;
    assert!(
        reply.message().contains("environment `alpha`"),
        "{}",
        reply.body
    );
    h.rejects(
        412,
        "PUT",
        "/v1/admin/envs/gamma",
        auth(),
        &[("if-match", "*")],
        Vec::new(),
    )
    .await;
    let reply = h
        .send(
            "PUT",
            "/v1/admin/envs/gamma",
            auth(),
            &[("if-none-match", "*")],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn the_bootstrap_token_name_is_reserved() {
    let h = Harness::new().await;
    let body = json!({ "name": "bootstrap-admin", "kind": "admin" }).to_string();
    let reply = h
        .rejects_as(409, "POST", "/v1/admin/tokens", Some(ADMIN), body)
        .await;
    assert!(reply.message().contains("reserved"), "{}", reply.body);
}

/// Item 5 of issue 15: a token that may not use an admin endpoint hears so (403) before
/// its body is read — not a 400 listing the fields it should have sent.
#[tokio::test]
async fn authorization_comes_before_parsing() {
    let h = Harness::new().await;
    for token in [&h.eval_alpha, &h.sdk_alpha] {
        for (method, path) in [
            ("POST", "/v1/admin/tokens"),
            ("POST", "/v1/admin/promote"),
            ("POST", "/v1/admin/envs/alpha/kill"),
            ("POST", "/v1/admin/envs/alpha/flags/checkout/kill"),
            ("POST", "/v1/admin/envs/alpha/flags/checkout/revive"),
            ("PUT", FLAG),
            ("PUT", "/v1/admin/envs/alpha/segments/s"),
            ("DELETE", "/v1/admin/envs/alpha"),
        ] {
            for body in [&b"{}"[..], b"{\"nonsense\": 1}", b"not json"] {
                let reply = h.rejects_as(403, method, path, Some(token), body).await;
                assert_eq!(reply.body["error"]["code"], "forbidden", "{method} {path}");
                assert!(
                    reply.message().contains("needs an admin token"),
                    "{method} {path}: {}",
                    reply.body
                );
            }
        }
    }
    // And the message is grammatical.
    let reply = h
        .rejects_as(403, "GET", "/v1/admin/envs", Some(&h.eval_alpha), "")
        .await;
    assert!(
        reply.message().contains("is an eval token"),
        "{}",
        reply.body
    );
}

/// Item 8 of issue 15: each message says what is wrong, in words a person can act on.
#[tokio::test]
async fn messages_say_what_is_wrong() {
    let h = Harness::new().await;
    let check = |reply: &Reply, status: u16, needles: &[&str], refused: &[&str]| {
        reply.error(status, &format!("{needles:?}"));
        for needle in needles {
            assert!(
                reply.message().contains(needle),
                "wanted `{needle}` in {}",
                reply.body
            );
        }
        for word in refused {
            assert!(
                !reply.message().contains(word),
                "`{word}` in {}",
                reply.body
            );
        }
    };
    let reply = h
        .rejects_as(
            400,
            "PUT",
            FLAG,
            Some(ADMIN),
            flag_with(json!({ "kind": 5 })).to_string(),
        )
        .await;
    check(
        &reply,
        400,
        &["`kind`", "integer `5`", "expected a string"],
        &["expected value"],
    );
    let reply = h
        .rejects_as(
            400,
            "PUT",
            FLAG,
            Some(ADMIN),
            flag_with(json!({ "kind": "bool" })).to_string(),
        )
        .await;
    check(
        &reply,
        400,
        &["`kind`", "unknown variant `bool`", "`boolean`"],
        &[],
    );
    let both = json!({ "default": { "variant": "on", "rollout": { "split": [] } } });
    let reply = h
        .rejects_as(400, "PUT", FLAG, Some(ADMIN), flag_with(both).to_string())
        .await;
    check(
        &reply,
        400,
        &["`default`", "`variant` or `rollout`, not both"],
        &["expected value"],
    );
    let op = json!({ "rules": [{ "id": "r", "when": { "constraints": [
        { "attribute": "a", "op": 3, "values": ["x"] }] }, "serve": { "variant": "on" } }] });
    let reply = h
        .rejects_as(400, "PUT", FLAG, Some(ADMIN), flag_with(op).to_string())
        .await;
    check(
        &reply,
        400,
        &["rules[0].when.constraints[0].op", "expected a string"],
        &[],
    );
    // A truncated body: where it stops, not a path of question marks.
    let whole = boolean_flag("checkout").to_string();
    for cut in [1, 10, whole.len() / 2, whole.len() - 1] {
        let reply = h
            .rejects_as(400, "PUT", FLAG, Some(ADMIN), &whole.as_bytes()[..cut])
            .await;
        check(
            &reply,
            400,
            &["not valid JSON", "EOF", "column"],
            &["`?`", "at `"],
        );
    }
    // A regex over the size limit says so.
    let huge = "(a|b|c|d)".repeat(20_000) + "{50}";
    let regex = json!({ "rules": [{ "id": "r", "when": { "constraints": [
        { "attribute": "a", "op": "matches", "values": [huge] }] }, "serve": { "variant": "on" } }] });
    let reply = h
        .rejects_as(422, "PUT", FLAG, Some(ADMIN), flag_with(regex).to_string())
        .await;
    check(&reply, 422, &["invalid regular expression", "limit"], &[]);
    let regex = json!({ "rules": [{ "id": "r", "when": { "constraints": [
        { "attribute": "a", "op": "matches", "values": ["(unclosed"] }] }, "serve": { "variant": "on" } }] });
    let reply = h
        .rejects_as(422, "PUT", FLAG, Some(ADMIN), flag_with(regex).to_string())
        .await;
    check(
        &reply,
        422,
        &["invalid regular expression `(unclosed`: unclosed group"],
        &[],
    );
    // Deleting a segment a flag uses names the flag.
    let segment = json!({ "when": { "groups": ["staff"] } });
    let reply = h
        .admin("PUT", "/v1/admin/envs/alpha/segments/staff", Some(segment))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let user = json!({ "key": "uses-staff", "rules": [{ "id": "r", "when": { "segments": ["staff"] },
        "serve": { "variant": "on" } }] });
    let reply = h
        .admin(
            "PUT",
            "/v1/admin/envs/alpha/flags/uses-staff",
            Some(flag_with(user)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = h
        .rejects_as(
            422,
            "DELETE",
            "/v1/admin/envs/alpha/segments/staff",
            Some(ADMIN),
            "",
        )
        .await;
    check(
        &reply,
        422,
        &["segment `staff` is used by flag(s) `uses-staff`"],
        &["unknown"],
    );
    // Deleting a flag another names as a prerequisite names it too.
    let dependent = json!({ "key": "after-checkout", "prerequisites": [{ "flag": "checkout", "variant": "on" }] });
    let reply = h
        .admin(
            "PUT",
            "/v1/admin/envs/alpha/flags/after-checkout",
            Some(flag_with(dependent)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = h.rejects_as(422, "DELETE", FLAG, Some(ADMIN), "").await;
    check(
        &reply,
        422,
        &["flag `checkout` is used by flag(s) `after-checkout`"],
        &[],
    );
}

#[tokio::test]
async fn contexts_over_the_size_limits_are_400() {
    let h = Harness::new().await;
    let mut attributes = serde_json::Map::new();
    for i in 0..=MAX_CONTEXT_ATTRIBUTES {
        attributes.insert(format!("a{i}"), json!(i));
    }
    let items: Vec<String> = (0..=MAX_LIST_ITEMS).map(|i| format!("g{i}")).collect();
    let cases = [
        (Value::Object(attributes), "attributes"),
        (json!({ "targetingKey": "u", "groups": items }), "groups"),
        (json!({ "targetingKey": "u", "teams": items }), "teams"),
    ];
    for (context, mentions) in cases {
        for path in [EVALUATE, BULK] {
            let reply = h
                .rejects_as(400, "POST", path, Some(&h.eval_alpha), context.to_string())
                .await;
            assert!(reply.message().contains(mentions), "{}", reply.body);
        }
    }
    // At the limit is fine.
    let mut attributes = serde_json::Map::new();
    for i in 0..MAX_CONTEXT_ATTRIBUTES {
        attributes.insert(format!("a{i}"), json!(i));
    }
    let reply = h
        .raw(
            "POST",
            EVALUATE,
            Some(&h.eval_alpha),
            Value::Object(attributes).to_string().as_bytes(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// splitmix64: a small deterministic generator, so a failure reproduces exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("fits")).expect("fits")
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A random path segment, percent-encoded so the URI is valid.
    fn segment(&mut self) -> String {
        let raw: Vec<u8> = match self.below(6) {
            0 => b"checkout".to_vec(),
            1 => b"alpha".to_vec(),
            2 => self.bytes(12),
            3 => "x".repeat(self.below(600)).into_bytes(),
            4 => self
                .pick(&[
                    &b".."[..],
                    b".",
                    b"%",
                    b"{env}",
                    b"\xc3\xa9t\xc3\xa9",
                    b"a b",
                ])
                .to_vec(),
            _ => b"nope".to_vec(),
        };
        raw.iter()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                    (*b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// A random JSON value, at most `depth` deep.
    fn value(&mut self, depth: usize) -> Value {
        match self.below(if depth == 0 { 7 } else { 9 }) {
            0 => Value::Null,
            1 => json!(self.next() % 2 == 0),
            2 => json!(self.next() as i64),
            3 => json!(f64::from(u32::try_from(self.next() >> 40).expect("fits")) / 7.0),
            4 => json!(*self.pick(&[
                "",
                "on",
                "off",
                "beta",
                "checkout",
                "(",
                "*",
                "1.2.3",
                "10.0.0.0/8",
                "2024-01-01T00:00:00Z",
                "é\u{0}\u{202e}"
            ])),
            5 => json!(u64::MAX),
            6 => json!(-1),
            7 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let keys = [
                    "key",
                    "kind",
                    "variants",
                    "rules",
                    "when",
                    "serve",
                    "variant",
                    "rollout",
                    "split",
                    "weight",
                    "op",
                    "values",
                    "attribute",
                    "default",
                    "enabled",
                    "version",
                    "x",
                ];
                Value::Object(
                    (0..self.below(4))
                        .map(|_| ((*self.pick(&keys)).to_owned(), self.value(depth - 1)))
                        .collect(),
                )
            }
        }
    }

    /// `value` with one randomly chosen node replaced by a random value.
    fn mutate(&mut self, value: &mut Value) {
        let children = match value {
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            _ => 0,
        };
        if children == 0 || self.below(4) == 0 {
            *value = match (&*value, self.below(3)) {
                // Mostly keep the type, so the result gets past parsing into validation.
                (Value::String(_), 0 | 1) => json!(*self.pick(&[
                    "a",
                    "b",
                    "zz",
                    "",
                    "r1",
                    "matches",
                    "semver_gte",
                    "in_cidr",
                    "before",
                    "gt",
                    "exists",
                    "boolean",
                    "number",
                    "json",
                    "targetingKey",
                    "[",
                    "1.2",
                    "not-a-cidr",
                    "yesterday",
                ])),
                (Value::Number(_), 0 | 1) => json!(*self.pick(&[
                    0_u64,
                    1,
                    999,
                    1_000,
                    50_001,
                    99_999,
                    100_000,
                    100_001,
                    4_294_967_296,
                ])),
                _ => self.value(2),
            };
            return;
        }
        let index = self.below(children);
        match value {
            Value::Array(items) => self.mutate(&mut items[index]),
            Value::Object(map) => {
                if let Some((_, child)) = map.iter_mut().nth(index) {
                    self.mutate(child);
                }
            }
            _ => {}
        }
    }
}

/// A valid flag exercising most of the model, to mutate.
fn rich_flag(key: &str) -> Value {
    json!({
        "key": key, "kind": "string", "description": "d", "enabled": true,
        "variants": { "a": "A", "b": "B", "c": "C" }, "off_variant": "c",
        "rules": [
            { "id": "r1", "when": { "users": ["u-1"], "groups": ["beta"],
              "constraints": [
                { "attribute": "email", "op": "matches", "values": [".*@example\\.com$"] },
                { "attribute": "version", "op": "semver_gte", "values": ["1.2.0"] },
                { "attribute": "ip", "op": "in_cidr", "values": ["10.0.0.0/8"], "negate": true },
                { "attribute": "age", "op": "gt", "values": ["18"] },
                { "attribute": "at", "op": "before", "values": ["2030-01-01T00:00:00Z"] }
              ] },
              "serve": { "variant": "a" } },
            { "id": "r2", "when": {}, "serve": { "rollout": { "by": "targetingKey", "salt": "s",
              "split": [ { "variant": "a", "weight": 50_000 }, { "variant": "b", "weight": 50_000 } ] } } }
        ],
        "default": { "variant": "b" },
        "tags": ["t"]
    })
}

#[tokio::test]
async fn garbage_never_gets_a_server_error() {
    let h = Harness::new().await;
    let mut rng = Rng(0x5EED_0F57_17C4_u64);
    let tokens = [
        Some(ADMIN),
        Some(ADMIN),
        Some(ADMIN),
        Some(h.eval_alpha.as_str()),
        None,
    ];
    let contexts = [
        json!({ "targetingKey": "u-1", "groups": ["beta"], "email": "a@example.com", "version": "1.3.0", "ip": "10.1.2.3", "age": 30, "at": "2024-05-01T00:00:00Z" }),
        json!({}),
    ];
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..300 {
        let (method, path, body): (&str, String, Vec<u8>) = match rng.below(10) {
            // A mutated flag through the admin API.
            0..=2 => {
                let key = *rng.pick(&["checkout", "rich", "other"]);
                let mut flag = rich_flag(key);
                for _ in 0..=rng.below(3) {
                    rng.mutate(&mut flag);
                }
                let env = *rng.pick(&["alpha", "beta", "gamma"]);
                (
                    "PUT",
                    format!("/v1/admin/envs/{env}/flags/{key}"),
                    flag.to_string().into_bytes(),
                )
            }
            // A mutated context for evaluation.
            3..=4 => {
                let mut context = rng.pick(&contexts).clone();
                rng.mutate(&mut context);
                let path = if rng.below(2) == 0 {
                    EVALUATE.to_owned()
                } else {
                    BULK.to_owned()
                };
                ("POST", path, context.to_string().into_bytes())
            }
            // Random bytes, or a truncated document, to a random route.
            _ => {
                let templates = [
                    ("/v1/evaluate/{s}/{s}", "POST"),
                    ("/v1/evaluate/{s}", "POST"),
                    ("/v1/admin/envs/{s}", "PUT"),
                    ("/v1/admin/envs/{s}/flags", "GET"),
                    ("/v1/admin/envs/{s}/flags/{s}", "PUT"),
                    ("/v1/admin/envs/{s}/flags/{s}", "GET"),
                    ("/v1/admin/envs/{s}/flags/{s}", "DELETE"),
                    ("/v1/admin/envs/{s}/flags/{s}/kill", "POST"),
                    ("/v1/admin/envs/{s}/flags/{s}/revive", "POST"),
                    ("/v1/admin/envs/{s}/flags/{s}/metrics", "GET"),
                    ("/v1/admin/envs/{s}/kill", "POST"),
                    ("/v1/admin/envs/{s}/segments/{s}", "PUT"),
                    ("/v1/admin/envs/{s}/segments/{s}", "DELETE"),
                    ("/v1/admin/promote", "POST"),
                    ("/v1/admin/tokens", "POST"),
                    ("/v1/admin/tokens/{s}", "DELETE"),
                    ("/v1/admin/audit", "GET"),
                    ("/healthz", "GET"),
                    ("/metrics", "GET"),
                ];
                let (template, mut method) = *rng.pick(&templates);
                if rng.below(8) == 0 {
                    method = *rng.pick(&["GET", "PUT", "POST", "DELETE", "PATCH"]);
                }
                let mut path = String::new();
                for (i, part) in template.split("{s}").enumerate() {
                    if i > 0 {
                        path.push_str(&rng.segment());
                    }
                    path.push_str(part);
                }
                if rng.below(4) == 0 {
                    let query = rng.pick(&[
                        "?env=%FF",
                        "?since=99999999999999999999y",
                        "?limit=-1",
                        "?window=0s",
                        "?window=1000000d",
                        "?since=2024-13-45",
                        "?flag=&env=",
                        "?x=1",
                    ]);
                    path.push_str(query);
                }
                let body = match rng.below(3) {
                    0 => rng.bytes(64),
                    1 => {
                        let text = rich_flag("checkout").to_string();
                        text.as_bytes()[..rng.below(text.len())].to_vec()
                    }
                    _ => rng.value(3).to_string().into_bytes(),
                };
                (method, path, body)
            }
        };
        let token = *rng.pick(&tokens);
        let mut headers = Vec::new();
        if rng.below(5) == 0 {
            headers.push((
                "if-match",
                *rng.pick(&["\"1\"", "x", "\"18446744073709551616\"", "W/\"0\"", "*"]),
            ));
        }
        let authorization = token.map(|t| HeaderValue::from_str(&bearer(t)).expect("header"));
        let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        let reply = h
            .send(method, &path, authorization, &headers, Body::from(body))
            .await;
        *statuses.entry(reply.status.as_u16()).or_default() += 1;
        assert!(
            reply.status.as_u16() < 500,
            "round {round}: {method} {path} {headers:?} {shown} -> {} {}",
            reply.status,
            reply.body
        );
        // Every error has our shape, unrouted paths and methods included.
        if reply.status.is_client_error() {
            reply.error(
                reply.status.as_u16(),
                &format!("round {round}: {method} {path}"),
            );
        }
    }
    eprintln!("statuses: {statuses:?}");
    // The garbage reached past parsing: some writes and evaluations succeeded, some
    // flags failed validation, and plenty was refused earlier.
    for status in [200, 400, 401, 404, 422] {
        assert!(
            statuses.contains_key(&status),
            "no {status} in {statuses:?}"
        );
    }
    // The server still works afterwards.
    let reply = h.raw("POST", EVALUATE, Some(&h.eval_alpha), b"{}").await;
    assert!(
        [StatusCode::OK, StatusCode::NOT_FOUND].contains(&reply.status),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let server = in_process::start().await;
    let (status, body) = server.call("GET", "/v2/nothing", None, None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &serde_json::json!("not_found"))
    );
    let (status, body) = server
        .call("DELETE", "/v1/admin/envs", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (405, &serde_json::json!("method_not_allowed"))
    );
    server.stop().await;
}
