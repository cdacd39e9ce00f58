//! The typed admin client against a real (in-process) server.

use serde_json::json;
use switchyard_sdk::admin::{AdminClient, TokenKind};
use switchyard_sdk::Error;
use switchyard_testkit::in_process::{self, ADMIN};
use switchyard_testkit::unused_addr;

fn flag(key: &str) -> switchyard_core::Flag {
    serde_json::from_value(json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "default": {"variant": "on"}, "tags": ["payments"]
    }))
    .expect("flag")
}

#[tokio::test]
async fn the_admin_client_covers_the_admin_api() {
    let server = in_process::start().await;
    let admin = AdminClient::new(&server.base, ADMIN).expect("client");
    assert!(admin.healthy().await);
    admin.create_env("prod").await.expect("env");
    admin.create_env("prod").await.expect("idempotent");

    let saved = admin
        .put_flag("prod", &flag("pay"), None)
        .await
        .expect("put");
    assert_eq!(saved.version, 1);
    let again = admin
        .put_flag("prod", &flag("pay"), Some(1))
        .await
        .expect("put over v1");
    assert_eq!(again.version, 2);
    match admin.put_flag("prod", &flag("pay"), Some(1)).await {
        Err(Error::Api {
            status: 412, code, ..
        }) => assert_eq!(code, "precondition_failed"),
        other => panic!("expected 412, got {other:?}"),
    }
    let fetched = admin
        .flag("prod", "pay")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(fetched.version, 2);
    assert!(admin.flag("prod", "nope").await.expect("get").is_none());

    let killed = admin.kill("prod", "pay", "incident").await.expect("kill");
    assert!(!killed.enabled);
    let revived = admin.revive("prod", "pay", "fixed").await.expect("revive");
    assert!(revived.enabled);
    admin
        .put_flag("prod", &flag("refund"), None)
        .await
        .expect("put");
    let mut killed = admin
        .kill_tag("prod", "payments", "stop")
        .await
        .expect("tag kill");
    killed.sort();
    assert_eq!(killed, ["pay", "refund"]);
    assert_eq!(admin.flags("prod").await.expect("flags").len(), 2);

    let segment: switchyard_core::Segment =
        serde_json::from_value(json!({"key": "pros", "when": {"constraints": [{"attribute": "plan", "op": "in", "values": ["pro"]}]}}))
            .expect("segment");
    assert_eq!(
        admin
            .put_segment("prod", &segment)
            .await
            .expect("segment")
            .version,
        1
    );
    admin
        .delete_segment("prod", "pros")
        .await
        .expect("delete segment");

    let token = admin
        .create_token("svc", TokenKind::Sdk, Some("prod"))
        .await
        .expect("token");
    assert!(token.token.starts_with("swy_"));
    admin.delete_token("svc").await.expect("revoke");
    match admin.delete_token("svc").await {
        Err(Error::Api { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    assert!(admin
        .flag_metrics("prod", "pay", "5m")
        .await
        .expect("metrics")
        .is_empty());
    let audit = admin
        .audit("env=prod&flag=pay&limit=3")
        .await
        .expect("audit");
    assert_eq!(
        audit[0]["action"], "flag.kill",
        "the tag kill is the newest"
    );
    admin
        .delete_flag("prod", "refund", None)
        .await
        .expect("delete");
    match AdminClient::new(&server.base, "wrong")
        .expect("client")
        .flags("prod")
        .await
    {
        Err(Error::Api { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
}

/// Names with characters that mean something in a URL reach the server as one path
/// segment, which refuses them naming the rule — never another route (a `/` would
/// address a sub-resource, `?` start a query, `#` cut the path off).
#[tokio::test]
async fn awkward_names_are_one_path_segment_and_refused_by_name() {
    let server = in_process::start().await;
    let admin = AdminClient::new(&server.base, ADMIN).expect("client");
    admin.create_env("prod").await.expect("env");
    admin
        .put_flag("prod", &flag("pay"), None)
        .await
        .expect("put");
    // `.` and `..` no URL can carry (parsers fold them into the path): refused here.
    for name in [".", ".."] {
        match admin.kill("prod", name, "test").await {
            Err(Error::InvalidName(refused)) => assert_eq!(refused, name),
            other => panic!("{name}: expected InvalidName, got {other:?}"),
        }
    }
    for name in [
        "a/b", "a?b", "a#b", "pay/kill", "a b", "a%2Fb", "é", "../prod",
    ] {
        match admin.create_env(name).await {
            Err(Error::Api {
                status: 400,
                message,
                ..
            }) => {
                assert!(message.contains("names are"), "{name}: {message}")
            }
            other => panic!("{name}: expected 400, got {other:?}"),
        }
        // No flag can have such a key: the server looked for exactly that one.
        match admin.kill("prod", name, "test").await {
            Err(Error::Api {
                status: 404,
                message,
                ..
            }) => {
                assert!(
                    message.contains(&format!("flag `{name}`")),
                    "{name}: {message}"
                )
            }
            other => panic!("kill {name}: expected 404, got {other:?}"),
        }
    }
    // The real flag was never touched by any of them.
    let pay = admin
        .flag("prod", "pay")
        .await
        .expect("read")
        .expect("exists");
    assert!(pay.value.enabled);
    assert_eq!(admin.environments().await.expect("list"), ["prod"]);
}

#[tokio::test]
async fn a_transport_failure_is_an_opaque_transport_error_keeping_its_cause() {
    // A port nothing listens on: the connection is refused.
    let admin = AdminClient::new(format!("http://{}", unused_addr()), ADMIN).expect("client");
    let error = admin.create_env("prod").await.expect_err("nothing listens");
    let Error::Transport(transport) = &error else {
        panic!("not a transport error: {error:?}");
    };
    assert!(transport.is_connect(), "{transport:?}");
    assert!(!transport.is_timeout(), "{transport:?}");
    assert!(
        error.to_string().starts_with("admin API request failed: "),
        "{error}"
    );
    // The cause chain goes on below the opaque wrapper.
    let cause = std::error::Error::source(&error).expect("the transport error");
    assert!(cause.source().is_some(), "{cause:?} has no cause");
}
