//! The published OpenFeature Rust SDK (`open-feature`) with the published OFREP
//! provider (`open-feature-ofrep`), unchanged, as the client of a running server.
//!
//! Provider 0.1.2 reports every successful resolution with reason `STATIC` and drops
//! the response's metadata, so reasons are checked on the wire (the OFREP response the
//! provider received) and the client's value and variant against the core.

use std::time::Duration;

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue};
use open_feature::{Client, EvaluationContext, EvaluationErrorCode, OpenFeature};
use open_feature_ofrep::{OfrepOptions, OfrepProvider};
use serde_json::{json, Value};
use switchyard_core::{evaluate, Context, Reason};
use switchyard_testkit::in_process::{boolean_flag, start, TestServer, ADMIN};

/// A server with a `prod` environment holding a boolean flag with a `beta` group
/// rule, a string flag, a 50/50 rollout and a killed flag; and an OpenFeature client
/// whose OFREP provider (bound to `name`) talks to it with a prod sdk token.
async fn setup(name: &str) -> (TestServer, Client, String) {
    let server = start().await;
    server.create_env("prod").await;
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
    server
        .put_flag(
            "prod",
            json!({
                "key": "ramp", "kind": "string",
                "variants": {"old": "old-checkout", "new": "new-checkout"}, "off_variant": "old",
                "default": {"rollout": {"split": [{"variant": "old", "weight": 50000}, {"variant": "new", "weight": 50000}]}}
            }),
        )
        .await;
    server.put_flag("prod", boolean_flag("payments")).await;
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/envs/prod/flags/payments/kill",
            Some(ADMIN),
            Some(json!({"reason": "incident"})),
        )
        .await;
    assert_eq!(status, 200, "kill: {body}");
    let token = server.token("service", "sdk", Some("prod")).await;

    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let provider = OfrepProvider::new(OfrepOptions {
        base_url: server.base.clone(),
        headers,
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    })
    .await
    .expect("provider");
    // The OpenFeature API is a process-wide singleton: each test binds its own name.
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(name, provider).await;
    let client = api.create_named_client(name);
    (server, client, token)
}

/// The reason the server puts on the wire for `key` and `context`.
async fn wire_reason(server: &TestServer, token: &str, key: &str, context: Value) -> String {
    let (status, body) = server
        .call(
            "POST",
            &format!("/ofrep/v1/evaluate/flags/{key}"),
            Some(token),
            Some(json!({ "context": context })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["reason"].as_str().expect("reason").to_owned()
}

#[tokio::test]
async fn boolean_and_string_flags() {
    let (server, client, token) = setup("boolean-and-string").await;
    let ctx = EvaluationContext::default().with_targeting_key("user-1");
    let details = client
        .get_bool_details("checkout", Some(&ctx), None)
        .await
        .expect("resolves");
    assert!(!details.value);
    assert_eq!(details.variant.as_deref(), Some("off"));
    assert_eq!(
        wire_reason(
            &server,
            &token,
            "checkout",
            json!({"targetingKey": "user-1"})
        )
        .await,
        "DEFAULT"
    );

    let details = client
        .get_string_details("banner", Some(&ctx), None)
        .await
        .expect("resolves");
    assert_eq!(details.value, "green");
    assert_eq!(details.variant.as_deref(), Some("green"));
    assert_eq!(
        wire_reason(&server, &token, "banner", json!({"targetingKey": "user-1"})).await,
        "STATIC"
    );

    // The wrong type is the client's TYPE_MISMATCH-like failure, not a wrong value.
    let wrong = client.get_bool_value("banner", Some(&ctx), None).await;
    assert!(wrong.is_err(), "a string flag read as a boolean: {wrong:?}");
    server.stop().await;
}

#[tokio::test]
async fn targeting_match_on_a_group_rule() {
    let (server, client, token) = setup("targeting").await;
    let ctx = EvaluationContext::default()
        .with_targeting_key("user-2")
        .with_custom_field("groups", "staff,beta")
        .with_custom_field("country", "IT");
    let details = client
        .get_bool_details("checkout", Some(&ctx), None)
        .await
        .expect("resolves");
    assert!(details.value, "the beta rule serves on");
    assert_eq!(details.variant.as_deref(), Some("on"));
    let wire = json!({"targetingKey": "user-2", "groups": "staff,beta", "country": "IT"});
    assert_eq!(
        wire_reason(&server, &token, "checkout", wire).await,
        "TARGETING_MATCH"
    );
    server.stop().await;
}

#[tokio::test]
async fn split_matches_the_core() {
    let (server, client, token) = setup("split").await;
    let snapshot = server.state.envs.get("prod").expect("prod");
    let mut served = std::collections::BTreeSet::new();
    for user in [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ] {
        let expected = evaluate(&snapshot.snapshot, "ramp", &Context::new(user));
        assert_eq!(expected.reason, Reason::Split);
        let ctx = EvaluationContext::default().with_targeting_key(user);
        let details = client
            .get_string_details("ramp", Some(&ctx), None)
            .await
            .expect("resolves");
        assert_eq!(Some(details.value.as_str()), expected.as_str(), "{user}");
        assert_eq!(details.variant.as_deref(), expected.variant, "{user}");
        assert_eq!(
            wire_reason(&server, &token, "ramp", json!({"targetingKey": user})).await,
            expected.reason.as_str()
        );
        served.insert(details.value);
    }
    assert_eq!(
        served.len(),
        2,
        "these users fall on both sides: {served:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn killed_flag_serves_its_off_variant() {
    let (server, client, token) = setup("killed").await;
    let ctx = EvaluationContext::default()
        .with_targeting_key("user-3")
        .with_custom_field("groups", "beta");
    let details = client
        .get_bool_details("payments", Some(&ctx), None)
        .await
        .expect("resolves");
    assert!(!details.value, "killed: the off variant even for beta");
    assert_eq!(details.variant.as_deref(), Some("off"));
    let wire = json!({"targetingKey": "user-3", "groups": "beta"});
    assert_eq!(
        wire_reason(&server, &token, "payments", wire).await,
        "DISABLED"
    );
    server.stop().await;
}

#[tokio::test]
async fn missing_flag_is_flag_not_found_and_the_default_is_used() {
    let (server, client, _token) = setup("missing").await;
    let ctx = EvaluationContext::default().with_targeting_key("user-4");
    let error = client
        .get_bool_details("no-such-flag", Some(&ctx), None)
        .await
        .expect_err("a missing flag is an error");
    assert_eq!(error.code, EvaluationErrorCode::FlagNotFound);
    let value = client
        .get_string_value("no-such-flag", Some(&ctx), None)
        .await
        .unwrap_or_else(|_| "code-default".to_owned());
    assert_eq!(value, "code-default");

    // Without a targeting key the context is anonymous and still evaluated.
    let anonymous = client
        .get_bool_details("checkout", Some(&EvaluationContext::default()), None)
        .await
        .expect("an anonymous context is evaluated");
    assert!(!anonymous.value);
    server.stop().await;
}
