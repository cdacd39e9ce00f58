//! Release strategies against real processes: blue-green switching a real `haproxy`'s
//! weights, a rolling update switching the states of a real backend's servers
//! (`set server … state`, read back with `show servers state`), and regions each with
//! their own haproxy, flag rule and Prometheus-measured error ratio.

mod support;

use serde_json::json;
use support::flag_server::{FlagServer, ENV};
use support::release::{orchestrator, position, timeline, wait_for, wait_until_over, Monitoring};
use switchyard_core::model::Serve;
use switchyard_core::Flag;
use switchyard_orchestrator::machine::{Phase, ServicePhase, State};
use switchyard_orchestrator::plan::Plan;
use switchyard_orchestrator::store::embedded::EmbeddedStore;
use switchyard_orchestrator::store::{Release, StateStore};
use switchyard_testkit::haproxy::{Canary, Rolling};
use switchyard_testkit::prometheus::{
    wait_for_value, Exporter, PrometheusProcess, SCRAPE_DEADLINE,
};

/// The timeline entries of `service` between the first starting with `from` and the
/// first (after it) starting with `to`.
fn between<'r>(release: &'r Release, service: &str, from: &str, to: &str) -> Vec<&'r str> {
    let start = position(release, service, from);
    release.state.timeline[start + 1..]
        .iter()
        .take_while(|e| !e.message.starts_with(to))
        .filter(|e| e.service.as_deref() == Some(service))
        .map(|e| e.message.as_str())
        .collect()
}

/// A plan releasing one service (`(name, router, flag)`) with `settings` (strategy,
/// `on_failure`), analysed by `monitoring`.
fn one_service(
    name: &str,
    settings: &str,
    (service, router, flag): (&str, &str, &str),
    monitoring: &Monitoring,
) -> Plan {
    Plan::from_yaml(&format!(
        "name: {name}\nenvironment: {ENV}\n{settings}\nservices:\n  - name: {service}\n    \
         canary: {router}\n    flags: [{flag}]\n{}",
        monitoring.analysis_yaml()
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_release_previews_at_zero_then_switches_all_traffic() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let canary = Canary::start("checkout").await;
    let monitoring = Monitoring::start("checkout", 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;
    let plan = one_service(
        "bg",
        "strategy: { type: blue-green, preview: 2s, bake: 2s, keep_previous: 1h }",
        ("checkout", &canary.plan_yaml(), "new-checkout"),
        &monitoring,
    );
    orchestrator.apply(plan).await.unwrap();

    // The preview: the new version is analysed while it gets no traffic.
    wait_for(&orchestrator, "bg", "the preview", |r| {
        r.state
            .timeline
            .iter()
            .any(|e| e.message == "step 1: weight 0")
            && r.state.services[0].step == 0
    })
    .await;
    assert_eq!(canary.weights().await, (0, 100));
    assert_eq!(canary.canary_share(20).await, 0);

    let release = wait_until_over(&orchestrator, "bg").await;
    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{}",
        timeline(&release)
    );
    // One switch from 0 to 100, after a passing analysis of the preview.
    let preview = between(
        &release,
        "checkout",
        "step 1: weight 0",
        "step 2: weight 100",
    );
    assert!(
        preview.contains(&"analysis passed"),
        "{}",
        timeline(&release)
    );
    let weights: Vec<u32> = release
        .state
        .timeline
        .iter()
        .filter_map(|e| e.weights.map(|w| w.traffic))
        .collect();
    assert_eq!(weights, [0, 100, 100], "{}", timeline(&release));
    assert_eq!(canary.weights().await, (100, 0));
    assert_eq!(canary.canary_share(20).await, 20);
    assert_eq!(
        flags.flag("new-checkout").await.default,
        Serve::Variant("on".into())
    );

    // Within `keep_previous` the previous version takes all traffic back at once.
    orchestrator
        .rollback("bg", "ana".into(), "switching back".into())
        .await
        .expect("within keep_previous");
    let release = wait_until_over(&orchestrator, "bg").await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{}",
        timeline(&release)
    );
    assert_eq!(canary.weights().await, (0, 100));
    assert!(
        !flags.flag("new-checkout").await.enabled,
        "the flag is killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_keep_previous_passes_the_previous_version_is_retired() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let canary = Canary::start("checkout").await;
    let monitoring = Monitoring::start("checkout", 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;
    let plan = one_service(
        "bg-retire",
        "strategy: { type: blue-green, bake: 1s, keep_previous: 2s }",
        ("checkout", &canary.plan_yaml(), "new-checkout"),
        &monitoring,
    );
    orchestrator.apply(plan).await.unwrap();
    let release = wait_until_over(&orchestrator, "bg-retire").await;
    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{}",
        timeline(&release)
    );

    let release = wait_for(&orchestrator, "bg-retire", "the retirement", |r| {
        r.state.retired_at.is_some()
    })
    .await;
    let promoted = release.state.promoted_at.expect("promoted");
    let retired = release.state.retired_at.expect("retired");
    assert!(retired >= promoted + 2_000, "retired before keep_previous");
    let entry = release.state.timeline.last().expect("an entry");
    assert_eq!(entry.service.as_deref(), Some("checkout"));
    assert_eq!(
        entry.message,
        "previous version retired: `keep_previous` (2s) passed since the promotion"
    );
    // HAProxy: the stable server in maintenance, the new version taking everything.
    let states = canary
        .haproxy
        .admin_command("show servers state checkout")
        .await;
    let admin_state = |server: &str| -> u32 {
        let header: Vec<&str> = states
            .lines()
            .find_map(|l| l.strip_prefix('#'))
            .expect("a header")
            .split_whitespace()
            .collect();
        let column = |name: &str| header.iter().position(|c| *c == name).unwrap();
        let line: Vec<&str> = states
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(column("srv_name")) == Some(&server))
            .unwrap_or_else(|| panic!("no `{server}` in {states}"));
        line[column("srv_admin_state")].parse().unwrap()
    };
    assert_eq!(
        admin_state("stable") & 0x01,
        0x01,
        "stable in maint: {states}"
    );
    assert_eq!(admin_state("canary"), 0, "{states}");
    assert_eq!(canary.canary_share(20).await, 20);
    // No switching back to a retired version.
    let refused = orchestrator
        .rollback("bg-retire", "ana".into(), "too late".into())
        .await
        .expect_err("past keep_previous")
        .to_string();
    assert!(refused.contains("outside the rollback window"), "{refused}");

    // The next release of the backend, the roles swapped, brings the retired server
    // back as its canary.
    let swapped = canary.plan_yaml().replace(
        "stable: stable, canary: canary",
        "stable: canary, canary: stable",
    );
    let plan = one_service(
        "bg-back",
        "strategy: { type: blue-green, bake: 1s, keep_previous: 1h }",
        ("checkout", &swapped, "new-checkout"),
        &monitoring,
    );
    orchestrator.apply(plan).await.unwrap();
    let release = wait_until_over(&orchestrator, "bg-back").await;
    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{}",
        timeline(&release)
    );
    let counts = canary.counts(20).await;
    assert_eq!(
        counts.get("stable"),
        Some(&20),
        "all on `stable` again: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_keep_previous_a_blue_green_release_is_not_switched_back() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let dir = tempfile::tempdir().unwrap();
    // A release promoted long ago (1970), stored before the orchestrator opens.
    for (name, keep) in [("kept", ", keep_previous: 2h"), ("window", "")] {
        let plan = Plan::from_yaml(&format!(
            "name: {name}\nenvironment: {ENV}\nstrategy: {{ type: blue-green{keep} }}\nservices: [{{ name: web, flags: [new-checkout] }}]\n"
        ))
        .unwrap();
        let mut state = State::new(&plan);
        state.phase = Phase::Succeeded;
        state.started_at = Some(1_000);
        state.finished_at = Some(2_000);
        state.promoted_at = Some(2_000);
        let store = EmbeddedStore::open(dir.path()).expect("store opens");
        store
            .save(&Release {
                plan,
                state,
                created_at: 1_000,
                revision: 1,
            })
            .await
            .expect("stored");
    }
    let orchestrator = orchestrator(&flags, dir.path()).await;
    let refused = |name: &'static str| {
        let orchestrator = &orchestrator;
        async move {
            orchestrator
                .rollback(name, "ana".into(), "too late".into())
                .await
                .expect_err("outside the window")
                .to_string()
        }
    };
    let kept = refused("kept").await;
    assert!(
        kept.contains("outside the rollback window of 2h (the plan's `keep_previous`)"),
        "{kept}"
    );
    let window = refused("window").await;
    assert!(
        window.contains("outside the rollback window of 1day (`serve --rollback-window`)"),
        "{window}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_release_whose_bake_fails_switches_back_at_the_first_failed_analysis() {
    bake_fails_and_switches_back(
        "bg-bad",
        "on_failure: { rollback: gradual, step: 10, interval: 1s }",
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bake_switches_back_even_when_the_plan_pauses_and_tolerates_failures() {
    bake_fails_and_switches_back("bg-pause", "on_failure: pause", 2).await;
}

/// A blue-green release (`on_failure` and `failure_limit` as given) whose new version
/// breaches the error rate once it takes traffic: switched back at the first failed
/// analysis of the bake, all of it, weights read from HAProxy.
async fn bake_fails_and_switches_back(name: &str, on_failure: &str, failure_limit: u32) {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let canary = Canary::start("checkout").await;
    let monitoring = Monitoring::start("checkout", 0.2).await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;
    let mut plan = one_service(
        name,
        &format!("strategy: {{ type: blue-green, bake: 1m }}\n{on_failure}"),
        ("checkout", &canary.plan_yaml(), "new-checkout"),
        &monitoring,
    );
    plan.analysis.failure_limit = failure_limit;
    orchestrator.apply(plan).await.unwrap();

    let release = wait_until_over(&orchestrator, name).await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{}",
        timeline(&release)
    );
    // Within one analysis interval of the switch: the first analysis at 100 failed and
    // switched back at once — all of it, although the plan's rollback is gradual.
    let baked = between(&release, "checkout", "step 1: weight 100", "rolled back");
    assert_eq!(
        baked.iter().filter(|m| m.starts_with("analysis")).count(),
        1,
        "{}",
        timeline(&release)
    );
    assert!(
        baked[0].starts_with("analysis failed"),
        "{}",
        timeline(&release)
    );
    assert!(!timeline(&release).contains("rolling back: weight"));
    assert!(!timeline(&release).contains("paused"));
    assert!(
        release
            .state
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("blue-green switches back on a failed analysis")),
        "{:?}",
        release.state.reason
    );
    assert_eq!(canary.weights().await, (0, 100));
    assert_eq!(canary.canary_share(20).await, 0);
    assert!(
        !flags.flag("new-checkout").await.enabled,
        "the flag is killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_replaces_servers_a_batch_at_a_time() {
    let flags = FlagServer::start(&["new-web"]).await;
    let backend = Rolling::start("web", 4).await;
    let monitoring = Monitoring::start("web", 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;
    let plan = one_service(
        "roll",
        "strategy: { type: rolling, batch: 25%, hold: 1s }",
        ("web", &backend.plan_yaml(), "new-web"),
        &monitoring,
    );
    assert_eq!(plan.outline().services[0].steps.len(), 4);
    orchestrator.apply(plan).await.unwrap();

    // The first batch: one new server up, one old one draining, the flag at 25 %.
    wait_for(&orchestrator, "roll", "the first batch", |r| {
        r.state.services[0].weight == 25
    })
    .await;
    let states = backend.states().await;
    assert_eq!(
        [
            states["new1"],
            states["old1"],
            states["new2"],
            states["old2"]
        ],
        ["ready", "drain", "maint", "ready"],
        "{states:?}"
    );
    let Serve::Rollout(rollout) = flags.flag("new-web").await.default else {
        panic!("the flag is not ramped with the first batch");
    };
    assert_eq!(rollout.split[0].weight, 25_000);

    let release = wait_until_over(&orchestrator, "roll").await;
    assert_eq!(
        release.state.phase,
        Phase::Succeeded,
        "{}",
        timeline(&release)
    );
    for step in [
        "step 1: weight 25",
        "step 2: weight 50",
        "step 3: weight 75",
        "step 4: weight 100",
    ] {
        position(&release, "web", step);
    }
    let states = backend.states().await;
    for i in 1..=4 {
        assert_eq!(states[&format!("new{i}")], "ready", "{states:?}");
        assert_eq!(states[&format!("old{i}")], "drain", "{states:?}");
    }
    assert_eq!(backend.counts(20).await.get("new"), Some(&20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_whose_batch_fails_restores_the_old_servers() {
    let flags = FlagServer::start(&["new-web"]).await;
    let backend = Rolling::start("web", 4).await;
    let monitoring = Monitoring::start("web", 0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&flags, dir.path()).await;
    let plan = one_service(
        "roll-bad",
        "strategy: { type: rolling, batch: 1, hold: 5s }",
        ("web", &backend.plan_yaml(), "new-web"),
        &monitoring,
    );
    orchestrator.apply(plan).await.unwrap();

    // Two of the four servers replaced; then the new version starts failing.
    wait_for(&orchestrator, "roll-bad", "the second batch", |r| {
        r.state.services[0].weight == 50
    })
    .await;
    assert_eq!(backend.new_ready().await, 2);
    monitoring
        .exporter
        .set("canary_error_ratio", &[("service", "web")], 0.2);

    let release = wait_until_over(&orchestrator, "roll-bad").await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{}",
        timeline(&release)
    );
    assert!(
        release
            .state
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("error-rate 0.2"),
        "{}",
        timeline(&release)
    );
    let states = backend.states().await;
    for i in 1..=4 {
        assert_eq!(states[&format!("old{i}")], "ready", "{states:?}");
        assert_eq!(states[&format!("new{i}")], "maint", "{states:?}");
    }
    assert_eq!(backend.counts(20).await.get("old"), Some(&20));
    assert!(!flags.flag("new-web").await.enabled, "the flag is killed");
}

const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "ap-south-1"];

/// A flag with one rule per region (`region` attribute), each serving `off`.
fn regional_flag(key: &str) -> Flag {
    let rules: Vec<_> = REGIONS
        .iter()
        .map(|r| {
            json!({
                "id": r,
                "when": { "constraints": [ { "attribute": "region", "op": "in", "values": [r] } ] },
                "serve": { "variant": "off" },
            })
        })
        .collect();
    serde_json::from_value(json!({
        "key": key,
        "kind": "boolean",
        "variants": { "on": true, "off": false },
        "off_variant": "off",
        "rules": rules,
        "default": { "variant": "off" },
    }))
    .expect("flag JSON")
}

/// Three regions, each with its own haproxy, the second failing its error rate.
struct World {
    flags: FlagServer,
    routers: Vec<Canary>,
    _exporter: Exporter,
    prometheus: PrometheusProcess,
}

impl World {
    async fn start() -> World {
        let flags = FlagServer::start(&[]).await;
        flags
            .admin
            .put_flag(ENV, &regional_flag("new-checkout"), None)
            .await
            .expect("create the regional flag");
        let mut routers = Vec::new();
        for _ in REGIONS {
            routers.push(Canary::start("checkout").await);
        }
        let exporter = Exporter::start().await;
        for (region, ratio) in REGIONS.iter().zip([0.0, 0.2, 0.0]) {
            exporter.set(
                "canary_error_ratio",
                &[("service", "checkout"), ("region", region)],
                ratio,
            );
        }
        let prometheus = PrometheusProcess::start(&[exporter.addr()]).await;
        let query = "canary_error_ratio{service=\"checkout\",region=\"us-west-2\"}";
        wait_for_value(&prometheus.url(), query, |v| v == 0.2, SCRAPE_DEADLINE).await;
        World {
            flags,
            routers,
            _exporter: exporter,
            prometheus,
        }
    }

    fn plan(&self, name: &str, region_failure: &str) -> Plan {
        let regions: Vec<String> = REGIONS
            .iter()
            .zip(&self.routers)
            .enumerate()
            .map(|(i, (region, router))| {
                format!(
                    "  - name: {region}\n    primary: {}\n    max_weight: {}\n    routers: {{ checkout: {} }}\n",
                    i == 0,
                    if i == 0 { 50 } else { 10 },
                    router.plan_yaml()
                )
            })
            .collect();
        Plan::from_yaml(&format!(
            "name: {name}\nenvironment: {ENV}\nservices:\n  - name: checkout\n    flags: [new-checkout]\n\
             steps: [{{ weight: 10, hold: 1s }}, {{ weight: 50, hold: 1s }}]\n\
             analysis:\n  interval: 1s\n  metrics:\n    - name: error-rate\n      prometheus: {{ url: \"{}\", query: 'canary_error_ratio{{service=\"{{{{service}}}}\",region=\"{{{{region}}}}\"}}' }}\n      max: 0.05\n\
             waves: parallel\nregion_failure: {region_failure}\nregions:\n{}",
            self.prometheus.url(),
            regions.concat()
        ))
        .unwrap()
    }

    /// What the flag's rule for `region` serves now.
    async fn serve(&self, region: &str) -> Serve {
        let flag = self.flags.flag("new-checkout").await;
        let rule = flag.rules.iter().find(|r| r.id == region).expect("rule");
        rule.serve.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_region_rolls_back_alone_when_the_plan_says_so() {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&world.flags, dir.path()).await;
    orchestrator
        .apply(world.plan("global", "region"))
        .await
        .unwrap();

    let release = wait_until_over(&orchestrator, "global").await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{}",
        timeline(&release)
    );
    let phase = |name: &str| release.state.service(name).expect(name).phase;
    assert_eq!(phase("checkout@us-east-1"), ServicePhase::Succeeded);
    assert_eq!(phase("checkout@us-west-2"), ServicePhase::RolledBack);
    assert_eq!(phase("checkout@ap-south-1"), ServicePhase::Succeeded);
    assert!(
        release
            .state
            .reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("region `us-west-2` rolled back"),
        "{}",
        timeline(&release)
    );
    // The primary went first: the others started once it was promoted.
    assert!(
        position(&release, "checkout@us-east-1", "promoted")
            < position(&release, "checkout@us-west-2", "step 1: weight 10")
    );
    // us-west-2 never went past its cap of 10.
    assert!(!timeline(&release).contains("checkout@us-west-2: step 2"));
    let weights: Vec<(u32, u32)> = region_weights(&world).await;
    assert_eq!(weights, [(100, 0), (0, 100), (100, 0)]);
    // Its rule serves what it served before; the flag stays on for the others.
    let flag = world.flags.flag("new-checkout").await;
    assert!(
        flag.enabled,
        "a region rolling back alone does not kill the flag"
    );
    assert_eq!(world.serve("us-west-2").await, Serve::Variant("off".into()));
    assert_eq!(world.serve("us-east-1").await, Serve::Variant("on".into()));
    assert_eq!(world.serve("ap-south-1").await, Serve::Variant("on".into()));
    // Status per region.
    let summary = switchyard_orchestrator::report::summary(&release);
    let regions: Vec<Option<&str>> = summary
        .services
        .iter()
        .map(|s| s.region.as_deref())
        .collect();
    assert_eq!(regions, REGIONS.map(Some));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_region_rolls_every_region_back_by_default() {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(&world.flags, dir.path()).await;
    orchestrator
        .apply(world.plan("global-all", "all"))
        .await
        .unwrap();

    let release = wait_until_over(&orchestrator, "global-all").await;
    assert_eq!(
        release.state.phase,
        Phase::RolledBack,
        "{}",
        timeline(&release)
    );
    assert_eq!(
        release.state.services[0].phase,
        ServicePhase::RolledBack,
        "the promoted primary is rolled back too: {}",
        timeline(&release)
    );
    for (canary, stable) in region_weights(&world).await {
        assert_eq!((canary, stable), (0, 100));
    }
    assert!(
        !world.flags.flag("new-checkout").await.enabled,
        "the flag is killed"
    );
}

/// `(canary, stable)` weights of each region's haproxy, in region order.
async fn region_weights(world: &World) -> Vec<(u32, u32)> {
    let mut weights = Vec::new();
    for router in &world.routers {
        weights.push(router.weights().await);
    }
    weights
}
