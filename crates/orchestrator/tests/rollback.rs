//! What a rollback leaves behind, against a real flag server: each flag's pre-release
//! serve (so reviving it serves what it served before the release), multi-variant
//! ramps, and rolling back a promoted release through the daemon's binary.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::Daemon;
use support::flag_server::{FlagServer, ENV};
use switchyard_core::model::Serve;
use switchyard_core::Flag;
use switchyard_orchestrator::analysis::MetricSources;
use switchyard_orchestrator::driver::{Config, Orchestrator, DEFAULT_ROLLBACK_WINDOW};
use switchyard_orchestrator::flags::AdminFlags;
use switchyard_orchestrator::machine::{Event, Phase};
use switchyard_orchestrator::plan::Plan;
use switchyard_orchestrator::store::embedded::EmbeddedStore;
use switchyard_orchestrator::store::Release;
use switchyard_sdk::admin::TokenKind;
use switchyard_sdk::{Client, Context};
use switchyard_testkit::eventually;

const DEADLINE: Duration = Duration::from_secs(60);

async fn orchestrator(flags: &FlagServer, dir: &Path) -> Orchestrator {
    Orchestrator::open(Config {
        store: Arc::new(EmbeddedStore::open(dir).expect("store opens")),
        flags: Arc::new(AdminFlags::new(flags.admin.clone())),
        metrics: MetricSources::standard(&reqwest::Client::new(), Some(&flags.admin)),
        http: reqwest::Client::new(),
        poll: Duration::from_millis(50),
        attempts: 2,
        owner: switchyard_orchestrator::driver::owner_id(),
        lease: Duration::from_secs(10),
        rollback_window: DEFAULT_ROLLBACK_WINDOW,
    })
    .await
    .expect("orchestrator opens")
}

async fn wait_for(
    orchestrator: &Orchestrator,
    name: &str,
    what: &str,
    done: impl Fn(&Release) -> bool,
) -> Release {
    eventually(DEADLINE, &format!("`{name}` to reach {what}"), || async {
        let release = orchestrator.get(name).await.expect("release exists");
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

fn plan(name: &str, flag: &str, steps: &str) -> Plan {
    Plan::from_yaml(&format!(
        "name: {name}\nenvironment: {ENV}\nservices:\n  - name: web\n    flags: [{flag}]\n\
         steps: {steps}\nanalysis: {{ interval: 1s }}\n"
    ))
    .expect("valid plan")
}

/// How many of 1 000 users (none of them staff) each variant of `flag` serves, as an
/// SDK client synced with the server evaluates them.
async fn answers(server: &FlagServer, flag: &str) -> Vec<(String, usize)> {
    static TOKENS: AtomicUsize = AtomicUsize::new(0);
    let n = TOKENS.fetch_add(1, Ordering::Relaxed);
    let token = server
        .admin
        .create_token(&format!("rollback-test-{n}"), TokenKind::Sdk, Some(ENV))
        .await
        .expect("sdk token");
    let client = Client::builder(&server.base, &token.token)
        .build()
        .await
        .expect("client builds");
    let mut counts: Vec<(String, usize)> = Vec::new();
    for i in 0..1_000 {
        let detail = client.evaluate(flag, &Context::new(format!("user-{i}")));
        let variant = detail.variant.unwrap_or_else(|| "<error>".into());
        match counts.iter_mut().find(|(v, _)| *v == variant) {
            Some((_, n)) => *n += 1,
            None => counts.push((variant, 1)),
        }
    }
    client.close().await;
    counts.sort();
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_at_50_leaves_the_flag_serving_its_pre_release_answer() {
    let flags = FlagServer::start(&["new-checkout"]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let orchestrator = orchestrator(&flags, dir.path()).await;
    let steps = "[{ weight: 10, hold: 1s }, { weight: 50, hold: 1h }]";
    let release = plan("checkout-v3", "new-checkout", steps);
    orchestrator.apply(release.clone()).await.expect("applied");
    wait_for(&orchestrator, "checkout-v3", "weight 50", |r| {
        r.state.services[0].weight == 50
    })
    .await;
    assert_eq!(answers(&flags, "new-checkout").await[1].0, "on");

    let abort = Event::Abort {
        by: "ana".into(),
        reason: "checkout errors".into(),
    };
    orchestrator
        .command("checkout-v3", abort)
        .await
        .expect("abort");
    let rolled_back = wait_for(&orchestrator, "checkout-v3", "its end", |r| {
        r.state.phase.is_terminal()
    })
    .await;
    assert_eq!(rolled_back.state.phase, Phase::RolledBack);
    let flag = flags.flag("new-checkout").await;
    assert!(!flag.enabled, "killed");
    assert_eq!(flag.default, Serve::Variant("off".into()));

    // Reviving serves what the flag served before the release: `off` to everyone.
    flags
        .admin
        .revive(ENV, "new-checkout", "fixed")
        .await
        .expect("revive");
    assert_eq!(
        answers(&flags, "new-checkout").await,
        [("off".to_owned(), 1_000)]
    );

    // A later release starts from there: its first step's share, not 50 % or more.
    orchestrator.apply(release).await.expect("re-applied");
    wait_for(&orchestrator, "checkout-v3", "weight 10", |r| {
        !r.state.phase.is_terminal() && r.state.services[0].weight == 10
    })
    .await;
    let Serve::Rollout(rollout) = flags.flag("new-checkout").await.default else {
        panic!("not a rollout at step 1");
    };
    assert_eq!(
        (rollout.split[0].variant.as_str(), rollout.split[0].weight),
        ("on", 10_000)
    );
    let counts = answers(&flags, "new-checkout").await;
    let on = counts.iter().find(|(v, _)| v == "on").map_or(0, |c| c.1);
    assert!((60..=140).contains(&on), "{counts:?} at 10 %");
}

/// These variants (the last one the off variant) with an A/B split of `a`/`b` (50/50)
/// as the default.
fn three_variants(key: &str, variants: &[&str]) -> Flag {
    let variants: serde_json::Map<String, Value> = variants
        .iter()
        .map(|v| ((*v).to_owned(), json!(v)))
        .collect();
    serde_json::from_value(json!({
        "key": key,
        "kind": "string",
        "variants": variants,
        "off_variant": variants.keys().next_back(),
        "default": { "rollout": { "split": [
            { "variant": "a", "weight": 50_000 }, { "variant": "b", "weight": 50_000 }
        ] } },
    }))
    .expect("flag JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_variant_flag_keeps_its_split_and_one_above_the_first_step_is_refused() {
    let flags = FlagServer::start(&[]).await;
    for flag in [
        three_variants("checkout-ui", &["new", "a", "b"]),
        three_variants("ab-test", &["a", "b"]),
    ] {
        flags.admin.put_flag(ENV, &flag, None).await.expect("flag");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let orchestrator = orchestrator(&flags, dir.path()).await;

    orchestrator
        .apply(plan("ui", "checkout-ui", "[{ weight: 20, hold: 1h }]"))
        .await
        .expect("applied");
    let release = wait_for(&orchestrator, "ui", "weight 20", |r| {
        r.state.services[0].weight == 20
    })
    .await;
    let expected: Serve = serde_json::from_value(json!({ "rollout": { "split": [
        { "variant": "new", "weight": 20_000 },
        { "variant": "a", "weight": 40_000 },
        { "variant": "b", "weight": 40_000 }
    ] } }))
    .expect("serve");
    assert_eq!(flags.flag("checkout-ui").await.default, expected);
    let counts = answers(&flags, "checkout-ui").await;
    assert_eq!(counts.len(), 3, "a, b and new all served: {counts:?}");
    for (variant, n) in &counts {
        let share = if variant == "new" { 200 } else { 400 };
        assert!(n.abs_diff(share) <= 60, "{counts:?}");
    }
    assert_eq!(
        release.state.flags_before[0].serve,
        three_variants("x", &["new", "a", "b"]).default
    );

    // Promotion serves the first variant alone.
    orchestrator
        .command("ui", Event::PromoteFull { by: "ana".into() })
        .await
        .expect("promote");
    let done = wait_for(&orchestrator, "ui", "its end", |r| {
        r.state.phase.is_terminal()
    })
    .await;
    assert_eq!(done.state.phase, Phase::Succeeded);
    assert_eq!(
        flags.flag("checkout-ui").await.default,
        Serve::Variant("new".into())
    );

    // A flag already giving its first variant more than the first step: refused by
    // the pre-checks, and left as it was.
    orchestrator
        .apply(plan("ab", "ab-test", "[{ weight: 20, hold: 1h }]"))
        .await
        .expect("applied");
    let refused = wait_for(&orchestrator, "ab", "its end", |r| {
        r.state.phase.is_terminal()
    })
    .await;
    assert_eq!(refused.state.phase, Phase::RolledBack);
    let reason = refused.state.reason.unwrap_or_default();
    assert!(
        reason.contains("flag `ab-test` already serves `a` to 50 %, above the first step's 20 %"),
        "{reason}"
    );
    let flag = flags.flag("ab-test").await;
    assert!(flag.enabled);
    assert_eq!(flag.default, three_variants("x", &["a", "b"]).default);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write plan");
    path.to_str().expect("UTF-8 path").to_owned()
}

fn plan_yaml(name: &str, flag: &str) -> String {
    format!(
        "name: {name}\nenvironment: {ENV}\nservices:\n  - name: web\n    flags: [{flag}]\n\
         steps: [{{ weight: 50, hold: 1s }}]\nanalysis: {{ interval: 1s }}\n"
    )
}

/// Polls the daemon until the release is in `phase`.
async fn until_phase(daemon: &Daemon, name: &str, phase: &str) -> Value {
    let http = reqwest::Client::new();
    eventually(DEADLINE, &format!("`{name}` to reach {phase}"), || async {
        let release: Value = http
            .get(format!("{}/v1/releases/{name}", daemon.url))
            .send()
            .await
            .expect("daemon answers")
            .json()
            .await
            .expect("JSON");
        if release["state"]["phase"] == phase {
            Ok(release)
        } else {
            Err(format!("{release:#}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_release_is_rolled_back_within_the_window_and_refused_outside() {
    let flags = FlagServer::start(&["new-checkout", "new-search"]).await;
    let daemon = Daemon::start(&flags).await;
    let plans = tempfile::tempdir().expect("temp dir");

    // Not promoted yet (no such release): 404; then promoted.
    let (code, _, err) = daemon.run(&["rollback", "checkout-v3"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no release named `checkout-v3`"), "{err}");
    let file = write(
        plans.path(),
        "c.yaml",
        &plan_yaml("checkout-v3", "new-checkout"),
    );
    let (code, out, err) = daemon.run(&["apply", &file, "--wait"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        flags.flag("new-checkout").await.default,
        Serve::Variant("on".into())
    );
    let (code, _, err) = daemon.run(&["abort", "checkout-v3"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("the release is over"), "{err}");

    let (code, out, err) = daemon
        .run(&["rollback", "checkout-v3", "--reason", "p99 doubled"])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let release = until_phase(&daemon, "checkout-v3", "rolled_back").await;
    assert_eq!(
        release["state"]["reason"],
        "rolled back after promotion by ci: p99 doubled"
    );
    assert_eq!(release["state"]["services"][0]["weight"], 0);
    let flag = flags.flag("new-checkout").await;
    assert!(!flag.enabled);
    assert_eq!(flag.default, Serve::Variant("off".into()));
    let (code, out, err) = daemon.run(&["report", "checkout-v3"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("rolling back the promoted release (by ci): p99 doubled"),
        "{out}"
    );

    // DORA counts it as a change failure, with a time to restore.
    let (code, out, err) = daemon.run(&["report", "--dora", "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let dora: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(dora["change_failure_rate"]["rate"], 1.0, "{dora:#}");
    assert_eq!(dora["time_to_restore"]["restored"], 1, "{dora:#}");

    // Twice: refused with the reason, 409 on the API.
    let (code, _, err) = daemon.run(&["rollback", "checkout-v3"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("the release is already rolled back"), "{err}");
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/releases/checkout-v3/rollback", daemon.url))
        .send()
        .await
        .expect("daemon answers");
    assert_eq!(answer.status(), 409);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "refused", "{body}");

    // Outside the window: a daemon that allows 1 ms refuses it, naming the window.
    let strict = Daemon::start_with(&flags, &["--rollback-window", "1ms"]).await;
    let file = write(
        plans.path(),
        "s.yaml",
        &plan_yaml("search-v2", "new-search"),
    );
    let (code, out, err) = strict.run(&["apply", &file, "--wait"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, err) = eventually(DEADLINE, "the rollback window to close", || async {
        let (code, _, err) = strict.run(&["rollback", "search-v2"]).await;
        if err.contains("outside the rollback window") {
            Ok((code, err))
        } else {
            Err(err)
        }
    })
    .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("release `search-v2` was promoted") && err.contains("rollback window of 1ms"),
        "{err}"
    );
    assert_eq!(
        flags.flag("new-search").await.default,
        Serve::Variant("on".into()),
        "left promoted"
    );
}
