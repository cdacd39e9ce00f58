//! Rate limits over real sockets: per-token budgets for reads and writes kept apart,
//! 429 with `Retry-After` naming what ran out, reads, stream opens and admin writes
//! limited per client address across tokens, failed authentication limited per address (then even a valid token
//! from there waits), a token's stream opens limited over SSE and gRPC alike, a cap
//! on a token's open streams (SSE and flagd's gRPC streams together), gRPC's
//! `RESOURCE_EXHAUSTED` for a spent evaluation budget, and the limits and refusals
//! in `/metrics`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchyard_server::grpc::convert::json_to_struct;
use switchyard_server::grpc::proto::flagd::service_client::ServiceClient as FlagdV1Client;
use switchyard_server::grpc::proto::flagd_sync::flag_sync_service_client::FlagSyncServiceClient;
use switchyard_server::grpc::proto::flagd_sync::SyncFlagsRequest;
use switchyard_server::grpc::proto::flagd_v2::service_client::ServiceClient as FlagdV2Client;
use switchyard_server::grpc::proto::switchyard::evaluation_client::EvaluationClient;
use switchyard_server::grpc::proto::switchyard::sync_client::SyncClient;
use switchyard_server::grpc::proto::switchyard::{EvaluateRequest, StreamRequest};
use switchyard_server::grpc::proto::{flagd, flagd_v2};
use switchyard_server::limits::LimitSettings;
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{boolean_flag, Builder, TestServer, ADMIN};
use switchyard_testkit::sse;
use tonic::transport::Channel;
use tonic::Code;

const ENV: &str = "prod";
const PATIENCE: Duration = Duration::from_secs(20);

async fn server(limits: LimitSettings) -> TestServer {
    start(Builder::default().limits(limits)).await
}

async fn start(builder: Builder) -> TestServer {
    let server = builder.embedded().await;
    server.create_env(ENV).await;
    server.put_flag(ENV, boolean_flag("checkout")).await;
    server
}

/// Status, `Retry-After` and JSON body of a GET with `token`.
async fn get(server: &TestServer, path: &str, token: &str) -> (StatusCode, Option<u64>, Value) {
    let response = reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry, response.json().await.unwrap_or(Value::Null))
}

const SNAPSHOT: &str = "/v1/sdk/snapshot";

/// Sends `n` reads with `token`; the first 429's `Retry-After` and body, if any.
async fn flood(server: &TestServer, token: &str, n: usize) -> Option<(Option<u64>, Value)> {
    for _ in 0..n {
        let (status, retry, body) = get(server, SNAPSHOT, token).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Some((retry, body));
        }
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    None
}

#[tokio::test]
async fn each_token_has_its_own_budgets_and_a_429_says_when_to_retry() {
    let server = server(LimitSettings {
        reads_per_token: 5,
        writes_per_token: 10,
        ..LimitSettings::default()
    })
    .await;
    let greedy = server.token("greedy", "sdk", Some(ENV)).await;
    let polite = server.token("polite", "sdk", Some(ENV)).await;

    let (retry, body) = flood(&server, &greedy, 200)
        .await
        .expect("200 reads at 5 a second meet a 429");
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`greedy` is over its read budget of 5"),
        "{body}"
    );
    // Another token is not slowed by the first.
    assert_eq!(get(&server, SNAPSHOT, &polite).await.0, StatusCode::OK);

    // Writes have their own budget: the admin token's reads are not limited by it.
    let mut refused = None;
    for _ in 0..100 {
        let (status, body) = server
            .call("PUT", &format!("/v1/admin/envs/{ENV}"), Some(ADMIN), None)
            .await;
        if status == 429 {
            refused = Some(body);
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let refused = refused.expect("100 writes at 10 a second meet a 429");
    assert!(
        refused.to_string().contains("write budget of 10"),
        "{refused}"
    );
    let (status, _, _) = get(&server, "/v1/admin/envs", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "reads are a separate budget");

    let metrics = server
        .call("GET", "/metrics", None, None)
        .await
        .1
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    for line in [
        r#"switchyard_rate_limit{budget="read",per="token"} 5"#,
        r#"switchyard_rate_limit{budget="write",per="token"} 10"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    for budget in ["read", "write"] {
        let series = format!(r#"switchyard_rate_limited_total{{budget="{budget}",per="token"}} "#);
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert!(count.is_some_and(|c| c >= 1.0), "{series} in\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn guessing_tokens_from_one_address_is_throttled_even_for_a_valid_one() {
    let server = server(LimitSettings {
        auth_failures_per_address: 2,
        ..LimitSettings::default()
    })
    .await;
    let valid = server.token("valid", "sdk", Some(ENV)).await;
    // Guess until refused, then present the valid token at once: it waits too. The
    // block lasts until the budget refills, so a slow machine may miss it: retry the
    // pair until it is seen.
    let blocked = eventually(PATIENCE, "a valid token refused while guessing", || async {
        let mut answer = (StatusCode::UNAUTHORIZED, None, Value::Null);
        for n in 0..100 {
            answer = get(&server, SNAPSHOT, &format!("swy_0000_guess{n}")).await;
            if answer.0 != StatusCode::UNAUTHORIZED {
                break;
            }
        }
        let (status, retry, body) = answer;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "guessing throttled: {body}"
        );
        assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
        let (status, _, body) = get(&server, SNAPSHOT, &valid).await;
        (status == StatusCode::TOO_MANY_REQUESTS).then_some(body)
    })
    .await;
    assert!(
        blocked
            .to_string()
            .contains("too many failed authentications"),
        "{blocked}"
    );
    // Once the budget refills the valid token works again.
    eventually(PATIENCE, "the valid token accepted again", || async {
        (get(&server, SNAPSHOT, &valid).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_token_holds_at_most_its_cap_of_open_streams() {
    // Frequent heartbeats: a closed stream is noticed when the server next writes.
    let server = start(
        Builder::default()
            .heartbeat(Duration::from_millis(100))
            .limits(LimitSettings {
                open_streams_per_token: 1,
                ..LimitSettings::default()
            }),
    )
    .await;
    let token = server.token("sdk", "sdk", Some(ENV)).await;
    let open = || {
        reqwest::Client::new()
            .get(server.url("/v1/sdk/stream"))
            .bearer_auth(&token)
    };
    let first = sse::open(open()).await;
    let refused = open().send().await.expect("sent");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = refused.json().await.expect("json");
    assert!(
        body.to_string().contains("already holds 1 open streams"),
        "{body}"
    );
    drop(first);
    // Once the server notices the closed stream, the token may open another.
    eventually(PATIENCE, "a stream after the first closed", || async {
        let response = open().send().await.expect("sent");
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
    server.stop().await;
}

/// The `/metrics` text.
async fn metrics(server: &TestServer) -> String {
    server
        .call("GET", "/metrics", None, None)
        .await
        .1
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default()
}

/// A channel to the server's gRPC API.
async fn channel(server: &TestServer) -> Channel {
    let url = server.grpc.clone().expect("gRPC address");
    Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("gRPC connects")
}

/// `message` with `authorization: Bearer <token>` metadata.
fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().expect("metadata value");
    request.metadata_mut().insert("authorization", value);
    request
}

#[tokio::test]
async fn reads_from_one_address_share_its_budget_whatever_the_token() {
    let server = server(LimitSettings {
        reads_per_address: 5,
        ..LimitSettings::default()
    })
    .await;
    let tokens = [
        server.token("first", "sdk", Some(ENV)).await,
        server.token("second", "sdk", Some(ENV)).await,
    ];
    // Per-token reads are off: only the address's budget can refuse, and both tokens
    // spend it.
    let mut refused = None;
    for n in 0..200 {
        let token = &tokens[n % 2];
        let (status, retry, body) = get(&server, SNAPSHOT, token).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((n, retry, body));
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (n, retry, body) = refused.expect("200 reads at 5 a second meet a 429");
    assert!(
        n >= 2,
        "both tokens were answered before the budget ran out"
    );
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("127.0.0.1 is over its read budget of 5 a second"),
        "{body}"
    );
    let metrics = metrics(&server).await;
    assert!(
        metrics.contains(r#"switchyard_rate_limit{budget="read",per="address"} 5"#),
        "{metrics}"
    );
    let series = r#"switchyard_rate_limited_total{budget="read",per="address"} "#;
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(count.is_some_and(|c| c >= 1.0), "{series} in\n{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn a_tokens_stream_opens_are_one_budget_over_sse_and_grpc() {
    let server = start(Builder::default().grpc(None).limits(LimitSettings {
        stream_opens_per_token: 2,
        ..LimitSettings::default()
    }))
    .await;
    let token = server.token("sdk", "sdk", Some(ENV)).await;
    let sync = SyncClient::new(channel(&server).await);
    // Open SSE streams (each closed at once) until refused, then ask for a gRPC
    // `Sync` stream with the same token at once: the budget is spent for it too. The
    // budget refills at 2 a second, so a slow machine may miss it: retry the pair.
    let (body, status) = eventually(PATIENCE, "SSE and gRPC stream opens refused", || {
        let mut sync = sync.clone();
        let server = &server;
        let token = &token;
        async move {
            let mut refused = None;
            for _ in 0..100 {
                let response = reqwest::Client::new()
                    .get(server.url("/v1/sdk/stream"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("sent");
                if response.status() == StatusCode::TOO_MANY_REQUESTS {
                    assert!(response.headers().contains_key("retry-after"));
                    refused = Some(response.json::<Value>().await.expect("json"));
                    break;
                }
                assert_eq!(response.status(), StatusCode::OK);
            }
            let body = refused.expect("100 stream opens at 2 a second meet a 429");
            let request = authed(
                StreamRequest {
                    after_revision: None,
                    environment: String::new(),
                },
                token,
            );
            match sync.stream(request).await {
                Err(status) if status.code() == Code::ResourceExhausted => Some((body, status)),
                _ => None,
            }
        }
    })
    .await;
    assert!(
        body.to_string()
            .contains("token `sdk` is over its stream budget of 2 a second"),
        "{body}"
    );
    assert!(
        status.message().contains("over its stream budget of 2"),
        "{}",
        status.message()
    );
    // Reads are another budget.
    assert_eq!(get(&server, SNAPSHOT, &token).await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn grpc_answers_resource_exhausted_when_a_tokens_evaluations_are_spent() {
    let server = start(Builder::default().grpc(None).limits(LimitSettings {
        reads_per_token: 5,
        ..LimitSettings::default()
    }))
    .await;
    let token = server.token("service", "eval", Some(ENV)).await;
    let other = server.token("other", "eval", Some(ENV)).await;
    let mut client = EvaluationClient::new(channel(&server).await);
    let request = || EvaluateRequest {
        flag_key: "checkout".to_owned(),
        context: Some(json_to_struct(
            json!({"targetingKey": "u1"}).as_object().expect("object"),
        )),
        environment: String::new(),
    };
    let mut refused = None;
    for _ in 0..200 {
        match client.evaluate(authed(request(), &token)).await {
            Ok(_) => {}
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let status = refused.expect("200 evaluations at 5 a second meet a refusal");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("token `service` is over its read budget of 5 a second"),
        "{}",
        status.message()
    );
    // Another token's budget is untouched.
    client
        .evaluate(authed(request(), &other))
        .await
        .expect("another token evaluates");
    server.stop().await;
}

#[tokio::test]
async fn flagd_streams_count_against_a_tokens_cap_of_open_streams() {
    let server = start(Builder::default().grpc(None).limits(LimitSettings {
        open_streams_per_token: 1,
        ..LimitSettings::default()
    }))
    .await;
    let token = server.token("provider", "sdk", Some(ENV)).await;
    let channel = channel(&server).await;
    let mut v1 = FlagdV1Client::new(channel.clone());
    let mut v2 = FlagdV2Client::new(channel.clone());
    let mut flag_sync = FlagSyncServiceClient::new(channel);

    let mut first = v1
        .event_stream(authed(flagd::EventStreamRequest {}, &token))
        .await
        .expect("the first stream opens")
        .into_inner();
    let ready = tokio::time::timeout(PATIENCE, first.message())
        .await
        .expect("an event in time")
        .expect("an event")
        .expect("not the end");
    assert_eq!(ready.r#type, "provider_ready");

    // The cap is full: flagd v2's stream, flagd's sync stream and an SSE stream of
    // the same token are refused, saying why.
    let refusals = [
        v2.event_stream(authed(flagd_v2::EventStreamRequest {}, &token))
            .await
            .map(drop),
        flag_sync
            .sync_flags(authed(SyncFlagsRequest::default(), &token))
            .await
            .map(drop),
    ];
    for refusal in refusals {
        let status = refusal.expect_err("over the cap");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("already holds 1 open streams"),
            "{}",
            status.message()
        );
    }
    let sse = reqwest::Client::new()
        .get(server.url("/v1/sdk/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(sse.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(sse);
    // Another token is not affected.
    let other = server.token("other", "sdk", Some(ENV)).await;
    v2.event_stream(authed(flagd_v2::EventStreamRequest {}, &other))
        .await
        .expect("another token's stream opens");

    // Once the first stream is gone, the token may open another.
    drop(first);
    eventually(PATIENCE, "a flagd stream after the first closed", || {
        let mut v2 = v2.clone();
        let token = &token;
        async move {
            v2.event_stream(authed(flagd_v2::EventStreamRequest {}, token))
                .await
                .ok()
                .map(drop)
        }
    })
    .await;
    server.stop().await;
}

/// The count of refusals in the `switchyard_rate_limited_total` series of `budget` per
/// `per`, if `/metrics` has it.
fn refusals(metrics: &str, budget: &str, per: &str) -> Option<f64> {
    let series = format!(r#"switchyard_rate_limited_total{{budget="{budget}",per="{per}"}} "#);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

#[tokio::test]
async fn stream_opens_from_one_address_share_its_budget_whatever_the_token() {
    let server = server(LimitSettings {
        stream_opens_per_address: 2,
        ..LimitSettings::default()
    })
    .await;
    let tokens = [
        server.token("first", "sdk", Some(ENV)).await,
        server.token("second", "sdk", Some(ENV)).await,
    ];
    // Per-token stream opens are off: only the address's budget can refuse, and both
    // tokens spend it. Each stream is closed as soon as it is answered.
    let mut refused = None;
    for n in 0..100 {
        let response = reqwest::Client::new()
            .get(server.url("/v1/sdk/stream"))
            .bearer_auth(&tokens[n % 2])
            .send()
            .await
            .expect("sent");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            refused = Some((n, retry, response.json::<Value>().await.expect("json")));
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
    }
    let (n, retry, body) = refused.expect("100 stream opens at 2 a second meet a 429");
    assert!(
        n >= 2,
        "both tokens opened a stream before the budget ran out"
    );
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
    assert!(
        body.to_string()
            .contains("127.0.0.1 is over its stream budget of 2 a second"),
        "{body}"
    );
    // Reads are another budget.
    assert_eq!(get(&server, SNAPSHOT, &tokens[0]).await.0, StatusCode::OK);
    let metrics = metrics(&server).await;
    assert!(
        metrics.contains(r#"switchyard_rate_limit{budget="stream",per="address"} 2"#),
        "{metrics}"
    );
    assert!(
        refusals(&metrics, "stream", "address").is_some_and(|c| c >= 1.0),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_writes_from_one_address_share_its_budget_whatever_the_token() {
    let server = server(LimitSettings {
        writes_per_address: 5,
        ..LimitSettings::default()
    })
    .await;
    // Setting up spent some of the address's writes; the bucket holds five, so at
    // least two are left for the two tokens below.
    let tokens = [ADMIN.to_owned(), server.token("ops", "admin", None).await];
    let mut refused = None;
    for n in 0..200 {
        let response = reqwest::Client::new()
            .put(server.url(&format!("/v1/admin/envs/{ENV}")))
            .bearer_auth(&tokens[n % 2])
            .send()
            .await
            .expect("sent");
        let status = response.status();
        let retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((n, retry, body));
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (n, retry, body) = refused.expect("200 writes at 5 a second meet a 429");
    assert!(n >= 2, "both tokens wrote before the budget ran out");
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("127.0.0.1 is over its write budget of 5 a second"),
        "{body}"
    );
    // Reads are another budget.
    let (status, _, _) = get(&server, "/v1/admin/envs", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "reads are a separate budget");
    let metrics = metrics(&server).await;
    assert!(
        metrics.contains(r#"switchyard_rate_limit{budget="write",per="address"} 5"#),
        "{metrics}"
    );
    assert!(
        refusals(&metrics, "write", "address").is_some_and(|c| c >= 1.0),
        "{metrics}"
    );
    server.stop().await;
}
