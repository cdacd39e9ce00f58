//! The `guard` metric against a real flag server and real SDK clients: users are served
//! a 50/50 rollout, track an event at a rate chosen per variant, and the guard reads the
//! counts the clients sent and judges them.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use support::flag_server::{boolean_flag, FlagServer, ENV};
use switchyard_core::Flag;
use switchyard_orchestrator::analysis::guard::{measurement, Arm, Guard, GuardOutcome};
use switchyard_orchestrator::analysis::{MetricError, Verdict};
use switchyard_orchestrator::plan::{GuardQuery, OnNoData};
use switchyard_sdk::admin::{TokenKind, VariantCounts};
use switchyard_sdk::{Client, Context};
use switchyard_testkit::eventually;

const FLAG: &str = "new-payment-flow";
const EVENT: &str = "checkout_error";

fn query() -> GuardQuery {
    GuardQuery {
        flag: FLAG.into(),
        event: EVENT.into(),
        max_relative_increase: 0.10,
        confidence: 0.95,
        min_samples: 100,
        window: Duration::from_secs(600),
    }
}

/// The flag ramped to half of the users: its default serve is a 50/50 rollout.
fn half_on() -> Flag {
    let mut flag = serde_json::to_value(boolean_flag(FLAG)).expect("flag JSON");
    flag["default"] = json!({ "rollout": { "split": [
        { "variant": "on", "weight": 50_000 },
        { "variant": "off", "weight": 50_000 },
    ] } });
    serde_json::from_value(flag).expect("a valid flag")
}

/// `users` distinct users evaluate the flag once each; within each variant, every
/// `every_on`-th (`every_off`-th) user served it tracks the event — deterministic rates
/// of 1/every. Returns the counts the server must end up with.
async fn run_users(
    server: &FlagServer,
    users: usize,
    every_on: u64,
    every_off: u64,
) -> BTreeMap<String, VariantCounts> {
    server
        .admin
        .put_flag(ENV, &half_on(), None)
        .await
        .expect("ramp the flag");
    serve_users(server, users, every_on, every_off).await
}

/// Like [`run_users`] with the flag as it is on the server.
async fn serve_users(
    server: &FlagServer,
    users: usize,
    every_on: u64,
    every_off: u64,
) -> BTreeMap<String, VariantCounts> {
    let token = server
        .admin
        .create_token("guard-test-sdk", TokenKind::Sdk, Some(ENV))
        .await
        .expect("sdk token");
    // Counts leave the client on close(), not on an interval.
    let client = Client::builder(&server.base, &token.token)
        .metrics_flush_interval(Duration::from_secs(3600))
        .build()
        .await
        .expect("client builds");
    let mut expected: BTreeMap<String, VariantCounts> = BTreeMap::new();
    for i in 0..users {
        let ctx = Context::new(format!("user-{i}"));
        let variant = client
            .variant(FLAG, &ctx)
            .name
            .expect("a variant is served");
        let counts = expected.entry(variant.clone()).or_default();
        counts.exposures += 1;
        let every = if variant == "on" { every_on } else { every_off };
        if counts.exposures % every == 0 {
            client.track(EVENT, &ctx);
            *counts.events.entry(EVENT.to_owned()).or_default() += 1;
        }
    }
    client.close().await;
    expected
}

/// Polls the server until it shows `expected` for the flag, failing after 20 s with
/// what it last saw.
async fn wait_for_counts(server: &FlagServer, expected: &BTreeMap<String, VariantCounts>) {
    eventually(
        Duration::from_secs(20),
        &format!("the server to receive {expected:?}"),
        || async {
            let seen = server
                .admin
                .flag_metrics(ENV, FLAG, "10m")
                .await
                .expect("flag metrics");
            if &seen == expected {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
    .await;
}

fn arm(counts: &BTreeMap<String, VariantCounts>, variant: &str) -> Arm {
    let c = counts.get(variant).cloned().unwrap_or_default();
    Arm {
        exposures: c.exposures,
        events: c.events.get(EVENT).copied().unwrap_or(0),
    }
}

fn guard(server: &FlagServer) -> Guard {
    Guard::new(query(), server.admin.clone(), ENV)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regression_in_the_ramped_variant_fails() {
    let server = FlagServer::start(&[FLAG]).await;
    // 10 % of the users served `on` hit the error, 1 % of those served `off`.
    let expected = run_users(&server, 2000, 10, 100).await;
    wait_for_counts(&server, &expected).await;
    let (treatment, control) = (arm(&expected, "on"), arm(&expected, "off"));
    // The rollout split the users roughly in half.
    for a in [treatment, control] {
        assert!((800..=1200).contains(&a.exposures), "{expected:?}");
    }

    let guard = guard(&server);
    let GuardOutcome::Tested(result) = guard.check().await.expect("check") else {
        panic!("no verdict on {expected:?}");
    };
    assert_eq!((result.treatment, result.control), (treatment, control));
    assert!(result.fails, "{result:?}");
    assert!(result.z > 5.0, "{result:?}");
    assert!(
        (result.threshold_z - 1.6448536269514715).abs() < 1e-9,
        "{result:?}"
    );
    let expected_increase = (treatment.events as f64 / treatment.exposures as f64)
        / (control.events as f64 / control.exposures as f64)
        - 1.0;
    assert!((result.relative_increase - expected_increase).abs() < 1e-9);
    assert!(result.relative_increase > 5.0, "{result:?}");

    assert_eq!(
        guard.measure().await.expect("measure"),
        Some(result.relative_increase)
    );
    let m = measurement(
        "checkout-errors",
        &query(),
        Ok(GuardOutcome::Tested(result)),
        OnNoData::Fail,
    );
    assert_eq!(m.verdict, Verdict::Fail);
    let explained = m.explain();
    assert!(
        explained.contains(&format!(
            "treatment {}/{}",
            treatment.events, treatment.exposures
        )) && explained.contains("the increase exceeds 10 % at 95 % confidence"),
        "{explained}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_rates_pass() {
    let server = FlagServer::start(&[FLAG]).await;
    let expected = run_users(&server, 2000, 20, 20).await;
    wait_for_counts(&server, &expected).await;

    let guard = guard(&server);
    let GuardOutcome::Tested(result) = guard.check().await.expect("check") else {
        panic!("no verdict on {expected:?}");
    };
    assert_eq!(
        (result.treatment, result.control),
        (arm(&expected, "on"), arm(&expected, "off"))
    );
    assert!(!result.fails, "{result:?}");
    assert!(result.z < 1.0, "{result:?}");
    assert!(result.relative_increase.abs() < 0.1, "{result:?}");
    let m = measurement(
        "checkout-errors",
        &query(),
        guard.check().await,
        OnNoData::Fail,
    );
    assert_eq!((m.verdict, m.error), (Verdict::Pass, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_exposures_than_min_samples_are_no_data() {
    let server = FlagServer::start(&[FLAG]).await;
    // About 75 users per arm: a big difference, but below min_samples (100).
    let expected = run_users(&server, 150, 2, 100).await;
    wait_for_counts(&server, &expected).await;
    let (treatment, control) = (arm(&expected, "on"), arm(&expected, "off"));
    assert!(treatment.exposures < 100 || control.exposures < 100);

    let guard = guard(&server);
    assert_eq!(
        guard.check().await.expect("check"),
        GuardOutcome::NoData { treatment, control }
    );
    assert_eq!(guard.measure().await.expect("measure"), None);
    let m = measurement(
        "checkout-errors",
        &query(),
        guard.check().await,
        OnNoData::Ignore,
    );
    assert_eq!((m.verdict, m.value), (Verdict::Ignored, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_flag_is_a_flag_server_error() {
    let server = FlagServer::start(&[FLAG]).await;
    let mut q = query();
    q.flag = "no-such-flag".into();
    let guard = Guard::new(q.clone(), server.admin.clone(), ENV);
    let error = guard.check().await.expect_err("unknown flag");
    assert!(
        matches!(
            &error,
            MetricError::FlagServer {
                source: switchyard_sdk::Error::Api { status: 404, .. },
                ..
            }
        ),
        "{error:?}"
    );
    let m = measurement("checkout-errors", &q, Err(error), OnNoData::Pass);
    assert_eq!(m.verdict, Verdict::Fail);
    assert_eq!(
        m.explain(),
        "checkout-errors: flag server: reading flag `no-such-flag` in `production`: admin API \
         404: not_found: flag `no-such-flag` does not exist in `production`"
    );
}

/// A whole release guarded only by the SDK's own events: the orchestrator ramps the
/// flag to 50 %, users of the new variant fail ten times as often, and the guard rolls
/// the release back — no external monitoring involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_rolled_back_by_its_guard_metric() {
    use std::sync::Arc;
    use switchyard_orchestrator::driver::{Config, Orchestrator};
    use switchyard_orchestrator::flags::AdminFlags;
    use switchyard_orchestrator::machine::{Phase, ServicePhase};
    use switchyard_orchestrator::plan::Plan;
    use switchyard_orchestrator::store::embedded::EmbeddedStore;

    let server = FlagServer::start(&[FLAG]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        Arc::new(EmbeddedStore::open(dir.path()).unwrap()),
        Arc::new(AdminFlags::new(server.admin.clone())),
    );
    config.poll = Duration::from_millis(100);
    let orchestrator = Orchestrator::open(config).await.unwrap();
    let plan = Plan::from_yaml(&format!(
        "name: guarded\nenvironment: {ENV}\nservices: [ {{ name: payments, flags: [{FLAG}] }} ]\nsteps: [ {{ weight: 50 }}, {{ approve: true }} ]\nanalysis:\n  interval: 500ms\n  metrics:\n    - name: checkout-errors\n      guard: {{ flag: {FLAG}, event: {EVENT}, max_relative_increase: 0.1 }}\n      on_no_data: pass\n"
    ))
    .unwrap();
    orchestrator.apply(plan).await.unwrap();

    let at_half = |r: &switchyard_orchestrator::store::Release| r.state.services[0].weight == 50;
    eventually(
        Duration::from_secs(60),
        "the flag to reach 50 %",
        || async {
            if !at_half(&orchestrator.get("guarded").await.unwrap()) {
                None
            } else {
                Some(())
            }
        },
    )
    .await;
    // 10 % of the new variant's users fail, 1 % of the others.
    serve_users(&server, 2000, 10, 100).await;

    let release = eventually(Duration::from_secs(60), "a verdict", || async {
        let release = orchestrator.get("guarded").await.unwrap();
        if release.state.phase.is_terminal() {
            Ok(release)
        } else {
            Err(format!("{:#?}", release.state.timeline))
        }
    })
    .await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{:#?}",
        release.state.timeline
    );
    assert_eq!(release.state.services[0].phase, ServicePhase::RolledBack);
    let reason = release.state.reason.unwrap();
    assert!(
        reason.contains("checkout-errors") && reason.contains("exceeds 10 % at 95 % confidence"),
        "{reason}"
    );
    assert!(
        !server.flag(FLAG).await.enabled,
        "the rollback killed the flag"
    );
}
