//! The flagd-compatible `flagd.evaluation.v1.Service` over a real socket, driven by
//! the generated client: every RPC, every error class, the token / no-token /
//! `--flagd-env` rules, and an `EventStream` that sees a kill switch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_core::{evaluate, Context, Reason};
use switchyard_server::grpc::convert;
use switchyard_server::grpc::proto::flagd::any_flag::Value as AnyValue;
use switchyard_server::grpc::proto::flagd::service_client::ServiceClient;
use switchyard_server::grpc::proto::flagd::{
    EventStreamRequest, EventStreamResponse, ResolveAllRequest, ResolveBooleanRequest,
    ResolveFloatRequest, ResolveIntRequest, ResolveObjectRequest, ResolveStringRequest,
};
use switchyard_testkit::in_process::{
    boolean_flag, deferring_flag, start_with_grpc, TestServer, ADMIN,
};
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

type Client = ServiceClient<Channel>;

/// Every flag kind and reason in `env`: booleans (static, with a group rule, killed,
/// gated by a prerequisite on the killed one), a string, whole and fractional
/// numbers, JSON objects and an array, and a 50/50 rollout.
async fn fill(server: &TestServer, env: &str) {
    server.create_env(env).await;
    server.put_flag(env, boolean_flag("checkout")).await;
    server
        .put_flag(
            env,
            json!({
                "key": "maintenance", "kind": "boolean", "variants": {"on": true, "off": false},
                "off_variant": "off", "default": {"variant": "on"}
            }),
        )
        .await;
    server
        .put_flag(
            env,
            json!({
                "key": "banner", "kind": "string", "variants": {"blue": "blue", "green": "green"},
                "off_variant": "blue", "default": {"variant": "green"}
            }),
        )
        .await;
    server
        .put_flag(
            env,
            json!({
                "key": "limit", "kind": "number", "variants": {"small": 10, "large": 1000},
                "off_variant": "small", "default": {"variant": "small"}
            }),
        )
        .await;
    server
        .put_flag(
            env,
            json!({
                "key": "ratio", "kind": "number", "variants": {"half": 0.5, "whole": 2.0},
                "off_variant": "half",
                "rules": [{"id": "wholes", "when": {"groups": ["whole"]}, "serve": {"variant": "whole"}}],
                "default": {"variant": "half"}
            }),
        )
        .await;
    server
        .put_flag(
            env,
            json!({
                "key": "theme", "kind": "json",
                "variants": {"dark": {"color": "black", "contrast": 7, "beta": true}, "list": [1, 2]},
                "off_variant": "dark",
                "rules": [{"id": "lists", "when": {"groups": ["lists"]}, "serve": {"variant": "list"}}],
                "default": {"variant": "dark"}
            }),
        )
        .await;
    server
        .put_flag(
            env,
            json!({
                "key": "matrix", "kind": "json", "variants": {"m": [[1, 0], [0, 1]]},
                "off_variant": "m", "default": {"variant": "m"}
            }),
        )
        .await;
    server
        .put_flag(
            env,
            json!({
                "key": "ramp", "kind": "string",
                "variants": {"old": "old-checkout", "new": "new-checkout"}, "off_variant": "old",
                "default": {"rollout": {"split": [{"variant": "old", "weight": 50000}, {"variant": "new", "weight": 50000}]}}
            }),
        )
        .await;
    server.put_flag(env, boolean_flag("payments")).await;
    server
        .put_flag(
            env,
            json!({
                "key": "gated", "kind": "boolean", "variants": {"on": true, "off": false},
                "off_variant": "off", "default": {"variant": "on"},
                "prerequisites": [{"flag": "payments", "variant": "on"}]
            }),
        )
        .await;
    kill(server, env, "payments").await;
}

async fn kill(server: &TestServer, env: &str, key: &str) {
    let (status, body) = server
        .call(
            "POST",
            &format!("/v1/admin/envs/{env}/flags/{key}/kill"),
            Some(ADMIN),
            Some(json!({"reason": "incident"})),
        )
        .await;
    assert_eq!(status, 200, "kill {key}: {body}");
}

/// A server whose flagd service is open without a token for `prod`, filled.
async fn setup() -> (TestServer, Client) {
    let server = start_with_grpc(Some("prod")).await;
    fill(&server, "prod").await;
    let client = client(&server).await;
    (server, client)
}

async fn client(server: &TestServer) -> Client {
    let url = server.grpc.clone().expect("gRPC is served");
    ServiceClient::connect(url).await.expect("connects")
}

fn context(value: Value) -> Option<prost_types::Struct> {
    Some(convert::json_to_struct(
        value.as_object().expect("a context is an object"),
    ))
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

fn boolean(key: &str, ctx: Value) -> ResolveBooleanRequest {
    ResolveBooleanRequest {
        flag_key: key.to_owned(),
        context: context(ctx),
    }
}

fn string(key: &str, ctx: Value) -> ResolveStringRequest {
    ResolveStringRequest {
        flag_key: key.to_owned(),
        context: context(ctx),
    }
}

fn int(key: &str, ctx: Value) -> ResolveIntRequest {
    ResolveIntRequest {
        flag_key: key.to_owned(),
        context: context(ctx),
    }
}

fn float(key: &str, ctx: Value) -> ResolveFloatRequest {
    ResolveFloatRequest {
        flag_key: key.to_owned(),
        context: context(ctx),
    }
}

fn object(key: &str, ctx: Value) -> ResolveObjectRequest {
    ResolveObjectRequest {
        flag_key: key.to_owned(),
        context: context(ctx),
    }
}

fn metadata(metadata: Option<&prost_types::Struct>) -> Value {
    Value::Object(convert::struct_to_json(
        metadata.expect("metadata is always set"),
    ))
}

fn user(id: &str) -> Value {
    json!({ "targetingKey": id })
}

fn expect_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, what: &str) -> Status {
    let status = result.expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
    status
}

#[tokio::test]
async fn every_typed_rpc_resolves_value_reason_variant_and_metadata() {
    let (server, mut client) = setup().await;

    let answer = client
        .resolve_boolean(boolean("maintenance", user("u1")))
        .await
        .expect("resolves")
        .into_inner();
    assert_eq!(
        (
            answer.value,
            answer.reason.as_str(),
            answer.variant.as_str()
        ),
        (true, "STATIC", "on")
    );
    assert_eq!(
        metadata(answer.metadata.as_ref()),
        json!({"flag_version": 1})
    );

    let answer = client
        .resolve_boolean(boolean("checkout", user("u1")))
        .await
        .expect("resolves")
        .into_inner();
    assert_eq!(
        (
            answer.value,
            answer.reason.as_str(),
            answer.variant.as_str()
        ),
        (false, "DEFAULT", "off")
    );

    // A group rule; `groups` as a list or as one comma-separated string.
    for groups in [json!(["staff", "beta"]), json!("staff,beta")] {
        let answer = client
            .resolve_boolean(boolean(
                "checkout",
                json!({"targetingKey": "u1", "groups": groups}),
            ))
            .await
            .expect("resolves")
            .into_inner();
        assert_eq!(
            (
                answer.value,
                answer.reason.as_str(),
                answer.variant.as_str()
            ),
            (true, "TARGETING_MATCH", "on")
        );
        assert_eq!(
            metadata(answer.metadata.as_ref()),
            json!({"flag_version": 1, "rule_id": "beta"})
        );
    }

    let answer = client
        .resolve_string(string("banner", user("u1")))
        .await
        .expect("resolves")
        .into_inner();
    assert_eq!(
        (
            answer.value.as_str(),
            answer.reason.as_str(),
            answer.variant.as_str()
        ),
        ("green", "STATIC", "green")
    );

    let answer = client
        .resolve_int(int("limit", user("u1")))
        .await
        .expect("resolves")
        .into_inner();
    assert_eq!(
        (
            answer.value,
            answer.reason.as_str(),
            answer.variant.as_str()
        ),
        (10, "STATIC", "small")
    );

    let answer = client
        .resolve_float(float("ratio", user("u1")))
        .await
        .expect("resolves")
        .into_inner();
    assert_eq!(
        (
            answer.value,
            answer.reason.as_str(),
            answer.variant.as_str()
        ),
        (0.5, "DEFAULT", "half")
    );

    let answer = client
        .resolve_object(object("theme", user("u1")))
        .await
        .expect("resolves")
        .into_inner();
    assert_eq!(
        Value::Object(convert::struct_to_json(
            answer.value.as_ref().expect("a value")
        )),
        json!({"color": "black", "contrast": 7, "beta": true})
    );
    assert_eq!(
        (answer.reason.as_str(), answer.variant.as_str()),
        ("DEFAULT", "dark")
    );

    // An absent context is anonymous.
    let answer = client
        .resolve_boolean(ResolveBooleanRequest {
            flag_key: "checkout".to_owned(),
            context: None,
        })
        .await
        .expect("resolves")
        .into_inner();
    assert_eq!((answer.value, answer.reason.as_str()), (false, "DEFAULT"));
    server.stop().await;
}

#[tokio::test]
async fn numbers_convert_losslessly_between_int_and_float() {
    let (server, mut client) = setup().await;
    let answer = client
        .resolve_float(float("limit", user("u1")))
        .await
        .expect("an integer reads as a float")
        .into_inner();
    assert_eq!(answer.value, 10.0);
    let whole = json!({"targetingKey": "u1", "groups": ["whole"]});
    let answer = client
        .resolve_int(int("ratio", whole))
        .await
        .expect("2.0 is a whole number")
        .into_inner();
    assert_eq!(
        (
            answer.value,
            answer.reason.as_str(),
            answer.variant.as_str()
        ),
        (2, "TARGETING_MATCH", "whole")
    );
    let status = expect_status(
        client.resolve_int(int("ratio", user("u1"))).await,
        Code::InvalidArgument,
        "0.5 is not an integer",
    );
    assert!(
        status.message().contains("type mismatch") && status.message().contains("0.5"),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn type_mismatches_are_invalid_argument() {
    let (server, mut client) = setup().await;
    let lists = json!({"targetingKey": "u1", "groups": ["lists"]});
    let results = [
        (
            "ResolveBoolean on a string flag",
            client
                .resolve_boolean(boolean("banner", user("u1")))
                .await
                .map(drop),
        ),
        (
            "ResolveString on a boolean flag",
            client
                .resolve_string(string("checkout", user("u1")))
                .await
                .map(drop),
        ),
        (
            "ResolveInt on a string flag",
            client
                .resolve_int(int("banner", user("u1")))
                .await
                .map(drop),
        ),
        (
            "ResolveFloat on a boolean flag",
            client
                .resolve_float(float("checkout", user("u1")))
                .await
                .map(drop),
        ),
        (
            "ResolveObject on a number flag",
            client
                .resolve_object(object("limit", user("u1")))
                .await
                .map(drop),
        ),
        (
            "ResolveObject serving an array",
            client
                .resolve_object(object("theme", lists))
                .await
                .map(drop),
        ),
    ];
    for (what, result) in results {
        let status = expect_status(result, Code::InvalidArgument, what);
        assert!(
            status.message().starts_with("type mismatch: flag `"),
            "{what}: {}",
            status.message()
        );
    }
    let status = expect_status(
        client.resolve_boolean(boolean("banner", user("u1"))).await,
        Code::InvalidArgument,
        "string as boolean",
    );
    assert!(
        status.message().contains("`banner` is a string flag")
            && status
                .message()
                .contains("ResolveBoolean returns a boolean"),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_flag_is_not_found_in_every_rpc() {
    let (server, mut client) = setup().await;
    let results = [
        client
            .resolve_boolean(boolean("nope", user("u1")))
            .await
            .map(drop),
        client
            .resolve_string(string("nope", user("u1")))
            .await
            .map(drop),
        client.resolve_int(int("nope", user("u1"))).await.map(drop),
        client
            .resolve_float(float("nope", user("u1")))
            .await
            .map(drop),
        client
            .resolve_object(object("nope", user("u1")))
            .await
            .map(drop),
    ];
    for result in results {
        let status = expect_status(result, Code::NotFound, "unknown flag");
        assert_eq!(
            status.message(),
            "flag `nope` not found in environment `prod`"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_bad_context_is_invalid_argument() {
    let (server, mut client) = setup().await;
    let contexts = [
        (
            json!({"targetingKey": "u1", "address": {"city": "Rome"}}),
            "address",
        ),
        (json!({"targetingKey": "u1", "groups": 3}), "groups"),
        (json!({"targetingKey": 42}), "targetingKey"),
        (json!({"targetingKey": "u1", "tags": ["a", 1]}), "tags"),
    ];
    for (ctx, field) in contexts {
        let status = expect_status(
            client
                .resolve_boolean(boolean("checkout", ctx.clone()))
                .await,
            Code::InvalidArgument,
            "bad context",
        );
        assert!(
            status.message().starts_with("invalid context") && status.message().contains(field),
            "{ctx}: {}",
            status.message()
        );
        expect_status(
            client
                .resolve_all(ResolveAllRequest {
                    context: context(ctx.clone()),
                })
                .await,
            Code::InvalidArgument,
            "bad context in ResolveAll",
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_killed_flag_is_disabled_and_serves_its_off_variant() {
    let (server, mut client) = setup().await;
    // Even for a context its rule would match.
    let beta = json!({"targetingKey": "u1", "groups": ["beta"]});
    let answer = client
        .resolve_boolean(boolean("payments", beta.clone()))
        .await
        .expect("a disabled flag is a successful evaluation")
        .into_inner();
    assert_eq!(
        (
            answer.value,
            answer.reason.as_str(),
            answer.variant.as_str()
        ),
        (false, "DISABLED", "off")
    );
    assert_eq!(
        metadata(answer.metadata.as_ref()),
        json!({"flag_version": 2})
    );

    // A prerequisite on it fails: DISABLED too, with the precise reason in metadata.
    let answer = client
        .resolve_boolean(boolean("gated", beta))
        .await
        .expect("resolves")
        .into_inner();
    assert_eq!(
        (
            answer.value,
            answer.reason.as_str(),
            answer.variant.as_str()
        ),
        (false, "DISABLED", "off")
    );
    assert_eq!(
        metadata(answer.metadata.as_ref()),
        json!({"flag_version": 1, "reason_detail": "PREREQUISITE_FAILED"})
    );
    server.stop().await;
}

#[tokio::test]
async fn v1_answers_a_deferring_flag_with_zero_values_and_no_variant() {
    let (server, mut client) = setup().await;
    server.put_flag("prod", deferring_flag("legacy")).await;
    let answer = client
        .resolve_string(string("legacy", json!({"targetingKey": "u1"})))
        .await
        .expect("a deferring flag is a successful evaluation")
        .into_inner();
    // v1's fields cannot be left out: flagd's "no default variant" shape, which
    // providers read as "use the code default".
    assert_eq!(
        (
            answer.value.as_str(),
            answer.reason.as_str(),
            answer.variant.as_str()
        ),
        ("", "DISABLED", "")
    );
    let all = client
        .resolve_all(ResolveAllRequest {
            context: Some(convert::json_to_struct(
                json!({"targetingKey": "u1"}).as_object().expect("object"),
            )),
        })
        .await
        .expect("resolves")
        .into_inner();
    let legacy = &all.flags["legacy"];
    assert_eq!(
        (
            legacy.reason.as_str(),
            legacy.variant.as_str(),
            &legacy.value
        ),
        ("DISABLED", "", &None)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_split_matches_the_core() {
    let (server, mut client) = setup().await;
    let snapshot = server.state.envs.get("prod").expect("prod");
    let mut served = BTreeSet::new();
    for id in [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ] {
        let expected = evaluate(&snapshot.snapshot, "ramp", &Context::new(id));
        assert_eq!(expected.reason, Reason::Split);
        let answer = client
            .resolve_string(string("ramp", user(id)))
            .await
            .expect("resolves")
            .into_inner();
        assert_eq!(Some(answer.value.as_str()), expected.as_str(), "{id}");
        assert_eq!(Some(answer.variant.as_str()), expected.variant, "{id}");
        assert_eq!(answer.reason, "SPLIT", "{id}");
        served.insert(answer.value);
    }
    assert_eq!(served.len(), 2, "both sides are served: {served:?}");
    server.stop().await;
}

#[tokio::test]
async fn resolve_all_returns_every_flag_with_its_typed_value() {
    let (server, mut client) = setup().await;
    let answer = client
        .resolve_all(ResolveAllRequest {
            context: context(json!({"targetingKey": "u1", "groups": "beta"})),
        })
        .await
        .expect("resolves")
        .into_inner();
    let flags: BTreeMap<String, (String, String, Option<AnyValue>)> = answer
        .flags
        .iter()
        .map(|(key, flag)| {
            let summary = (
                flag.reason.clone(),
                flag.variant.clone(),
                flag.value.clone(),
            );
            (key.clone(), summary)
        })
        .collect();
    let theme = convert::json_to_struct(
        json!({"color": "black", "contrast": 7, "beta": true})
            .as_object()
            .expect("object"),
    );
    let snapshot = server.state.envs.get("prod").expect("prod");
    let ramp = evaluate(&snapshot.snapshot, "ramp", &Context::new("u1"));
    let ramp_value = AnyValue::StringValue(ramp.as_str().expect("a string").to_owned());
    let expected: BTreeMap<String, (String, String, Option<AnyValue>)> = [
        (
            "checkout",
            "TARGETING_MATCH",
            "on",
            AnyValue::BoolValue(true),
        ),
        ("maintenance", "STATIC", "on", AnyValue::BoolValue(true)),
        (
            "banner",
            "STATIC",
            "green",
            AnyValue::StringValue("green".to_owned()),
        ),
        ("limit", "STATIC", "small", AnyValue::DoubleValue(10.0)),
        ("ratio", "DEFAULT", "half", AnyValue::DoubleValue(0.5)),
        ("theme", "DEFAULT", "dark", AnyValue::ObjectValue(theme)),
        ("ramp", "SPLIT", ramp.variant.expect("variant"), ramp_value),
        ("payments", "DISABLED", "off", AnyValue::BoolValue(false)),
        ("gated", "DISABLED", "off", AnyValue::BoolValue(false)),
    ]
    .into_iter()
    .map(|(key, reason, variant, value)| {
        (
            key.to_owned(),
            (reason.to_owned(), variant.to_owned(), Some(value)),
        )
    })
    .collect();
    // `matrix` (an array) has no flagd type and is left out.
    assert_eq!(flags, expected);
    assert_eq!(
        metadata(answer.flags["checkout"].metadata.as_ref()),
        json!({"flag_version": 1, "rule_id": "beta"})
    );
    assert_eq!(
        metadata(answer.metadata.as_ref()),
        json!({"environment": "prod", "revision": snapshot.revision})
    );
    server.stop().await;
}

#[tokio::test]
async fn a_token_chooses_the_environment_and_flagd_env_serves_callers_without_one() {
    let (server, mut client) = setup().await;
    server.create_env("dev").await;
    server
        .put_flag(
            "dev",
            json!({
                "key": "banner", "kind": "string", "variants": {"blue": "blue", "green": "green"},
                "off_variant": "blue", "default": {"variant": "blue"}
            }),
        )
        .await;
    let sdk = server.token("dev-sdk", "sdk", Some("dev")).await;
    let eval = server.token("dev-eval", "eval", Some("dev")).await;
    let prod_sdk = server.token("prod-sdk", "sdk", Some("prod")).await;

    let anonymous = client
        .resolve_string(string("banner", user("u1")))
        .await
        .expect("no token: --flagd-env")
        .into_inner();
    assert_eq!(anonymous.value, "green", "prod");
    for token in [&sdk, &eval] {
        let answer = client
            .resolve_string(with_token(string("banner", user("u1")), token))
            .await
            .expect("the token's environment")
            .into_inner();
        assert_eq!(answer.value, "blue", "dev");
        let all = client
            .resolve_all(with_token(ResolveAllRequest { context: None }, token))
            .await
            .expect("the token's environment")
            .into_inner();
        assert_eq!(all.flags.keys().collect::<Vec<_>>(), ["banner"]);
    }
    // A flag that only prod has is not found through a dev token.
    expect_status(
        client
            .resolve_boolean(with_token(boolean("checkout", user("u1")), &sdk))
            .await,
        Code::NotFound,
        "dev has no checkout",
    );
    let answer = client
        .resolve_string(with_token(string("banner", user("u1")), &prod_sdk))
        .await
        .expect("resolves")
        .into_inner();
    assert_eq!(answer.value, "green");

    let status = expect_status(
        client
            .resolve_string(with_token(string("banner", user("u1")), ADMIN))
            .await,
        Code::PermissionDenied,
        "admin tokens have no environment",
    );
    assert!(
        status.message().contains("admin token") && status.message().contains("sdk or eval"),
        "{}",
        status.message()
    );
    // A token that is sent must be valid, even where --flagd-env would serve.
    for token in ["swy_nope_nope", "not-a-token"] {
        let status = expect_status(
            client
                .resolve_string(with_token(string("banner", user("u1")), token))
                .await,
            Code::Unauthenticated,
            "invalid token",
        );
        assert_eq!(status.message(), "invalid or revoked token");
    }
    let mut request = Request::new(string("banner", user("u1")));
    request
        .metadata_mut()
        .insert("authorization", "Basic dXNlcg==".parse().expect("ascii"));
    expect_status(
        client.resolve_string(request).await,
        Code::Unauthenticated,
        "not a bearer token",
    );
    server.stop().await;
}

#[tokio::test]
async fn without_flagd_env_every_rpc_needs_a_token() {
    let server = start_with_grpc(None).await;
    fill(&server, "prod").await;
    let mut client = client(&server).await;
    let results = [
        client
            .resolve_boolean(boolean("checkout", user("u1")))
            .await
            .map(drop),
        client
            .resolve_string(string("banner", user("u1")))
            .await
            .map(drop),
        client.resolve_int(int("limit", user("u1"))).await.map(drop),
        client
            .resolve_float(float("ratio", user("u1")))
            .await
            .map(drop),
        client
            .resolve_object(object("theme", user("u1")))
            .await
            .map(drop),
        client
            .resolve_all(ResolveAllRequest { context: None })
            .await
            .map(drop),
        client.event_stream(EventStreamRequest {}).await.map(drop),
    ];
    for result in results {
        let status = expect_status(result, Code::Unauthenticated, "no token");
        assert!(
            status.message().contains("--flagd-env"),
            "{}",
            status.message()
        );
    }
    let token = server.token("svc", "sdk", Some("prod")).await;
    let answer = client
        .resolve_boolean(with_token(boolean("maintenance", user("u1")), &token))
        .await
        .expect("a token opens it")
        .into_inner();
    assert!(answer.value);
    server.stop().await;
}

#[tokio::test]
async fn a_flagd_env_that_does_not_exist_is_failed_precondition() {
    let server = start_with_grpc(Some("staging")).await;
    let mut client = client(&server).await;
    let status = expect_status(
        client
            .resolve_boolean(boolean("checkout", user("u1")))
            .await,
        Code::FailedPrecondition,
        "no staging yet",
    );
    assert!(
        status
            .message()
            .contains("environment `staging` does not exist"),
        "{}",
        status.message()
    );
    expect_status(
        client.event_stream(EventStreamRequest {}).await.map(drop),
        Code::FailedPrecondition,
        "no staging yet",
    );
    server.stop().await;
}

/// The next event, as `(type, data as JSON)`; `None` when the stream ended.
async fn next_event(
    stream: &mut Streaming<EventStreamResponse>,
) -> Option<(String, Option<Value>)> {
    let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event in time")
        .expect("a healthy stream")?;
    let data = message
        .data
        .map(|data| Value::Object(convert::struct_to_json(&data)));
    Some((message.r#type, data))
}

/// The next event that is not a keep-alive.
async fn next_change(
    stream: &mut Streaming<EventStreamResponse>,
) -> Option<(String, Option<Value>)> {
    loop {
        let event = next_event(stream).await?;
        if event.0 != "keep_alive" {
            return Some(event);
        }
    }
}

fn change(flags: Value) -> Option<(String, Option<Value>)> {
    Some((
        "configuration_change".to_owned(),
        Some(json!({ "flags": flags })),
    ))
}

#[tokio::test]
async fn event_stream_sends_ready_then_every_change_and_ends_with_the_server() {
    let (server, mut client) = setup().await;
    server.create_env("dev").await;
    let mut prod = client
        .event_stream(EventStreamRequest {})
        .await
        .expect("opens")
        .into_inner();
    let dev_token = server.token("dev-sdk", "sdk", Some("dev")).await;
    let mut dev = client
        .event_stream(with_token(EventStreamRequest {}, &dev_token))
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(
        next_event(&mut prod).await,
        Some(("provider_ready".to_owned(), None))
    );
    assert_eq!(
        next_event(&mut dev).await,
        Some(("provider_ready".to_owned(), None))
    );

    // The kill switch, through the REST admin API: the flag and its dependent.
    kill(&server, "prod", "checkout").await;
    assert_eq!(
        next_change(&mut prod).await,
        change(json!({"checkout": {"type": "update"}}))
    );
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/envs/prod/flags/payments/revive",
            Some(ADMIN),
            Some(json!({"reason": "fixed"})),
        )
        .await;
    assert_eq!(status, 200, "revive: {body}");
    assert_eq!(
        next_change(&mut prod).await,
        change(json!({"payments": {"type": "update"}, "gated": {"type": "update"}}))
    );

    // Another environment's change reaches only its own streams.
    server.put_flag("dev", boolean_flag("dev-only")).await;
    server.put_flag("prod", boolean_flag("fresh")).await;
    assert_eq!(
        next_change(&mut dev).await,
        change(json!({"dev-only": {"type": "write"}}))
    );
    assert_eq!(
        next_change(&mut prod).await,
        change(json!({"fresh": {"type": "write"}}))
    );
    let (status, body) = server
        .call(
            "DELETE",
            "/v1/admin/envs/prod/flags/fresh",
            Some(ADMIN),
            None,
        )
        .await;
    assert!(status == 200 || status == 204, "delete: {status} {body}");
    assert_eq!(
        next_change(&mut prod).await,
        change(json!({"fresh": {"type": "delete"}}))
    );

    // Shutting down: provider_shutdown, then the stream ends and the server stops.
    let stopping = tokio::spawn(server.stop());
    assert_eq!(
        next_change(&mut prod).await,
        Some(("provider_shutdown".to_owned(), Some(json!({}))))
    );
    assert_eq!(next_change(&mut prod).await, None);
    assert_eq!(
        next_change(&mut dev).await,
        Some(("provider_shutdown".to_owned(), Some(json!({}))))
    );
    assert_eq!(next_change(&mut dev).await, None);
    stopping.await.expect("the server stopped");
}

#[tokio::test]
async fn health_and_reflection_list_the_flagd_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = start_with_grpc(None).await;
    let url = server.grpc.clone().expect("gRPC is served");
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("a URL")
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel.clone());
    let answer = health
        .check(HealthCheckRequest {
            service: "flagd.evaluation.v1.Service".to_owned(),
        })
        .await
        .expect("known to the health service")
        .into_inner();
    assert_eq!(answer.status(), ServingStatus::Serving);

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a healthy stream")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"flagd.evaluation.v1.Service"), "{names:?}");
    server.stop().await;
}

/// A flagd event stream opened with a token ends the moment the token is revoked,
/// like every other stream; one opened without a token (`--flagd-env`) goes on.
#[tokio::test]
async fn revoking_a_token_ends_its_flagd_event_stream() {
    let (server, mut client) = setup().await;
    let token = server.token("flagd-sdk", "sdk", Some("prod")).await;
    let mut held = client
        .event_stream(with_token(EventStreamRequest {}, &token))
        .await
        .expect("opens")
        .into_inner();
    let mut open = client
        .event_stream(EventStreamRequest {})
        .await
        .expect("opens")
        .into_inner();
    for stream in [&mut held, &mut open] {
        assert_eq!(
            next_event(stream).await,
            Some(("provider_ready".to_owned(), None))
        );
    }
    server
        .ok("DELETE", "/v1/admin/tokens/flagd-sdk", ADMIN, None)
        .await;
    assert_eq!(
        next_change(&mut held).await,
        None,
        "the revoked token's stream ended"
    );
    kill(&server, "prod", "checkout").await;
    assert_eq!(
        next_change(&mut open).await,
        change(json!({"checkout": {"type": "update"}}))
    );
    server.stop().await;
}
