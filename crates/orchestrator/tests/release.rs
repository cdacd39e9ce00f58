//! Whole releases against real processes: the flag server, `haproxy` whose weights the
//! orchestrator sets through its runtime API (checked there and by counting requests
//! sent through it), and `prometheus` scraping a test exporter.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use support::flag_server::{FlagServer, ENV};
use support::release::{
    orchestrator, orchestrator_measuring, position, timeline, wait_for, wait_until_over, Monitoring,
};
use switchyard_core::model::Serve;
use switchyard_orchestrator::analysis::{
    judge, Measurement, MetricKind, MetricRequest, MetricSource, MetricSources, Verdict,
};
use switchyard_orchestrator::machine::{Event, Phase, ServicePhase};
use switchyard_orchestrator::plan::Plan;
use switchyard_testkit::haproxy::Canary;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_and_its_flag_ramp_together_to_100() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let canary = Canary::start("checkout").await;
    let monitoring = Monitoring::start("checkout", 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;

    let plan = Plan::from_yaml(&format!(
        "name: checkout-v3\nenvironment: {ENV}\nservices:\n  - name: checkout\n    canary: {}\n    flags: [new-checkout]\nsteps:\n  - weight: 20\n    hold: 3s\n  - weight: 60\n    hold: 1s\n{}",
        canary.plan_yaml(),
        monitoring.analysis_yaml()
    ))
    .unwrap();
    let (_, created) = orchestrator.apply(plan.clone()).await.unwrap();
    assert!(created);
    // Applying the same plan again (a retried CI job) changes nothing.
    let (_, created) = orchestrator.apply(plan).await.unwrap();
    assert!(!created);

    // At step 1 both the router and the flag carry 20 %.
    wait_for(&orchestrator, "checkout-v3", "weight 20", |r| {
        r.state.services[0].weight == 20
    })
    .await;
    assert_eq!(canary.weights().await, (20, 80));
    let share = canary.canary_share(100).await;
    assert!(
        (8..=32).contains(&share),
        "{share} of 100 requests reached the canary at 20 %"
    );
    let Serve::Rollout(rollout) = flags.flag("new-checkout").await.default else {
        panic!("the default serve is not a rollout at step 1");
    };
    assert_eq!(rollout.split[0].variant, "on");
    assert_eq!(rollout.split[0].weight, 20_000);

    let release = wait_until_over(&orchestrator, "checkout-v3").await;
    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{}",
        timeline(&release)
    );
    assert_eq!(canary.weights().await, (100, 0));
    assert_eq!(canary.canary_share(30).await, 30);
    let flag = flags.flag("new-checkout").await;
    assert!(flag.enabled);
    assert_eq!(flag.default, Serve::Variant("on".into()));
    assert_eq!(flag.rules[0].id, "staff", "targeted rules are kept");
    // Each step waited for a passing analysis measured by Prometheus.
    let analyses: Vec<_> = release
        .state
        .timeline
        .iter()
        .filter(|e| e.message == "analysis passed")
        .collect();
    assert!(analyses.len() >= 2, "{}", timeline(&release));
    assert_eq!(analyses[0].measurements[0].value, Some(0.0));
    assert!(
        position(&release, "checkout", "step 1: weight 20")
            < position(&release, "checkout", "step 2: weight 60")
    );
    drop(monitoring);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_breaching_its_error_rate_is_rolled_back() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let canary = Canary::start("checkout").await;
    let monitoring = Monitoring::start("checkout", 0.2).await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;

    let plan = Plan::from_yaml(&format!(
        "name: checkout-v4\nenvironment: {ENV}\nservices:\n  - name: checkout\n    canary: {}\n    flags: [new-checkout]\nsteps:\n  - weight: 20\n  - weight: 60\n{}",
        canary.plan_yaml(),
        monitoring.analysis_yaml()
    ))
    .unwrap();
    orchestrator.apply(plan).await.unwrap();

    let release = wait_until_over(&orchestrator, "checkout-v4").await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{}",
        timeline(&release)
    );
    let reason = release.state.reason.clone().unwrap();
    assert!(
        reason.contains("error-rate 0.2 > max 0.05"),
        "the reason names the measurement: {reason}"
    );
    assert_eq!(release.state.services[0].phase, ServicePhase::RolledBack);
    // The canary got 20 % and no more, then nothing.
    assert!(position(&release, "checkout", "step 1: weight 20") > 0);
    assert!(!timeline(&release).contains("weight 60"));
    assert_eq!(canary.weights().await, (0, 100));
    assert_eq!(canary.canary_share(30).await, 0);
    let flag = flags.flag("new-checkout").await;
    assert!(!flag.enabled, "a rollback kills the flag");
    let audit = flags
        .admin
        .audit(&format!("env={ENV}&flag=new-checkout&limit=10"))
        .await
        .unwrap();
    let kill = audit
        .iter()
        .find(|e| e["action"] == "flag.kill")
        .expect("the kill is audited");
    assert!(
        kill.to_string().contains("checkout-v4 rolled back"),
        "the kill carries the release's reason: {kill}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependent_services_are_released_in_order() {
    let flags = FlagServer::start(&["enhanced-auth", "new-payment-flow"]).await;
    let auth = Canary::start("auth").await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;

    // payments is listed first but depends on auth.
    let plan = Plan::from_yaml(&format!(
        "name: two\nenvironment: {ENV}\nservices:\n  - name: payments\n    depends_on: [auth]\n    flags: [new-payment-flow]\n  - name: auth\n    canary: {}\n    flags: [enhanced-auth]\nsteps:\n  - weight: 50\n    hold: 1s\nanalysis: {{ interval: 1s }}\n",
        auth.plan_yaml()
    ))
    .unwrap();
    orchestrator.apply(plan).await.unwrap();

    // While auth ramps, payments waits and its flag is untouched.
    let during = wait_for(&orchestrator, "two", "auth at 50", |r| {
        r.state.services[1].weight == 50
    })
    .await;
    assert_eq!(
        during.state.services[0].phase,
        ServicePhase::WaitingForDependencies
    );
    assert_eq!(
        flags.flag("new-payment-flow").await.default,
        Serve::Variant("off".into())
    );

    let release = wait_until_over(&orchestrator, "two").await;
    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{}",
        timeline(&release)
    );
    assert!(
        position(&release, "auth", "promoted")
            < position(&release, "payments", "step 1: weight 50"),
        "{}",
        timeline(&release)
    );
    assert_eq!(auth.weights().await, (100, 0));
    for key in ["enhanced-auth", "new-payment-flow"] {
        assert_eq!(flags.flag(key).await.default, Serve::Variant("on".into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_killing_a_ramped_flag_aborts_the_release() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let canary = Canary::start("checkout").await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;
    let plan = Plan::from_yaml(&format!(
        "name: killed\nenvironment: {ENV}\nservices:\n  - name: checkout\n    canary: {}\n    flags: [new-checkout]\nsteps:\n  - weight: 30\n  - approve: true\n  - weight: 80\nanalysis: {{ interval: 1s }}\n",
        canary.plan_yaml()
    ))
    .unwrap();
    orchestrator.apply(plan).await.unwrap();
    wait_for(&orchestrator, "killed", "awaiting approval", |r| {
        r.state.services[0].phase == ServicePhase::AwaitingApproval
    })
    .await;
    assert_eq!(canary.weights().await, (30, 70));

    flags
        .admin
        .kill(ENV, "new-checkout", "checkout errors in the EU")
        .await
        .unwrap();
    let release = wait_until_over(&orchestrator, "killed").await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{}",
        timeline(&release)
    );
    // The person's reason travels into the release's.
    assert_eq!(
        release.state.reason.as_deref(),
        Some(
            "checkout: flag `new-checkout` was killed outside this release (by \
             bootstrap-admin: checkout errors in the EU)"
        )
    );
    assert_eq!(canary.weights().await, (0, 100));
    // Commands on a finished release are refused.
    let refused = orchestrator
        .command(
            "killed",
            Event::Approve {
                service: None,
                by: "t".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.to_string(), "the release is over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_orchestrator_resumes_without_repeating_a_step() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let canary = Canary::start("checkout").await;
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::from_yaml(&format!(
        "name: resumed\nenvironment: {ENV}\nservices:\n  - name: checkout\n    canary: {}\n    flags: [new-checkout]\nsteps:\n  - weight: 10\n  - approve: true\n  - weight: 50\n    hold: 1s\nanalysis: {{ interval: 1s }}\n",
        canary.plan_yaml()
    ))
    .unwrap();
    {
        let first = orchestrator(&flags, dir.path()).await;
        first.apply(plan).await.unwrap();
        wait_for(&first, "resumed", "awaiting approval", |r| {
            r.state.services[0].phase == ServicePhase::AwaitingApproval
        })
        .await;
        // Stops its tasks between transitions, as a crash would.
        first.shutdown().await;
    }
    let second = orchestrator(&flags, dir.path()).await;
    // The timeline explains the gap: the second orchestrator says it took over.
    let resumed = wait_for(&second, "resumed", "the adoption entry", |r| {
        r.state
            .timeline
            .iter()
            .any(|e| e.message.starts_with("resumed after restart"))
    })
    .await;
    let adopted = resumed
        .state
        .timeline
        .iter()
        .filter(|e| e.message.starts_with("resumed after restart"))
        .count();
    assert_eq!(adopted, 1, "{}", timeline(&resumed));
    assert_eq!(resumed.state.phase, Phase::Running);
    assert_eq!(
        resumed.state.services[0].phase,
        ServicePhase::AwaitingApproval
    );
    assert_eq!(resumed.state.services[0].weight, 10);
    second
        .command(
            "resumed",
            Event::Approve {
                service: None,
                by: "ana".into(),
            },
        )
        .await
        .unwrap();
    let release = wait_until_over(&second, "resumed").await;
    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{}",
        timeline(&release)
    );
    assert_eq!(canary.weights().await, (100, 0));
    // The flag was written once per weight (10, 50, 100) after its creation: nothing
    // was applied twice across the restart.
    let audit = flags
        .admin
        .audit(&format!("env={ENV}&flag=new-checkout&limit=100"))
        .await
        .unwrap();
    let writes = audit.iter().filter(|e| e["action"] == "flag.put").count();
    assert_eq!(writes, 1 + 3, "{audit:#?}");
}

/// Issue 16, item 4: a release through several environments shows the one it is in, and
/// a person's kill of its flag there is seen (the watch used to look at no environment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_environment_release_watches_the_environment_it_is_in() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    flags.admin.create_env("staging").await.unwrap();
    flags
        .admin
        .put_flag(
            "staging",
            &support::flag_server::boolean_flag("new-checkout"),
            None,
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;
    let plan = Plan::from_yaml(&format!(
        "name: multi\nenvironments: [staging, {ENV}]\nservices:\n  - name: checkout\n    flags: [new-checkout]\nsteps:\n  - weight: 30\n  - approve: true\n  - weight: 80\nanalysis: {{ interval: 1s }}\n"
    ))
    .unwrap();
    orchestrator.apply(plan).await.unwrap();
    let waiting = wait_for(
        &orchestrator,
        "multi",
        "awaiting approval in staging",
        |r| r.state.services[0].phase == ServicePhase::AwaitingApproval,
    )
    .await;
    let summary = switchyard_orchestrator::report::summary(&waiting);
    assert_eq!(summary.environment, "staging");
    assert_eq!(summary.environments, ["staging", ENV]);
    let markdown = switchyard_orchestrator::report::markdown(&waiting);
    assert!(
        markdown.contains("- **Environments:** staging → production (now: staging)"),
        "{markdown}"
    );

    flags
        .admin
        .kill("staging", "new-checkout", "broke staging")
        .await
        .unwrap();
    let release = wait_until_over(&orchestrator, "multi").await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{}",
        timeline(&release)
    );
    let reason = release.state.reason.clone().unwrap_or_default();
    assert!(reason.contains("broke staging"), "{reason}");
    // Production was never touched.
    assert_eq!(
        flags.flag("new-checkout").await.default,
        Serve::Variant("off".into())
    );
}

/// A metric source of the test's own: answers the error ratios it was given, one per
/// measurement (the last one from then on), and records what it was asked.
struct Scripted {
    ratios: Mutex<VecDeque<f64>>,
    /// (metric, service, environment) of every request.
    asked: Mutex<Vec<(String, String, String)>>,
}

#[async_trait]
impl MetricSource for Scripted {
    async fn measure(&self, request: MetricRequest<'_>) -> Measurement {
        let metric = request.metric.expect("asked for a plan's metric");
        self.asked.lock().unwrap().push((
            metric.name.clone(),
            request.service.name.clone(),
            request.environment.to_owned(),
        ));
        let mut ratios = self.ratios.lock().unwrap();
        let ratio = if ratios.len() > 1 {
            ratios.pop_front()
        } else {
            ratios.front().copied()
        };
        judge(metric, Ok(ratio))
    }
}

/// The driver measures with the sources it is given: a source registered for the
/// `prometheus` kind replaces the real one (the plan's Prometheus does not exist), and
/// its answers pass the first step and then roll the release back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_analysed_by_the_metric_source_registered_for_its_kind() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let dir = tempfile::tempdir().unwrap();
    let scripted = Arc::new(Scripted {
        ratios: Mutex::new(VecDeque::from([0.0, 0.9])),
        asked: Mutex::default(),
    });
    let mut metrics = MetricSources::standard(&reqwest::Client::new(), Some(&flags.admin));
    metrics.register(MetricKind::Prometheus, scripted.clone());
    let orchestrator = orchestrator_measuring(&flags, dir.path(), metrics).await;
    let plan = Plan::from_yaml(&format!(
        "name: scripted\nenvironment: {ENV}\nservices: [ {{ name: checkout, flags: [new-checkout] }} ]\nsteps: [ {{ weight: 20 }}, {{ weight: 60 }} ]\nanalysis:\n  interval: 300ms\n  metrics:\n    - name: error-rate\n      prometheus: {{ url: \"http://{}\", query: canary_error_ratio }}\n      max: 0.01\n",
        switchyard_testkit::unused_addr()
    ))
    .unwrap();
    orchestrator.apply(plan).await.unwrap();

    let release = wait_until_over(&orchestrator, "scripted").await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{}",
        timeline(&release)
    );
    let reason = release.state.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("error-rate 0.9 > max 0.01"), "{reason}");
    let passed = release
        .state
        .timeline
        .iter()
        .flat_map(|e| &e.measurements)
        .find(|m| m.verdict == Verdict::Pass)
        .unwrap_or_else(|| panic!("no passing analysis in\n{}", timeline(&release)));
    assert_eq!(passed.value, Some(0.0));
    let asked = scripted.asked.lock().unwrap().clone();
    assert!(asked.len() >= 2, "{asked:?}");
    assert!(
        asked
            .iter()
            .all(|a| *a == ("error-rate".into(), "checkout".into(), ENV.into())),
        "{asked:?}"
    );
}
