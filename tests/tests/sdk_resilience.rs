//! The SDK against the real `switchyard-server` binary, killed and restarted on the
//! same port and data directory: the client keeps answering from its last snapshot,
//! says it is stale, reconnects and picks up what changed meanwhile.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::json;
use switchyard_e2e::{
    admin, env_revision, hold, kill, on_flag, prod_with_checkout, put_flag, revive,
};
use switchyard_sdk::{ChangeNotice, Client, Context, Status};
use switchyard_testkit::server_process::ServerProcess;
use switchyard_testkit::{wait_until, DEADLINE};

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn the_client_outlives_the_server_and_catches_up_after_a_restart() {
    let data = tempfile::tempdir().expect("data dir");
    let server = ServerProcess::start(data.path()).await;
    let addr = server.addr;
    let token = prod_with_checkout(&server.base).await;
    put_flag(&server.base, "prod", on_flag("legacy")).await;

    let client = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    let notices: Arc<Mutex<Vec<ChangeNotice>>> = Arc::default();
    let sink = Arc::clone(&notices);
    client.on_change(move |n| sink.lock().expect("notices").push(n.clone()));
    let beta = Context::new("user-1").group("beta");
    assert_eq!(client.status(), Status::Ready);
    assert!(client.is_enabled("checkout", &beta));
    // The stream is live: a kill arrives.
    kill(&server.base, "prod", "legacy", "e2e").await;
    wait_until(DEADLINE, "the kill over the stream", || {
        !client.is_enabled("legacy", &beta)
    })
    .await;
    let revision = client.revision();

    // The server dies: the client keeps answering from what it has, and says so.
    let killed_at = SystemTime::now();
    server.kill().await;
    wait_until(DEADLINE, "the stale status", || {
        matches!(client.status(), Status::Stale { .. })
    })
    .await;
    let Status::Stale { since } = client.status() else {
        unreachable!("checked above");
    };
    assert!(since >= killed_at);
    assert!(client.is_enabled("checkout", &beta));
    assert!(!client.is_enabled("checkout", &Context::new("user-1")));
    assert_eq!(client.revision(), revision);

    // Changes are made while the client cannot see the server: through a server on
    // another port over the same data. (The old port is held meanwhile, refusing
    // every connection, so that server cannot land on it.)
    let holder = hold(addr).await;
    let elsewhere = ServerProcess::start(data.path()).await;
    kill(&elsewhere.base, "prod", "checkout", "e2e").await;
    revive(&elsewhere.base, "prod", "legacy", "e2e").await;
    put_flag(&elsewhere.base, "prod", on_flag("added-offline")).await;
    let expected = env_revision(&admin(&elsewhere.base), "prod").await;
    elsewhere.kill().await;
    holder.abort();
    let _ = holder.await;
    assert!(matches!(client.status(), Status::Stale { .. }));
    assert!(
        client.is_enabled("checkout", &beta),
        "nothing reached the client yet"
    );

    // The server comes back where the client expects it: it reconnects and catches up.
    let server = ServerProcess::start_on(data.path(), addr, any_port()).await;
    wait_until(DEADLINE, "the revision written while disconnected", || {
        client.revision() == expected
    })
    .await;
    assert!(!client.is_enabled("checkout", &beta));
    assert!(client.is_enabled("legacy", &beta));
    assert!(client.is_enabled("added-offline", &beta));
    wait_until(DEADLINE, "the ready status", || {
        client.status() == Status::Ready
    })
    .await;
    wait_until(DEADLINE, "a notice naming what changed", || {
        notices.lock().expect("notices").iter().any(|n| {
            n.revision == expected
                && ["added-offline", "checkout", "legacy"]
                    .iter()
                    .all(|k| n.flags.iter().any(|f| f == k))
        })
    })
    .await;

    // And the stream is live again.
    revive(&server.base, "prod", "checkout", "e2e").await;
    wait_until(DEADLINE, "a change after reconnecting", || {
        client.is_enabled("checkout", &beta)
    })
    .await;
    client.close().await;
    server.kill().await;
}

#[tokio::test]
async fn a_bootstrapped_client_syncs_once_the_server_appears() {
    let data = tempfile::tempdir().expect("data dir");
    let server = ServerProcess::start(data.path()).await;
    let addr = server.addr;
    let base = server.base.clone();
    let token = prod_with_checkout(&server.base).await;
    server.kill().await;

    // The bootstrap says checkout is on for everyone; the server says beta only.
    let client = Client::builder(&base, &token)
        .initial_sync_timeout(Duration::from_secs(2))
        .bootstrap(json!({"environment": "prod", "revision": 0, "flags": [on_flag("checkout")]}))
        .build()
        .await
        .expect("builds from the bootstrap");
    let someone = Context::new("user-9");
    assert!(client.is_enabled("checkout", &someone));
    assert!(
        matches!(client.status(), Status::Failed { .. }),
        "{:?}",
        client.status()
    );

    let server = ServerProcess::start_on(data.path(), addr, any_port()).await;
    wait_until(DEADLINE, "the server's flags", || {
        !client.is_enabled("checkout", &someone)
    })
    .await;
    assert!(client.is_enabled("checkout", &Context::new("user-9").group("beta")));
    wait_until(DEADLINE, "the ready status", || {
        client.status() == Status::Ready
    })
    .await;
    assert_eq!(
        client.revision(),
        env_revision(&admin(&server.base), "prod").await
    );
    client.close().await;
    server.kill().await;
}

#[tokio::test]
async fn a_token_revoked_while_streaming_fails_on_reconnect_and_the_flags_keep_answering() {
    let data = tempfile::tempdir().expect("data dir");
    let server = ServerProcess::start(data.path()).await;
    let addr = server.addr;
    let token = prod_with_checkout(&server.base).await;
    let client = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    admin(&server.base)
        .delete_token("prod-sdk")
        .await
        .expect("revoke");
    server.kill().await;
    let server = ServerProcess::start_on(data.path(), addr, any_port()).await;
    wait_until(DEADLINE, "the failed status", || {
        matches!(client.status(), Status::Failed { .. })
    })
    .await;
    let Status::Failed { reason } = client.status() else {
        unreachable!("checked above");
    };
    assert!(reason.contains("token"), "{reason}");
    assert!(client.is_enabled("checkout", &Context::new("u").group("beta")));
    client.close().await;
    server.kill().await;
}

/// Two replicas of the server binary on one Redis; the SDK knows both. The replica
/// it streams from is SIGKILLed: it moves to the other, resumes from its revision
/// (replicas share revisions), and misses none of the changes made meanwhile.
#[tokio::test]
async fn a_client_fails_over_to_another_replica_and_misses_no_change() {
    let redis = switchyard_testkit::redis::RedisProcess::start();
    let url = redis.url();
    let args = ["--redis-url", url.as_str()];
    let replica = |dir: std::path::PathBuf| async move {
        ServerProcess::start_with(
            &dir,
            switchyard_testkit::server_process::Launch {
                args: &args,
                ..Default::default()
            },
        )
        .await
    };
    let dirs = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let first = replica(dirs.0.path().to_owned()).await;
    let second = replica(dirs.1.path().to_owned()).await;
    let token = prod_with_checkout(&first.base).await;
    put_flag(&first.base, "prod", on_flag("legacy")).await;

    let client = Client::builder(&first.base, &token)
        .fallback_urls([second.base.clone()])
        .build()
        .await
        .expect("client builds");
    let notices: Arc<Mutex<Vec<ChangeNotice>>> = Arc::default();
    let sink = Arc::clone(&notices);
    client.on_change(move |n| sink.lock().expect("notices").push(n.clone()));
    let beta = Context::new("user-1").group("beta");
    kill(&first.base, "prod", "legacy", "e2e").await;
    wait_until(DEADLINE, "the kill over the first replica's stream", || {
        !client.is_enabled("legacy", &beta)
    })
    .await;

    // The first replica dies; changes go on through the second.
    first.kill().await;
    kill(&second.base, "prod", "checkout", "e2e").await;
    revive(&second.base, "prod", "legacy", "e2e").await;
    put_flag(&second.base, "prod", on_flag("after-failover")).await;
    let expected = env_revision(&admin(&second.base), "prod").await;
    wait_until(DEADLINE, "the second replica's revision", || {
        client.revision() == expected
    })
    .await;
    assert!(!client.is_enabled("checkout", &beta));
    assert!(client.is_enabled("legacy", &beta));
    assert!(client.is_enabled("after-failover", &beta));
    // Every change was told to the listeners, whether replayed one by one or in one
    // snapshot.
    let told: std::collections::BTreeSet<String> = notices
        .lock()
        .expect("notices")
        .iter()
        .flat_map(|n| n.flags.clone())
        .collect();
    for flag in ["legacy", "checkout", "after-failover"] {
        assert!(told.contains(flag), "{flag} not told: {told:?}");
    }
    // And the stream from the second replica is live.
    revive(&second.base, "prod", "checkout", "e2e").await;
    wait_until(
        DEADLINE,
        "a change over the second replica's stream",
        || client.is_enabled("checkout", &beta),
    )
    .await;
    assert_eq!(client.status(), Status::Ready);
    client.close().await;
    second.kill().await;
}
