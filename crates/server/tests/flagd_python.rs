//! The published OpenFeature Python SDK with the published flagd provider
//! (`openfeature-provider-flagd` 0.6, RPC resolver), unchanged, as the client of a
//! running server: that provider speaks `flagd.evaluation.v2` only, so this is the
//! v2 service's conformance test. The script `clients/flagd_rpc.py` evaluates the
//! cases this test gives it and prints the provider's answers; `scripts/test.sh`
//! installs the package.

use std::path::PathBuf;

use serde_json::{json, Value};
use switchyard_core::{evaluate, Context};
use switchyard_testkit::child::ChildProcess;
use switchyard_testkit::in_process::{boolean_flag, start_with_grpc, TestServer, ADMIN};
use tokio::process::Command;

async fn server() -> TestServer {
    let server = start_with_grpc(Some("prod")).await;
    server.create_env("prod").await;
    server.put_flag("prod", boolean_flag("checkout")).await;
    for flag in [
        json!({
            "key": "banner", "kind": "string", "variants": {"blue": "blue", "green": "green"},
            "off_variant": "blue", "default": {"variant": "green"}
        }),
        json!({
            "key": "limit", "kind": "number", "variants": {"small": 10, "large": 1000},
            "off_variant": "small",
            "rules": [{"id": "italy", "when": {"constraints": [{"attribute": "country", "op": "in", "values": ["IT"]}]},
                       "serve": {"variant": "large"}}],
            "default": {"variant": "small"}
        }),
        json!({
            "key": "ratio", "kind": "number", "variants": {"low": 0.25, "high": 0.75},
            "off_variant": "low", "default": {"variant": "high"}
        }),
        json!({
            "key": "theme", "kind": "json",
            "variants": {"dark": {"color": "black", "contrast": 7}, "light": {"color": "white"}},
            "off_variant": "light", "default": {"variant": "dark"}
        }),
        json!({
            "key": "ramp", "kind": "string",
            "variants": {"old": "old-checkout", "new": "new-checkout"}, "off_variant": "old",
            "default": {"rollout": {"split": [{"variant": "old", "weight": 50000}, {"variant": "new", "weight": 50000}]}}
        }),
    ] {
        server.put_flag("prod", flag).await;
    }
    server.put_flag("prod", boolean_flag("payments")).await;
    kill(&server, "payments").await;
    // Disabled, and defers to the caller's code default.
    server
        .put_flag(
            "prod",
            json!({
                "key": "legacy", "kind": "string", "variants": {"a": "A", "b": "B"},
                "off_variant": null, "enabled": false, "default": {"variant": "a"}
            }),
        )
        .await;
    server
}

async fn kill(server: &TestServer, key: &str) {
    let (status, body) = server
        .call(
            "POST",
            &format!("/v1/admin/envs/prod/flags/{key}/kill"),
            Some(ADMIN),
            Some(json!({"reason": "incident"})),
        )
        .await;
    assert_eq!(status, 200, "kill {key}: {body}");
}

fn case(name: &str, key: &str, kind: &str, default: Value, context: Value) -> Value {
    json!({"name": name, "key": key, "type": kind, "default": default, "context": context})
}

/// Runs the Python client on `cases`, watching `watch` for a change if given.
fn python_client(
    server: &TestServer,
    cases: &[Value],
    watch: Option<&str>,
) -> (ChildProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(cases).expect("cases")).expect("write cases");
    let url = server.grpc.clone().expect("gRPC is served");
    let port = url.rsplit(':').next().expect("a port");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/flagd_rpc.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["--port", port, "--cases"])
        .arg(&file);
    if let Some(key) = watch {
        command.args(["--watch", key]);
    }
    let child = ChildProcess::spawn("flagd-python", &mut command, dir.path());
    (child, dir)
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("the client's line `{line}`: {e}"))
}

#[tokio::test]
async fn the_python_flagd_provider_evaluates_every_type_over_v2_and_hears_a_kill() {
    let server = server().await;
    let user = json!({"targetingKey": "user-1", "country": "IT"});
    let mut cases = vec![
        case("boolean", "checkout", "boolean", json!(true), user.clone()),
        case(
            "beta",
            "checkout",
            "boolean",
            json!(false),
            json!({"targetingKey": "user-2", "groups": "staff,beta"}),
        ),
        case("string", "banner", "string", json!("none"), user.clone()),
        case("integer", "limit", "integer", json!(0), user.clone()),
        case(
            "integer-default",
            "limit",
            "integer",
            json!(0),
            json!({"targetingKey": "user-3", "country": "FR"}),
        ),
        case("float", "ratio", "float", json!(0.0), user.clone()),
        case("object", "theme", "object", json!({}), user.clone()),
        case("killed", "payments", "boolean", json!(true), user.clone()),
        case(
            "deferred",
            "legacy",
            "string",
            json!("code default"),
            user.clone(),
        ),
        case(
            "missing",
            "no-such-flag",
            "boolean",
            json!(true),
            user.clone(),
        ),
        case("mismatch", "banner", "boolean", json!(true), user.clone()),
    ];
    let users: Vec<String> = (0..20).map(|i| format!("user-{i}")).collect();
    for u in &users {
        cases.push(case(
            &format!("split-{u}"),
            "ramp",
            "string",
            json!("none"),
            json!({"targetingKey": u}),
        ));
    }
    let (mut client, _dir) = python_client(&server, &cases, Some("checkout"));
    let initial = parse(&client.line_after("initial ").await);
    let at = |results: &Value, name: &str| results[name].clone();
    let expect = |name: &str, value: Value, reason: &str, variant: Value| {
        let got = at(&initial, name);
        assert_eq!(got["value"], value, "{name}: {got}");
        assert_eq!(got["reason"], reason, "{name}: {got}");
        assert_eq!(got["variant"], variant, "{name}: {got}");
        assert_eq!(got["error_code"], Value::Null, "{name}: {got}");
    };
    expect("boolean", json!(false), "DEFAULT", json!("off"));
    expect("beta", json!(true), "TARGETING_MATCH", json!("on"));
    expect("string", json!("green"), "STATIC", json!("green"));
    expect("integer", json!(1000), "TARGETING_MATCH", json!("large"));
    expect("integer-default", json!(10), "DEFAULT", json!("small"));
    expect("float", json!(0.75), "STATIC", json!("high"));
    expect(
        "object",
        json!({"color": "black", "contrast": 7.0}),
        "STATIC",
        json!("dark"),
    );
    expect("killed", json!(false), "DISABLED", json!("off"));
    // flagd v2 leaves value and variant out: the provider returns the code default.
    expect("deferred", json!("code default"), "DISABLED", Value::Null);

    // Errors: the caller's default, with flagd's error codes.
    let missing = at(&initial, "missing");
    assert_eq!(missing["value"], json!(true), "{missing}");
    assert_eq!(missing["error_code"], "FLAG_NOT_FOUND", "{missing}");
    let mismatch = at(&initial, "mismatch");
    assert_eq!(mismatch["value"], json!(true), "{mismatch}");
    assert_eq!(mismatch["error_code"], "TYPE_MISMATCH", "{mismatch}");

    // The split: each user's variant is the core's.
    let prod = server.state.envs.get("prod").expect("prod");
    for u in &users {
        let got = at(&initial, &format!("split-{u}"));
        let ours = evaluate(&prod.snapshot, "ramp", &Context::new(u.as_str()));
        assert_eq!(got["variant"], json!(ours.variant), "{u}: {got}");
        assert_eq!(got["value"], json!(ours.value), "{u}: {got}");
        assert_eq!(got["reason"], "SPLIT", "{u}: {got}");
    }

    // A kill reaches the provider through EventStream as a configuration change.
    kill(&server, "checkout").await;
    let changed = parse(&client.line_after("changed ").await);
    assert!(
        changed["flags"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("checkout"))),
        "{changed}"
    );
    let beta = &changed["results"]["beta"];
    assert_eq!(beta["value"], json!(false), "{beta}");
    assert_eq!(beta["reason"], "DISABLED", "{beta}");
    assert_eq!(beta["variant"], "off", "{beta}");
    client.kill().await;
    server.stop().await;
}
