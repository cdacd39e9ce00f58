//! The published OpenFeature Python SDK with the published flagd provider
//! (`openfeature-provider-flagd` 0.6), unchanged, as the client of a running server:
//! with its RPC resolver, which speaks `flagd.evaluation.v2` only (the v2 service's
//! conformance test), and in process, where it syncs flag definitions over
//! `flagd.sync.v1` and evaluates them with flagd's own engine — which must give every
//! context the variant our core gives it. The script `clients/flagd_provider.py`
//! evaluates the cases this test gives it and prints the provider's answers;
//! `scripts/test.sh` installs the package.

use std::path::PathBuf;

use serde_json::{json, Value};
use switchyard_core::{evaluate, Context};
use switchyard_testkit::child::ChildProcess;
use switchyard_testkit::in_process::{
    boolean_flag, deferring_flag, start_with_grpc, TestServer, ADMIN,
};
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
    server.kill("prod", "payments").await;
    // Disabled, and defers to the caller's code default.
    server.put_flag("prod", deferring_flag("legacy")).await;
    server
}

fn case(name: &str, key: &str, kind: &str, default: Value, context: Value) -> Value {
    json!({"name": name, "key": key, "type": kind, "default": default, "context": context})
}

/// Runs the Python client on `cases`, watching `watch` for a change if given.
fn python_client(
    server: &TestServer,
    resolver: &str,
    cases: &[Value],
    watch: Option<&str>,
) -> (ChildProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(cases).expect("cases")).expect("write cases");
    let url = server.grpc.clone().expect("gRPC is served");
    let port = url.rsplit(':').next().expect("a port");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/flagd_provider.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["--port", port, "--resolver", resolver, "--cases"])
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
    let (mut client, _dir) = python_client(&server, "rpc", &cases, Some("checkout"));
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
    server.kill("prod", "checkout").await;
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

/// Flags flagd's engine can evaluate exactly (`switchyard_core::flagd`), and one it
/// cannot.
async fn synced_server() -> TestServer {
    let server = start_with_grpc(Some("prod")).await;
    server.create_env("prod").await;
    server
        .ok(
            "PUT",
            "/v1/admin/envs/prod/segments/eu",
            ADMIN,
            Some(json!({"when": {"constraints": [
                {"attribute": "country", "op": "in", "values": ["IT", "DE"]}]}})),
        )
        .await;
    let rollout = |split: Value| json!({"rollout": {"split": split, "hashing": "flagd"}});
    for flag in [
        json!({
            "key": "ramp", "kind": "string", "variants": {"new": "n", "old": "o"}, "off_variant": "old",
            "rules": [{"id": "staff", "when": {"users": ["user-7", "user-11"]}, "serve": {"variant": "new"}}],
            "default": rollout(json!([{"variant": "new", "weight": 30000}, {"variant": "old", "weight": 70000}]))
        }),
        json!({
            "key": "three", "kind": "number", "variants": {"a": 1, "b": 2.5, "c": 3}, "off_variant": "a",
            "rules": [{"id": "everyone", "when": {}, "serve":
                rollout(json!([{"variant": "a", "weight": 20000}, {"variant": "b", "weight": 0},
                               {"variant": "c", "weight": 80000}]))}],
            "default": {"variant": "a"}
        }),
        json!({
            "key": "whole", "kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
            "default": rollout(json!([{"variant": "on", "weight": 100000}, {"variant": "off", "weight": 0}]))
        }),
        json!({
            "key": "theme", "kind": "json", "variants": {"dark": {"bg": "black"}, "light": {"bg": "white"}},
            "off_variant": "light",
            "rules": [{"id": "vip", "when": {"users": ["user-3"]}, "serve": {"variant": "dark"}}],
            "default": {"variant": "light"}
        }),
        json!({
            "key": "killed", "kind": "string", "variants": {"a": "A", "b": "B"}, "off_variant": "b",
            "enabled": false, "default": {"variant": "a"}
        }),
        deferring_flag("deferring"),
        // Every condition that is synced, on attributes of every type.
        json!({
            "key": "targeted", "kind": "string", "variants": {"new": "n", "mid": "m", "old": "o"},
            "off_variant": "old",
            "rules": [
                {"id": "beta", "when": {"groups": ["beta"]}, "serve": {"variant": "new"}},
                {"id": "eu-paying", "when": {"segments": ["eu"], "constraints": [
                    {"attribute": "plan", "op": "not_in", "values": ["free"]}]},
                 "serve": {"variant": "new"}},
                {"id": "outsiders", "when": {
                    "constraints": [{"attribute": "email", "op": "ends_with", "values": ["@corp.io"], "negate": true},
                                    {"attribute": "plan", "op": "exists"}],
                    "percentage": {"weight": 40000, "hashing": "flagd"}},
                 "serve": {"variant": "mid"}},
                {"id": "prefixed", "when": {"constraints": [
                    {"attribute": "email", "op": "starts_with", "values": ["a@", "b@"]},
                    {"attribute": "country", "op": "neq", "values": ["FR"]}]},
                 "serve": {"variant": "old"}}
            ],
            "default": rollout(json!([{"variant": "mid", "weight": 50000}, {"variant": "old", "weight": 50000}]))
        }),
        // Switchyard's own bucketing: left out.
        json!({
            "key": "legacy", "kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off",
            "default": {"rollout": {"split": [{"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]}}
        }),
    ] {
        server.put_flag("prod", flag).await;
    }
    server
}

/// `(flag, OpenFeature type, default)` of the synced flags.
const SYNCED: [(&str, &str, &str); 7] = [
    ("targeted", "string", "\"none\""),
    ("ramp", "string", "\"none\""),
    ("three", "float", "0"),
    ("whole", "boolean", "false"),
    ("theme", "object", "{}"),
    ("killed", "string", "\"none\""),
    ("deferring", "string", "\"code default\""),
];

/// Two thousand users whose attributes take every type a context may hold (text,
/// numbers, booleans, lists of text, absent), and contexts with no or an empty
/// targeting key.
fn contexts() -> Vec<Value> {
    let country = [
        json!("IT"),
        json!("DE"),
        json!("FR"),
        json!(5),
        json!(true),
        json!(["IT", "x"]),
        json!(["x"]),
        json!([]),
        Value::Null,
    ];
    let plan = [
        json!("free"),
        json!("pro"),
        json!(3),
        json!(false),
        json!(["free"]),
        json!(["pro", "free"]),
        json!([]),
        Value::Null,
    ];
    let email = [
        json!("a@corp.io"),
        json!("b@x.com"),
        json!("corp.io"),
        json!(7),
        json!(true),
        json!(["z@corp.io"]),
        json!(["a@y"]),
        Value::Null,
    ];
    let groups = [
        json!(["beta"]),
        json!(["staff", "beta"]),
        json!(["staff"]),
        json!([]),
        Value::Null,
    ];
    let mut contexts: Vec<Value> = (0..2000_usize)
        .map(|i| {
            let mut context = json!({"targetingKey": format!("user-{i}")});
            // Coprime strides, so the attributes vary independently.
            for (name, pool, stride) in [
                ("country", &country[..], 1),
                ("plan", &plan[..], 3),
                ("email", &email[..], 7),
                ("groups", &groups[..], 11),
            ] {
                let value = &pool[(i / stride) % pool.len()];
                if !value.is_null() {
                    context[name] = value.clone();
                }
            }
            context
        })
        .collect();
    contexts.push(json!({}));
    contexts.push(json!({"targetingKey": ""}));
    contexts.push(json!({"targetingKey": "", "groups": ["beta"]}));
    contexts
}

#[tokio::test]
async fn flagds_own_engine_gives_every_context_our_variant_from_the_sync() {
    let server = synced_server().await;
    let contexts = contexts();
    let mut cases = Vec::new();
    for (key, kind, default) in SYNCED {
        for (i, context) in contexts.iter().enumerate() {
            let default: Value = serde_json::from_str(default).expect("default");
            cases.push(case(
                &format!("{key}/{i}"),
                key,
                kind,
                default,
                context.clone(),
            ));
        }
    }
    cases.push(case(
        "legacy",
        "legacy",
        "boolean",
        json!(true),
        json!({"targetingKey": "u"}),
    ));
    let (mut client, _dir) = python_client(&server, "in-process", &cases, Some("ramp"));
    let initial = parse(&client.line_after("initial ").await);
    same_as_ours(&server, &contexts, &initial, true);
    // What flagd cannot evaluate exactly is not synced: not found, never different.
    assert_eq!(
        initial["legacy"]["error_code"], "FLAG_NOT_FOUND",
        "{}",
        initial["legacy"]
    );

    // A kill reaches the provider over the sync stream.
    server.kill("prod", "ramp").await;
    let changed = parse(&client.line_after("changed ").await);
    same_as_ours(&server, &contexts, &changed["results"], false);
    assert_eq!(
        changed["results"]["ramp/0"]["variant"], "old",
        "{}",
        changed["results"]["ramp/0"]
    );
    client.kill().await;
    server.stop().await;
}

/// Each synced flag's variant and value for each context, as the provider got them,
/// are our core's now; with `split`, the rollouts served both sides.
fn same_as_ours(server: &TestServer, contexts: &[Value], results: &Value, split: bool) {
    let prod = server.state.envs.get("prod").expect("prod");
    let mut served = std::collections::BTreeSet::new();
    for (key, _, default) in SYNCED {
        for (i, context) in contexts.iter().enumerate() {
            let got = &results[format!("{key}/{i}")];
            let ctx: Context = serde_json::from_value(context.clone()).expect("context");
            let ours = evaluate(&prod.snapshot, key, &ctx);
            assert_eq!(
                got["variant"],
                json!(ours.variant),
                "{key} {context}: {got}"
            );
            let expected = match ours.value {
                Some(value) => value.clone(),
                None => serde_json::from_str(default).expect("default"),
            };
            // Numbers as numbers: the float getter answers 3 as 3.0.
            match (got["value"].as_f64(), expected.as_f64()) {
                (Some(got_number), Some(number)) => {
                    assert_eq!(got_number, number, "{key} {context}: {got}");
                }
                _ => assert_eq!(got["value"], expected, "{key} {context}: {got}"),
            }
            assert_eq!(got["error_code"], Value::Null, "{key} {context}: {got}");
            served.insert(format!("{key}={}", got["variant"]));
        }
    }
    if split {
        for side in [
            "ramp=\"new\"",
            "ramp=\"old\"",
            "three=\"a\"",
            "three=\"c\"",
            "targeted=\"new\"",
            "targeted=\"mid\"",
            "targeted=\"old\"",
        ] {
            assert!(served.contains(side), "{side} never served: {served:?}");
        }
    }
}
