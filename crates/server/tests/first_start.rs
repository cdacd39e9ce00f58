//! What a newcomer meets at the first start: `--demo` prints one labelled set of
//! tokens and keeps it across restarts, logs written to a file carry no colour codes,
//! and the bootstrap admin token (`--admin-token`) shows up in the token list and
//! explains why it cannot be revoked.

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_server::Server;
use switchyard_testkit::in_process;
use switchyard_testkit::in_process::ADMIN;
use switchyard_testkit::server_process::{Launch, ServerProcess};

/// The value of the banner line `  export <var>=<value>`, if there is exactly one.
fn exported(output: &str, var: &str) -> Option<String> {
    let prefix = format!("export {var}=");
    let values: Vec<&str> = output
        .lines()
        .filter_map(|line| line.trim().strip_prefix(prefix.as_str()))
        .collect();
    match values.as_slice() {
        [value] => Some((*value).to_owned()),
        _ => None,
    }
}

/// Sends a request with a bearer token; status and JSON.
async fn call(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn stop(mut server: ServerProcess) {
    server.signal(Signal::SIGTERM);
    let status = server.wait().await;
    assert!(
        status.success(),
        "stopped with {status}; output:\n{}",
        server.output()
    );
}

/// The last line of the demo banner: everything before it has been written.
const BANNER_END: &str = "audit?env=development";

#[tokio::test]
async fn demo_prints_one_labelled_token_set_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (first, second) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let demo = |log| Launch {
        args: &["--demo"],
        admin_token: None,
        log_file: Some(log),
        ..Launch::default()
    };
    let mut server = ServerProcess::start_with(&data, demo(&first)).await;
    server.wait_for_output(BANNER_END).await;
    let output = server.output();
    assert!(
        output.contains("Admin token, for you") && output.contains("SDK token, for your services"),
        "each token says what it is for:\n{output}"
    );
    let admin = exported(&output, "SWITCHYARD_ADMIN").expect("exactly one admin token printed");
    let sdk = exported(&output, "SWITCHYARD_SDK").expect("exactly one sdk token printed");
    assert_eq!(
        output.matches("swy_").count(),
        2,
        "no other token is printed:\n{output}"
    );
    let (status, list) = call(&server.base, "GET", "/v1/admin/tokens", &admin, None).await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["demo-sdk", "initial-admin"],
        "the only tokens: {list}"
    );
    let console = format!("{}/console", server.base);
    assert!(
        output.contains(&format!("Web console: open {console} ")),
        "the console's URL is printed:\n{output}"
    );
    let evaluate = "/v1/evaluate/development/new-checkout";
    let context = json!({"targetingKey": "user-42"});
    let (status, body) = call(&server.base, "POST", evaluate, &sdk, Some(context.clone())).await;
    assert_eq!(status, 200, "{body}");
    stop(server).await;

    let mut server = ServerProcess::start_with(&data, demo(&second)).await;
    server.wait_for_output(BANNER_END).await;
    let output = server.output();
    assert!(
        !output.contains("swy_"),
        "no token is issued again:\n{output}"
    );
    for name in ["initial-admin", "demo-sdk"] {
        assert!(
            output.contains(&format!(
                "the `{name}` token printed when it was first issued"
            )) && output.contains("already exists and is kept"),
            "says `{name}` already exists:\n{output}"
        );
    }
    let (status, list) = call(&server.base, "GET", "/v1/admin/tokens", &admin, None).await;
    assert_eq!(status, 200, "the first admin token still works: {list}");
    assert_eq!(list["tokens"].as_array().map(Vec::len), Some(2), "{list}");
    let (status, body) = call(&server.base, "POST", evaluate, &sdk, Some(context)).await;
    assert_eq!(status, 200, "the first sdk token still works: {body}");
    stop(server).await;
}

#[tokio::test]
async fn logs_written_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let server = ServerProcess::start_with(
        &dir.path().join("data"),
        Launch {
            args: &[],
            log_file: Some(&log),
            ..Launch::default()
        },
    )
    .await;
    let (status, _) = call(&server.base, "GET", "/v1/admin/envs", ADMIN, None).await;
    assert_eq!(status, 200);
    stop(server).await;
    let written = std::fs::read(&log).expect("log file");
    let text = String::from_utf8_lossy(&written);
    assert!(
        text.contains("INFO") && text.contains("shutting down"),
        "the default format wrote its lines:\n{text}"
    );
    assert!(
        !written.contains(&0x1b),
        "no ANSI escape (ESC) in a redirected log:\n{}",
        text.escape_debug()
    );
}

#[tokio::test]
async fn the_bootstrap_admin_token_is_listed_and_explains_why_it_cannot_be_revoked() {
    let server = in_process::start().await;
    let (status, list) = server
        .call("GET", "/v1/admin/tokens", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "{list}");
    let mut listed = list["tokens"][0].clone();
    // This very request used it.
    assert!(listed["last_used_ms"].as_u64().is_some(), "{list}");
    listed["last_used_ms"] = json!(null);
    assert_eq!(
        listed,
        json!({
            "name": "bootstrap-admin", "kind": "admin", "env": null, "created_ms": null,
            "expires_ms": null, "expired": false, "rotated_ms": null,
            "previous_valid_until_ms": null, "last_used_ms": null, "source": "configuration",
        }),
        "{list}"
    );
    let (status, body) = server
        .call(
            "DELETE",
            "/v1/admin/tokens/bootstrap-admin",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("--admin-token")
            && message.contains("SWITCHYARD_ADMIN_TOKEN")
            && message.contains("restart"),
        "{message}"
    );
    let (status, _) = server
        .call("GET", "/v1/admin/envs", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "still accepted");
    server.stop().await;

    // Without a configured bootstrap token there is no such row and nothing to refuse.
    let dir = tempfile::tempdir().expect("temp dir");
    let opened = Server::open_embedded(dir.path(), None)
        .await
        .expect("server loads");
    let admin = opened
        .generated_admin_token
        .clone()
        .expect("the first admin token is generated");
    let server = in_process::serve(opened, Some(dir)).await;
    let (_, list) = server
        .call("GET", "/v1/admin/tokens", Some(&admin), None)
        .await;
    assert_eq!(list["tokens"][0]["name"], "initial-admin", "{list}");
    assert_eq!(list["tokens"][0]["source"], "store", "{list}");
    assert_eq!(list["tokens"].as_array().map(Vec::len), Some(1), "{list}");
    let (status, _) = server
        .call(
            "DELETE",
            "/v1/admin/tokens/bootstrap-admin",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}
