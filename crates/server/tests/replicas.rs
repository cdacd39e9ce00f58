//! Several replicas sharing one real Redis: propagation of writes (and to SSE
//! clients), repair of missed messages, behaviour through a Redis outage, and
//! optimistic concurrency across replicas. The tests of sharing run on each
//! deployment `--redis-url` accepts: one `redis-server`, a Redis Cluster (three
//! primaries, three replicas) and a Sentinel-managed primary ([`on_every_redis`]).

use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde_json::{json, Value};
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{boolean_flag, start_redis, unit_sketch, TestServer, ADMIN};
use switchyard_testkit::redis::RedisProcess;

const PATIENCE: Duration = Duration::from_secs(15);

/// Waits until `replica` holds `env` at `revision` or later; returns its revision.
async fn revision_at_least(replica: &TestServer, env: &str, revision: u64) -> u64 {
    eventually(
        PATIENCE,
        &format!("{} to reach revision {revision}", replica.base),
        || async {
            let (status, body) = replica
                .call("GET", "/v1/admin/envs", Some(ADMIN), None)
                .await;
            (status == 200).then_some(())?;
            let envs = body["environments"].as_array()?;
            let found = envs.iter().find(|e| e["name"] == env)?["revision"].as_u64()?;
            (found >= revision).then_some(found)
        },
    )
    .await
}

async fn revision_of(replica: &TestServer, env: &str) -> Option<u64> {
    let (_, body) = replica
        .call("GET", "/v1/admin/envs", Some(ADMIN), None)
        .await;
    body["environments"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == env)?["revision"]
        .as_u64()
}

/// Reads SSE events (`event`, `id`, `data`) from a streaming response.
struct Events {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    async fn open(replica: &TestServer, token: &str) -> Events {
        let response = replica
            .http
            .get(replica.url("/v1/sdk/stream"))
            .bearer_auth(token)
            .send()
            .await
            .expect("stream opens");
        assert_eq!(response.status(), 200);
        Events {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (heartbeat comments skipped), within `PATIENCE`.
    async fn next(&mut self) -> (String, u64, Value) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    let (mut event, mut id, mut data) = (String::new(), 0, String::new());
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().parse().expect("numeric id");
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if !event.is_empty() {
                        return (event, id, serde_json::from_str(&data).expect("JSON data"));
                    }
                    continue;
                }
                let chunk = self
                    .stream
                    .next()
                    .await
                    .expect("stream open")
                    .expect("chunk");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within the deadline")
    }
}

async fn replicas(url: &str, n: usize) -> Vec<TestServer> {
    let mut replicas = Vec::new();
    for _ in 0..n {
        replicas.push(start_redis(url).await);
    }
    replicas
}

switchyard_testkit::on_every_redis!(
    a_write_on_one_replica_reaches_the_others_and_their_streams,
    concurrent_if_match_writers_on_different_replicas_one_wins_each_round,
    an_environment_deleted_on_one_replica_is_gone_from_the_others,
    units_posted_to_different_replicas_merge_in_redis,
);

async fn a_write_on_one_replica_reaches_the_others_and_their_streams(url: &str) {
    let [a, b, c]: [TestServer; 3] = replicas(url, 3).await.try_into().ok().expect("three");
    a.create_env("prod").await;
    revision_at_least(&c, "prod", 0).await;
    // A token issued on A is accepted by C.
    let sdk = a.token("sdk-prod", "sdk", Some("prod")).await;
    eventually(PATIENCE, "C to accept A's token", || async {
        let (status, _) = c.call("GET", "/v1/sdk/snapshot", Some(&sdk), None).await;
        (status == 200).then_some(())
    })
    .await;

    let mut events = Events::open(&c, &sdk).await;
    let (kind, revision, _) = events.next().await;
    assert_eq!((kind.as_str(), revision), ("snapshot", 0));

    a.put_flag("prod", boolean_flag("checkout")).await;
    let (kind, revision, change) = events.next().await;
    assert_eq!((kind.as_str(), revision), ("change", 1));
    assert_eq!(change["flags"][0]["key"], "checkout");

    for replica in [&b, &c] {
        let (status, body) = replica
            .call(
                "POST",
                "/v1/evaluate/prod/checkout",
                Some(&sdk),
                Some(json!({"targetingKey": "u", "groups": ["beta"]})),
            )
            .await;
        assert_eq!(
            (status, &body["value"]),
            (200, &json!(true)),
            "{}",
            replica.base
        );
    }

    // A kill on B reaches C's stream as the very next event.
    let (status, _) = b
        .call(
            "POST",
            "/v1/admin/envs/prod/flags/checkout/kill",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (kind, revision, change) = events.next().await;
    assert_eq!((kind.as_str(), revision), ("change", 2));
    assert_eq!(change["flags"][0]["enabled"], false);
    for replica in [a, b, c] {
        replica.stop().await;
    }
}

#[tokio::test]
async fn a_replica_that_misses_messages_resynchronises() {
    let redis = RedisProcess::start();
    let [a, b]: [TestServer; 2] = replicas(&redis.url(), 2)
        .await
        .try_into()
        .ok()
        .expect("two");
    a.create_env("prod").await;
    a.put_flag("prod", boolean_flag("one")).await;
    revision_at_least(&b, "prod", 1).await;

    // A write nobody announces (as if its message were lost): revision 2.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let mut hidden = boolean_flag("hidden");
    hidden["version"] = json!(1);
    let _: () = conn
        .hset("sy:{env:prod}:flags", "hidden", hidden.to_string())
        .await
        .expect("hset");
    let _: u64 = conn.incr("sy:{env:prod}:rev", 1).await.expect("incr");

    // The next announced write (revision 3) shows B the gap: it reloads.
    let mut third = boolean_flag("third");
    third["default"] = json!({"variant": "on"});
    a.put_flag("prod", third).await;
    assert!(revision_at_least(&b, "prod", 3).await >= 3);
    let (status, flag) = b
        .call("GET", "/v1/admin/envs/prod/flags/hidden", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, &flag["key"]),
        (200, &json!("hidden")),
        "B has the unannounced write"
    );

    // A dropped subscription: B reconnects and catches up by itself.
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .expect("client kill");
    assert!(killed >= 2, "both replicas' subscriptions dropped");
    a.put_flag("prod", boolean_flag("fourth")).await;
    assert!(revision_at_least(&b, "prod", 4).await >= 4);
    let (status, _) = b
        .call("GET", "/v1/admin/envs/prod/flags/fourth", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_outage_keeps_reads_serving_and_writes_failing_until_redis_returns() {
    let mut redis = RedisProcess::start();
    let all = replicas(&redis.url(), 3).await;
    all[0].create_env("prod").await;
    let mut flag = boolean_flag("checkout");
    flag["default"] = json!({"rollout": {"split": [{"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]}});
    all[0].put_flag("prod", flag).await;
    let sdk = all[0].token("sdk-prod", "sdk", Some("prod")).await;
    for replica in &all {
        revision_at_least(replica, "prod", 1).await;
        eventually(PATIENCE, "the token everywhere", || async {
            let (status, _) = replica
                .call("GET", "/v1/sdk/snapshot", Some(&sdk), None)
                .await;
            (status == 200).then_some(())
        })
        .await;
    }
    let state = all[0].state.envs.get("prod").expect("env");
    let expected = |user: &str| {
        switchyard_core::evaluate(
            &state.snapshot,
            "checkout",
            &switchyard_core::Context::new(user),
        )
        .as_bool()
        .expect("boolean")
    };

    redis.stop();
    for replica in &all {
        eventually(PATIENCE, "readyz to report degraded", || async {
            let (status, body) = replica.call("GET", "/readyz", None, None).await;
            (status == 200 && body["status"] == "degraded").then_some(())
        })
        .await;
    }
    for i in 0..200 {
        let replica = &all[i % 3];
        let user = format!("user-{i}");
        let (status, body) = replica
            .call(
                "POST",
                "/v1/evaluate/prod/checkout",
                Some(&sdk),
                Some(json!({"targetingKey": user})),
            )
            .await;
        assert_eq!(status, 200, "evaluation {i} on {}: {body}", replica.base);
        assert_eq!(body["value"], json!(expected(&user)), "evaluation {i}");
    }
    for replica in &all {
        let (status, _) = replica
            .call("GET", "/v1/sdk/snapshot", Some(&sdk), None)
            .await;
        assert_eq!(status, 200, "snapshots are served from memory");
        let (status, body) = replica
            .call(
                "POST",
                "/v1/admin/envs/prod/flags/checkout/kill",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable");
        assert!(body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("unavailable"));
    }

    redis.restart();
    // Writes work again on every replica (each one's first attempt may still see the
    // dropped connection and answer 503; the connection then heals by itself).
    for (i, replica) in all.iter().enumerate() {
        eventually(PATIENCE, "a write to succeed again", || async {
            let mut flag = boolean_flag(&format!("after-{i}"));
            flag["description"] = json!("written after the outage");
            let (status, _) = replica
                .call(
                    "PUT",
                    &format!("/v1/admin/envs/prod/flags/after-{i}"),
                    Some(ADMIN),
                    Some(flag),
                )
                .await;
            (status == 201 || status == 200).then_some(())
        })
        .await;
    }
    for replica in &all {
        eventually(PATIENCE, "readyz to report ready", || async {
            let (_, body) = replica.call("GET", "/readyz", None, None).await;
            (body["status"] == "ready").then_some(())
        })
        .await;
    }
    // Every replica converges on the same revision: 1 flag + 3 writes after the outage.
    for replica in &all {
        assert_eq!(revision_at_least(replica, "prod", 4).await, 4);
    }
    for replica in all {
        replica.stop().await;
    }
}

async fn concurrent_if_match_writers_on_different_replicas_one_wins_each_round(url: &str) {
    let all = replicas(url, 3).await;
    all[0].create_env("prod").await;
    all[0].put_flag("prod", boolean_flag("race")).await;
    let rounds = 10;
    for round in 0..rounds {
        let version = round + 1;
        for replica in &all {
            revision_at_least(replica, "prod", version).await;
        }
        let writes = all.iter().enumerate().map(|(i, replica)| {
            let mut flag = boolean_flag("race");
            flag["description"] = json!(format!("round {round} replica {i}"));
            replica
                .http
                .put(replica.url("/v1/admin/envs/prod/flags/race"))
                .bearer_auth(ADMIN)
                .header("If-Match", format!("\"{version}\""))
                .json(&flag)
                .send()
        });
        let statuses: Vec<u16> = futures_util::future::join_all(writes)
            .await
            .into_iter()
            .map(|r| r.expect("sent").status().as_u16())
            .collect();
        assert_eq!(
            statuses.iter().filter(|&&s| s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|&&s| s == 412).count(),
            2,
            "round {round}: {statuses:?}"
        );
    }
    let (_, audit) = all[2]
        .call(
            "GET",
            "/v1/admin/audit?env=prod&flag=race&limit=1000",
            Some(ADMIN),
            None,
        )
        .await;
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(
        entries.len(),
        1 + rounds as usize,
        "the create and one winner per round"
    );
    let mut revisions: Vec<u64> = entries
        .iter()
        .map(|e| e["revision"].as_u64().expect("revision"))
        .collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), entries.len(), "each accepted write once");
    let final_revision = revision_of(&all[0], "prod").await;
    for replica in &all {
        assert_eq!(
            revision_at_least(replica, "prod", 1 + rounds).await,
            1 + rounds
        );
    }
    assert_eq!(final_revision, Some(1 + rounds));
    for replica in all {
        replica.stop().await;
    }
}

async fn an_environment_deleted_on_one_replica_is_gone_from_the_others(url: &str) {
    let [a, b]: [TestServer; 2] = replicas(url, 2).await.try_into().ok().expect("two");
    a.create_env("prod").await;
    a.put_flag("prod", boolean_flag("checkout")).await;
    revision_at_least(&b, "prod", 1).await;
    let (status, body) = b
        .call("DELETE", "/v1/admin/envs/prod", Some(ADMIN), None)
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = b
        .call(
            "DELETE",
            "/v1/admin/envs/prod?force=true",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    eventually(PATIENCE, "A to drop the deleted environment", || async {
        revision_of(&a, "prod").await.is_none().then_some(())
    })
    .await;
    for replica in [&a, &b] {
        let (status, _) = replica
            .call("GET", "/v1/admin/envs/prod/flags", Some(ADMIN), None)
            .await;
        assert_eq!(status, 404, "{}", replica.base);
        // The audit of the deleted environment is still read, on every replica.
        let (_, body) = replica
            .call("GET", "/v1/admin/audit", Some(ADMIN), None)
            .await;
        let actions: Vec<&str> = body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert_eq!(
            actions[..3],
            ["env.delete", "flag.put", "env.create"],
            "{body}"
        );
    }
    // Created again, it starts empty everywhere.
    a.create_env("prod").await;
    revision_at_least(&b, "prod", 0).await;
    let (_, body) = b
        .call("GET", "/v1/admin/envs/prod/flags", Some(ADMIN), None)
        .await;
    assert_eq!(body["flags"], json!([]));
    for replica in [a, b] {
        replica.stop().await;
    }
}

async fn units_posted_to_different_replicas_merge_in_redis(url: &str) {
    let [a, b]: [TestServer; 2] = replicas(url, 2).await.try_into().ok().expect("two");
    a.create_env("prod").await;
    a.put_flag("prod", boolean_flag("checkout")).await;
    let sdk = a.token("sdk-prod", "sdk", Some("prod")).await;
    eventually(PATIENCE, "B to accept A's token", || async {
        let (status, _) = b.call("GET", "/v1/sdk/snapshot", Some(&sdk), None).await;
        (status == 200).then_some(())
    })
    .await;
    for (replica, range) in [(&a, 0..300), (&b, 200..500)] {
        let body = json!({
            "window_ms": 1000,
            "exposures": [{ "flag": "checkout", "variant": "on", "count": 1, "units": unit_sketch(range) }],
            "events": [{ "event": "error", "flag": "checkout", "variant": "on", "count": 1,
                "units": unit_sketch(0..3), "values": { "count": 1, "sum": 2.5, "sum_squares": 6.25 } }]
        });
        let (status, answer) = replica
            .call("POST", "/v1/sdk/metrics", Some(&sdk), Some(body))
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    for replica in [&a, &b] {
        let (status, seen) = replica
            .call(
                "GET",
                "/v1/admin/envs/prod/flags/checkout/units?since=1h",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(status, 200, "{seen}");
        let on = &seen["variants"]["on"];
        assert!(
            on["units"].as_u64().expect("units").abs_diff(500) <= 5,
            "{seen}"
        );
        assert_eq!(on["events"]["error"]["units"], 3, "{seen}");
        assert_eq!(on["events"]["error"]["values"]["sum"], 5.0, "{seen}");
    }
}
