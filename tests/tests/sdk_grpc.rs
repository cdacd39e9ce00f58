//! The SDK's gRPC transport (`switchyard.v1.Sync`, feature `grpc`) against real
//! servers: live changes, the polling fallback while the gRPC API is unreachable,
//! refused tokens, and a server process killed and restarted on the same ports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_e2e::{
    admin, beta, env_revision, hold, kill, kill_checkout_then_add_a_flag, on_flag,
    prod_with_checkout, put_flag, revive,
};
use switchyard_sdk::{ChangeNotice, Client, Error, Status, Transport};
use switchyard_testkit::in_process::{self};
use switchyard_testkit::server_process::ServerProcess;
use switchyard_testkit::{unused_addr, wait_until, DEADLINE};

#[tokio::test]
async fn changes_stream_over_grpc() {
    let server = in_process::start_with_grpc(None).await;
    let grpc = server.grpc.clone().expect("gRPC address");
    let token = prod_with_checkout(&server.base).await;
    let client = Client::builder(&server.base, &token)
        .transport(Transport::Grpc)
        .grpc_url(&grpc)
        // Long enough that only the stream can deliver the changes below in time.
        .poll_interval(Duration::from_secs(3600))
        .build()
        .await
        .expect("client builds");
    let notices: Arc<Mutex<Vec<ChangeNotice>>> = Arc::default();
    let sink = Arc::clone(&notices);
    client.on_change(move |n| sink.lock().expect("notices").push(n.clone()));
    let ctx = beta();
    assert!(client.is_enabled("checkout", &ctx));

    kill_checkout_then_add_a_flag(&server.base, &client, "").await;
    wait_until(DEADLINE, "notices for both", || {
        let notices = notices.lock().expect("notices");
        notices.iter().any(|n| n.flags == ["checkout"])
            && notices.iter().any(|n| n.flags == ["added"])
    })
    .await;
    assert_eq!(
        client.revision(),
        env_revision(&admin(&server.base), "prod").await
    );
    assert_eq!(client.status(), Status::Ready);
    // Not an SSE client.
    assert_eq!(server.sse_clients(), 0);
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_grpc_api_falls_back_to_polling() {
    let server = in_process::start().await;
    let token = prod_with_checkout(&server.base).await;
    let nowhere = format!("http://{}", unused_addr());
    let client = Client::builder(&server.base, &token)
        .transport(Transport::Grpc)
        .grpc_url(&nowhere)
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .expect("client builds");
    let ctx = beta();
    kill(&server.base, "prod", "checkout", "e2e").await;
    wait_until(DEADLINE, "the kill, by polling", || {
        !client.is_enabled("checkout", &ctx)
    })
    .await;
    assert_eq!(client.status(), Status::Ready);
    client.close().await;

    // A gRPC URL that cannot be used is an error at build.
    let invalid = Client::builder(&server.base, &token)
        .transport(Transport::Grpc)
        .grpc_url("not a url")
        .build()
        .await;
    assert!(
        matches!(invalid, Err(Error::Unreachable { .. })),
        "{invalid:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_token_revoked_while_streaming_over_grpc_fails_on_reconnect() {
    let data = tempfile::tempdir().expect("data dir");
    let server = ServerProcess::start(data.path()).await;
    let (addr, grpc_addr) = (server.addr, server.grpc_addr.expect("gRPC address logged"));
    let token = prod_with_checkout(&server.base).await;
    let client = Client::builder(&server.base, &token)
        .transport(Transport::Grpc)
        .grpc_url(format!("http://{grpc_addr}"))
        .build()
        .await
        .expect("client builds");
    admin(&server.base)
        .delete_token("prod-sdk")
        .await
        .expect("revoke");
    server.kill().await;
    let server = ServerProcess::start_on(data.path(), addr, grpc_addr).await;
    wait_until(DEADLINE, "the failed status", || {
        matches!(client.status(), Status::Failed { .. })
    })
    .await;
    assert!(
        client.is_enabled("checkout", &beta()),
        "the last flags keep answering"
    );
    client.close().await;
    server.kill().await;
}

#[tokio::test]
async fn a_grpc_client_outlives_the_server_and_catches_up_after_a_restart() {
    let data = tempfile::tempdir().expect("data dir");
    let server = ServerProcess::start(data.path()).await;
    let (addr, grpc_addr) = (server.addr, server.grpc_addr.expect("gRPC address logged"));
    let token = prod_with_checkout(&server.base).await;
    let client = Client::builder(&server.base, &token)
        .transport(Transport::Grpc)
        .grpc_url(format!("http://{grpc_addr}"))
        .build()
        .await
        .expect("client builds");
    let ctx = beta();
    put_flag(&server.base, "prod", on_flag("live")).await;
    wait_until(DEADLINE, "a live change over gRPC", || {
        client.is_enabled("live", &ctx)
    })
    .await;

    server.kill().await;
    wait_until(DEADLINE, "the stale status", || {
        matches!(client.status(), Status::Stale { .. })
    })
    .await;
    assert!(client.is_enabled("checkout", &ctx));

    // Written while the client cannot reach any server.
    let holders = [hold(addr).await, hold(grpc_addr).await];
    let elsewhere = ServerProcess::start(data.path()).await;
    kill(&elsewhere.base, "prod", "checkout", "e2e").await;
    let expected = env_revision(&admin(&elsewhere.base), "prod").await;
    elsewhere.kill().await;
    for holder in holders {
        holder.abort();
        let _ = holder.await;
    }
    assert!(
        client.is_enabled("checkout", &ctx),
        "nothing reached the client yet"
    );

    let server = ServerProcess::start_on(data.path(), addr, grpc_addr).await;
    wait_until(DEADLINE, "the revision written meanwhile", || {
        client.revision() == expected
    })
    .await;
    assert!(!client.is_enabled("checkout", &ctx));
    wait_until(DEADLINE, "the ready status", || {
        client.status() == Status::Ready
    })
    .await;
    revive(&server.base, "prod", "checkout", "e2e").await;
    wait_until(DEADLINE, "a live change after reconnecting", || {
        client.is_enabled("checkout", &ctx)
    })
    .await;
    client.close().await;
    server.kill().await;
}
