//! The SDK's evaluation API against a real server's flags (answers match the
//! server's own REST evaluation), and offline clients built from bootstrap data.

use serde_json::{json, Value};
use switchyard_e2e::{admin, beta_flag, env_with_sdk_token, evaluate, put_flag};
use switchyard_sdk::{Client, Context, DocumentError, Error, ErrorCode, Reason, Status, Transport};
use switchyard_testkit::in_process::{self, TestServer, ADMIN};

/// Flags of every kind.
fn flags() -> Vec<Value> {
    vec![
        beta_flag("checkout"),
        json!({
            "key": "theme", "kind": "string",
            "variants": {"light": "light", "dark": "dark"}, "off_variant": "light",
            "rules": [{"id": "italy", "when": {"constraints": [
                {"attribute": "country", "op": "in", "values": ["IT"]}
            ]}, "serve": {"variant": "dark"}}],
            "default": {"variant": "light"}
        }),
        json!({
            "key": "limit", "kind": "number",
            "variants": {"low": 10, "high": 100}, "off_variant": "low",
            "rules": [{"id": "adults", "when": {"constraints": [
                {"attribute": "age", "op": "gte", "values": [18]}
            ]}, "serve": {"variant": "high"}}],
            "default": {"variant": "low"}
        }),
        json!({
            "key": "layout", "kind": "json",
            "variants": {"a": {"columns": 1}, "b": {"columns": 2}}, "off_variant": "a",
            "rules": [{"id": "wide", "when": {"users": ["user-42"]}, "serve": {"variant": "b"}}],
            "default": {"variant": "a"}
        }),
    ]
}

/// A context built with the builder: group, string, number and bool attributes.
fn user_42() -> Context {
    Context::new("user-42")
        .group("beta")
        .attr("country", "IT")
        .attr("age", 30_i64)
        .attr("verified", true)
}

/// The same context as JSON for the server's REST API.
fn user_42_json() -> Value {
    json!({"targetingKey": "user-42", "groups": ["beta"], "country": "IT", "age": 30, "verified": true})
}

async fn server_with_flags() -> (TestServer, String) {
    let server = in_process::start().await;
    let token = env_with_sdk_token(&admin(&server.base), "prod").await;
    for flag in flags() {
        put_flag(&server.base, "prod", flag).await;
    }
    (server, token)
}

#[tokio::test]
async fn typed_getters_variants_and_all_flags_match_the_server() {
    let (server, token) = server_with_flags().await;
    let client = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    let ctx = user_42();
    let nobody = Context::new("user-7");

    assert!(client.is_enabled("checkout", &ctx));
    assert!(!client.is_enabled("checkout", &nobody));
    assert!(client.bool_value("checkout", &ctx, false));
    assert_eq!(client.string_value("theme", &ctx, "none"), "dark");
    assert_eq!(client.string_value("theme", &nobody, "none"), "light");
    assert_eq!(client.number_value("limit", &ctx, -1.0), 100.0);
    assert_eq!(client.number_value("limit", &nobody, -1.0), 10.0);
    assert_eq!(
        client.json_value("layout", &ctx, Value::Null),
        json!({"columns": 2})
    );
    // A non-boolean flag is enabled when it serves other than its off variant.
    assert!(client.is_enabled("theme", &ctx));
    assert!(!client.is_enabled("theme", &nobody));

    // Wrong types give the caller's default.
    assert_eq!(client.string_value("limit", &ctx, "fallback"), "fallback");
    assert_eq!(client.number_value("theme", &ctx, 7.5), 7.5);
    assert!(client.bool_value("theme", &ctx, true));

    let variant = client.variant("theme", &ctx);
    assert_eq!(variant.name.as_deref(), Some("dark"));
    assert_eq!(variant.value, json!("dark"));
    assert_eq!(variant.reason, Reason::TargetingMatch);
    assert_eq!(client.variant("theme", &nobody).reason, Reason::Default);

    // Every flag answers as the server's REST evaluation does.
    let all = client.all_flags(&ctx);
    assert_eq!(
        all.keys().map(String::as_str).collect::<Vec<_>>(),
        ["checkout", "layout", "limit", "theme"]
    );
    for (key, detail) in &all {
        let remote = evaluate(&server.base, "prod", key, user_42_json()).await;
        assert_eq!(detail.value.as_ref(), Some(&remote["value"]), "{key}");
        assert_eq!(
            detail.variant.as_deref(),
            remote["variant"].as_str(),
            "{key}"
        );
        assert_eq!(detail.reason.as_str(), remote["reason"], "{key}");
        assert_eq!(
            detail.rule_id.as_deref(),
            remote["rule_id"].as_str(),
            "{key}"
        );
        assert_eq!(
            Some(detail.flag_version),
            remote["flag_version"].as_u64(),
            "{key}"
        );
        assert_eq!(&client.evaluate(key, &ctx), detail);
    }
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_flags_are_false_or_the_callers_default() {
    let (server, token) = server_with_flags().await;
    let client = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    let ctx = user_42();
    assert!(!client.is_enabled("missing", &ctx));
    assert!(client.bool_value("missing", &ctx, true));
    assert_eq!(client.string_value("missing", &ctx, "dflt"), "dflt");
    assert_eq!(client.number_value("missing", &ctx, 4.0), 4.0);
    assert_eq!(client.json_value("missing", &ctx, json!([1])), json!([1]));
    let variant = client.variant("missing", &ctx);
    assert_eq!(variant.name, None);
    assert_eq!(variant.value, Value::Null);
    assert_eq!(variant.reason, Reason::Error);
    let detail = client.evaluate("missing", &ctx);
    assert_eq!(detail.error, Some(ErrorCode::FlagNotFound));
    assert_eq!(detail.value, None);
    assert!(client.kind("missing").is_none());
    assert!(!client.all_flags(&ctx).contains_key("missing"));
    client.close().await;
    server.stop().await;
}

/// An SDK snapshot document as the server serves it.
async fn snapshot_document() -> Value {
    let (server, _token) = server_with_flags().await;
    let (status, document) = server
        .call("GET", "/v1/sdk/snapshot?env=prod", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200);
    server.stop().await;
    document
}

/// An offline client bootstrapped from `path`. The URL points nowhere: offline clients
/// never connect.
async fn offline_from_file(path: &std::path::Path) -> Result<Client, Error> {
    Client::builder("http://127.0.0.1:1", "unused")
        .transport(Transport::Offline)
        .bootstrap_file(path)
        .build()
        .await
}

#[tokio::test]
async fn an_offline_client_serves_a_bootstrap_file() {
    let document = snapshot_document().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("flags.json");
    std::fs::write(&path, document.to_string()).expect("bootstrap written");

    let client = offline_from_file(&path).await.expect("builds offline");
    assert_eq!(client.status(), Status::Offline);
    assert_eq!(Some(client.revision()), document["revision"].as_u64());
    let ctx = user_42();
    assert!(client.is_enabled("checkout", &ctx));
    assert_eq!(client.string_value("theme", &ctx, "none"), "dark");
    assert_eq!(client.all_flags(&ctx).len(), 4);
    client.close().await;

    let missing = offline_from_file(&dir.path().join("absent.json")).await;
    assert!(
        matches!(missing, Err(Error::Bootstrap { .. })),
        "{missing:?}"
    );

    // A file that is not JSON: the error names the file and keeps the parser's error.
    let garbled = dir.path().join("garbled.json");
    std::fs::write(&garbled, "{\"flags\": [").expect("garbled file written");
    let error = offline_from_file(&garbled).await.expect_err("not JSON");
    let Error::InvalidDocument(DocumentError::NotJson { path, source }) = &error else {
        panic!("not a JSON error: {error:?}");
    };
    assert_eq!(path, &garbled);
    assert!(source.is_eof(), "{source}");
    assert!(
        error.to_string().starts_with(&format!(
            "invalid flag document: {}: EOF",
            garbled.display()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn an_offline_client_serves_a_bootstrap_value_without_any_server() {
    let client = Client::builder("http://127.0.0.1:1", "unused")
        .transport(Transport::Offline)
        .bootstrap(json!({"environment": "local", "flags": flags()}))
        .build()
        .await
        .expect("builds offline");
    assert_eq!(client.status(), Status::Offline);
    assert_eq!(client.revision(), 0);
    let ctx = user_42();
    assert!(client.is_enabled("checkout", &ctx));
    assert_eq!(client.number_value("limit", &ctx, 0.0), 100.0);
    assert!(!client.is_enabled("missing", &ctx));

    let invalid = Client::builder("http://127.0.0.1:1", "unused")
        .transport(Transport::Offline)
        .bootstrap(json!({"flags": [{"key": "x", "kind": "boolean"}]}))
        .build()
        .await;
    assert!(
        matches!(
            invalid,
            Err(Error::InvalidDocument(DocumentError::Shape(_)))
        ),
        "{invalid:?}"
    );
    let without = Client::builder("http://127.0.0.1:1", "unused")
        .transport(Transport::Offline)
        .build()
        .await;
    assert!(matches!(without, Err(Error::NoBootstrap)), "{without:?}");
}
