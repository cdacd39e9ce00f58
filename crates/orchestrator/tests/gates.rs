//! Gates, notifications, environments in order and gradual rollback, through whole
//! releases against a real flag server and a real HTTP receiver for the webhooks.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use support::flag_server::{boolean_flag, FlagServer, ENV};
use switchyard_core::model::Serve;
use switchyard_orchestrator::analysis::MetricSources;
use switchyard_orchestrator::driver::{Config, Orchestrator};
use switchyard_orchestrator::flags::AdminFlags;
use switchyard_orchestrator::machine::{Event, Phase, ServicePhase};
use switchyard_orchestrator::plan::Plan;
use switchyard_orchestrator::store::embedded::EmbeddedStore;
use switchyard_orchestrator::store::Release;
use switchyard_testkit::eventually;
use switchyard_testkit::haproxy::Canary;
use switchyard_testkit::http::{serve, Served};

const DEADLINE: Duration = Duration::from_secs(60);

/// Records every POST per path and answers with a status set per path (200 unless told).
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    /// path → statuses to answer, in order; the last one repeats.
    answers: Arc<Mutex<HashMap<String, Vec<u16>>>>,
}

impl Receiver {
    async fn start() -> (Receiver, Served) {
        let receiver = Receiver::default();
        let app = Router::new()
            .route("/{path}", post(record))
            .with_state(receiver.clone());
        let served = serve(app).await;
        (receiver, served)
    }

    fn answer(&self, path: &str, statuses: &[u16]) {
        self.answers
            .lock()
            .unwrap()
            .insert(path.into(), statuses.to_vec());
    }

    fn calls(&self, path: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, body)| body.clone())
            .collect()
    }
}

async fn record(
    State(receiver): State<Receiver>,
    Path(path): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    receiver.calls.lock().unwrap().push((path.clone(), body));
    let mut answers = receiver.answers.lock().unwrap();
    let status = match answers.get_mut(&path) {
        Some(list) if list.len() > 1 => list.remove(0),
        Some(list) => list[0],
        None => 200,
    };
    StatusCode::from_u16(status).unwrap()
}

async fn orchestrator(flags: &FlagServer, dir: &std::path::Path) -> Orchestrator {
    Orchestrator::open(Config {
        store: Arc::new(EmbeddedStore::open(dir).unwrap()),
        flags: Arc::new(AdminFlags::new(flags.admin.clone())),
        metrics: MetricSources::standard(&reqwest::Client::new(), Some(&flags.admin)),
        http: reqwest::Client::new(),
        poll: Duration::from_millis(50),
        attempts: 2,
        owner: switchyard_orchestrator::driver::owner_id(),
        lease: Duration::from_secs(10),
        rollback_window: switchyard_orchestrator::driver::DEFAULT_ROLLBACK_WINDOW,
    })
    .await
    .unwrap()
}

async fn wait_for(
    o: &Orchestrator,
    name: &str,
    what: &str,
    done: impl Fn(&Release) -> bool,
) -> Release {
    eventually(DEADLINE, &format!("`{name}` to reach {what}"), || async {
        let release = o.get(name).await.expect("release exists");
        if done(&release) {
            return Ok(release);
        }
        let timeline: Vec<&str> = release
            .state
            .timeline
            .iter()
            .map(|e| e.message.as_str())
            .collect();
        Err(format!("{timeline:#?}"))
    })
    .await
}

fn messages(release: &Release) -> Vec<String> {
    release
        .state
        .timeline
        .iter()
        .map(|e| e.message.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_hold_the_release_and_notifications_tell_every_step() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let (receiver, served) = Receiver::start().await;
    let base = served.url();
    // The pre-release gate fails once, then passes on its retry; step 2's gate says no
    // until a person has looked (503 twice = both attempts), then yes.
    receiver.answer("pre", &[503, 200]);
    receiver.answer("step", &[503, 503, 200]);
    let dir = tempfile::tempdir().unwrap();
    let o = orchestrator(&flags, dir.path()).await;
    let plan = Plan::from_yaml(&format!(
        r#"
name: gated
environment: {ENV}
services: [ {{ name: checkout, flags: [new-checkout] }} ]
steps:
  - weight: 10
    hold: 100ms
  - weight: 50
    hold: 100ms
    gates: [ {{ webhook: "{base}/step", retries: 1, timeout: 2s }} ]
analysis: {{ interval: 100ms }}
gates:
  pre: [ {{ webhook: "{base}/pre", retries: 1 }}, {{ command: "test -n \"$SWITCHYARD_GATE_CONTEXT\"" }} ]
notify:
  - {{ webhook: "{base}/hook" }}
  - {{ webhook: "{base}/slack", format: slack, events: [promoted] }}
"#
    ))
    .unwrap();
    o.apply(plan).await.unwrap();

    let paused = wait_for(&o, "gated", "a paused step 2", |r| {
        r.state.services[0].phase == ServicePhase::Paused
    })
    .await;
    assert_eq!(
        paused.state.services[0].weight, 10,
        "step 2's weight waits for its gate"
    );
    assert!(
        messages(&paused)
            .iter()
            .any(|m| m.starts_with("step 2: gate failed: webhook ")
                && m.contains("/step answered 503 Service Unavailable (after 2 attempts)")),
        "{:#?}",
        messages(&paused)
    );
    let gate_calls = receiver.calls("step");
    assert_eq!(gate_calls.len(), 2);
    assert_eq!(gate_calls[0]["release"], "gated");
    assert_eq!(gate_calls[0]["step"], 2);
    assert_eq!(gate_calls[0]["weight"], 50);

    o.command("gated", Event::Resume { by: "ana".into() })
        .await
        .unwrap();
    let release = wait_for(&o, "gated", "its end", |r| r.state.phase.is_terminal()).await;
    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{:#?}",
        messages(&release)
    );
    assert_eq!(
        receiver.calls("pre").len(),
        2,
        "the pre gate was retried once"
    );
    assert_eq!(
        flags.flag("new-checkout").await.default,
        Serve::Variant("on".into())
    );

    // Every event reached the JSON target, in order; only `promoted` the Slack one.
    // Notifications are sent after the state that causes them is saved, so the last
    // ones may still be on their way when the release is seen finished.
    let (events, slack) = eventually(
        Duration::from_secs(30),
        "the promotion's notifications",
        || async {
            let events: Vec<String> = receiver
                .calls("hook")
                .iter()
                .map(|c| c["event"].as_str().unwrap_or_default().to_owned())
                .collect();
            let slack = receiver.calls("slack");
            let arrived =
                events.last().map(String::as_str) == Some("promoted") && !slack.is_empty();
            if arrived {
                Ok((events, slack))
            } else {
                Err(format!("hook {events:?}, slack {slack:?}"))
            }
        },
    )
    .await;
    assert_eq!(events, ["started", "step", "paused", "step", "promoted"]);
    assert_eq!(slack.len(), 1);
    assert_eq!(
        slack[0]["text"],
        format!(":white_check_mark: *gated* ({ENV}): release promoted in `{ENV}`")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_runs_in_staging_then_production_after_approval() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    flags.admin.create_env("staging").await.unwrap();
    flags
        .admin
        .put_flag("staging", &boolean_flag("new-checkout"), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = orchestrator(&flags, dir.path()).await;
    let plan = Plan::from_yaml(&format!(
        "name: envs\nenvironments: [staging, {ENV}]\nservices: [ {{ name: checkout, flags: [new-checkout] }} ]\nsteps: [ {{ weight: 50, hold: 100ms }} ]\nanalysis: {{ interval: 100ms }}\n"
    ))
    .unwrap();
    o.apply(plan).await.unwrap();
    let waiting = wait_for(&o, "envs", "staging promoted", |r| {
        r.state.awaiting_environment
    })
    .await;
    assert_eq!(waiting.state.phase, Phase::Running);
    let staging = flags
        .admin
        .flag("staging", "new-checkout")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(staging.value.default, Serve::Variant("on".into()));
    assert_eq!(
        flags.flag("new-checkout").await.default,
        Serve::Variant("off".into()),
        "production waits for the approval"
    );

    o.command(
        "envs",
        Event::Approve {
            service: None,
            by: "ana".into(),
        },
    )
    .await
    .unwrap();
    let release = wait_for(&o, "envs", "its end", |r| r.state.phase.is_terminal()).await;
    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{:#?}",
        messages(&release)
    );
    assert_eq!(
        flags.flag("new-checkout").await.default,
        Serve::Variant("on".into())
    );
    let m = messages(&release);
    let staged = m
        .iter()
        .position(|m| m == &format!("promoted in `staging`; awaiting approval for `{ENV}`"));
    let approved = m
        .iter()
        .position(|m| m == &format!("approved by ana: on to `{ENV}`"));
    assert!(staged.is_some() && staged < approved, "{m:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gradual_rollback_steps_haproxy_down_after_killing_the_flag() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let canary = Canary::start("checkout").await;
    let dir = tempfile::tempdir().unwrap();
    let o = orchestrator(&flags, dir.path()).await;
    let plan = Plan::from_yaml(&format!(
        "name: gradual\nenvironment: {ENV}\nservices:\n  - name: checkout\n    canary: {}\n    flags: [new-checkout]\nsteps: [ {{ weight: 60 }}, {{ approve: true }} ]\nanalysis: {{ interval: 1s }}\non_failure: {{ rollback: gradual, step: 25, interval: 200ms }}\n",
        canary.plan_yaml()
    ))
    .unwrap();
    o.apply(plan).await.unwrap();
    wait_for(&o, "gradual", "awaiting approval", |r| {
        r.state.services[0].phase == ServicePhase::AwaitingApproval
    })
    .await;
    assert_eq!(canary.weights().await, (60, 40));

    // Watch haproxy's weights while the abort rolls back.
    let mut watch = o.watch("gradual").await.unwrap();
    o.command(
        "gradual",
        Event::Abort {
            by: "ana".into(),
            reason: "latency".into(),
        },
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !watch.borrow().state.phase.is_terminal() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollback did not end: {seen:?}"
        );
        let w = watch.borrow().state.services[0].weight;
        if seen.last() != Some(&w) {
            seen.push(w);
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), watch.changed()).await;
    }
    let release = watch.borrow().clone();
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{:#?}",
        messages(&release)
    );
    assert_eq!(canary.weights().await, (0, 100));
    assert!(!flags.flag("new-checkout").await.enabled);
    let m = messages(&release);
    let kill = m
        .iter()
        .position(|m| m == "flags killed")
        .expect("flags killed");
    let steps: Vec<usize> = [
        "rolling back: weight 35",
        "rolling back: weight 10",
        "rolled back: weight 0, flags killed",
    ]
    .iter()
    .map(|s| {
        m.iter()
            .position(|m| m == s)
            .unwrap_or_else(|| panic!("no `{s}` in {m:#?}"))
    })
    .collect();
    assert!(
        kill < steps[0] && steps[0] < steps[1] && steps[1] < steps[2],
        "{m:#?}"
    );
}
