//! Token lifetimes over HTTP: expiry, rotation with a grace period, last use, and
//! revocation ending the token's open streams at once — each audited.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{self, boolean_flag, TestServer, ADMIN};
use switchyard_testkit::redis::RedisProcess;
use switchyard_testkit::sse::{self, Frame, SseStream};

const ENV: &str = "prod";
const PATIENCE: Duration = Duration::from_secs(20);

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    u64::try_from(since.as_millis()).expect("ms fit u64")
}

async fn seeded() -> TestServer {
    seed(in_process::start().await).await
}

async fn seed(server: TestServer) -> TestServer {
    server.create_env(ENV).await;
    server.put_flag(ENV, boolean_flag("checkout")).await;
    server
}

/// Opens the SDK stream with `token` and reads its first event (the snapshot).
async fn stream(server: &TestServer, token: &str) -> SseStream {
    let request = reqwest::Client::new()
        .get(server.url("/v1/sdk/stream"))
        .bearer_auth(token);
    let mut stream = sse::open(request).await;
    assert_eq!(stream.next_event().await.event, "snapshot");
    stream
}

/// Reads until the server ends the stream (frames in between are skipped);
/// `next_frame` fails the test if nothing comes for 10 s.
async fn ends(stream: &mut SseStream) {
    while let Some(frame) = stream.next_frame().await {
        if let Frame::Event(event) = frame {
            assert_ne!(
                event.event, "snapshot",
                "a fresh snapshot instead of the end"
            );
        }
    }
}

async fn snapshot_status(server: &TestServer, token: &str) -> (u16, Value) {
    server
        .call("GET", "/v1/sdk/snapshot", Some(token), None)
        .await
}

async fn listed(server: &TestServer, name: &str) -> Value {
    let list = server.ok("GET", "/v1/admin/tokens", ADMIN, None).await;
    list["tokens"]
        .as_array()
        .and_then(|tokens| tokens.iter().find(|t| t["name"] == name).cloned())
        .unwrap_or_else(|| panic!("token {name} listed: {list}"))
}

async fn audited(server: &TestServer, action: &str, target: &str) -> Value {
    let page = server.ok("GET", "/v1/admin/audit", ADMIN, None).await;
    page["entries"]
        .as_array()
        .and_then(|entries| {
            entries
                .iter()
                .find(|e| e["action"] == action && e["target"] == target)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no {action} of {target} in the audit log: {page}"))
}

#[tokio::test]
async fn revoking_a_token_ends_its_open_streams_at_once_and_no_other() {
    let server = seeded().await;
    let doomed = server.token("doomed", "sdk", Some(ENV)).await;
    let other = server.token("other", "sdk", Some(ENV)).await;
    let mut doomed_stream = stream(&server, &doomed).await;
    let mut other_stream = stream(&server, &other).await;

    server
        .ok("DELETE", "/v1/admin/tokens/doomed", ADMIN, None)
        .await;
    tokio::time::timeout(PATIENCE, ends(&mut doomed_stream))
        .await
        .expect("the revoked token's stream ended");
    let (status, body) = snapshot_status(&server, &doomed).await;
    assert_eq!(status, 401, "{body}");

    // The other token's stream is untouched: it hears the next change.
    server.kill(ENV, "checkout").await;
    let change = other_stream.next_event().await;
    assert_eq!(change.event, "change", "{}", change.data);
    audited(&server, "token.delete", "doomed").await;
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_works_for_its_grace_period_then_is_refused_and_its_streams_end() {
    rotation(seeded().await).await;
}

#[tokio::test]
async fn rotation_on_redis_replaces_the_secret_everywhere() {
    let redis = RedisProcess::start();
    rotation(seed(in_process::start_redis(&redis.url()).await).await).await;
}

async fn rotation(server: TestServer) {
    let first = server.token("web", "sdk", Some(ENV)).await;
    let mut first_stream = stream(&server, &first).await;

    let rotated = server
        .ok(
            "POST",
            "/v1/admin/tokens/web/rotate",
            ADMIN,
            Some(json!({"grace_seconds": 3600})),
        )
        .await;
    let second = rotated["token"].as_str().expect("new secret").to_owned();
    assert_ne!(second, first);
    let until = rotated["previous_valid_until_ms"].as_u64().expect("grace");
    assert!(until > now_ms() + 3_500_000, "{rotated}");
    // Both secrets work during the grace period; the old one's stream stays open.
    assert_eq!(snapshot_status(&server, &first).await.0, 200);
    assert_eq!(snapshot_status(&server, &second).await.0, 200);
    let token = listed(&server, "web").await;
    assert_eq!(token["previous_valid_until_ms"], json!(until), "{token}");
    assert!(token["rotated_ms"].as_u64().is_some(), "{token}");
    server.kill(ENV, "checkout").await;
    assert_eq!(first_stream.next_event().await.event, "change");

    // A second rotation with a one-second grace: the first secret is gone at once,
    // the second is refused (saying so) once its grace ends, and its stream ends.
    let mut second_stream = stream(&server, &second).await;
    let rotated = server
        .ok(
            "POST",
            "/v1/admin/tokens/web/rotate",
            ADMIN,
            Some(json!({"grace_seconds": 1})),
        )
        .await;
    let third = rotated["token"].as_str().expect("new secret").to_owned();
    tokio::time::timeout(PATIENCE, ends(&mut first_stream))
        .await
        .expect("the first secret's stream ended with the second rotation");
    assert_eq!(snapshot_status(&server, &first).await.0, 401);
    let refusal = eventually(PATIENCE, "the second secret refused", || async {
        let (status, body) = snapshot_status(&server, &second).await;
        (status == 401).then_some(body)
    })
    .await;
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("`web` was rotated")),
        "{refusal}"
    );
    tokio::time::timeout(PATIENCE, ends(&mut second_stream))
        .await
        .expect("the second secret's stream ended with its grace");
    assert_eq!(snapshot_status(&server, &third).await.0, 200);

    let entry = audited(&server, "token.rotate", "web").await;
    assert_eq!(entry["actor"], "bootstrap-admin", "{entry}");
    // Refusals name what is wrong.
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/tokens/web/rotate",
            Some(ADMIN),
            Some(json!({"grace_seconds": 99_999_999})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("grace_seconds"), "{body}");
    let (status, _) = server
        .call(
            "POST",
            "/v1/admin/tokens/nobody/rotate",
            Some(ADMIN),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn an_expiring_token_works_until_its_time_then_is_refused_and_its_streams_end() {
    let server = seeded().await;
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(ADMIN),
            Some(json!({"name": "late", "kind": "sdk", "env": ENV, "expires_ms": 1000})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("expires_ms"), "{body}");

    let expires = now_ms() + 1_500;
    let issued = server
        .ok(
            "POST",
            "/v1/admin/tokens",
            ADMIN,
            Some(json!({"name": "brief", "kind": "sdk", "env": ENV, "expires_ms": expires})),
        )
        .await;
    assert_eq!(issued["expires_ms"], json!(expires), "{issued}");
    let token = issued["token"].as_str().expect("secret").to_owned();
    let mut open = stream(&server, &token).await;
    assert_eq!(snapshot_status(&server, &token).await.0, 200);

    tokio::time::timeout(PATIENCE, ends(&mut open))
        .await
        .expect("the stream ended when the token expired");
    let (status, body) = snapshot_status(&server, &token).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("`brief` expired at")),
        "{body}"
    );
    let listed = listed(&server, "brief").await;
    assert_eq!(listed["expired"], json!(true), "{listed}");
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/tokens/brief/rotate",
            Some(ADMIN),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let entry = audited(&server, "token.create", "brief").await;
    assert_eq!(entry["after"]["expires_ms"], json!(expires), "{entry}");
    server.stop().await;
}

#[tokio::test]
async fn the_token_list_says_when_each_token_was_last_used() {
    let server = seeded().await;
    let token = server.token("reader", "sdk", Some(ENV)).await;
    assert_eq!(listed(&server, "reader").await["last_used_ms"], Value::Null);
    let before = now_ms();
    assert_eq!(snapshot_status(&server, &token).await.0, 200);
    let used = listed(&server, "reader").await["last_used_ms"]
        .as_u64()
        .expect("last used");
    assert!(used >= before, "{used} < {before}");
    server.stop().await;
}
