//! A Redis primary killed during a burst of concurrent writes through two replicas,
//! on a Redis Cluster and on a Sentinel-managed primary, with writes acknowledged only
//! once one Redis replica holds them (`--redis-wait-replicas 1`): every acknowledged
//! write is there after the failover, none is applied twice, writes that could not be
//! confirmed fail with a clear 503 (or 409), and the server replicas converge on what
//! Redis holds. And a single `redis-server` (append-only file, `appendfsync always`)
//! SIGKILLed mid-burst through three replicas and restarted: every write it
//! acknowledged is back from its file, none twice, and the replicas converge.
//! docs/redis.md says what is promised.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_redis::Durability;
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{boolean_flag, Builder, TestServer, ADMIN};
use switchyard_testkit::redis::RedisProcess;
use switchyard_testkit::redis_ha::{RedisCluster, RedisSentinels};

const ENV: &str = "prod";
/// The key whose slot holds the environment (its primary is the one killed).
const ENV_KEY: &str = "sy:{env:prod}:rev";
/// Writers running at once.
const WRITERS: usize = 8;
/// Acknowledged writes before the primary is killed, and again after it is healed.
const BEFORE: usize = 40;
const AFTER: usize = 20;
const PATIENCE: Duration = Duration::from_secs(60);

const DURABLE: Durability = Durability {
    replicas: 1,
    timeout: Duration::from_millis(500),
};

/// What the writers saw.
#[derive(Default)]
struct Outcomes {
    acknowledged: BTreeSet<String>,
    /// status → how many, with one message each
    refused: BTreeMap<u16, (usize, String)>,
}

async fn replica(url: &str, durability: Durability) -> TestServer {
    Builder::default().redis_durable(url, durability).await
}

/// Flag keys (with their revision) of `env` on `server`.
async fn flags(server: &TestServer) -> (Option<u64>, BTreeSet<String>) {
    let (_, body) = server
        .call(
            "GET",
            &format!("/v1/admin/envs/{ENV}/flags"),
            Some(ADMIN),
            None,
        )
        .await;
    let keys = body["flags"]
        .as_array()
        .map(|flags| {
            flags
                .iter()
                .filter_map(|f| f["key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (body["revision"].as_u64(), keys)
}

/// Writes distinct flags through `servers` until `stop`, recording each outcome.
fn burst(
    servers: &[Arc<TestServer>],
    outcomes: &Arc<Mutex<Outcomes>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WRITERS)
        .map(|writer| {
            let server = Arc::clone(&servers[writer % servers.len()]);
            let outcomes = Arc::clone(outcomes);
            let stop = Arc::clone(stop);
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let key = format!("w{writer}-{n}");
                    n += 1;
                    let (status, body) = server
                        .call(
                            "PUT",
                            &format!("/v1/admin/envs/{ENV}/flags/{key}"),
                            Some(ADMIN),
                            Some(boolean_flag(&key)),
                        )
                        .await;
                    let mut outcomes = outcomes.lock().unwrap();
                    if status == 200 || status == 201 {
                        outcomes.acknowledged.insert(key);
                    } else {
                        let message = body["error"]["message"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        let entry = outcomes.refused.entry(status).or_insert((0, message));
                        entry.0 += 1;
                    }
                }
            })
        })
        .collect()
}

async fn acknowledged(outcomes: &Arc<Mutex<Outcomes>>) -> usize {
    outcomes.lock().unwrap().acknowledged.len()
}

/// Runs the burst through `writing` server replicas that acknowledge with
/// `durability`; `failover` (blocking: kills the primary, waits for the promotion or
/// restarts it) runs once `BEFORE` writes are acknowledged.
async fn acknowledged_writes_survive<T: Send + 'static>(
    url: &str,
    writing: usize,
    durability: Durability,
    failover: impl FnOnce() -> T + Send + 'static,
) -> T {
    let mut servers = Vec::new();
    for _ in 0..writing {
        servers.push(Arc::new(replica(url, durability).await));
    }
    servers[0].create_env(ENV).await;
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = burst(&servers, &outcomes, &stop);

    eventually(PATIENCE, "writes acknowledged before the kill", || async {
        (acknowledged(&outcomes).await >= BEFORE).then_some(())
    })
    .await;
    let topology = tokio::task::spawn_blocking(failover)
        .await
        .expect("failover ran");
    let healed = acknowledged(&outcomes).await;
    eventually(
        PATIENCE,
        "writes acknowledged after the failover",
        || async { (acknowledged(&outcomes).await >= healed + AFTER).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.await.expect("writer");
    }
    let outcomes = Arc::try_unwrap(outcomes)
        .ok()
        .expect("writers done")
        .into_inner()
        .unwrap();

    // Refusals are clear: unavailable or conflicting, with a message; never a 500.
    for (status, (_, message)) in &outcomes.refused {
        assert!(
            matches!(status, 503 | 409),
            "refused with {status}: {message}"
        );
        assert!(!message.is_empty(), "{status} without a message");
    }

    // A replica started now reads Redis alone: every acknowledged write is there.
    let fresh = replica(url, durability).await;
    let (revision, stored) = flags(&fresh).await;
    let lost: Vec<&String> = outcomes.acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged writes lost: {lost:?} (refused: {:?})",
        outcomes.refused
    );
    // Each write at most once: one audit entry per stored flag.
    let (_, audit) = fresh
        .call(
            "GET",
            &format!("/v1/admin/audit?env={ENV}&limit=1000"),
            Some(ADMIN),
            None,
        )
        .await;
    let entries = audit["entries"].as_array().expect("entries");
    assert!(entries.len() < 1000, "the whole audit was read");
    let mut puts: BTreeMap<String, usize> = BTreeMap::new();
    for entry in entries {
        if entry["action"] == "flag.put" {
            *puts
                .entry(entry["target"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = puts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written twice: {twice:?}");
    for key in &outcomes.acknowledged {
        assert_eq!(puts.get(key), Some(&1), "the audit of {key}");
    }
    // And the server replicas converge on what Redis holds.
    for server in &servers {
        eventually(
            PATIENCE,
            &format!("{} to hold what Redis holds", server.base),
            || async {
                let seen = flags(server).await;
                (seen == (revision, stored.clone()))
                    .then_some(())
                    .ok_or(format!("{:?} flags at {:?}", seen.1.len(), seen.0))
            },
        )
        .await;
    }
    eprintln!(
        "acknowledged {}, refused {:?}, stored {} at revision {revision:?}",
        outcomes.acknowledged.len(),
        outcomes
            .refused
            .iter()
            .map(|(s, (n, _))| (*s, *n))
            .collect::<Vec<_>>(),
        stored.len()
    );
    topology
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_primary_killed_mid_burst_loses_no_acknowledged_write() {
    let mut cluster = RedisCluster::start();
    let url = cluster.url();
    let cluster = acknowledged_writes_survive(&url, 2, DURABLE, move || {
        let killed = cluster.kill_primary_of(ENV_KEY);
        assert_ne!(cluster.primary_of(ENV_KEY), killed, "a replica took over");
        cluster.restart(killed);
        cluster
    })
    .await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_primary_killed_mid_burst_loses_no_acknowledged_write() {
    let mut sentinels = RedisSentinels::start();
    let url = sentinels.url();
    let sentinels = acknowledged_writes_survive(&url, 2, DURABLE, move || {
        let old = sentinels.primary_port();
        assert_ne!(sentinels.kill_primary(), old, "the replica took over");
        sentinels.restart_stopped();
        sentinels
    })
    .await;
    drop(sentinels);
}

/// No replica to wait for: a write is acknowledged once the one Redis has it in its
/// append-only file, fsynced (`appendfsync always`, the test kit's setting).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_killed_mid_burst_through_three_replicas_restarts_with_every_acknowledged_write() {
    let mut redis = RedisProcess::start();
    let url = redis.url();
    let redis = acknowledged_writes_survive(&url, 3, Durability::default(), move || {
        redis.stop(); // SIGKILL, and wait until it is gone
        redis.restart(); // same port and directory: the file is read back
        redis
    })
    .await;
    drop(redis);
}
