//! The SDK against a server running in this process: the first sync, refused tokens,
//! unreachable servers, live changes over SSE and polling, listeners, shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use switchyard_e2e::{
    admin, beta, beta_flag, delete_flag, env_revision, env_with_sdk_token, kill,
    kill_checkout_then_add_a_flag, on_flag, prod_with_checkout, put_flag, put_segment, revive,
    typed, Proxy,
};
use switchyard_sdk::{ChangeNotice, Client, Context, Error, Status, Transport};
use switchyard_testkit::in_process::{self, ADMIN};
use switchyard_testkit::{unused_addr, wait_until, DEADLINE};

/// Records every change notice.
fn record(client: &Client) -> Arc<Mutex<Vec<ChangeNotice>>> {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&notices);
    client.on_change(move |notice| sink.lock().expect("notices").push(notice.clone()));
    notices
}

fn notified(notices: &Mutex<Vec<ChangeNotice>>, key: &str) -> bool {
    notices
        .lock()
        .expect("notices")
        .iter()
        .any(|n| n.flags.iter().any(|f| f == key))
}

#[tokio::test]
async fn build_waits_for_the_first_snapshot() {
    let server = in_process::start().await;
    let token = prod_with_checkout(&server.base).await;
    let revision = env_revision(&admin(&server.base), "prod").await;

    let client = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    // No waiting: build returned with the server's flags installed.
    assert_eq!(client.status(), Status::Ready);
    assert_eq!(client.revision(), revision);
    assert!(client.is_enabled("checkout", &beta()));
    assert!(!client.is_enabled("checkout", &Context::new("user-1")));
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn refused_tokens_are_unauthorized_even_with_a_bootstrap() {
    let server = in_process::start().await;
    env_with_sdk_token(&admin(&server.base), "prod").await;
    let eval = admin(&server.base)
        .create_token(
            "prod-eval",
            switchyard_sdk::admin::TokenKind::Eval,
            Some("prod"),
        )
        .await
        .expect("token")
        .token;

    let bad = Client::builder(&server.base, "swy_nope_0123456789")
        .build()
        .await;
    assert!(
        matches!(bad, Err(Error::Unauthorized { status: 401, .. })),
        "{bad:?}"
    );
    let bootstrapped = Client::builder(&server.base, "swy_nope_0123456789")
        .bootstrap(json!({"environment": "prod", "revision": 0, "flags": [on_flag("x")]}))
        .build()
        .await;
    assert!(
        matches!(bootstrapped, Err(Error::Unauthorized { status: 401, .. })),
        "{bootstrapped:?}"
    );
    // An evaluation token may not read snapshots.
    let wrong_kind = Client::builder(&server.base, &eval).build().await;
    match wrong_kind {
        Err(Error::Unauthorized {
            status: 403,
            message,
        }) => assert!(!message.is_empty()),
        other => panic!("expected 403, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_without_a_bootstrap() {
    let url = format!("http://{}", unused_addr());
    let result = Client::builder(&url, "swy_a_b")
        .initial_sync_timeout(Duration::from_secs(5))
        .build()
        .await;
    assert!(
        matches!(
            result,
            Err(Error::Unreachable { .. } | Error::Timeout { .. })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_with_a_bootstrap_serves_the_bootstrap() {
    let url = format!("http://{}", unused_addr());
    let client = Client::builder(&url, "swy_a_b")
        .bootstrap(json!({"environment": "prod", "revision": 3, "flags": [beta_flag("checkout")]}))
        .build()
        .await
        .expect("builds from the bootstrap");
    assert!(client.is_enabled("checkout", &beta()));
    assert_eq!(client.revision(), 3);
    assert!(
        matches!(client.status(), Status::Failed { .. }),
        "{:?}",
        client.status()
    );
    client.close().await;
}

#[tokio::test]
async fn kills_revivals_and_writes_stream_to_the_client_and_its_listeners() {
    // Frequent heartbeats, so comments interleave with the events.
    let server = in_process::Builder::default()
        .heartbeat(Duration::from_millis(20))
        .embedded()
        .await;
    let token = prod_with_checkout(&server.base).await;
    put_flag(&server.base, "prod", on_flag("other")).await;
    let client = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    let notices = record(&client);
    let ctx = beta();
    assert!(client.is_enabled("checkout", &ctx));
    wait_until(DEADLINE, "the client's stream", || {
        server.sse_clients() == 1
    })
    .await;

    kill(&server.base, "prod", "checkout", "e2e").await;
    wait_until(DEADLINE, "the kill", || {
        !client.is_enabled("checkout", &ctx)
    })
    .await;
    wait_until(DEADLINE, "a notice for the kill", || {
        notified(&notices, "checkout")
    })
    .await;
    {
        let notices = notices.lock().expect("notices");
        let notice = notices.last().expect("a notice");
        assert_eq!(notice.flags, ["checkout"], "only the killed flag changed");
        assert_eq!(notice.revision, client.revision());
    }
    assert_eq!(
        client.variant("checkout", &ctx).name.as_deref(),
        Some("off")
    );
    assert!(
        client.is_enabled("other", &ctx),
        "untouched flags still answer"
    );

    revive(&server.base, "prod", "checkout", "e2e").await;
    wait_until(DEADLINE, "the revival", || {
        client.is_enabled("checkout", &ctx)
    })
    .await;

    put_flag(&server.base, "prod", on_flag("brand-new")).await;
    wait_until(DEADLINE, "a new flag", || {
        client.is_enabled("brand-new", &ctx)
    })
    .await;
    delete_flag(&server.base, "prod", "brand-new").await;
    wait_until(DEADLINE, "the deletion", || {
        client.kind("brand-new").is_none()
    })
    .await;
    assert!(!client.is_enabled("brand-new", &ctx));
    wait_until(DEADLINE, "a notice for the deletion", || {
        notices
            .lock()
            .expect("notices")
            .last()
            .is_some_and(|n| n.flags == ["brand-new"])
    })
    .await;
    assert_eq!(
        client.revision(),
        env_revision(&admin(&server.base), "prod").await
    );
    assert_eq!(client.status(), Status::Ready);
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_segment_change_notifies_the_flags_that_use_it() {
    let server = in_process::start().await;
    let token = env_with_sdk_token(&admin(&server.base), "prod").await;
    let segment = |countries: &[&str]| {
        json!({"key": "eu", "when": {"constraints": [
            {"attribute": "country", "op": "in", "values": countries}
        ]}})
    };
    put_segment(&server.base, "prod", segment(&["IT"])).await;
    let mut flag = beta_flag("eu-only");
    flag["rules"] = json!([{"id": "eu", "when": {"segments": ["eu"]}, "serve": {"variant": "on"}}]);
    put_flag(&server.base, "prod", flag).await;
    put_flag(&server.base, "prod", on_flag("elsewhere")).await;
    let client = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    let notices = record(&client);
    let french = Context::new("user-2").attr("country", "FR");
    assert!(!client.is_enabled("eu-only", &french));

    put_segment(&server.base, "prod", segment(&["IT", "FR"])).await;
    wait_until(DEADLINE, "the segment change", || {
        client.is_enabled("eu-only", &french)
    })
    .await;
    wait_until(DEADLINE, "the notice", || notified(&notices, "eu-only")).await;
    assert!(!notified(&notices, "elsewhere"));
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_burst_of_writes_ends_at_the_servers_revision_and_values() {
    let server = in_process::start().await;
    let token = env_with_sdk_token(&admin(&server.base), "prod").await;
    put_flag(&server.base, "prod", beta_flag("counter")).await;
    let client = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    let writes: Vec<_> = (0..40)
        .map(|n| {
            let admin = admin(&server.base);
            tokio::spawn(async move {
                let mut flag = on_flag(&format!("burst-{}", n % 8));
                flag["description"] = json!(format!("write {n}"));
                admin
                    .put_flag("prod", &typed(flag), None)
                    .await
                    .expect("put flag");
            })
        })
        .collect();
    for write in writes {
        write.await.expect("write task");
    }
    let revision = env_revision(&admin(&server.base), "prod").await;
    wait_until(DEADLINE, "the last revision", || {
        client.revision() == revision
    })
    .await;
    let ctx = Context::new("anyone");
    for n in 0..8 {
        assert!(client.is_enabled(&format!("burst-{n}"), &ctx));
    }
    // Every flag is as the server has it.
    let (status, flags) = server
        .call("GET", "/v1/admin/envs/prod/flags", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200);
    let listed = flags
        .as_array()
        .or_else(|| flags["flags"].as_array())
        .cloned()
        .expect("a list of flags");
    assert_eq!(listed.len(), 9);
    for flag in listed {
        let key = flag["key"].as_str().expect("key");
        let detail = client.evaluate(key, &ctx);
        assert_eq!(
            detail.flag_version,
            flag["version"].as_u64().expect("version"),
            "{key}"
        );
    }
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn polling_picks_up_changes() {
    let server = in_process::start().await;
    let token = prod_with_checkout(&server.base).await;
    let client = Client::builder(&server.base, &token)
        .transport(Transport::Polling)
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .expect("client builds");
    let notices = record(&client);
    let ctx = beta();
    assert!(client.is_enabled("checkout", &ctx));

    kill_checkout_then_add_a_flag(&server.base, &client, "").await;
    wait_until(DEADLINE, "the notice", || notified(&notices, "checkout")).await;
    assert_eq!(client.status(), Status::Ready);
    // Polling never opens a stream.
    assert_eq!(server.sse_clients(), 0);
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_token_revoked_while_polling_fails_the_client_which_keeps_serving() {
    let server = in_process::start().await;
    let token = prod_with_checkout(&server.base).await;
    let client = Client::builder(&server.base, &token)
        .transport(Transport::Polling)
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .expect("client builds");
    admin(&server.base)
        .delete_token("prod-sdk")
        .await
        .expect("revoke");
    wait_until(DEADLINE, "the failed status", || {
        matches!(client.status(), Status::Failed { .. })
    })
    .await;
    let Status::Failed { reason } = client.status() else {
        unreachable!("checked above");
    };
    assert!(!reason.is_empty());
    assert!(
        client.is_enabled("checkout", &beta()),
        "the last flags keep answering"
    );
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_graceful_server_stop_makes_the_client_stale_but_it_keeps_answering() {
    let server = in_process::start().await;
    let token = prod_with_checkout(&server.base).await;
    let client = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    wait_until(DEADLINE, "the client's stream", || {
        server.sse_clients() == 1
    })
    .await;
    let before = std::time::SystemTime::now();
    server.stop().await;
    wait_until(DEADLINE, "the stale status", || {
        matches!(client.status(), Status::Stale { .. })
    })
    .await;
    let Status::Stale { since } = client.status() else {
        unreachable!("checked above");
    };
    assert!(since >= before);
    assert!(client.is_enabled("checkout", &beta()));
    client.close().await;
}

#[tokio::test]
async fn close_and_drop_end_the_stream() {
    // Heartbeats make the server notice a closed connection at once.
    let server = in_process::Builder::default()
        .heartbeat(Duration::from_millis(20))
        .embedded()
        .await;
    let token = env_with_sdk_token(&admin(&server.base), "prod").await;
    let closed = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    wait_until(DEADLINE, "one stream", || server.sse_clients() == 1).await;
    closed.close().await;
    wait_until(DEADLINE, "no stream after close", || {
        server.sse_clients() == 0
    })
    .await;

    let dropped = Client::builder(&server.base, &token)
        .build()
        .await
        .expect("client builds");
    wait_until(DEADLINE, "one stream", || server.sse_clients() == 1).await;
    drop(dropped);
    wait_until(DEADLINE, "no stream after drop", || {
        server.sse_clients() == 0
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_stream_resumes_with_the_changes_it_missed() {
    let server = in_process::start().await;
    let token = prod_with_checkout(&server.base).await;
    let target = server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let proxy = Proxy::start(target).await;
    let client = Client::builder(proxy.base(), &token)
        .build()
        .await
        .expect("client builds");
    let notices = record(&client);
    let ctx = beta();
    wait_until(DEADLINE, "the client's stream", || {
        server.sse_clients() == 1
    })
    .await;
    let before = client.revision();

    // The connection drops while the server runs on; two writes happen meanwhile.
    proxy.cut();
    wait_until(DEADLINE, "the stale status", || {
        matches!(client.status(), Status::Stale { .. })
    })
    .await;
    wait_until(DEADLINE, "the server to see the stream end", || {
        server.sse_clients() == 0
    })
    .await;
    kill(&server.base, "prod", "checkout", "e2e").await;
    put_flag(&server.base, "prod", on_flag("added")).await;
    proxy.restore();

    wait_until(DEADLINE, "the missed revisions", || {
        client.revision() == before + 2
    })
    .await;
    assert!(!client.is_enabled("checkout", &ctx));
    assert!(client.is_enabled("added", &ctx));
    wait_until(DEADLINE, "the ready status", || {
        client.status() == Status::Ready
    })
    .await;
    // Resumed from the last revision: the server replayed each missed change rather
    // than a snapshot, so there is one notice per revision.
    let seen: Vec<(u64, Vec<String>)> = notices
        .lock()
        .expect("notices")
        .iter()
        .map(|n| (n.revision, n.flags.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (before + 1, vec!["checkout".to_owned()]),
            (before + 2, vec!["added".to_owned()])
        ]
    );
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn when_the_stream_is_refused_the_client_polls() {
    let server = in_process::start().await;
    let token = prod_with_checkout(&server.base).await;
    let target = server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let proxy = Proxy::refusing_streams(target).await;
    let client = Client::builder(proxy.base(), &token)
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .expect("client builds");
    let ctx = beta();
    assert!(client.is_enabled("checkout", &ctx));
    kill_checkout_then_add_a_flag(&server.base, &client, ", by polling").await;
    assert_eq!(client.status(), Status::Ready);
    assert_eq!(server.sse_clients(), 0, "no stream got through");
    client.close().await;
    server.stop().await;
}
