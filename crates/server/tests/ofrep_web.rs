//! The published OpenFeature web SDK with the published OFREP web provider
//! (`@openfeature/ofrep-web-provider` 0.4), unchanged, in Node, as the client of a
//! running server: a flag that defers gives the caller's code default, and a kill
//! reaches the provider over the event stream the bulk answer announces (its polling
//! is set to once an hour). The script is `clients/ofrep_web.cjs`; `scripts/test.sh`
//! installs the packages under `target/test-clients/node`.

use std::path::PathBuf;

use serde_json::{json, Value};
use switchyard_testkit::child::ChildProcess;
use switchyard_testkit::in_process::{boolean_flag, deferring_flag, start};
use switchyard_testkit::{wait_until, DEADLINE};
use tokio::process::Command;

#[tokio::test]
async fn the_ofrep_web_provider_defers_to_code_defaults_and_hears_changes_over_sse() {
    let server = start().await;
    server.create_env("prod").await;
    server.put_flag("prod", boolean_flag("checkout")).await;
    server.put_flag("prod", deferring_flag("legacy")).await;
    let token = server.token("web", "sdk", Some("prod")).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let cases = dir.path().join("cases.json");
    let spec = json!({
        "context": {"targetingKey": "u1", "groups": ["beta"]},
        "cases": [
            {"name": "checkout", "key": "checkout", "type": "boolean", "default": false},
            {"name": "legacy", "key": "legacy", "type": "string", "default": "code default"},
            {"name": "missing", "key": "no-such-flag", "type": "boolean", "default": true},
        ]
    });
    std::fs::write(&cases, spec.to_string()).expect("write cases");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = Command::new("node");
    command
        .arg(root.join("crates/server/tests/clients/ofrep_web.cjs"))
        .args(["--base", &server.base, "--token", &token, "--cases"])
        .arg(&cases)
        .arg("--watch")
        .env(
            "NODE_PATH",
            root.join("target/test-clients/node/node_modules"),
        );
    let mut client = ChildProcess::spawn("ofrep-web", &mut command, dir.path());

    let initial: Value = serde_json::from_str(&client.line_after("initial ").await).expect("JSON");
    let checkout = &initial["checkout"];
    assert_eq!(
        (
            &checkout["value"],
            &checkout["reason"],
            &checkout["variant"]
        ),
        (&json!(true), &json!("TARGETING_MATCH"), &json!("on")),
        "{initial}"
    );
    // No value in the answer: the provider returns the code default, reason DISABLED.
    let legacy = &initial["legacy"];
    assert_eq!(
        (&legacy["value"], &legacy["reason"], &legacy["errorCode"]),
        (&json!("code default"), &json!("DISABLED"), &Value::Null),
        "{initial}"
    );
    assert_eq!(
        initial["missing"]["errorCode"], "FLAG_NOT_FOUND",
        "{initial}"
    );

    // The provider connected to the announced stream; a kill then reaches it.
    wait_until(DEADLINE, "the provider's event stream", || {
        server.sse_clients() == 1
    })
    .await;
    server.kill("prod", "checkout").await;
    let changed: Value = serde_json::from_str(&client.line_after("changed ").await).expect("JSON");
    let checkout = &changed["results"]["checkout"];
    assert_eq!(
        (
            &checkout["value"],
            &checkout["reason"],
            &checkout["variant"]
        ),
        (&json!(false), &json!("DISABLED"), &json!("off")),
        "{changed}"
    );
    client.kill().await;
    server.stop().await;
}
