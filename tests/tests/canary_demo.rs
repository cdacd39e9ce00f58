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
//! The test makes sure the binaries it runs are built (`cargo test --workspace
//! --no-run` with this test's profile, see [`build_binaries`]), so it works from a clean
//! clone; `haproxy` and `prometheus` must be on `PATH` (the Debian packages of those
//! names; scripts/test.sh installs them) — without them it fails saying so.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::{evaluate, typed};
use switchyard_sdk::admin::AdminClient;
use switchyard_testkit::child::ChildProcess;
use switchyard_testkit::haproxy::HaproxyProcess;
use switchyard_testkit::in_process::ADMIN;
use switchyard_testkit::prometheus::{wait_for_value, PrometheusProcess, SCRAPE_DEADLINE};
use switchyard_testkit::server_process::{server_binary, ServerProcess};
use switchyard_testkit::DEADLINE;
use tokio::process::Command;
use tokio::time::Instant;

/// The demo's templates and plans.
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/canary-demo");
/// The flag server environment the plans release in.
const ENV: &str = "production";
/// The flag both plans ramp.
const FLAG: &str = "new-checkout";
/// How long one `apply --wait` may take (the plans need about 15 s).
const RELEASE_TIMEOUT: &str = "90s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_and_a_failing_one_rolled_back() {
    let started = Instant::now();
    let bin = build_binaries().await;
    eprintln!("binaries ready after {:?}", started.elapsed());
    let work = tempfile::tempdir().expect("temp dir");

    // The flag server, with the flag off for everyone and an SDK token for checkout.
    let server = ServerProcess::start(&work.path().join("flags")).await;
    let admin = &switchyard_e2e::admin(&server.base);
    admin.create_env(ENV).await.expect("create env");
    put_flag_off(admin).await;
    let sdk_token = admin
        .create_token("checkout", switchyard_sdk::admin::TokenKind::Sdk, Some(ENV))
        .await
        .expect("sdk token")
        .token;

    // Both checkout builds.
    let checkout = |version: &str, new_code: bool| {
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--version",
            version,
            "--server-url",
            &server.base,
            "--sdk-token",
            &sdk_token,
        ];
        if new_code {
            args.push("--new-code");
        }
        start(
            &format!("checkout-{version}"),
            &bin.checkout,
            &args,
            work.path(),
        )
    };
    let mut stable = checkout("v1", false);
    let mut canary = checkout("v2", true);
    let stable_url = stable.line_after("checkout v1 listening on ").await;
    let canary_url = canary.line_after("checkout v2 listening on ").await;
    let port = |url: &str| -> String {
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        addr.port().to_string()
    };
    let (stable_port, canary_port) = (port(&stable_url), port(&canary_url));

    // HAProxy and Prometheus from the demo's templates.
    let haproxy = HaproxyProcess::start_with_config("checkout", |listeners| {
        render(
            "haproxy.cfg.tmpl",
            &[
                ("FRONTEND_PORT", listeners.frontend.port().to_string()),
                ("HAPROXY_ADMIN_PORT", listeners.admin.port().to_string()),
                ("STABLE_PORT", stable_port.clone()),
                ("CANARY_PORT", canary_port.clone()),
            ],
        )
    })
    .await;
    let prometheus = PrometheusProcess::start_with_config(&render(
        "prometheus.yml.tmpl",
        &[
            ("STABLE_PORT", stable_port.clone()),
            ("CANARY_PORT", canary_port.clone()),
        ],
    ))
    .await;
    // Both targets scraped, so analyses measure from the start.
    wait_for_value(
        &prometheus.url(),
        "sum(up{job=\"checkout\"})",
        |up| up == 2.0,
        SCRAPE_DEADLINE,
    )
    .await;

    // The orchestrator daemon.
    let orchestrator_data = work.path().join("orchestrator").display().to_string();
    let mut orchestrator = start(
        "orchestrator",
        &bin.orchestrator,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "200ms",
            "--data-dir",
            &orchestrator_data,
            "--server-url",
            &server.base,
            "--admin-token",
            ADMIN,
        ],
        work.path(),
    );
    let orchestrator_url = orchestrator
        .line_after("switchyard-orchestrator listening on ")
        .await;

    // Load through HAProxy for as long as both releases take (bounded by itself too).
    let frontend = format!("http://{}", haproxy.frontend_addr());
    let mut load = start(
        "checkout-load",
        &bin.checkout_load,
        &[
            "--target",
            &frontend,
            "--rate",
            "100",
            "--duration",
            "240s",
            "--users",
            "1000",
        ],
        work.path(),
    );

    let placeholders = [
        (
            "HAPROXY_ADMIN_PORT",
            haproxy.admin_addr().port().to_string(),
        ),
        ("PROMETHEUS_PORT", prometheus.addr().port().to_string()),
    ];
    let http = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("HTTP client");

    // Release 1: v2 fails nothing, so it is promoted to 100 %.
    let good = work.path().join("release-good.yaml");
    std::fs::write(&good, render("release-good.yaml", &placeholders)).expect("write plan");
    let (code, output) = apply(&bin.orchestrator, &orchestrator_url, &good).await;
    assert_eq!(code, Some(0), "release 1 not promoted:\n{output}");
    assert!(
        output.contains("release checkout-good promoted"),
        "{output}"
    );
    let release = read_release(&http, &orchestrator_url, "checkout-good").await;
    assert_eq!(release["state"]["phase"], "succeeded", "{release:#}");
    let service = &release["state"]["services"][0];
    assert_eq!(
        (&service["phase"], &service["weight"]),
        (&json!("succeeded"), &json!(100))
    );
    assert_eq!(
        weights(&haproxy).await,
        (100, 0),
        "(canary, stable) after release 1"
    );
    let flag = read_flag(admin).await;
    assert_eq!(flag["enabled"], true, "{flag:#}");
    assert_eq!(variants_served(&server).await, ["on"], "after release 1");

    // Back to the starting line for the next release: all traffic on stable, the flag
    // off for everyone; and the canary now fails every fifth new-path request.
    // Stable first: with both at 0 HAProxy would have nowhere to send a request.
    haproxy.set_weight("stable", 100).await;
    haproxy.set_weight("canary", 0).await;
    assert_eq!(
        weights(&haproxy).await,
        (0, 100),
        "(canary, stable) after the reset"
    );
    put_flag_off(admin).await;
    assert_eq!(variants_served(&server).await, ["off"], "after the reset");
    let answer = http
        .post(format!("{canary_url}/admin/fail-rate"))
        .body("0.2")
        .send()
        .await
        .expect("POST /admin/fail-rate");
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);

    // Release 2: the canary's error rate breaches 5 % and the orchestrator rolls back.
    let bad = work.path().join("release-bad.yaml");
    std::fs::write(&bad, render("release-bad.yaml", &placeholders)).expect("write plan");
    let (code, output) = apply(&bin.orchestrator, &orchestrator_url, &bad).await;
    assert_eq!(code, Some(1), "release 2 not rolled back:\n{output}");
    assert!(
        output.contains("release checkout-bad rolled back"),
        "{output}"
    );
    let release = read_release(&http, &orchestrator_url, "checkout-bad").await;
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
        weights(&haproxy).await,
        (0, 100),
        "(canary, stable) after release 2"
    );
    let flag = read_flag(admin).await;
    assert_eq!(flag["enabled"], false, "not killed: {flag:#}");
    assert_eq!(variants_served(&server).await, ["off"], "after release 2");
    // The rollback kills the flag with the release's reason, then puts its
    // pre-release serve back (still killed), so a revive serves what it did before.
    let audit = admin
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
    let output = load.stop().await;
    let summary = output.lines().last().unwrap_or_default();
    let counts = load_counts(summary);
    let (v1, v2) = (counts["v1"], counts["v2"]);
    assert!(v1.0 > 0 && v2.0 > 0, "both versions served: {summary}");
    assert_eq!(v1.1, 0, "v1 never fails: {summary}");
    assert!(v2.1 > 0, "v2 failed while it ramped: {summary}");
    assert_eq!(counts["no answer"], (0, 0), "{summary}");

    for process in [&mut stable, &mut canary, &mut orchestrator] {
        process.assert_running();
    }
    eprintln!("{summary}");
    eprintln!("canary demo test took {:?}", started.elapsed());
}

/// Starts one of the demo's binaries, logging to `<dir>/<name>.log`; nothing from the
/// environment of whoever runs the tests leaks into it.
fn start(name: &str, binary: &Path, args: &[impl AsRef<OsStr>], dir: &Path) -> ChildProcess {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("SWITCHYARD_") || key.starts_with("CHECKOUT_") {
            command.env_remove(&*key);
        }
    }
    command.args(args).env("RUST_LOG", "info");
    ChildProcess::spawn(name, &mut command, dir)
}

/// `(canary, stable)` current weights in HAProxy.
async fn weights(haproxy: &HaproxyProcess) -> (u32, u32) {
    (
        haproxy.weight("canary").await,
        haproxy.weight("stable").await,
    )
}

/// `new-checkout`, on/off, off for everyone.
fn flag_off() -> Value {
    json!({
        "key": FLAG, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "default": {"variant": "off"}
    })
}

/// Puts the flag back to its starting state: off for everyone.
async fn put_flag_off(admin: &AdminClient) {
    admin
        .put_flag(ENV, &typed(flag_off()), None)
        .await
        .expect("put flag");
}

/// The flag as the admin API returns it.
async fn read_flag(admin: &AdminClient) -> Value {
    let flag = admin
        .flag(ENV, FLAG)
        .await
        .expect("read flag")
        .expect("the flag exists");
    serde_json::to_value(flag.value).expect("flag JSON")
}

/// The variants the flag server serves to 50 users, each once, sorted.
async fn variants_served(server: &ServerProcess) -> Vec<String> {
    let mut served = std::collections::BTreeSet::new();
    for i in 0..50 {
        let context = json!({ "targetingKey": format!("user-{i}") });
        let answer = evaluate(&server.base, ENV, FLAG, context).await;
        served.insert(answer["variant"].as_str().unwrap_or("?").to_owned());
    }
    served.into_iter().collect()
}

/// `GET /v1/releases/NAME` from the orchestrator.
async fn read_release(http: &reqwest::Client, url: &str, name: &str) -> Value {
    let response = http
        .get(format!("{url}/v1/releases/{name}"))
        .send()
        .await
        .expect("GET release");
    assert_eq!(response.status(), 200);
    response.json().await.expect("release JSON")
}

/// Runs `switchyard-orchestrator apply PLAN --wait`; its exit code and output.
async fn apply(orchestrator: &Path, url: &str, plan: &Path) -> (Option<i32>, String) {
    let run = Command::new(orchestrator)
        .args(["--url", url, "apply"])
        .arg(plan)
        .args(["--wait", "--timeout", RELEASE_TIMEOUT])
        .env_remove("SWITCHYARD_ORCHESTRATOR_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("apply --wait ends by its own --timeout")
        .expect("run switchyard-orchestrator apply");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "$ switchyard-orchestrator apply {} --wait\n{text}",
        plan.display()
    );
    (output.status.code(), text)
}

/// `(ok, errors)` per version, and `no answer` as `(0, n)`, from the load generator's
/// summary line.
fn load_counts(summary: &str) -> BTreeMap<String, (u64, u64)> {
    let mut counts = BTreeMap::new();
    for part in summary.split("; ").skip(1) {
        let words: Vec<&str> = part.split_whitespace().collect();
        let number = |word: &str| -> u64 {
            word.parse()
                .unwrap_or_else(|_| panic!("`{word}` in `{part}` of {summary}"))
        };
        match words.as_slice() {
            ["no", "answer", n] => counts.insert("no answer".to_owned(), (0, number(n))),
            [version, ok, "ok", errors, "errors"] => {
                counts.insert((*version).to_owned(), (number(ok), number(errors)))
            }
            _ => panic!("unexpected `{part}` in {summary}"),
        };
    }
    for key in ["v1", "v2", "no answer"] {
        assert!(counts.contains_key(key), "no `{key}` in {summary}");
    }
    counts
}

/// A demo template with its `{{NAME}}` placeholders filled in.
fn render(template: &str, values: &[(&str, String)]) -> String {
    let path = Path::new(DEMO).join(template);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (name, value) in values {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    let left = text
        .match_indices("{{")
        .find(|(at, _)| text[at + 2..].starts_with(|c: char| c.is_ascii_uppercase()));
    assert!(
        left.is_none(),
        "{template}: a placeholder is left: {}",
        &text[left.map_or(0, |(at, _)| at)..]
            .lines()
            .next()
            .unwrap_or("")
    );
    text
}

/// The binaries the demo runs.
struct Binaries {
    orchestrator: PathBuf,
    checkout: PathBuf,
    checkout_load: PathBuf,
}

/// Makes sure the binaries exist and returns where cargo put them: the flag server
/// where [`switchyard_e2e::server_binary`] looks. `cargo test` builds no binary of
/// another package for this one's tests, but it builds a package's binaries for that
/// package's own integration tests — the server, the orchestrator and the checkout
/// example all have some. So this runs `cargo test --workspace --no-run` with this
/// test's profile and target directory: after `cargo test --workspace` (CI, the README)
/// every unit is fresh and it only checks; a narrower build (`cargo build -p …`)
/// would resolve dependency features differently and recompile dozens of crates.
/// Run alone (`cargo test -p switchyard-e2e --test canary_demo`), it builds what the
/// workspace's tests need, once.
async fn build_binaries() -> Binaries {
    let exe = std::env::current_exe().expect("test executable path");
    // <target>/[<triple>/]<profile>/deps/<test>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in <profile>/deps");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["test", "--workspace", "--no-run"])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--message-format", "json-render-diagnostics"]);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(profile) => {
            cargo.args(["--profile", profile]);
        }
        None => panic!("no profile in {}", exe.display()),
    }
    if let Some(triple) = profile_dir.parent().filter(|dir| *dir != target_dir) {
        cargo
            .arg("--target")
            .arg(triple.file_name().expect("target triple"));
    }
    let output = cargo
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run cargo test --no-run");
    assert!(
        output.status.success(),
        "cargo test --workspace --no-run failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut executables = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let is_binary = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
            && message["profile"]["test"] == false;
        if let (true, Some(name), Some(path)) = (
            is_binary,
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            executables.insert(name.to_owned(), PathBuf::from(path));
        }
    }
    let mut take = |name: &str| {
        executables
            .remove(name)
            .unwrap_or_else(|| panic!("cargo built no `{name}` binary"))
    };
    let server = take("switchyard-server");
    assert_eq!(
        server,
        server_binary(),
        "the flag server was built where ServerProcess does not look"
    );
    Binaries {
        orchestrator: take("switchyard-orchestrator"),
        checkout: take("checkout"),
        checkout_load: take("checkout-load"),
    }
}
