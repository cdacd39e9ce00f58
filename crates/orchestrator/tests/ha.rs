//! Two real orchestrator processes sharing a real Redis: only one drives a release,
//! either answers for it, and when the driver dies the other takes over within about
//! a lease period and finishes the release from the stored state.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::daemon::Daemon;
use support::flag_server::{FlagServer, ENV};
use switchyard_core::model::Serve;
use switchyard_testkit::eventually;
use switchyard_testkit::redis::RedisProcess;

const FLAG: &str = "new-checkout";
const DEADLINE: Duration = Duration::from_secs(60);

async fn get(http: &reqwest::Client, daemon: &Daemon, path: &str) -> Value {
    http.get(format!("{}{path}", daemon.url))
        .send()
        .await
        .expect("daemon answers")
        .json()
        .await
        .expect("JSON")
}

/// The lease holder's id, read straight from Redis.
async fn lease_holder(redis: &RedisProcess, release: &str) -> Option<String> {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connects");
    redis::cmd("GET")
        .arg(switchyard_orchestrator::store::redis::release_key(
            release, "lease",
        ))
        .query_async(&mut conn)
        .await
        .expect("GET lease")
}

async fn phase_of(http: &reqwest::Client, daemon: &Daemon, release: &str) -> (String, String) {
    let body = get(http, daemon, &format!("/v1/releases/{release}")).await;
    (
        body["state"]["phase"].as_str().unwrap_or("?").to_owned(),
        body["state"]["services"][0]["phase"]
            .as_str()
            .unwrap_or("?")
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_orchestrator_takes_over_when_the_driver_dies() {
    let redis = RedisProcess::start();
    let flags = FlagServer::start(&[FLAG]).await;
    let args = ["--redis-url", &redis.url(), "--lease", "1s"];
    let mut a = Daemon::start_with(&flags, &args).await;
    let b = Daemon::start_with(&flags, &args).await;
    let http = reqwest::Client::new();

    let plan = format!(
        "name: ha\nenvironment: {ENV}\nservices: [ {{ name: web, flags: [{FLAG}] }} ]\nsteps: [ {{ weight: 20 }}, {{ approve: true }}, {{ weight: 60, hold: 200ms }} ]\nanalysis: {{ interval: 200ms }}\n"
    );
    let created = http
        .post(format!("{}/v1/releases", a.url))
        .body(plan)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());

    // A drives it; B reads the same state from Redis.
    eventually(DEADLINE, "the release to await approval", || async {
        if phase_of(&http, &b, "ha").await.1 != "awaiting_approval" {
            None
        } else {
            Some(())
        }
    })
    .await;
    let holder_a = lease_holder(&redis, "ha").await.expect("A holds the lease");
    assert_eq!(
        get(&http, &a, "/v1/releases/ha").await,
        get(&http, &b, "/v1/releases/ha").await,
        "both replicas answer with the stored release"
    );

    // A dies without giving the lease up.
    a.child.kill().await.expect("kill A");
    eventually(DEADLINE, "B to take the lease over", || async {
        if lease_holder(&redis, "ha")
            .await
            .is_none_or(|h| h == holder_a)
        {
            Err(format!(
                "B never took the lease over; B's log:\n{}",
                b.stderr.lock().unwrap()
            ))
        } else {
            Ok(())
        }
    })
    .await;

    // B drives now: a person's approval on B finishes the release.
    let approved = http
        .post(format!("{}/v1/releases/ha/approve", b.url))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap());
    eventually(DEADLINE, "B to finish the release", || async {
        if phase_of(&http, &b, "ha").await.0 != "succeeded" {
            Err(format!(
                "B did not finish the release; B's log:\n{}",
                b.stderr.lock().unwrap()
            ))
        } else {
            Ok(())
        }
    })
    .await;
    assert_eq!(flags.flag(FLAG).await.default, Serve::Variant("on".into()));
    // Each weight was written to the flag once (20 by A, 60 and 100 by B), after its
    // creation: the two replicas never both drove it.
    let audit = flags
        .admin
        .audit(&format!("env={ENV}&flag={FLAG}&limit=100"))
        .await
        .unwrap();
    let writes = audit.iter().filter(|e| e["action"] == "flag.put").count();
    assert_eq!(writes, 1 + 3, "{audit:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_the_replica_that_does_not_drive_reaches_the_driver() {
    let redis = RedisProcess::start();
    let flags = FlagServer::start(&[FLAG]).await;
    let args = ["--redis-url", &redis.url(), "--lease", "2s"];
    let a = Daemon::start_with(&flags, &args).await;
    let b = Daemon::start_with(&flags, &args).await;
    let http = reqwest::Client::new();
    let plan = format!(
        "name: relay\nenvironment: {ENV}\nservices: [ {{ name: web, flags: [{FLAG}] }} ]\nsteps: [ {{ weight: 20 }}, {{ approve: true }} ]\nanalysis: {{ interval: 200ms }}\n"
    );
    let created = http
        .post(format!("{}/v1/releases", a.url))
        .body(plan)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    eventually(DEADLINE, "the release to await approval", || async {
        if phase_of(&http, &a, "relay").await.1 != "awaiting_approval" {
            None
        } else {
            Some(())
        }
    })
    .await;
    // B is not the driver; its abort is queued in Redis and carried out by A.
    let aborted = http
        .post(format!("{}/v1/releases/relay/abort", b.url))
        .json(&serde_json::json!({ "reason": "from B" }))
        .send()
        .await
        .unwrap();
    assert_eq!(aborted.status(), 200, "{}", aborted.text().await.unwrap());
    eventually(DEADLINE, "the abort to take effect", || async {
        if phase_of(&http, &b, "relay").await.0 != "rolled_back" {
            None
        } else {
            Some(())
        }
    })
    .await;
    let body = get(&http, &a, "/v1/releases/relay").await;
    assert_eq!(body["state"]["reason"], "aborted by api: from B");
    assert!(!flags.flag(FLAG).await.enabled);
}
