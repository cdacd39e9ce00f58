//! Scheduled changes: carried out at their time by a real server process restarted
//! in between, exactly once across two replica processes (and two in-process
//! replicas) sharing a real `redis-server`, and cancellable; bad schedules are refused
//! up front.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{self, boolean_flag, start_redis, TestServer, ADMIN};
use switchyard_testkit::redis::RedisProcess;
use switchyard_testkit::server_process::{Launch, ServerProcess};

const ENV: &str = "production";
const PATIENCE: Duration = Duration::from_secs(20);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `production` with the flag `checkout` on the server at `base`.
async fn seed(base: &str) {
    let (status, body) = call(base, "PUT", &format!("/v1/admin/envs/{ENV}"), Value::Null).await;
    assert!(status == 201 || status == 200, "{body}");
    let (status, body) = call(
        base,
        "PUT",
        &format!("/v1/admin/envs/{ENV}/flags/checkout"),
        boolean_flag("checkout"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// The flag `checkout` as the server at `base` has it.
async fn checkout(base: &str) -> Value {
    call(
        base,
        "GET",
        &format!("/v1/admin/envs/{ENV}/flags/checkout"),
        Value::Null,
    )
    .await
    .1
}

/// The audit entries that carried out schedule `id`.
async fn carried_out(base: &str, id: &str) -> Vec<Value> {
    let (_, body) = call(
        base,
        "GET",
        &format!("/v1/admin/audit?env={ENV}&flag=checkout&limit=100"),
        Value::Null,
    )
    .await;
    body["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with(&format!("scheduled change {id}")))
        })
        .collect()
}

/// Every schedule of `production`.
async fn schedules(base: &str) -> Vec<Value> {
    let (_, body) = call(
        base,
        "GET",
        &format!("/v1/admin/envs/{ENV}/schedules"),
        Value::Null,
    )
    .await;
    body["schedules"].as_array().cloned().unwrap_or_default()
}

/// Waits until schedule `id` is no longer pending; returns it.
async fn settled(base: &str, id: &str) -> Value {
    eventually(
        PATIENCE,
        &format!("schedule {id} to be carried out"),
        || async {
            let found = schedules(base).await.into_iter().find(|s| s["id"] == id)?;
            (found["state"] != "pending").then_some(found)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_kill_is_done_once_at_its_time_across_a_restart() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(data.path()).await;
    seed(&server.base).await;
    let at = now_ms() + 3_000;
    let (status, created) = call(&server.base, "POST", &format!("/v1/admin/envs/{ENV}/schedules"), json!({
        "flag": "checkout", "at_ms": at, "change": { "action": "kill" }, "reason": "end of campaign",
    }))
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending");
    let id = created["id"].as_str().expect("id").to_owned();

    // A crash before its time: the schedule survives in the store.
    let (http, grpc) = (server.addr, server.grpc_addr.expect("gRPC address"));
    server.kill().await;
    let server = ServerProcess::start_on(data.path(), http, grpc).await;

    let done = settled(&server.base, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(checkout(&server.base).await["enabled"], false, "killed");
    let entries = carried_out(&server.base, &id).await;
    assert_eq!(entries.len(), 1, "once: {entries:#?}");
    assert_eq!(entries[0]["action"], "flag.kill");
    assert_eq!(
        entries[0]["reason"],
        format!("scheduled change {id}: end of campaign")
    );
    assert!(
        entries[0]["at_ms"].as_u64().expect("at_ms") >= at,
        "not before its time: {entries:#?}"
    );
    assert_eq!(done["revision"], entries[0]["revision"], "{done}");
}

/// The revision of `production` on the server at `base`.
async fn revision(base: &str) -> u64 {
    let (_, body) = call(base, "GET", "/v1/admin/envs", Value::Null).await;
    body["environments"]
        .as_array()
        .and_then(|envs| envs.iter().find(|e| e["name"] == ENV))
        .and_then(|e| e["revision"].as_u64())
        .unwrap_or_else(|| panic!("no revision of {ENV}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replica_processes_on_redis_carry_a_scheduled_kill_out_once() {
    let redis = RedisProcess::start();
    let url = redis.url();
    let args = ["--redis-url", url.as_str()];
    let (one, two) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let replica = |dir: &std::path::Path| {
        let dir = dir.to_owned();
        async move {
            ServerProcess::start_with(
                &dir,
                Launch {
                    args: &args,
                    ..Launch::default()
                },
            )
            .await
        }
    };
    let first = replica(one.path()).await;
    let second = replica(two.path()).await;
    seed(&first.base).await;
    let before = revision(&second.base).await;
    let version = checkout(&second.base).await["version"]
        .as_u64()
        .expect("version");

    // Scheduled through one replica for a time both look at (each looks every second).
    let at = now_ms() + 2_000;
    let (status, created) = call(&second.base, "POST", &format!("/v1/admin/envs/{ENV}/schedules"), json!({
        "flag": "checkout", "at_ms": at, "change": { "action": "kill" }, "reason": "end of campaign",
    }))
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let listed = schedules(&first.base).await;
    assert_eq!(listed.len(), 1, "listed on the other replica: {listed:#?}");

    let done = settled(&first.base, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    for base in [&first.base, &second.base] {
        assert_eq!(
            checkout(base).await["enabled"],
            false,
            "killed, seen by {base}"
        );
    }
    let entries = carried_out(&second.base, &id).await;
    assert_eq!(entries.len(), 1, "one audit entry: {entries:#?}");
    assert_eq!(entries[0]["action"], "flag.kill");
    assert!(
        entries[0]["at_ms"].as_u64().expect("at_ms") >= at,
        "not before its time: {entries:#?}"
    );
    // One write: one revision, one version, as both replicas see it.
    assert_eq!(done["revision"], before + 1, "{done}");
    for base in [&first.base, &second.base] {
        assert_eq!(
            revision(base).await,
            before + 1,
            "one revision bump on {base}"
        );
    }
    assert_eq!(checkout(&first.base).await["version"], version + 1);
    drop((first, second, redis));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_redis_carry_a_schedule_out_once() {
    let redis = RedisProcess::start();
    let first = start_redis(&redis.url()).await;
    let second = start_redis(&redis.url()).await;
    seed(&first.base).await;
    let version = checkout(&first.base).await["version"]
        .as_u64()
        .expect("version");
    for (percent, at) in [(25, now_ms() + 1_500), (60, now_ms() + 1_500)] {
        let (status, body) = second
            .call(
                "POST",
                &format!("/v1/admin/envs/{ENV}/schedules"),
                Some(ADMIN),
                Some(json!({ "flag": "checkout", "at_ms": at, "change": { "action": "ramp", "percent": percent } })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let listed = schedules(&first.base).await;
    assert_eq!(listed.len(), 2, "listed on the other replica: {listed:#?}");
    for schedule in &listed {
        let id = schedule["id"].as_str().expect("id");
        assert_eq!(settled(&first.base, id).await["state"], "done");
        assert_eq!(carried_out(&first.base, id).await.len(), 1, "once each");
    }
    // Two changes, two versions: neither was made twice.
    assert_eq!(checkout(&second.base).await["version"], version + 2);
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_listed_cancelled_and_checked_up_front() {
    let server: TestServer = in_process::start().await;
    seed(&server.base).await;
    let path = format!("/v1/admin/envs/{ENV}/schedules");
    let far = now_ms() + 3_600_000;
    let (status, created) = server
        .call(
            "POST",
            &path,
            Some(ADMIN),
            Some(json!({ "flag": "checkout", "at_ms": far, "change": { "action": "revive" } })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    let (status, cancelled) = server
        .call("DELETE", &format!("{path}/{id}"), Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["by"], "bootstrap-admin");
    let (status, again) = server
        .call("DELETE", &format!("{path}/{id}"), Some(ADMIN), None)
        .await;
    assert_eq!(status, 409, "{again}");
    let (status, _) = server
        .call("DELETE", &format!("{path}/nope"), Some(ADMIN), None)
        .await;
    assert_eq!(status, 404);
    let (_, listed) = server.call("GET", &path, Some(ADMIN), None).await;
    assert_eq!(listed["schedules"][0]["state"], "cancelled", "{listed}");

    for (body, code, needle) in [
        (
            json!({ "flag": "nope", "at_ms": far, "change": { "action": "kill" } }),
            404,
            "flag `nope` does not exist",
        ),
        (
            json!({ "flag": "checkout", "at_ms": far, "change": { "action": "ramp", "percent": 101 } }),
            400,
            "percent",
        ),
        (
            json!({ "flag": "checkout", "at_ms": far, "change": { "action": "ramp", "percent": 5, "rule": "eu" } }),
            400,
            "no rule `eu`",
        ),
        (
            json!({ "flag": "checkout", "at_ms": far, "change": { "action": "explode" } }),
            400,
            "explode",
        ),
    ] {
        let (status, answer) = server.call("POST", &path, Some(ADMIN), Some(body)).await;
        assert_eq!(status, code, "{answer}");
        assert!(answer.to_string().contains(needle), "{answer}");
    }
    let (_, audit) = server
        .call(
            "GET",
            &format!("/v1/admin/audit?env={ENV}"),
            Some(ADMIN),
            None,
        )
        .await;
    let cancels = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "schedule.cancel")
        .count();
    assert_eq!(cancels, 1, "{audit}");
}

/// One admin API call to `base`: status and JSON body.
async fn call(base: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method.parse().expect("method"), format!("{base}{path}"))
        .bearer_auth(ADMIN);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
