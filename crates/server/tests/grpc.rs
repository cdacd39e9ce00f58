//! The gRPC API over a real socket, with the generated clients: `switchyard.v1.Evaluation`
//! (statuses, results equal to the core engine's), `switchyard.v1.Sync` (snapshot,
//! a kill switch as the next change, resumption, the end at shutdown), gRPC health
//! and server reflection.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_core::{Context, Flag, Snapshot};
use switchyard_server::grpc::convert::{json_to_struct, to_json};
use switchyard_server::grpc::proto::switchyard::evaluation_client::EvaluationClient;
use switchyard_server::grpc::proto::switchyard::sync_client::SyncClient;
use switchyard_server::grpc::proto::switchyard::sync_event::Kind;
use switchyard_server::grpc::proto::switchyard::{
    EvaluateAllRequest, EvaluateRequest, StreamRequest, SyncEvent,
};
use switchyard_testkit::in_process::{boolean_flag, start_with_grpc, TestServer, ADMIN};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

/// How long to wait for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// A 50/50 boolean split on the targeting key.
fn split_flag(key: &str) -> Value {
    json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
        "default": {"rollout": {"split": [{"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]}}
    })
}

/// A server with `prod` (flags `beta`, `split`, `killed` (disabled)) and `staging`.
async fn server() -> TestServer {
    let server = start_with_grpc(None).await;
    server.create_env("prod").await;
    server.create_env("staging").await;
    server.put_flag("prod", boolean_flag("beta")).await;
    server.put_flag("prod", split_flag("split")).await;
    server.put_flag("prod", boolean_flag("killed")).await;
    kill(&server, "killed").await;
    server
}

async fn kill(server: &TestServer, flag: &str) {
    let (status, body) = server
        .call(
            "POST",
            &format!("/v1/admin/envs/prod/flags/{flag}/kill"),
            Some(ADMIN),
            Some(json!({"reason": "test"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn channel(server: &TestServer) -> Channel {
    let url = server.grpc.clone().expect("gRPC address");
    Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("gRPC connects")
}

/// `message` with `authorization: Bearer <token>` metadata, when there is a token.
fn authed<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("metadata value");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn evaluate_request(flag: &str, context: &Value, environment: &str) -> EvaluateRequest {
    EvaluateRequest {
        flag_key: flag.to_owned(),
        context: Some(json_to_struct(context.as_object().expect("object"))),
        environment: environment.to_owned(),
    }
}

/// `Evaluate` as `token`: the result as JSON, or the status.
async fn evaluate(
    client: &mut EvaluationClient<Channel>,
    token: Option<&str>,
    request: EvaluateRequest,
) -> Result<Value, tonic::Status> {
    let response = client.evaluate(authed(request, token)).await?.into_inner();
    let result = response.result.expect("a result");
    Ok(json!({
        "flag_key": result.flag_key,
        "value": result.value.as_ref().map_or(Value::Null, to_json),
        "variant": result.variant,
        "reason": result.reason,
        "rule_id": result.rule_id,
        "flag_version": result.flag_version,
        "error_code": result.error_code,
    }))
}

fn assert_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = result.expect_err("an error status");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(message),
        "`{}` should contain `{message}`",
        status.message()
    );
}

#[tokio::test]
async fn evaluate_serves_targeting_matches_splits_and_disabled_flags() {
    let server = server().await;
    let sdk = server.token("sdk", "sdk", Some("prod")).await;
    let eval = server.token("front", "eval", Some("prod")).await;
    let mut client = EvaluationClient::new(channel(&server).await);

    let beta = json!({"targetingKey": "user-1", "groups": ["beta"]});
    let result = evaluate(&mut client, Some(&sdk), evaluate_request("beta", &beta, ""))
        .await
        .expect("evaluated");
    assert_eq!(
        result,
        json!({"flag_key": "beta", "value": true, "variant": "on", "reason": "TARGETING_MATCH",
               "rule_id": "beta", "flag_version": 1, "error_code": ""})
    );
    // Eval tokens evaluate too, and may name their own environment.
    let other = json!({"targetingKey": "user-1"});
    let result = evaluate(
        &mut client,
        Some(&eval),
        evaluate_request("beta", &other, "prod"),
    )
    .await
    .expect("evaluated");
    assert_eq!(
        (&result["value"], &result["reason"], &result["rule_id"]),
        (&json!(false), &json!("DEFAULT"), &json!(""))
    );

    let result = evaluate(
        &mut client,
        Some(&sdk),
        evaluate_request("killed", &beta, ""),
    )
    .await
    .expect("evaluated");
    assert_eq!(
        (&result["value"], &result["variant"], &result["reason"]),
        (&json!(false), &json!("off"), &json!("DISABLED"))
    );

    // The split serves exactly what the core engine computes from the stored flag.
    let (status, stored) = server
        .call("GET", "/v1/admin/envs/prod/flags/split", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "{stored}");
    let flag: Flag = serde_json::from_value(stored.clone()).expect("a flag");
    let snapshot = Snapshot::compile(vec![flag], vec![]).expect("compiles");
    let mut variants = std::collections::BTreeSet::new();
    for n in 0..40 {
        let context = json!({"targetingKey": format!("user-{n}")});
        let ctx: Context = serde_json::from_value(context.clone()).expect("context");
        let expected = switchyard_core::evaluate(&snapshot, "split", &ctx);
        let result = evaluate(
            &mut client,
            Some(&sdk),
            evaluate_request("split", &context, ""),
        )
        .await
        .expect("evaluated");
        assert_eq!(result["reason"], json!("SPLIT"));
        assert_eq!(Some(&result["value"]), expected.value, "user-{n}");
        assert_eq!(result["variant"], json!(expected.variant), "user-{n}");
        assert_eq!(result["flag_version"], json!(expected.flag_version));
        variants.insert(result["variant"].to_string());
    }
    assert_eq!(variants.len(), 2, "both sides of the split: {variants:?}");

    // Every evaluation is counted under api="grpc": 3 + 40.
    let metrics = server.state.telemetry.encode();
    assert!(
        metrics.contains(r#"switchyard_evaluations_total{env="prod",api="grpc"} 43"#),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn evaluate_answers_bad_requests_with_the_right_status() {
    let server = server().await;
    let sdk = server.token("sdk", "sdk", Some("prod")).await;
    let staging_eval = server.token("staging-eval", "eval", Some("staging")).await;
    let mut client = EvaluationClient::new(channel(&server).await);
    let user = json!({"targetingKey": "user-1"});

    assert_status(
        evaluate(&mut client, Some(&sdk), evaluate_request("nope", &user, "")).await,
        Code::NotFound,
        "flag `nope` does not exist in `prod`",
    );
    let nested = json!({"targetingKey": "user-1", "address": {"city": "Oslo"}});
    assert_status(
        evaluate(
            &mut client,
            Some(&sdk),
            evaluate_request("beta", &nested, ""),
        )
        .await,
        Code::InvalidArgument,
        "invalid context",
    );
    assert_status(
        evaluate(&mut client, None, evaluate_request("beta", &user, "")).await,
        Code::Unauthenticated,
        "missing `authorization",
    );
    assert_status(
        evaluate(
            &mut client,
            Some("swy_000000000000_bad"),
            evaluate_request("beta", &user, ""),
        )
        .await,
        Code::Unauthenticated,
        "invalid or revoked token",
    );
    // An eval token of staging can neither name prod nor see its flags.
    assert_status(
        evaluate(
            &mut client,
            Some(&staging_eval),
            evaluate_request("beta", &user, "prod"),
        )
        .await,
        Code::PermissionDenied,
        "not valid for environment `prod`",
    );
    assert_status(
        evaluate(
            &mut client,
            Some(&staging_eval),
            evaluate_request("beta", &user, ""),
        )
        .await,
        Code::NotFound,
        "flag `beta` does not exist in `staging`",
    );
    assert_status(
        evaluate(
            &mut client,
            Some(ADMIN),
            evaluate_request("beta", &user, ""),
        )
        .await,
        Code::InvalidArgument,
        "`environment`",
    );
    assert_status(
        evaluate(
            &mut client,
            Some(ADMIN),
            evaluate_request("beta", &user, "nowhere"),
        )
        .await,
        Code::NotFound,
        "environment `nowhere` does not exist",
    );
    // Admin tokens evaluate in the environment they name.
    let result = evaluate(
        &mut client,
        Some(ADMIN),
        evaluate_request("beta", &user, "prod"),
    )
    .await
    .expect("evaluated");
    assert_eq!(result["reason"], json!("DEFAULT"));
    server.stop().await;
}

#[tokio::test]
async fn evaluate_all_returns_every_flag_of_the_environment() {
    let server = server().await;
    let eval = server.token("front", "eval", Some("prod")).await;
    let mut client = EvaluationClient::new(channel(&server).await);
    let context = json!({"targetingKey": "user-7", "groups": ["beta"]});
    let request = EvaluateAllRequest {
        context: Some(json_to_struct(context.as_object().expect("object"))),
        environment: String::new(),
    };
    let response = client
        .evaluate_all(authed(request, Some(&eval)))
        .await
        .expect("evaluated")
        .into_inner();
    assert_eq!(response.environment, "prod");
    let revision = server.state.envs.get("prod").expect("prod").revision;
    assert_eq!(response.revision, revision);
    let mut keys: Vec<&str> = response.results.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["beta", "killed", "split"]);
    let beta = &response.results["beta"];
    assert_eq!(
        (
            beta.flag_key.as_str(),
            beta.reason.as_str(),
            beta.rule_id.as_str()
        ),
        ("beta", "TARGETING_MATCH", "beta")
    );
    assert_eq!(response.results["killed"].reason, "DISABLED");
    assert_eq!(response.results["split"].reason, "SPLIT");

    let bad = EvaluateAllRequest {
        context: Some(json_to_struct(
            json!({"groups": "beta"}).as_object().expect("object"),
        )),
        environment: String::new(),
    };
    assert_status(
        client.evaluate_all(authed(bad, Some(&eval))).await,
        Code::InvalidArgument,
        "invalid context",
    );
    let none = EvaluateAllRequest {
        context: None,
        environment: String::new(),
    };
    assert_status(
        client.evaluate_all(authed(none, None)).await,
        Code::Unauthenticated,
        "authorization",
    );
    server.stop().await;
}

/// The next event of a stream, failing when none arrives in time or the stream ends.
async fn next_event(stream: &mut Streaming<SyncEvent>) -> SyncEvent {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("an event in time")
        .expect("no error")
        .expect("the stream goes on")
}

fn document(event: &SyncEvent) -> Value {
    serde_json::from_slice(&event.document).expect("a JSON document")
}

async fn open(
    client: &mut SyncClient<Channel>,
    token: &str,
    after_revision: Option<u64>,
    environment: &str,
) -> Result<Streaming<SyncEvent>, tonic::Status> {
    let request = StreamRequest {
        after_revision,
        environment: environment.to_owned(),
    };
    Ok(client
        .stream(authed(request, Some(token)))
        .await?
        .into_inner())
}

#[tokio::test]
async fn sync_streams_a_snapshot_then_a_kill_switch_and_resumes() {
    let server = server().await;
    let sdk = server.token("sdk", "sdk", Some("prod")).await;
    let mut client = SyncClient::new(channel(&server).await);

    let mut stream = open(&mut client, &sdk, None, "").await.expect("opened");
    let snapshot = next_event(&mut stream).await;
    let revision = server.state.envs.get("prod").expect("prod").revision;
    assert_eq!(
        (snapshot.kind(), snapshot.revision),
        (Kind::Snapshot, revision)
    );
    // The document is byte for byte what the REST snapshot serves.
    let (status, rest) = server
        .call("GET", "/v1/sdk/snapshot", Some(&sdk), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(document(&snapshot), rest);
    let beta = document(&snapshot)["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .find(|f| f["key"] == "beta")
        .cloned()
        .expect("beta in the snapshot");
    assert_eq!(beta["enabled"], json!(true));

    kill(&server, "beta").await;
    let change = next_event(&mut stream).await;
    assert_eq!(
        (change.kind(), change.revision),
        (Kind::Change, revision + 1)
    );
    let doc = document(&change);
    assert_eq!(doc["revision"], json!(revision + 1));
    assert_eq!(doc["flags"][0]["key"], json!("beta"));
    assert_eq!(doc["flags"][0]["enabled"], json!(false));

    // Resuming after the snapshot's revision replays the kill, not a snapshot.
    let mut resumed = open(&mut client, &sdk, Some(revision), "")
        .await
        .expect("opened");
    let replayed = next_event(&mut resumed).await;
    assert_eq!(
        (replayed.kind(), replayed.revision, &replayed.document),
        (Kind::Change, revision + 1, &change.document)
    );
    // A resumption from a revision the server no longer places starts with a snapshot.
    let mut ahead = open(&mut client, &sdk, Some(revision + 100), "")
        .await
        .expect("opened");
    let fresh = next_event(&mut ahead).await;
    assert_eq!(
        (fresh.kind(), fresh.revision),
        (Kind::Snapshot, revision + 1)
    );

    // The next write reaches every stream as the next change.
    server.put_flag("prod", boolean_flag("new")).await;
    for stream in [&mut stream, &mut resumed, &mut ahead] {
        let event = next_event(stream).await;
        assert_eq!((event.kind(), event.revision), (Kind::Change, revision + 2));
        assert_eq!(document(&event)["flags"][0]["key"], json!("new"));
    }

    // Stopping the server ends the stream cleanly.
    let (_, end) = tokio::join!(server.stop(), async {
        tokio::time::timeout(WAIT, stream.message()).await
    });
    let end = end.expect("the stream ends in time");
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test]
async fn sync_needs_an_sdk_token_or_an_admin_naming_the_environment() {
    let server = server().await;
    let eval = server.token("front", "eval", Some("prod")).await;
    let staging_sdk = server.token("staging-sdk", "sdk", Some("staging")).await;
    let mut client = SyncClient::new(channel(&server).await);

    assert_status(
        open(&mut client, &eval, None, "").await,
        Code::PermissionDenied,
        "eval token",
    );
    assert_status(
        open(&mut client, &staging_sdk, None, "prod").await,
        Code::PermissionDenied,
        "not valid for environment `prod`",
    );
    assert_status(
        open(&mut client, "nonsense", None, "").await,
        Code::Unauthenticated,
        "invalid or revoked token",
    );
    assert_status(
        open(&mut client, ADMIN, None, "").await,
        Code::InvalidArgument,
        "`environment`",
    );
    assert_status(
        open(&mut client, ADMIN, None, "nowhere").await,
        Code::NotFound,
        "environment `nowhere` does not exist",
    );
    let mut stream = open(&mut client, ADMIN, None, "prod")
        .await
        .expect("opened");
    let snapshot = next_event(&mut stream).await;
    assert_eq!(snapshot.kind(), Kind::Snapshot);
    assert_eq!(document(&snapshot)["environment"], json!("prod"));
    server.stop().await;
}

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_the_services() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = server().await;
    let channel = channel(&server).await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "switchyard.v1.Evaluation", "switchyard.v1.Sync"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("checked")
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "`{service}`");
    }
    assert_status(
        health
            .check(HealthCheckRequest {
                service: "switchyard.v1.Nothing".to_owned(),
            })
            .await,
        Code::NotFound,
        "",
    );

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
    let response = tokio::time::timeout(WAIT, responses.message())
        .await
        .expect("in time")
        .expect("no error")
        .expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "switchyard.v1.Evaluation",
        "switchyard.v1.Sync",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    server.stop().await;
}
