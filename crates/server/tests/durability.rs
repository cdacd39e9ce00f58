//! An acknowledged write survives `kill -9`: the real binary is killed with SIGKILL
//! while concurrent writers are still sending admin PUTs, restarted on the same data
//! directory, and every acknowledged write must be there, with nothing half-written.
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_testkit::server_process::{Launch, ServerProcess, ADMIN, DEADLINE};
use tokio::sync::Notify;

const ENV: &str = "production";
const SHARED: &str = "shared";
const WRITERS: usize = 4;
/// Acknowledged writes (all writers together) after which the server is killed.
const KILL_AFTER: usize = 200;
/// A bound on each writer's loop, far above what it reaches before the kill.
const MAX_ITERATIONS: usize = 1_000;

/// What happened to one PUT.
#[derive(Debug, Clone)]
enum Outcome {
    /// 2xx: the flag as the server stored it.
    Acked(Value),
    /// An HTTP answer that is not a success.
    Refused(u16, String),
    /// No answer: the server died before or while handling it.
    Lost(String),
}

#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    description: String,
    outcome: Outcome,
}

fn flag(key: &str, description: &str, iteration: usize) -> Value {
    let on = u32::try_from(iteration % 101).expect("small") * 1_000;
    json!({
        "key": key, "kind": "boolean", "description": description,
        "variants": { "on": true, "off": false }, "off_variant": "off",
        "rules": [{ "id": "beta", "when": { "groups": ["beta"] }, "serve": { "variant": "on" } }],
        "default": { "rollout": { "split": [
            { "variant": "on", "weight": on }, { "variant": "off", "weight": 100_000 - on }
        ] } },
        "tags": ["durability"]
    })
}

async fn put(client: &reqwest::Client, base: &str, key: &str, body: &Value) -> Outcome {
    let response = client
        .put(format!("{base}/v1/admin/envs/{ENV}/flags/{key}"))
        .bearer_auth(ADMIN)
        .json(body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(e) => return Outcome::Lost(e.to_string()),
    };
    let status = response.status();
    match response.text().await {
        Ok(text) if status.is_success() => match serde_json::from_str(&text) {
            Ok(stored) => Outcome::Acked(stored),
            Err(e) => Outcome::Refused(status.as_u16(), format!("not JSON ({e}): {text}")),
        },
        Ok(text) => Outcome::Refused(status.as_u16(), text),
        // The status line arrived but the body did not: not an acknowledgement.
        Err(e) => Outcome::Lost(e.to_string()),
    }
}

/// One writer: alternately creates its own next flag and replaces the shared flag,
/// until a request gets no answer.
async fn writer(
    id: usize,
    client: reqwest::Client,
    base: String,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    acked: Arc<AtomicUsize>,
    enough: Arc<Notify>,
) {
    for i in 0..MAX_ITERATIONS {
        for key in [format!("w{id}-f{i:04}"), SHARED.to_owned()] {
            let description = format!("writer {id}, iteration {i}, flag {key}");
            let outcome = put(&client, &base, &key, &flag(&key, &description, i)).await;
            let stop = !matches!(outcome, Outcome::Acked(_));
            if !stop && acked.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                enough.notify_one();
            }
            attempts.lock().expect("lock").push(Attempt {
                key,
                description,
                outcome,
            });
            if stop {
                return;
            }
        }
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client
        .get(url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let body = response.json().await.expect("JSON body");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    // --- Write until enough writes are acknowledged, then SIGKILL mid-stream. The
    // burst is faster than the default write budget: durability, not limits, is
    // under test.
    let mut server = ServerProcess::start_with(
        dir.path(),
        Launch {
            args: &["--rate-limit-writes", "0"],
            ..Launch::default()
        },
    )
    .await;
    let response = client
        .put(server.url(&format!("/v1/admin/envs/{ENV}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("create env");
    assert_eq!(response.status().as_u16(), 201);

    let attempts = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                id,
                client.clone(),
                server.base.clone(),
                Arc::clone(&attempts),
                Arc::clone(&acked),
                Arc::clone(&enough),
            ))
        })
        .collect();
    let reached = tokio::time::timeout(DEADLINE, enough.notified()).await;
    assert!(
        reached.is_ok(),
        "only {} writes acknowledged within {DEADLINE:?}; attempts: {:?}\nserver output:\n{}",
        acked.load(Ordering::SeqCst),
        attempts.lock().expect("lock").last(),
        server.output()
    );
    server.signal(Signal::SIGKILL);
    let status = server.wait().await;
    {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
    drop(server);

    let attempts = attempts.lock().expect("lock").clone();
    let refused: Vec<String> = attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Refused(status, body) => Some(format!("{}: {status} {body}", a.key)),
            _ => None,
        })
        .collect();
    assert!(refused.is_empty(), "writes refused: {refused:#?}");
    let lost_errors: Vec<&str> = attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Lost(error) => Some(error.as_str()),
            _ => None,
        })
        .collect();
    let lost = lost_errors.len();
    // Each writer stops at its first lost write, and only the kill loses writes:
    // so every writer was still writing when the server died.
    assert_eq!(lost, WRITERS, "every writer was still writing at the kill");
    let acks: Vec<(&Attempt, &Value)> = attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Acked(stored) => Some((a, stored)),
            _ => None,
        })
        .collect();
    assert!(acks.len() >= KILL_AFTER, "{} acknowledged", acks.len());

    // --- Restart on the same data directory and check what survived.
    let server = ServerProcess::start(dir.path()).await;
    let (status, listing) =
        get_json(&client, &server.url(&format!("/v1/admin/envs/{ENV}/flags"))).await;
    assert_eq!(
        status, 200,
        "every stored flag loads and compiles: {listing}"
    );
    let revision = listing["revision"].as_u64().expect("revision");
    let stored: BTreeMap<String, Value> = listing["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(|f| (f["key"].as_str().expect("key").to_owned(), f.clone()))
        .collect();

    let (status, audit) = get_json(
        &client,
        &server.url(&format!("/v1/admin/audit?env={ENV}&limit=1000")),
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().expect("entries");
    assert!(entries.len() < 1000, "the audit log read was truncated");
    let flag_entries: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("flag.")))
        .collect();
    assert_eq!(
        u64::try_from(flag_entries.len()).expect("fits"),
        revision,
        "the environment's revision counts its flag writes"
    );
    let revisions: BTreeSet<u64> = flag_entries
        .iter()
        .map(|e| e["revision"].as_u64().expect("audited revision"))
        .collect();
    assert_eq!(
        revisions,
        (1..=revision).collect(),
        "one commit per revision"
    );

    // Every acknowledged write is in the log, and its flag is there at least at that version.
    for (attempt, acked) in &acks {
        let key = &attempt.key;
        let version = acked["version"].as_u64().expect("acked version");
        assert!(
            flag_entries
                .iter()
                .any(|e| e["target"] == json!(key) && e["after"] == **acked),
            "acknowledged write of `{key}` v{version} is missing from the audit log"
        );
        let flag = stored
            .get(key)
            .unwrap_or_else(|| panic!("acknowledged flag `{key}` v{version} is gone"));
        let found = flag["version"].as_u64().expect("version");
        assert!(
            found >= version,
            "`{key}` is at v{found}, below acked v{version}"
        );
    }
    // The last acknowledged write of each flag: identical, unless a later
    // (unacknowledged) write of the same flag landed just before the kill.
    let mut last_acked: BTreeMap<&str, &Value> = BTreeMap::new();
    for (attempt, acked) in &acks {
        let entry = last_acked.entry(attempt.key.as_str()).or_insert(acked);
        if acked["version"].as_u64() > entry["version"].as_u64() {
            *entry = acked;
        }
    }
    let mut unacked_landed = 0;
    for (key, acked) in &last_acked {
        let flag = &stored[*key];
        if flag["version"] == acked["version"] {
            assert_eq!(flag, *acked, "`{key}` differs from its acknowledged write");
        } else {
            unacked_landed += 1;
        }
    }
    // Whatever is stored is whole: something a writer sent, exactly as the audit log
    // recorded it last.
    for (key, flag) in &stored {
        let description = flag["description"].as_str().expect("description");
        assert!(
            attempts
                .iter()
                .any(|a| a.key == *key && a.description == description),
            "stored `{key}` matches no write sent: {flag}"
        );
        let last = flag_entries
            .iter()
            .filter(|e| e["target"] == json!(key))
            .max_by_key(|e| e["id"].as_u64())
            .unwrap_or_else(|| panic!("stored `{key}` has no audit entry"));
        assert_eq!(
            &last["after"], flag,
            "`{key}` differs from its last audit entry"
        );
        let (status, one) = get_json(
            &client,
            &server.url(&format!("/v1/admin/envs/{ENV}/flags/{key}")),
        )
        .await;
        assert_eq!((status, &one), (200, flag));
        if !last_acked.contains_key(key.as_str()) {
            unacked_landed += 1;
        }
    }
    eprintln!(
        "durability: {} writes acknowledged before SIGKILL, all {} found after restart \
         (revision {revision}, {} flags stored); {lost} writes lost in flight, \
         {unacked_landed} unacknowledged writes landed; lost: {lost_errors:?}",
        acks.len(),
        acks.len(),
        stored.len(),
    );

    // Still writable after the crash.
    let response = client
        .put(server.url(&format!("/v1/admin/envs/{ENV}/flags/{SHARED}")))
        .bearer_auth(ADMIN)
        .json(&flag(SHARED, "after the restart", 0))
        .send()
        .await
        .expect("write after restart");
    assert_eq!(response.status().as_u16(), 200);
}
