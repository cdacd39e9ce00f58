//! The HAProxy router against a real `haproxy`: weights set through the runtime API
//! move real requests between two upstreams, and failures come back as the right
//! [`RouterError`].

mod support;

use std::collections::HashMap;

use switchyard_orchestrator::plan::HaproxyCanary;
use switchyard_orchestrator::routers::haproxy::Haproxy;
use switchyard_orchestrator::routers::{RouterError, TrafficRouter};
use switchyard_testkit::free_port;
use switchyard_testkit::haproxy::Canary;

const BACKEND: &str = "app";

/// Two upstreams behind a haproxy whose backend is [`BACKEND`].
type Rig = Canary;

trait Routers {
    fn router(&self, address: String) -> Haproxy;
    fn tcp_router(&self) -> Haproxy;
}

impl Routers for Rig {
    /// A router for this rig's servers through the runtime API at `address`.
    fn router(&self, address: String) -> Haproxy {
        Haproxy::new(HaproxyCanary {
            address,
            backend: BACKEND.into(),
            stable: "stable".into(),
            canary: "canary".into(),
        })
    }

    fn tcp_router(&self) -> Haproxy {
        self.router(self.haproxy.admin_addr().to_string())
    }
}

fn only(body: &str, n: usize) -> HashMap<String, usize> {
    HashMap::from([(body.to_owned(), n)])
}

#[tokio::test]
async fn weights_move_requests_between_stable_and_canary() {
    let rig = Rig::start(BACKEND).await;
    let router = rig.tcp_router();

    router.set_weight(0).await.expect("set weight 0");
    assert_eq!(router.weight().await.expect("weight"), 0);
    assert_eq!(rig.counts(40).await, only("stable", 40));

    router.set_weight(25).await.expect("set weight 25");
    assert_eq!(router.weight().await.expect("weight"), 25);
    assert_eq!(rig.get_weight("canary").await, "25 (initial 0)");
    assert_eq!(rig.get_weight("stable").await, "75 (initial 100)");
    let counts = rig.counts(100).await;
    let canary = counts.get("canary").copied().unwrap_or(0);
    let stable = counts.get("stable").copied().unwrap_or(0);
    assert_eq!(
        canary + stable,
        100,
        "only the two versions answer: {counts:?}"
    );
    assert!(
        (15..=35).contains(&canary),
        "canary got {canary} of 100 requests at weight 25: {counts:?}"
    );

    router.set_weight(100).await.expect("set weight 100");
    assert_eq!(router.weight().await.expect("weight"), 100);
    assert_eq!(rig.get_weight("stable").await, "0 (initial 100)");
    assert_eq!(rig.counts(40).await, only("canary", 40));

    // Back to all-stable, as a rollback from full promotion does.
    router.set_weight(0).await.expect("set weight 0 again");
    assert_eq!(rig.counts(40).await, only("stable", 40));
}

#[tokio::test]
async fn setting_the_same_weight_twice_is_harmless() {
    let rig = Rig::start(BACKEND).await;
    let router = rig.tcp_router();
    router.set_weight(40).await.expect("first set");
    router.set_weight(40).await.expect("second set");
    assert_eq!(router.weight().await.expect("weight"), 40);
    assert_eq!(rig.get_weight("canary").await, "40 (initial 0)");
    assert_eq!(rig.get_weight("stable").await, "60 (initial 100)");
}

#[tokio::test]
async fn an_unknown_server_is_rejected_with_haproxys_answer() {
    let rig = Rig::start(BACKEND).await;
    let router = Haproxy::new(HaproxyCanary {
        address: rig.haproxy.admin_addr().to_string(),
        backend: BACKEND.into(),
        stable: "stable".into(),
        canary: "nosuch".into(),
    });

    for error in [
        router
            .set_weight(10)
            .await
            .expect_err("set_weight on an unknown server"),
        router
            .weight()
            .await
            .expect_err("weight of an unknown server"),
    ] {
        let RouterError::Rejected {
            address,
            command,
            answer,
        } = &error
        else {
            panic!("expected Rejected, got {error:?}");
        };
        assert_eq!(address, &rig.haproxy.admin_addr().to_string());
        assert!(command.contains("app/nosuch"), "{command}");
        assert_eq!(answer, "No such server.");
        let message = error.to_string();
        assert!(
            message.contains("app/nosuch") && message.contains("No such server."),
            "{message}"
        );
    }
    // set_weight(10) sets the stable server first (90), then fails on the canary;
    // the release driver retries or rolls back, both absolute, so that is recoverable.
    assert_eq!(rig.get_weight("stable").await, "90 (initial 100)");
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_unreachable() {
    let address = format!("127.0.0.1:{}", free_port());
    let router = Haproxy::new(HaproxyCanary {
        address: address.clone(),
        backend: BACKEND.into(),
        stable: "stable".into(),
        canary: "canary".into(),
    });
    for error in [
        router.set_weight(10).await.expect_err("set_weight"),
        router.weight().await.expect_err("weight"),
    ] {
        match &error {
            RouterError::Unreachable {
                address: at,
                source,
            } => {
                assert_eq!(at, &address);
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert!(error.to_string().contains(&address), "{error}");
    }
}

#[tokio::test]
async fn the_runtime_api_works_over_a_unix_socket() {
    let rig = Rig::start(BACKEND).await;
    let path = rig.haproxy.admin_socket_path().display().to_string();
    let prefixed = rig.router(format!("unix:{path}"));
    let bare = rig.router(path);

    prefixed
        .set_weight(30)
        .await
        .expect("set weight over unix:");
    assert_eq!(bare.weight().await.expect("weight over a bare path"), 30);
    assert_eq!(
        rig.tcp_router().weight().await.expect("weight over TCP"),
        30
    );
    assert_eq!(rig.get_weight("canary").await, "30 (initial 0)");
}
