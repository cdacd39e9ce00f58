//! What the CLI's integration tests share.

use std::process::Stdio;

use switchyard_testkit::server_process::{ServerProcess, ADMIN};

/// Runs `switchyard ARGS` against `server` with the admin token: exit code, stdout,
/// stderr.
pub async fn cli(server: &ServerProcess, args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env("SWITCHYARD_URL", &server.base)
        .env("SWITCHYARD_TOKEN", ADMIN)
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
