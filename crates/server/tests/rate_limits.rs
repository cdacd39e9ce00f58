//! Rate limits over real sockets: per-token budgets for reads and writes kept apart,
//! 429 with `Retry-After` naming what ran out, failed authentication limited per
//! address (then even a valid token from there waits), a cap on a token's open
//! streams, and the limits and refusals in `/metrics`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use switchyard_server::limits::LimitSettings;
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{boolean_flag, Builder, TestServer, ADMIN};
use switchyard_testkit::sse;

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
