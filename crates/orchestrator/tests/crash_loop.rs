//! The orchestrator daemon SIGKILLed twenty times at random points of one
//! multi-service release (three services in dependency order, four weight steps and
//! an approval each), restarted each time on its store: the release still ends
//! promoted with every flag fully on, as a release that was never interrupted, and no
//! flag was written twice at the same weight (the flag server's audit log says what
//! was written). Approvals are given now and then between kills and the last ones
//! only after the twentieth, so the release cannot end before all kills whatever the
//! machine's speed.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::daemon::Daemon;
use support::flag_server::{FlagServer, ENV};

const FLAGS: [&str; 3] = ["db-pool", "api-v2", "web-redesign"];
const KILLS: usize = 20;

fn plan() -> String {
    format!(
        "name: crash-loop\nenvironment: {ENV}\nservices:\n\
         \x20 - name: db\n    flags: [{}]\n\
         \x20 - name: api\n    depends_on: [db]\n    flags: [{}]\n\
         \x20 - name: web\n    depends_on: [api]\n    flags: [{}]\n\
         steps: [{{ weight: 10, hold: 1s }}, {{ weight: 25, hold: 1s }}, {{ approve: true }}, {{ weight: 50, hold: 1s }}, {{ weight: 100, hold: 1s }}]\n\
         analysis: {{ interval: 1s }}\n",
        FLAGS[0], FLAGS[1], FLAGS[2]
    )
}

/// A small deterministic generator of kill delays (xorshift): random points, the same
/// in every run.
struct Delays(u64);

impl Delays {
    fn next(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(150 + self.0 % 900)
    }
}

/// The share (of 100 000) the flag's default serves its `on` variant, from a flag
/// document as stored or audited.
fn on_share(flag: &Value) -> Option<u64> {
    let default = &flag["default"];
    if default["variant"] == "on" {
        return Some(100_000);
    }
    if default["variant"] == "off" {
        return Some(0);
    }
    default["rollout"]["split"]
        .as_array()?
        .iter()
        .find(|part| part["variant"] == "on")
        .and_then(|part| part["weight"].as_u64())
}

async fn status(daemon: &Daemon) -> String {
    let (_, out, _) = daemon.run(&["status", "crash-loop"]).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twenty_times_a_release_ends_as_if_it_never_was() {
    let flags = FlagServer::start(&FLAGS).await;
    let mut daemon = Daemon::start(&flags).await;
    let plans = tempfile::tempdir().expect("temp dir");
    let path = plans.path().join("crash-loop.yaml");
    std::fs::write(&path, plan()).expect("plan");
    let path = path.to_str().expect("UTF-8").to_owned();
    let (code, out, err) = daemon.run(&["apply", &path]).await;
    assert_eq!(code, 0, "apply:\n{out}\n{err}");

    let mut delays = Delays(0x2026_1206);
    for kill in 1..=KILLS {
        tokio::time::sleep(delays.next()).await;
        assert!(
            !status(&daemon).await.contains("promoted"),
            "promoted before the last approval"
        );
        daemon.kill().await;
        daemon.restart().await;
        if kill % 7 == 0 {
            // Whoever awaits approval now gets it (nobody may: that is fine).
            let _ = daemon.run(&["approve", "crash-loop"]).await;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = status(&daemon).await;
        if now.contains("promoted") {
            break;
        }
        let _ = daemon.run(&["approve", "crash-loop"]).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "not promoted within 120 s after the last restart:\n{now}\n{}",
            daemon.stderr.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The same end as without kills: every flag on for everyone.
    for key in FLAGS {
        let flag = serde_json::to_value(flags.flag(key).await).expect("flag JSON");
        assert_eq!(on_share(&flag), Some(100_000), "{key}: {flag}");
    }
    // No flag written twice at the same weight.
    let audit = flags
        .admin
        .audit(&format!("env={ENV}&limit=1000"))
        .await
        .expect("audit");
    assert!(audit.len() < 1000, "the whole audit log was read");
    // Oldest first; each flag's creation (off for everyone) comes first.
    let mut written: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in audit.iter().rev() {
        let target = entry["target"].as_str().unwrap_or_default();
        if FLAGS.contains(&target) && !entry["after"].is_null() {
            if let Some(share) = on_share(&entry["after"]) {
                written.entry(target.to_owned()).or_default().push(share);
            }
        }
    }
    eprintln!("on-shares written per flag, oldest first: {written:?}");
    for key in FLAGS {
        let shares = written.get(key).cloned().unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for share in &shares {
            assert!(
                seen.insert(*share),
                "{key} written twice at {share}: {shares:?}"
            );
        }
        assert!(shares.contains(&100_000), "{key}: {shares:?}");
    }
    daemon.kill().await;
}
