//! The OpenFeature provider, exercised through OpenFeature's own API (the
//! `OpenFeature` singleton and its `Client`), against a real server in process.
//!
//! Every test but one registers its provider under its own name
//! (`set_named_provider`), since the singleton is shared by the tests of this binary;
//! `the_default_provider_follows_changes_and_counts_exposures` alone sets the default
//! provider.
#![cfg(feature = "openfeature")]

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationErrorCode, EvaluationReason,
    FlagMetadataValue, OpenFeature, StructValue, Value as OfValue,
};
use serde_json::{json, Value};
use switchyard_sdk::openfeature::SwitchyardProvider;
use switchyard_sdk::Client;
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{self, TestServer, ADMIN};

/// Creates `prod` with the test flags; returns a client for it.
async fn client(server: &TestServer) -> Client {
    server.create_env("prod").await;
    for flag in test_flags() {
        server.put_flag("prod", flag).await;
    }
    let token = server.token("prod-sdk", "sdk", Some("prod")).await;
    Client::builder(&server.base, &token)
        .metrics_flush_interval(Duration::from_secs(3600))
        .build()
        .await
        .expect("client builds")
}

fn boolean(key: &str, rules: Value, default: Value) -> Value {
    json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "rules": rules, "default": default
    })
}

fn test_flags() -> Vec<Value> {
    vec![
        boolean(
            "new-checkout",
            json!([{"id": "beta", "when": {"groups": ["beta"]}, "serve": {"variant": "on"}}]),
            json!({"variant": "off"}),
        ),
        json!({
            "key": "theme", "kind": "string", "variants": {"light": "light", "dark": "dark"},
            "off_variant": "light",
            "rules": [{"id": "italy", "when": {"constraints": [
                {"attribute": "country", "op": "in", "values": ["IT"]}
            ]}, "serve": {"variant": "dark"}}],
            "default": {"variant": "light"}
        }),
        json!({
            "key": "max-items", "kind": "number", "variants": {"small": 10, "big": 100},
            "off_variant": "small",
            "rules": [{"id": "adults", "when": {"constraints": [
                {"attribute": "age", "op": "gte", "values": [18]}
            ]}, "serve": {"variant": "big"}}],
            "default": {"variant": "small"}
        }),
        json!({
            "key": "ratio", "kind": "number", "variants": {"quarter": 0.25},
            "off_variant": "quarter", "default": {"variant": "quarter"}
        }),
        json!({
            "key": "whole", "kind": "number", "variants": {"three": 3.0},
            "off_variant": "three", "default": {"variant": "three"}
        }),
        json!({
            "key": "layout", "kind": "json",
            "variants": {
                "grid": {"columns": 3, "title": "Grid", "ratio": 1.5, "wide": true,
                         "nested": {"items": [1, "b"]}, "gone": null},
                "broken": {"items": [1, null]}
            },
            "off_variant": "grid",
            "rules": [{"id": "broken", "when": {"users": ["breaker"]},
                       "serve": {"variant": "broken"}}],
            "default": {"variant": "grid"}
        }),
        json!({
            "key": "killed", "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "enabled": false, "default": {"variant": "on"}
        }),
        json!({
            "key": "needs-checkout", "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": "on"},
            "prerequisites": [{"flag": "new-checkout", "variant": "on"}]
        }),
        json!({
            "key": "experiment", "kind": "string", "variants": {"a": "a", "b": "b"},
            "off_variant": "a",
            "default": {"rollout": {"split": [
                {"variant": "a", "weight": 50000}, {"variant": "b", "weight": 50000}
            ]}}
        }),
        boolean(
            "gate",
            json!([
                {"id": "early", "when": {"constraints": [
                    {"attribute": "signup", "op": "before", "values": ["2026-06-01T00:00:00Z"]}
                ]}, "serve": {"variant": "on"}},
                {"id": "admins", "when": {"constraints": [
                    {"attribute": "roles", "op": "in", "values": ["admin"]}
                ]}, "serve": {"variant": "on"}},
                {"id": "opted-in", "when": {"constraints": [
                    {"attribute": "beta_opt_in", "op": "in", "values": ["true"]}
                ]}, "serve": {"variant": "on"}},
                {"id": "high-score", "when": {"constraints": [
                    {"attribute": "score", "op": "gte", "values": [10.5]}
                ]}, "serve": {"variant": "on"}},
                {"id": "vip", "when": {"users": ["user-7"]}, "serve": {"variant": "on"}}
            ]),
            json!({"variant": "off"}),
        ),
    ]
}

/// An OpenFeature client whose provider, registered under `name`, is a
/// [`SwitchyardProvider`] for `client`.
async fn named_client(name: &str, client: &Client) -> open_feature::Client {
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(name, SwitchyardProvider::new(client.clone()))
        .await;
    api.create_named_client(name)
}

fn user(key: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(key)
}

fn version(of: &Value) -> FlagMetadataValue {
    FlagMetadataValue::Int(of["version"].as_i64().expect("version"))
}

#[tokio::test]
async fn every_type_resolves_with_variant_reason_and_metadata() {
    let server = in_process::start().await;
    let client = client(&server).await;
    let flags = named_client("types", &client).await;
    let new_checkout = server
        .ok("GET", "/v1/admin/envs/prod/flags/new-checkout", ADMIN, None)
        .await;

    // Boolean; `groups` as OpenFeature can carry it: a comma-separated string.
    let beta = user("user-1").with_custom_field("groups", "alpha, beta");
    let details = flags
        .get_bool_details("new-checkout", Some(&beta), None)
        .await
        .expect("resolves");
    assert!(details.value);
    assert_eq!(details.variant.as_deref(), Some("on"));
    assert_eq!(details.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(
        details.flag_metadata.values.get("rule_id"),
        Some(&FlagMetadataValue::String("beta".to_owned()))
    );
    assert_eq!(
        details.flag_metadata.values.get("flag_version"),
        Some(&version(&new_checkout))
    );
    let details = flags
        .get_bool_details("new-checkout", Some(&user("user-2")), None)
        .await
        .expect("resolves");
    assert!(!details.value);
    assert_eq!(details.variant.as_deref(), Some("off"));
    assert_eq!(details.reason, Some(EvaluationReason::Default));
    assert_eq!(details.flag_metadata.values.get("rule_id"), None);

    // String.
    let italy = user("user-1").with_custom_field("country", "IT");
    let details = flags
        .get_string_details("theme", Some(&italy), None)
        .await
        .expect("resolves");
    assert_eq!(details.value, "dark");
    assert_eq!(details.variant.as_deref(), Some("dark"));
    assert_eq!(details.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(
        flags
            .get_string_value("theme", None, None)
            .await
            .expect("resolves"),
        "light"
    );

    // Integers and floats; an integer context field is a number attribute.
    let adult = user("user-1").with_custom_field("age", 21);
    assert_eq!(
        flags
            .get_int_value("max-items", Some(&adult), None)
            .await
            .expect("resolves"),
        100
    );
    let minor = user("user-1").with_custom_field("age", 15.5);
    assert_eq!(
        flags
            .get_int_value("max-items", Some(&minor), None)
            .await
            .expect("resolves"),
        10
    );
    assert_eq!(
        flags
            .get_float_value("max-items", Some(&adult), None)
            .await
            .expect("resolves"),
        100.0
    );
    let details = flags
        .get_float_details("ratio", None, None)
        .await
        .expect("resolves");
    assert_eq!(details.value, 0.25);
    assert_eq!(details.reason, Some(EvaluationReason::Static));
    assert_eq!(
        flags
            .get_int_value("whole", None, None)
            .await
            .expect("a whole float"),
        3
    );

    // Struct: JSON objects become OpenFeature structures; null fields are left out.
    let details = flags
        .get_struct_details::<StructValue>("layout", Some(&user("user-1")), None)
        .await
        .expect("resolves");
    let expected = StructValue {
        fields: HashMap::from([
            ("columns".to_owned(), OfValue::Int(3)),
            ("title".to_owned(), OfValue::String("Grid".to_owned())),
            ("ratio".to_owned(), OfValue::Float(1.5)),
            ("wide".to_owned(), OfValue::Bool(true)),
            (
                "nested".to_owned(),
                OfValue::Struct(StructValue {
                    fields: HashMap::from([(
                        "items".to_owned(),
                        OfValue::Array(vec![OfValue::Int(1), OfValue::String("b".to_owned())]),
                    )]),
                }),
            ),
        ]),
    };
    assert_eq!(details.value, expected);
    assert_eq!(details.variant.as_deref(), Some("grid"));

    // Reasons: killed, failed prerequisite, split.
    let details = flags
        .get_bool_details("killed", Some(&user("user-1")), None)
        .await
        .expect("resolves");
    assert!(!details.value);
    assert_eq!(details.variant.as_deref(), Some("off"));
    assert_eq!(details.reason, Some(EvaluationReason::Disabled));
    let details = flags
        .get_bool_details("needs-checkout", Some(&user("user-2")), None)
        .await
        .expect("resolves");
    assert!(!details.value);
    assert_eq!(details.reason, Some(EvaluationReason::Disabled));
    assert_eq!(
        details.flag_metadata.values.get("reason_detail"),
        Some(&FlagMetadataValue::String("PREREQUISITE_FAILED".to_owned()))
    );
    assert!(flags
        .get_bool_value("needs-checkout", Some(&beta), None)
        .await
        .expect("resolves"));
    let mut variants = std::collections::BTreeSet::new();
    for i in 0..50 {
        let details = flags
            .get_string_details("experiment", Some(&user(&format!("user-{i}"))), None)
            .await
            .expect("resolves");
        assert_eq!(details.reason, Some(EvaluationReason::Split));
        assert_eq!(details.variant.as_deref(), Some(details.value.as_str()));
        variants.insert(details.value);
    }
    assert_eq!(variants.len(), 2, "50 users land on both variants");

    // The OpenFeature answers are the client's own.
    for i in 0..20 {
        let key = format!("user-{i}");
        let ctx = switchyard_sdk::Context::new(key.as_str());
        assert_eq!(
            flags
                .get_string_value("experiment", Some(&user(&key)), None)
                .await
                .expect("resolves"),
            client.string_value("experiment", &ctx, "?")
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn errors_map_to_openfeature_error_codes() {
    let server = in_process::start().await;
    let client = client(&server).await;
    let flags = named_client("errors", &client).await;
    let ctx = user("user-1");

    let error = flags
        .get_bool_value("no-such-flag", Some(&ctx), None)
        .await
        .expect_err("unknown flag");
    assert_eq!(error.code, EvaluationErrorCode::FlagNotFound);
    assert!(error.message.expect("a message").contains("no-such-flag"));

    let mismatch = |result: Result<(), open_feature::EvaluationError>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(error.code, EvaluationErrorCode::TypeMismatch, "{what}");
    };
    mismatch(
        flags
            .get_bool_value("theme", Some(&ctx), None)
            .await
            .map(drop),
        "bool of a string flag",
    );
    mismatch(
        flags
            .get_string_value("new-checkout", Some(&ctx), None)
            .await
            .map(drop),
        "string of a boolean flag",
    );
    mismatch(
        flags
            .get_int_value("ratio", Some(&ctx), None)
            .await
            .map(drop),
        "integer of 0.25",
    );
    mismatch(
        flags
            .get_float_value("theme", Some(&ctx), None)
            .await
            .map(drop),
        "float of a string flag",
    );
    mismatch(
        flags
            .get_struct_value::<StructValue>("theme", Some(&ctx), None)
            .await
            .map(drop),
        "struct of a string flag",
    );
    mismatch(
        flags
            .get_struct_value::<StructValue>("layout", Some(&user("breaker")), None)
            .await
            .map(drop),
        "struct with a null in a list",
    );

    let invalid = |ctx: EvaluationContext, what: &'static str| {
        let flags = &flags;
        async move {
            let error = flags
                .get_bool_value("new-checkout", Some(&ctx), None)
                .await
                .expect_err(what);
            assert_eq!(error.code, EvaluationErrorCode::InvalidContext, "{what}");
        }
    };
    invalid(
        ctx.clone()
            .with_custom_field("device", EvaluationContextFieldValue::new_struct(42_u8)),
        "an opaque struct field",
    )
    .await;
    invalid(
        ctx.clone().with_custom_field("groups", true),
        "groups as a boolean",
    )
    .await;
    invalid(
        EvaluationContext::default().with_custom_field("targetingKey", 7),
        "a numeric targeting key",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn context_fields_become_attributes() {
    let server = in_process::start().await;
    let client = client(&server).await;
    let flags = named_client("context", &client).await;
    let rule = |ctx: EvaluationContext| {
        let flags = &flags;
        async move {
            let details = flags
                .get_bool_details("gate", Some(&ctx), None)
                .await
                .expect("resolves");
            match details.flag_metadata.values.get("rule_id") {
                Some(FlagMetadataValue::String(rule)) => {
                    assert!(details.value);
                    Some(rule.clone())
                }
                _ => {
                    assert!(!details.value);
                    None
                }
            }
        }
    };
    let at = |text: &str| {
        let parsed = chrono::DateTime::parse_from_rfc3339(text).expect("instant");
        time_of(parsed.timestamp())
    };

    // Date-times compare as instants.
    assert_eq!(
        rule(user("u").with_custom_field("signup", at("2025-01-02T03:04:05Z"))).await,
        Some("early".to_owned())
    );
    assert_eq!(
        rule(user("u").with_custom_field("signup", at("2026-07-01T00:00:00Z"))).await,
        None
    );
    // Lists: a Vec<String>, a Vec<&str> or a JSON array in a struct field.
    let roles = |roles: Vec<String>| EvaluationContextFieldValue::new_struct(roles);
    assert_eq!(
        rule(user("u").with_custom_field("roles", roles(vec!["dev".into(), "admin".into()]))).await,
        Some("admins".to_owned())
    );
    assert_eq!(
        rule(user("u").with_custom_field("roles", roles(vec!["dev".into()]))).await,
        None
    );
    assert_eq!(
        rule(user("u").with_custom_field(
            "roles",
            EvaluationContextFieldValue::new_struct(vec!["admin"])
        ))
        .await,
        Some("admins".to_owned())
    );
    assert_eq!(
        rule(user("u").with_custom_field(
            "roles",
            EvaluationContextFieldValue::new_struct(json!(["ops", "admin"]))
        ))
        .await,
        Some("admins".to_owned())
    );
    // Booleans and floats.
    assert_eq!(
        rule(user("u").with_custom_field("beta_opt_in", true)).await,
        Some("opted-in".to_owned())
    );
    assert_eq!(
        rule(user("u").with_custom_field("beta_opt_in", false)).await,
        None
    );
    assert_eq!(
        rule(user("u").with_custom_field("score", 10.75)).await,
        Some("high-score".to_owned())
    );
    assert_eq!(rule(user("u").with_custom_field("score", 10)).await, None);
    // The targeting key: OpenFeature's field, or a `targetingKey` custom field; the
    // field wins when both are set.
    assert_eq!(rule(user("user-7")).await, Some("vip".to_owned()));
    assert_eq!(
        rule(EvaluationContext::default().with_custom_field("targetingKey", "user-7")).await,
        Some("vip".to_owned())
    );
    assert_eq!(
        rule(user("user-8").with_custom_field("targetingKey", "user-7")).await,
        None
    );
    assert_eq!(rule(EvaluationContext::default()).await, None);

    // OpenFeature merges the client's context into the call's.
    let mut beta_client = OpenFeature::singleton()
        .await
        .create_named_client("context");
    beta_client.set_evaluation_context(user("user-1").with_custom_field("groups", "beta"));
    assert!(beta_client
        .get_bool_value("new-checkout", None, None)
        .await
        .expect("resolves"));
    server.stop().await;
}

/// An OpenFeature date-time field at `seconds` since the epoch.
fn time_of(seconds: i64) -> EvaluationContextFieldValue {
    EvaluationContextFieldValue::DateTime(
        time::OffsetDateTime::from_unix_timestamp(seconds).expect("in range"),
    )
}

#[tokio::test]
async fn the_default_provider_follows_changes_and_counts_exposures() {
    let server = in_process::start().await;
    let client = client(&server).await;
    let provider = SwitchyardProvider::new(client.clone());
    assert_eq!(provider.status(), ProviderStatus::Ready);
    let tracker = provider.clone();
    {
        let mut api = OpenFeature::singleton_mut().await;
        api.set_provider(provider).await;
    }
    assert_eq!(
        OpenFeature::singleton()
            .await
            .provider_metadata()
            .await
            .name,
        "switchyard"
    );
    let flags = OpenFeature::singleton().await.create_client();
    let ctx = user("user-2");

    let (mut on, mut off) = (0_u64, 0_u64);
    assert!(!flags
        .get_bool_value("new-checkout", Some(&ctx), None)
        .await
        .expect("resolves"));
    off += 1;
    // Turn it on for everyone: the provider answers from the synced flags.
    server
        .put_flag(
            "prod",
            boolean("new-checkout", json!([]), json!({"variant": "on"})),
        )
        .await;
    let offs = Cell::new(0_u64);
    eventually(
        Duration::from_secs(20),
        "the change to reach the provider",
        || async {
            let resolved = flags
                .get_bool_value("new-checkout", Some(&ctx), None)
                .await
                .expect("resolves");
            if !resolved {
                offs.set(offs.get() + 1);
            }
            resolved.then_some(())
        },
    )
    .await;
    on += 1;
    off += offs.get();

    // OpenFeature tracking through the provider: the event with its value, and the
    // unit, for the variant served (`on` now).
    let details = switchyard_sdk::openfeature::TrackingEventDetails { value: Some(120.0) };
    tracker
        .track("checkout_latency", &ctx, Some(&details))
        .expect("tracks");
    tracker
        .track("checkout_latency", &ctx, None)
        .expect("tracks");

    // Resolutions through OpenFeature are exposures like the client's own.
    client.close().await;
    let units = server
        .ok(
            "GET",
            "/v1/admin/envs/prod/flags/new-checkout/units?since=1h&event=checkout_latency",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(units["variants"]["on"]["units"], 1, "{units}");
    let latency = &units["variants"]["on"]["events"]["checkout_latency"];
    assert_eq!(latency["units"], 1, "{units}");
    assert_eq!(latency["values"]["count"], 1, "{units}");
    assert_eq!(latency["values"]["sum"], 120.0, "{units}");
    let metrics = server
        .ok(
            "GET",
            "/v1/admin/envs/prod/flags/new-checkout/metrics?window=5m",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(
        metrics["variants"],
        json!({
            "off": {"exposures": off, "events": {}},
            "on": {"exposures": on, "events": {"checkout_latency": 2}}
        })
    );
    server.stop().await;
}
