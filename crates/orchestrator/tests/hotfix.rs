//! The hotfix path through the CLI and the daemon: refused without a reason, and with
//! one promoted in a single step after the checks, marked in status, reports and DORA.

mod support;

use serde_json::Value;
use support::daemon::Daemon;
use support::flag_server::{FlagServer, ENV};

const FLAG: &str = "session-fix";

/// A flags-only release with a slow ramp that a hotfix skips.
fn plan(name: &str, extra: &str) -> String {
    format!(
        "name: {name}\nenvironment: {ENV}\nservices:\n  - name: web\n    flags: [{FLAG}]\n\
         steps: [{{ weight: 5, hold: 1h }}, {{ approve: true }}, {{ weight: 50, hold: 1h }}]\n\
         analysis: {{ interval: 1s }}\n{extra}"
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write plan");
    path.to_str().expect("UTF-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hotfix_needs_a_reason_and_then_skips_the_ramp_but_not_the_checks() {
    let flags = FlagServer::start(&[FLAG]).await;
    let daemon = Daemon::start(&flags).await;
    let plans = tempfile::tempdir().expect("temp dir");
    let file = write(plans.path(), "fix.yaml", &plan("fix", ""));

    // No reason: refused before anything is sent.
    let (code, out, err) = daemon.run(&["apply", &file, "--hotfix"]).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("--reason"), "{err}");
    // A plan that says it is a hotfix without saying why: refused too.
    let blank = write(
        plans.path(),
        "blank.yaml",
        &plan("blank", "hotfix: { reason: \"\" }\n"),
    );
    let (code, out, err) = daemon.run(&["apply", &blank]).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("hotfix.reason: a hotfix says why it skips the ramp"),
        "{err}"
    );
    let (_, listed, _) = daemon.run(&["status"]).await;
    assert!(!listed.contains("fix"), "nothing was applied: {listed}");

    // With a reason: one step at 100 after the pre-checks, held for one analysis.
    let reason = "CVE-2026-1234: session fixation";
    let (code, out, err) = daemon
        .run(&["apply", &file, "--hotfix", "--reason", reason, "--wait"])
        .await;
    assert_eq!(code, 0, "apply --hotfix --wait:\n{out}\n{err}");
    for line in [
        &format!("hotfix started in `{ENV}`: {reason}"),
        "  web  pre-checks passed",
        "  web  step 1: weight 100",
        "release promoted",
    ] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
    assert!(!out.contains("weight 5"), "the ramp was skipped:\n{out}");

    let (_, listed, _) = daemon.run(&["status"]).await;
    assert!(listed.contains("succeeded (hotfix)"), "{listed}");
    let (_, report, _) = daemon.run(&["report", "fix"]).await;
    assert!(
        report.contains(&format!("- **Hotfix:** {reason} (the ramp skipped)")),
        "{report}"
    );
    let (_, json, _) = daemon.run(&["report", "fix", "--format", "json"]).await;
    let json: Value = serde_json::from_str(&json).expect("JSON report");
    assert_eq!(json["plan"]["hotfix"], reason);
    assert_eq!(json["services"][0]["steps"], 1);
    let (_, notes, _) = daemon.run(&["report", "fix", "--notes"]).await;
    assert!(notes.contains(&format!("Hotfix: {reason}")), "{notes}");
    let (code, dora, err) = daemon.run(&["report", "--dora", "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let dora: Value = serde_json::from_str(&dora).expect("DORA JSON");
    assert_eq!(dora["hotfixes"]["finished"], 1, "{dora}");
    assert_eq!(dora["hotfixes"]["promoted"], 1, "{dora}");
    assert_eq!(
        flags.flag(FLAG).await.default,
        switchyard_core::model::Serve::Variant("on".into())
    );

    // The flag server's audit log: the hotfix's write names the release and the reason.
    let audit = flags
        .admin
        .audit(&format!("env={ENV}&flag={FLAG}&limit=100"))
        .await
        .expect("audit log");
    let ramps: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "flag.put" && e["after"]["default"]["variant"] == "on")
        .collect();
    assert_eq!(ramps.len(), 1, "one write, to 100 %: {audit:#?}");
    let why = ramps[0]["reason"].as_str().unwrap_or_default();
    assert!(
        why.ends_with(&format!("release fix: hotfix: {reason}")),
        "the hotfix's flag write says so: {audit:#?}"
    );
}
