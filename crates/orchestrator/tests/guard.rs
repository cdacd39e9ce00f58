//! The `guard` metric against a real flag server and real SDK clients: users evaluate a
//! ramped flag and track an event at a rate chosen per variant (some retrying), the SDK
//! sends sketches of the distinct units, and the guard judges them — read directly, and
//! driving real releases to promotion or rollback.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::flag_server::{boolean_flag, FlagServer, ENV};
use switchyard_core::Flag;
use switchyard_orchestrator::analysis::guard::{measurement, Guard, GuardOutcome};
use switchyard_orchestrator::analysis::{Verdict, WeightWindow};
use switchyard_orchestrator::driver::{Config, Orchestrator};
use switchyard_orchestrator::flags::AdminFlags;
use switchyard_orchestrator::machine::{Phase, ServicePhase};
use switchyard_orchestrator::plan::{GuardQuery, OnNoData, Plan};
use switchyard_orchestrator::store::embedded::EmbeddedStore;
use switchyard_orchestrator::store::Release;
use switchyard_sdk::admin::TokenKind;
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
        value: false,
        mixture: 1.0,
        window: None,
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

/// An SDK client that sends its counts every 100 ms.
async fn sdk_client(server: &FlagServer, name: &str) -> Client {
    let token = server
        .admin
        .create_token(name, TokenKind::Sdk, Some(ENV))
        .await
        .expect("sdk token");
    Client::builder(&server.base, &token.token)
        .metrics_flush_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("client builds")
}

/// Whether user `i` has the event at a rate of `per_mille` / 1000: a fixed hash of `i`,
/// independent of the flag's bucketing.
fn has_event(i: u64, per_mille: u64) -> bool {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 1000 < per_mille
}

/// How simulated users behave.
#[derive(Debug, Clone, Copy)]
struct Users {
    /// Event rate of users served `on`, per mille.
    on: u64,
    /// Event rate of users served `off`, per mille.
    off: u64,
    /// A user with the event evaluates and tracks it this many times (retries).
    retries: u32,
}

impl Users {
    /// User `i` evaluates the flag and, at its variant's rate, tracks the event
    /// (`retries` times, evaluating again each time). Returns the variant.
    fn visit(&self, client: &Client, i: u64) -> String {
        let ctx = Context::new(format!("user-{i}"));
        let variant = client
            .variant(FLAG, &ctx)
            .name
            .expect("a variant is served");
        let rate = if variant == "on" { self.on } else { self.off };
        if has_event(i, rate) {
            for attempt in 0..self.retries {
                if attempt > 0 {
                    client.variant(FLAG, &ctx);
                }
                client.track(EVENT, &ctx);
            }
        }
        variant
    }
}

/// New users arriving until dropped: about 5 000 a second, from two SDK clients (two
/// application instances), so the units merge across them.
struct Traffic {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    async fn start(server: &FlagServer, users: Users) -> Traffic {
        let clients = [
            sdk_client(server, "guard-app-1").await,
            sdk_client(server, "guard-app-2").await,
        ];
        let stop = Arc::new(AtomicBool::new(false));
        let running = stop.clone();
        let task = tokio::spawn(async move {
            let mut i = 0u64;
            while !running.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    users.visit(&clients[(i % 2) as usize], i);
                    i += 1;
                }
                // Pacing, not synchronisation: about 5 000 users a second.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for client in clients {
                client.close().await;
            }
        });
        Traffic { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("traffic task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_not_evaluations_reach_the_guard_and_a_regression_fails() {
    let server = FlagServer::start(&[FLAG]).await;
    server
        .admin
        .put_flag(ENV, &half_on(), None)
        .await
        .expect("ramp the flag");
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    // 2 000 users; 10 % of those served `on` fail, 1 % of the others, each failing user
    // retrying three times: 3 exposures and 3 events, but one unit.
    let users = Users {
        on: 100,
        off: 10,
        retries: 3,
    };
    let (mut on, mut off, mut on_events, mut off_events) = (0u64, 0u64, 0u64, 0u64);
    let clients = [
        sdk_client(&server, "app-1").await,
        sdk_client(&server, "app-2").await,
    ];
    for i in 0..2000u64 {
        let variant = users.visit(&clients[(i % 2) as usize], i);
        let (count, events, rate) = if variant == "on" {
            (&mut on, &mut on_events, users.on)
        } else {
            (&mut off, &mut off_events, users.off)
        };
        *count += 1;
        *events += u64::from(has_event(i, rate));
    }
    for client in clients {
        client.close().await;
    }
    assert!(
        (800..=1200).contains(&on),
        "the rollout split the users: {on} on"
    );

    let weight = WeightWindow {
        since: since.timestamp_millis() as u64,
        share: 0.5,
        weight_steps: 1,
    };
    let guard = Guard::new(query(), server.admin.clone(), ENV);
    let tested = eventually(
        Duration::from_secs(20),
        "the guard to see every unit",
        || async {
            match guard.check(Some(&weight)).await {
                Ok(GuardOutcome::Tested(t))
                    if t.treatment.units.units + t.control.units.units >= 1990 =>
                {
                    Ok(t)
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    // Distinct units, within the sketch's error (exact-ish at this size): the retries
    // are not counted again.
    let near =
        |seen: u64, truth: u64| (seen as f64 - truth as f64).abs() <= truth as f64 * 0.01 + 1.0;
    assert!(near(tested.treatment.units.units, on), "{tested:?} vs {on}");
    assert!(near(tested.control.units.units, off), "{tested:?} vs {off}");
    assert!(
        near(tested.treatment.units.with_event, on_events),
        "{tested:?} vs {on_events}"
    );
    assert!(
        near(tested.control.units.with_event, off_events),
        "{tested:?} vs {off_events}"
    );
    assert!(tested.evidence.fails, "{tested:?}");
    assert!(
        !tested.mismatch(),
        "a fair split is no mismatch: {tested:?}"
    );

    let m = measurement(
        "checkout-errors",
        &query(),
        Ok(GuardOutcome::Tested(tested)),
        OnNoData::Pass,
    );
    assert_eq!(m.verdict, Verdict::Fail);
    assert!(
        m.explain()
            .contains("the increase exceeds 10 % at 95 % confidence"),
        "{}",
        m.explain()
    );

    // Counts that began before `since` are not read: a later start sees nothing yet.
    let later = WeightWindow {
        since: (chrono::Utc::now() + chrono::Duration::seconds(5)).timestamp_millis() as u64,
        ..weight
    };
    assert!(matches!(
        guard.check(Some(&later)).await.expect("check"),
        GuardOutcome::NoData { .. }
    ));
}

async fn orchestrator(server: &FlagServer) -> (Orchestrator, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        Arc::new(EmbeddedStore::open(dir.path()).unwrap()),
        Arc::new(AdminFlags::new(server.admin.clone())),
    );
    config.poll = Duration::from_millis(100);
    (Orchestrator::open(config).await.unwrap(), dir)
}

async fn finished(orchestrator: &Orchestrator, name: &str) -> Release {
    eventually(
        Duration::from_secs(120),
        "the release to finish",
        || async {
            let release = orchestrator.get(name).await.unwrap();
            if release.state.phase.is_terminal() {
                Ok(release)
            } else {
                Err(format!("{:#?}", release.state.timeline))
            }
        },
    )
    .await
}

/// A healthy canary whose failing users retry three times passes every look of a whole
/// 10/25/50 % ramp — the per-evaluation test failed most such releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_ramp_with_retrying_users_passes_every_look() {
    let server = FlagServer::start(&[FLAG]).await;
    let (orchestrator, _dir) = orchestrator(&server).await;
    let traffic = Traffic::start(
        &server,
        Users {
            on: 20,
            off: 20,
            retries: 3,
        },
    )
    .await;
    let plan = Plan::from_yaml(&format!(
        "name: healthy\nenvironment: {ENV}\nservices: [ {{ name: payments, flags: [{FLAG}] }} ]\nsteps: [ {{ weight: 10, hold: 4s }}, {{ weight: 25, hold: 4s }}, {{ weight: 50, hold: 4s }} ]\nanalysis:\n  interval: 1s\n  metrics:\n    - name: checkout-errors\n      guard: {{ flag: {FLAG}, event: {EVENT}, max_relative_increase: 0, confidence: 0.99 }}\n      on_no_data: pass\n"
    ))
    .unwrap();
    orchestrator.apply(plan).await.unwrap();
    let release = finished(&orchestrator, "healthy").await;
    traffic.stop().await;

    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{:#?}",
        release.state.timeline
    );
    let looks: Vec<_> = release
        .state
        .timeline
        .iter()
        .flat_map(|entry| &entry.measurements)
        .filter(|m| m.metric == "checkout-errors")
        .collect();
    assert!(
        looks.iter().all(|m| m.verdict == Verdict::Pass),
        "{looks:#?}"
    );
    let tested = looks.iter().filter(|m| m.guard.is_some()).count();
    assert!(tested >= 6, "the test ran at most looks: {looks:#?}");
    for m in looks.iter().filter_map(|m| m.guard.as_ref()) {
        let srm = m.sample_ratio.expect("a sample-ratio check while ramping");
        assert!(srm.always_valid_p > 0.001, "{m:?}");
    }
}

/// A canary that doubles the error rate is rolled back by the guard alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_doubling_the_error_rate_is_rolled_back() {
    let server = FlagServer::start(&[FLAG]).await;
    let (orchestrator, _dir) = orchestrator(&server).await;
    let traffic = Traffic::start(
        &server,
        Users {
            on: 100,
            off: 50,
            retries: 1,
        },
    )
    .await;
    let plan = Plan::from_yaml(&format!(
        "name: doubled\nenvironment: {ENV}\nservices: [ {{ name: payments, flags: [{FLAG}] }} ]\nsteps: [ {{ weight: 50, hold: 90s }} ]\nanalysis:\n  interval: 1s\n  metrics:\n    - name: checkout-errors\n      guard: {{ flag: {FLAG}, event: {EVENT}, max_relative_increase: 0.1 }}\n      on_no_data: pass\n"
    ))
    .unwrap();
    orchestrator.apply(plan).await.unwrap();
    let release = finished(&orchestrator, "doubled").await;
    traffic.stop().await;

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
