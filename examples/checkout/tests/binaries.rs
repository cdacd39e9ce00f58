//! The two binaries as real processes: what their command lines refuse, and the load
//! generator's bounded run and summary line against a local service. (The service's
//! routes are tested without a socket in `src/service.rs`; both binaries together,
//! with a flag server, HAProxy and Prometheus, in `tests/tests/canary_demo.rs`.)

use std::process::{Output, Stdio};
use std::time::Duration;

use switchyard_testkit::http::serve;
use tokio::process::Command;

/// How long one run of a binary may take.
const DEADLINE: Duration = Duration::from_secs(30);

async fn run(binary: &str, args: &[&str]) -> Output {
    let mut command = Command::new(binary);
    // Nothing from the caller's environment configures the run.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHECKOUT_") {
            command.env_remove(key);
        }
    }
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(DEADLINE, output)
        .await
        .unwrap_or_else(|_| panic!("{binary} {args:?} did not end within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("run {binary}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn checkout_refuses_a_fail_rate_outside_zero_to_one() {
    for rate in ["1.5", "-0.1", "often"] {
        let output = run(
            env!("CARGO_BIN_EXE_checkout"),
            &[
                "--version",
                "v1",
                "--sdk-token",
                "t",
                &format!("--fail-rate={rate}"),
            ],
        )
        .await;
        let stderr = text(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "--fail-rate {rate}: {stderr}"
        );
        assert!(
            stderr.contains("a fail rate is a number from 0.0 to 1.0"),
            "--fail-rate {rate}: {stderr}"
        );
    }
}

#[tokio::test]
async fn checkout_says_which_flag_server_it_cannot_reach() {
    let unused = switchyard_testkit::unused_addr();
    let url = format!("http://{unused}");
    let output = run(
        env!("CARGO_BIN_EXE_checkout"),
        &["--version", "v1", "--sdk-token", "t", "--server-url", &url],
    )
    .await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("loading flags from {url}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn checkout_load_stops_at_max_requests_and_counts_them_per_version() {
    // Every other request fails, as a canary would.
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/checkout",
        axum::routing::get(move || {
            let n = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let status = if n % 2 == 0 { 200 } else { 500 };
            async move {
                (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    r#"{"version":"v9","path":"new"}"#,
                )
            }
        }),
    );
    let server = serve(app).await;
    let target = server.url();
    let output = run(
        env!("CARGO_BIN_EXE_checkout-load"),
        &[
            "--target",
            &target,
            "--rate",
            "500",
            "--duration",
            "60s",
            "--max-requests",
            "10",
            "--concurrency",
            "1",
        ],
    )
    .await;
    drop(server);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    let line = stdout.trim();
    assert!(
        line.starts_with("checkout-load: 10 requests in ")
            && line.ends_with(": 5 ok, 5 errors; v9 5 ok 5 errors; no answer 0"),
        "{line}"
    );
}

#[tokio::test]
async fn checkout_load_refuses_a_rate_of_zero() {
    let output = run(
        env!("CARGO_BIN_EXE_checkout-load"),
        &["--target", "http://127.0.0.1:9", "--rate", "0"],
    )
    .await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--rate must be above 0"), "{stderr}");
}
