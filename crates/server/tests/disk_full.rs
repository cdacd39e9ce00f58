//! The embedded store on a full disk (a small tmpfs the test mounts and fills): writes
//! are refused with 507 saying the disk is full and nothing is half-written;
//! evaluations keep answering; once space returns, writes work again and the store
//! holds exactly what was acknowledged, before and after a restart.
//!
//! Mounting needs root (`mount -t tmpfs`); without it the test fails saying so.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_testkit::eventually;
use switchyard_testkit::in_process::{boolean_flag, Builder, TestServer, ADMIN};

const ENV: &str = "prod";
const PATIENCE: Duration = Duration::from_secs(20);

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        assert!(
            mounted.as_ref().is_ok_and(|s| s.success()),
            "this test fills a small tmpfs to make the disk full and must mount one \
             (`mount -t tmpfs`, as root): {mounted:?}"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system holding `dir` to the last byte; the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0_u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    while file.write_all(&chunk[..512]).is_ok() {}
    while file.write_all(&chunk[..1]).is_ok() {}
    let _ = file.sync_all();
    filler
}

/// A flag with a description large enough to need new pages.
fn big_flag(key: &str) -> Value {
    let mut flag = boolean_flag(key);
    flag["description"] = json!("x".repeat(8 * 1024));
    flag
}

async fn put(server: &TestServer, key: &str) -> (u16, Value) {
    server
        .call(
            "PUT",
            &format!("/v1/admin/envs/{ENV}/flags/{key}"),
            Some(ADMIN),
            Some(big_flag(key)),
        )
        .await
}

async fn stored(server: &TestServer) -> (u64, Vec<String>) {
    let body = server
        .ok("GET", &format!("/v1/admin/envs/{ENV}/flags"), ADMIN, None)
        .await;
    let mut keys: Vec<String> = body["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f["key"].as_str().map(str::to_owned))
        .collect();
    keys.sort();
    (body["revision"].as_u64().expect("revision"), keys)
}

#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_keeps_evaluating_and_loses_nothing() {
    let disk = Tmpfs::mount("8m");
    let data = disk.path().join("data");
    let server = Builder::default().embedded_in(&data).await;
    server.create_env(ENV).await;
    server.put_flag(ENV, boolean_flag("checkout")).await;
    let mut acknowledged = vec!["checkout".to_owned()];

    let filler = fill(disk.path());
    let mut refusal = None;
    for n in 0..200 {
        let key = format!("f{n:03}");
        match put(&server, &key).await {
            (200 | 201, _) => acknowledged.push(key),
            (status, body) => {
                refusal = Some((status, body, key));
                break;
            }
        }
    }
    let (status, body, refused_key) = refusal.expect("a write is refused once the disk is full");
    assert_eq!(status, 507, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("disk under the store is full"), "{body}");

    // Evaluations go on from memory.
    let evaluated = server
        .ok(
            "POST",
            &format!("/v1/evaluate/{ENV}/checkout"),
            ADMIN,
            Some(json!({"targetingKey": "u-1", "groups": ["beta"]})),
        )
        .await;
    assert_eq!(evaluated["value"], json!(true), "{evaluated}");

    // Space returns: writes work again.
    std::fs::remove_file(&filler).expect("filler removed");
    let after = "after-space".to_owned();
    eventually(PATIENCE, "a write once space returned", || async {
        matches!(put(&server, &after).await.0, 200 | 201).then_some(())
    })
    .await;
    acknowledged.push(after);
    acknowledged.sort();

    // Exactly what was acknowledged: the refused write is not there, half or whole.
    let (revision, keys) = stored(&server).await;
    assert_eq!(keys, acknowledged);
    assert!(!keys.contains(&refused_key));
    let mut server = server;
    let dir = server.dir.take();
    server.stop().await;
    let reopened = Builder::default().embedded_in(&data).await;
    assert_eq!(stored(&reopened).await, (revision, acknowledged));
    reopened.stop().await;
    drop(dir);
}
