//! The canary demo (`scripts/demo.sh`, `examples/canary-demo/`) as a test: every piece
//! a real process on free loopback ports — the flag server, checkout v1 (stable) and
//! v2 (canary, with the new code path behind `new-checkout`), HAProxy in front of them,
//! Prometheus scraping them, the orchestrator, and the load generator — configured
//! from the demo's own templates. Two releases run through the CLI's `apply --wait`:
//! the first is promoted; the second, after the canary starts failing a fifth of its
//! new-path requests, is rolled back by the orchestrator by itself. Each outcome is
//! checked through the orchestrator's API, HAProxy's runtime API and the flag server's
//! admin API, not through the CLI's word.
//!
//! The stack is `support::DemoStack` (shared with the console's release tests).

use serde_json::json;
use support::{apply, flag_off, load_counts, DemoStack, ENV, FLAG};
use switchyard_testkit::child::ChildProcess;
use tokio::time::Instant;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_and_a_failing_one_rolled_back() {
    let started = Instant::now();
    let mut stack = DemoStack::start("240s").await;
    eprintln!("stack ready after {:?}", started.elapsed());
    let work = stack.work.path().to_owned();

    // Release 1: v2 fails nothing, so it is promoted to 100 %.
    let good = work.join("release-good.yaml");
    std::fs::write(&good, stack.plan("release-good.yaml")).expect("write plan");
    let (code, output) = apply(&stack.bin.orchestrator, &stack.orchestrator_url, &good).await;
    assert_eq!(code, Some(0), "release 1 not promoted:\n{output}");
    assert!(
        output.contains("release checkout-good promoted"),
        "{output}"
    );
    let release = stack.read_release("checkout-good").await;
    assert_eq!(release["state"]["phase"], "succeeded", "{release:#}");
    let service = &release["state"]["services"][0];
    assert_eq!(
        (&service["phase"], &service["weight"]),
        (&json!("succeeded"), &json!(100))
    );
    assert_eq!(
        stack.weights().await,
        (100, 0),
        "(canary, stable) after release 1"
    );
    let flag = stack.read_flag().await;
    assert_eq!(flag["enabled"], true, "{flag:#}");
    assert_eq!(stack.variants_served().await, ["on"], "after release 1");

    // Back to the starting line for the next release; and the canary now fails every
    // fifth new-path request.
    stack.reset().await;
    stack.fail_rate("0.2").await;

    // Release 2: the canary's error rate breaches 5 % and the orchestrator rolls back.
    let bad = work.join("release-bad.yaml");
    std::fs::write(&bad, stack.plan("release-bad.yaml")).expect("write plan");
    let (code, output) = apply(&stack.bin.orchestrator, &stack.orchestrator_url, &bad).await;
    assert_eq!(code, Some(1), "release 2 not rolled back:\n{output}");
    assert!(
        output.contains("release checkout-bad rolled back"),
        "{output}"
    );
    let release = stack.read_release("checkout-bad").await;
    assert_eq!(release["state"]["phase"], "rolled_back", "{release:#}");
    let service = &release["state"]["services"][0];
    assert_eq!(
        (&service["phase"], &service["weight"]),
        (&json!("rolled_back"), &json!(0))
    );
    let reason = release["state"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("failed analyses")
            && (reason.contains("error-rate") || reason.contains("checkout-errors")),
        "rolled back for another reason: {reason}"
    );
    assert_eq!(
        stack.weights().await,
        (0, 100),
        "(canary, stable) after release 2"
    );
    let flag = stack.read_flag().await;
    assert_eq!(flag["enabled"], false, "not killed: {flag:#}");
    assert_eq!(stack.variants_served().await, ["off"], "after release 2");
    // The rollback kills the flag with the release's reason, then puts its
    // pre-release serve back (still killed), so a revive serves what it did before.
    let audit = stack
        .admin
        .audit(&format!("env={ENV}&flag={FLAG}&limit=2"))
        .await
        .expect("audit");
    let (restore, kill) = (&audit[0], &audit[1]);
    assert_eq!(kill["action"], "flag.kill", "{audit:#?}");
    assert!(
        kill["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("release checkout-bad rolled back")),
        "{audit:#?}"
    );
    assert_eq!(restore["action"], "flag.put", "{audit:#?}");
    assert_eq!(restore["after"]["enabled"], false, "{audit:#?}");
    assert_eq!(
        restore["after"]["default"],
        flag_off()["default"],
        "the pre-release serve: {audit:#?}"
    );

    // The load saw both versions; only v2 failed, and no request went unanswered while
    // the weights moved.
    let output = stack.load.stop().await;
    let summary = output.lines().last().unwrap_or_default();
    let counts = load_counts(summary);
    let (v1, v2) = (counts["v1"], counts["v2"]);
    assert!(v1.0 > 0 && v2.0 > 0, "both versions served: {summary}");
    assert_eq!(v1.1, 0, "v1 never fails: {summary}");
    assert!(v2.1 > 0, "v2 failed while it ramped: {summary}");
    assert_eq!(counts["no answer"], (0, 0), "{summary}");

    let DemoStack {
        stable,
        canary,
        orchestrator,
        ..
    } = &mut stack;
    for process in [stable, canary, orchestrator] {
        ChildProcess::assert_running(process);
    }
    eprintln!("{summary}");
    eprintln!("canary demo test took {:?}", started.elapsed());
}
