//! What the CLI's integration tests share.

// Each test file uses some of these helpers.
#![allow(dead_code)]

use std::process::Stdio;

use switchyard_testkit::server_process::{ServerProcess, ADMIN};

/// Runs `switchyard ARGS` against `server` with the admin token: exit code, stdout,
/// stderr.
pub async fn cli(server: &ServerProcess, args: &[&str]) -> (i32, String, String) {
    cli_at(&server.base, args).await
}

/// Runs `switchyard ARGS` against the server at `base` (a proxy, an `https://` URL)
/// with the admin token, trusting no CA but the one `--ca-file` names: exit code,
/// stdout, stderr.
pub async fn cli_at(base: &str, args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env("SWITCHYARD_URL", base)
        .env("SWITCHYARD_TOKEN", ADMIN)
        .env_remove("SWITCHYARD_CA_FILE")
        .env_remove("SSL_CERT_FILE")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the CLI runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
