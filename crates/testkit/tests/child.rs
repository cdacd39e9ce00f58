//! The child-process rig, and the haproxy and Prometheus rigs started from a config of
//! the caller's (as the canary demo's templates are).

use std::time::Duration;

use switchyard_testkit::child::ChildProcess;
use switchyard_testkit::haproxy::{count_through, HaproxyProcess, Upstream};
use switchyard_testkit::prometheus::{wait_for_value, Exporter, PrometheusProcess};
use tokio::process::Command;

/// A shell that prints a line, then waits for SIGTERM and says goodbye.
fn shell(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    command
}

#[tokio::test]
async fn a_child_prints_a_line_logs_to_its_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = ChildProcess::spawn(
        "greeter",
        &mut shell("trap 'echo bye; exit 0' TERM; echo 'listening on 127.0.0.1:7' >&2; while :; do sleep 0.05; done"),
        dir.path(),
    );
    assert_eq!(child.line_after("listening on ").await, "127.0.0.1:7");
    child.assert_running();
    let output = child.stop().await;
    assert!(output.ends_with("bye\n"), "{output:?}");
    let log = std::fs::read_to_string(dir.path().join("greeter.log")).expect("log file");
    assert_eq!(log, output);
}

#[tokio::test]
#[should_panic(expected = "quitter exited")]
async fn waiting_for_a_line_from_a_child_that_exited_fails_with_its_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = ChildProcess::spawn("quitter", &mut shell("echo nothing here"), dir.path());
    child.line_after("listening on ").await;
}

#[tokio::test]
async fn haproxy_runs_a_config_of_the_callers_and_its_weights_move() {
    let (one, two) = (Upstream::start("one").await, Upstream::start("two").await);
    let haproxy = HaproxyProcess::start_with_config("pool", |listeners| {
        format!(
            "global\n    stats socket ipv4@{} level admin\n    noreuseport\n    nbthread 1\n\
             defaults\n    mode http\n    option http-server-close\n    timeout connect 2s\n    \
             timeout client 5s\n    timeout server 5s\n\
             frontend web\n    bind {}\n    default_backend pool\n\
             backend pool\n    balance roundrobin\n    server one {} weight 100\n    \
             server two {} weight 0\n",
            listeners.admin,
            listeners.frontend,
            one.addr(),
            two.addr()
        )
    })
    .await;
    assert_eq!(
        (haproxy.weight("one").await, haproxy.weight("two").await),
        (100, 0)
    );
    assert_eq!(count_through(haproxy.frontend_addr(), 4).await["one"], 4);
    haproxy.set_weight("one", 0).await;
    haproxy.set_weight("two", 50).await;
    assert_eq!(
        (haproxy.weight("one").await, haproxy.weight("two").await),
        (0, 50)
    );
    assert_eq!(count_through(haproxy.frontend_addr(), 4).await["two"], 4);
}

#[tokio::test]
async fn prometheus_runs_a_config_of_the_callers() {
    let exporter = Exporter::start().await;
    exporter.set("demo_gauge", &[], 7.0);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: mine\n    static_configs:\n      - targets: ['{}']\n",
        exporter.addr()
    );
    let prometheus = PrometheusProcess::start_with_config(&config).await;
    assert_eq!(prometheus.url(), format!("http://{}", prometheus.addr()));
    let value = wait_for_value(
        &prometheus.url(),
        "demo_gauge{job=\"mine\"}",
        |v| v == 7.0,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(value, 7.0);
}
