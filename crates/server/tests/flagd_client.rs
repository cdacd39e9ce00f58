//! The published OpenFeature Rust SDK (`open-feature`) with the published flagd
//! provider (`open-feature-flagd`, RPC resolver), unchanged, as the client of a
//! running server whose flagd service is open without a token for `prod` (flagd
//! providers send no credentials).
//!
//! The provider is configured with its cache off so that every evaluation reaches
//! the server: with its default cache it answers repeated `STATIC` evaluations
//! itself, with reason `CACHED`.

use std::collections::BTreeSet;

use open_feature::{
    Client, EvaluationContext, EvaluationErrorCode, EvaluationReason, FlagMetadataValue,
    OpenFeature, StructValue, Value as OfValue,
};
use open_feature_flagd::{FlagdOptions, FlagdProvider, ResolverType};
use serde_json::json;
use switchyard_core::{evaluate, Context, Reason};
use switchyard_testkit::in_process::{boolean_flag, start_with_grpc, TestServer, ADMIN};

/// A server with a `prod` environment holding boolean, string, integer, float,
/// object, rollout and killed flags, and an OpenFeature client whose flagd provider
/// (bound to `name`) talks to its gRPC port.
async fn setup(name: &str) -> (TestServer, Client) {
    let server = start_with_grpc(Some("prod")).await;
    server.create_env("prod").await;
    server.put_flag("prod", boolean_flag("checkout")).await;
    let flags = [
        json!({
            "key": "maintenance", "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": "on"}
        }),
        json!({
            "key": "banner", "kind": "string", "variants": {"blue": "blue", "green": "green"},
            "off_variant": "blue", "default": {"variant": "green"}
        }),
        json!({
            "key": "limit", "kind": "number", "variants": {"small": 10, "large": 1000},
            "off_variant": "small", "default": {"variant": "large"}
        }),
        json!({
            "key": "ratio", "kind": "number", "variants": {"low": 0.25, "high": 0.75},
            "off_variant": "low", "default": {"variant": "high"}
        }),
        json!({
            "key": "theme", "kind": "json",
            "variants": {"dark": {"color": "black", "contrast": 7, "beta": true}, "light": {"color": "white"}},
            "off_variant": "light", "default": {"variant": "dark"}
        }),
        json!({
            "key": "ramp", "kind": "string",
            "variants": {"old": "old-checkout", "new": "new-checkout"}, "off_variant": "old",
            "default": {"rollout": {"split": [{"variant": "old", "weight": 50000}, {"variant": "new", "weight": 50000}]}}
        }),
    ];
    for flag in flags {
        server.put_flag("prod", flag).await;
    }
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

    let url = server.grpc.clone().expect("gRPC is served");
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let provider = FlagdProvider::new(FlagdOptions {
        host: "127.0.0.1".to_owned(),
        port,
        target_uri: None,
        socket_path: None,
        tls: false,
        resolver_type: ResolverType::Rpc,
        deadline_ms: 10_000,
        cache_settings: None,
        ..Default::default()
    })
    .await
    .expect("the provider connects");
    // The OpenFeature API is a process-wide singleton: each test binds its own name.
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(name, provider).await;
    let client = api.create_named_client(name);
    (server, client)
}

/// The reason as the wire wrote it (the provider passes it on as `Other`).
fn reason(reason: Option<&EvaluationReason>) -> String {
    match reason {
        Some(EvaluationReason::Other(reason)) => reason.clone(),
        Some(other) => format!("{other:?}").to_uppercase(),
        None => String::new(),
    }
}

#[tokio::test]
async fn boolean_string_integer_float_and_object_flags() {
    let (server, client) = setup("typed").await;
    let ctx = EvaluationContext::default().with_targeting_key("user-1");

    let details = client
        .get_bool_details("maintenance", Some(&ctx), None)
        .await
        .expect("resolves");
    assert!(details.value);
    assert_eq!(details.variant.as_deref(), Some("on"));
    assert_eq!(reason(details.reason.as_ref()), "STATIC");
    assert_eq!(
        details.flag_metadata.values.get("flag_version"),
        Some(&FlagMetadataValue::Float(1.0))
    );

    let details = client
        .get_bool_details("checkout", Some(&ctx), None)
        .await
        .expect("resolves");
    assert!(!details.value);
    assert_eq!(details.variant.as_deref(), Some("off"));
    assert_eq!(reason(details.reason.as_ref()), "DEFAULT");

    let details = client
        .get_string_details("banner", Some(&ctx), None)
        .await
        .expect("resolves");
    assert_eq!(details.value, "green");
    assert_eq!(details.variant.as_deref(), Some("green"));
    assert_eq!(reason(details.reason.as_ref()), "STATIC");

    let details = client
        .get_int_details("limit", Some(&ctx), None)
        .await
        .expect("resolves");
    assert_eq!(details.value, 1000);
    assert_eq!(details.variant.as_deref(), Some("large"));

    let details = client
        .get_float_details("ratio", Some(&ctx), None)
        .await
        .expect("resolves");
    assert_eq!(details.value, 0.75);
    assert_eq!(details.variant.as_deref(), Some("high"));

    let details = client
        .get_struct_details::<StructValue>("theme", Some(&ctx), None)
        .await
        .expect("resolves");
    assert_eq!(details.variant.as_deref(), Some("dark"));
    let fields = &details.value.fields;
    assert_eq!(fields.len(), 3, "{fields:?}");
    assert_eq!(
        fields.get("color"),
        Some(&OfValue::String("black".to_owned()))
    );
    assert_eq!(fields.get("contrast"), Some(&OfValue::Float(7.0)));
    assert_eq!(fields.get("beta"), Some(&OfValue::Bool(true)));

    // The wrong type is an error, not a wrong value (flagd's INVALID_ARGUMENT, which
    // this provider reports as INVALID_CONTEXT).
    let wrong = client
        .get_bool_details("banner", Some(&ctx), None)
        .await
        .expect_err("a string flag read as a boolean");
    assert_eq!(wrong.code, EvaluationErrorCode::InvalidContext);
    assert!(
        wrong
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("type mismatch")),
        "{wrong:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_targeting_match_on_a_group_rule() {
    let (server, client) = setup("targeting").await;
    // OpenFeature contexts have no list type: groups travel as one string.
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
    assert_eq!(reason(details.reason.as_ref()), "TARGETING_MATCH");
    assert_eq!(
        details.flag_metadata.values.get("rule_id"),
        Some(&FlagMetadataValue::String("beta".to_owned()))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_split_matches_the_core() {
    let (server, client) = setup("split").await;
    let snapshot = server.state.envs.get("prod").expect("prod");
    let mut served = BTreeSet::new();
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
        assert_eq!(reason(details.reason.as_ref()), "SPLIT", "{user}");
        served.insert(details.value);
    }
    assert_eq!(served.len(), 2, "both sides are served: {served:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_disabled_flag_serves_its_off_variant() {
    let (server, client) = setup("disabled").await;
    let ctx = EvaluationContext::default()
        .with_targeting_key("user-3")
        .with_custom_field("groups", "beta");
    let details = client
        .get_bool_details("payments", Some(&ctx), None)
        .await
        .expect("a disabled flag is a successful evaluation");
    assert!(!details.value, "killed: the off variant even for beta");
    assert_eq!(details.variant.as_deref(), Some("off"));
    assert_eq!(reason(details.reason.as_ref()), "DISABLED");
    server.stop().await;
}

#[tokio::test]
async fn a_missing_flag_is_flag_not_found_and_the_default_is_used() {
    let (server, client) = setup("missing").await;
    let ctx = EvaluationContext::default().with_targeting_key("user-4");
    let error = client
        .get_bool_details("no-such-flag", Some(&ctx), None)
        .await
        .expect_err("a missing flag is an error");
    assert_eq!(error.code, EvaluationErrorCode::FlagNotFound);
    assert_eq!(
        error.message.as_deref(),
        Some("flag `no-such-flag` not found in environment `prod`")
    );
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
