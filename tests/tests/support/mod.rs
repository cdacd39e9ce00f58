//! The canary demo's stack for the end-to-end tests that run it (`canary_demo.rs`,
//! `console_releases.rs`): every piece a real process on free loopback ports — the
//! flag server (its console connected to the orchestrator), checkout v1 (stable) and
//! v2 (canary, with the new code path behind `new-checkout`), HAProxy in front of
//! them, Prometheus scraping them, the orchestrator, and the load generator —
//! configured from the demo's own templates (`examples/canary-demo/`).
//!
//! The binaries are built by [`build_binaries`], so the tests work from a clean clone;
//! `haproxy` and `prometheus` must be on `PATH` (the Debian packages of those names;
//! scripts/test.sh installs them) — without them the tests fail saying so.

#![allow(dead_code)] // each test file uses part of it

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
use switchyard_testkit::server_process::{server_binary, Launch, ServerProcess};
use switchyard_testkit::{unused_addr, DEADLINE};
use tokio::process::Command;

/// The demo's templates and plans.
pub const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/canary-demo");
/// The flag server environment the plans release in.
pub const ENV: &str = "production";
/// The flag both plans ramp.
pub const FLAG: &str = "new-checkout";
/// How long one `apply --wait` may take (the plans need about 15 s).
pub const RELEASE_TIMEOUT: &str = "90s";

/// The whole demo, running.
pub struct DemoStack {
    /// The binaries it runs.
    pub bin: Binaries,
    /// The flag server (its console's `--orchestrator-url` is the orchestrator).
    pub server: ServerProcess,
    /// The flag server's admin client.
    pub admin: AdminClient,
    /// checkout v1.
    pub stable: ChildProcess,
    /// checkout v2.
    pub canary: ChildProcess,
    /// checkout v2's URL (for `/admin/fail-rate`).
    pub canary_url: String,
    /// HAProxy in front of both.
    pub haproxy: HaproxyProcess,
    /// Prometheus scraping both.
    pub prometheus: PrometheusProcess,
    /// The orchestrator daemon.
    pub orchestrator: ChildProcess,
    /// Its URL.
    pub orchestrator_url: String,
    /// The load generator.
    pub load: ChildProcess,
    /// An HTTP client with the test's deadline.
    pub http: reqwest::Client,
    /// Where every process logs and keeps its data (last, so it outlives them).
    pub work: tempfile::TempDir,
}

impl DemoStack {
    /// Starts everything, with the flag off for everyone and traffic all on stable,
    /// and waits until Prometheus scrapes both versions. The load runs `load_for`.
    pub async fn start(load_for: &str) -> DemoStack {
        let bin = build_binaries().await;
        let work = tempfile::tempdir().expect("temp dir");

        // The flag server, its console pointed at where the orchestrator will listen.
        let orchestrator_addr = unused_addr();
        let orchestrator_url = format!("http://{orchestrator_addr}");
        let server = ServerProcess::start_with(
            &work.path().join("flags"),
            Launch {
                args: &["--orchestrator-url", &orchestrator_url],
                ..Launch::default()
            },
        )
        .await;
        let admin = switchyard_e2e::admin(&server.base);
        admin.create_env(ENV).await.expect("create env");
        put_flag_off(&admin).await;
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

        // The orchestrator daemon, where the flag server's console expects it.
        let orchestrator_data = work.path().join("orchestrator").display().to_string();
        let mut orchestrator = start(
            "orchestrator",
            &bin.orchestrator,
            &[
                "serve",
                "--listen",
                &orchestrator_addr.to_string(),
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
        let listening = orchestrator
            .line_after("switchyard-orchestrator listening on ")
            .await;
        assert_eq!(
            listening.trim_start_matches("http://"),
            orchestrator_addr.to_string(),
            "the orchestrator listens where the flag server's console calls it"
        );

        // Load through HAProxy for as long as the releases take (bounded by itself too).
        let frontend = format!("http://{}", haproxy.frontend_addr());
        let load = start(
            "checkout-load",
            &bin.checkout_load,
            &[
                "--target",
                &frontend,
                "--rate",
                "100",
                "--duration",
                load_for,
                "--users",
                "1000",
            ],
            work.path(),
        );
        DemoStack {
            bin,
            server,
            admin,
            stable,
            canary,
            canary_url,
            haproxy,
            prometheus,
            orchestrator,
            orchestrator_url,
            load,
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("HTTP client"),
            work,
        }
    }

    /// A demo plan (`release-good.yaml`, …) with this stack's ports filled in.
    pub fn plan(&self, template: &str) -> String {
        render(
            template,
            &[
                (
                    "HAPROXY_ADMIN_PORT",
                    self.haproxy.admin_addr().port().to_string(),
                ),
                ("PROMETHEUS_PORT", self.prometheus.addr().port().to_string()),
            ],
        )
    }

    /// Back to the starting line for the next release: all traffic on stable, the
    /// flag off for everyone. Stable first: with both at 0 HAProxy would have nowhere
    /// to send a request.
    pub async fn reset(&self) {
        self.haproxy.set_weight("stable", 100).await;
        self.haproxy.set_weight("canary", 0).await;
        assert_eq!(
            self.weights().await,
            (0, 100),
            "(canary, stable) after the reset"
        );
        put_flag_off(&self.admin).await;
        assert_eq!(self.variants_served().await, ["off"], "after the reset");
    }

    /// Makes the canary's new code path fail this share of its requests.
    pub async fn fail_rate(&self, rate: &str) {
        let answer = self
            .http
            .post(format!("{}/admin/fail-rate", self.canary_url))
            .body(rate.to_owned())
            .send()
            .await
            .expect("POST /admin/fail-rate");
        assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    }

    /// `(canary, stable)` current weights in HAProxy.
    pub async fn weights(&self) -> (u32, u32) {
        (
            self.haproxy.weight("canary").await,
            self.haproxy.weight("stable").await,
        )
    }

    /// The flag as the admin API returns it.
    pub async fn read_flag(&self) -> Value {
        let flag = self
            .admin
            .flag(ENV, FLAG)
            .await
            .expect("read flag")
            .expect("the flag exists");
        serde_json::to_value(flag.value).expect("flag JSON")
    }

    /// The variants the flag server serves to 50 users, each once, sorted.
    pub async fn variants_served(&self) -> Vec<String> {
        let mut served = std::collections::BTreeSet::new();
        for i in 0..50 {
            let context = json!({ "targetingKey": format!("user-{i}") });
            let answer = evaluate(&self.server.base, ENV, FLAG, context).await;
            served.insert(answer["variant"].as_str().unwrap_or("?").to_owned());
        }
        served.into_iter().collect()
    }

    /// `GET /v1/releases/NAME` from the orchestrator.
    pub async fn read_release(&self, name: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/releases/{name}", self.orchestrator_url))
            .send()
            .await
            .expect("GET release");
        assert_eq!(response.status(), 200);
        response.json().await.expect("release JSON")
    }

    /// `GET /v1/releases` from the orchestrator: every release's name.
    pub async fn release_names(&self) -> Vec<String> {
        let answer: Value = self
            .http
            .get(format!("{}/v1/releases", self.orchestrator_url))
            .send()
            .await
            .expect("GET releases")
            .json()
            .await
            .expect("JSON");
        answer["releases"]
            .as_array()
            .expect("releases")
            .iter()
            .map(|r| r["name"].as_str().expect("name").to_owned())
            .collect()
    }
}

/// Starts one of the demo's binaries, logging to `<dir>/<name>.log`; nothing from the
/// environment of whoever runs the tests leaks into it.
pub fn start(name: &str, binary: &Path, args: &[impl AsRef<OsStr>], dir: &Path) -> ChildProcess {
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

/// `new-checkout`, on/off, off for everyone.
pub fn flag_off() -> Value {
    json!({
        "key": FLAG, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "default": {"variant": "off"}
    })
}

/// Puts the flag back to its starting state: off for everyone.
pub async fn put_flag_off(admin: &AdminClient) {
    admin
        .put_flag(ENV, &typed(flag_off()), None)
        .await
        .expect("put flag");
}

/// Runs `switchyard-orchestrator apply PLAN --wait`; its exit code and output.
pub async fn apply(orchestrator: &Path, url: &str, plan: &Path) -> (Option<i32>, String) {
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
pub fn load_counts(summary: &str) -> BTreeMap<String, (u64, u64)> {
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
pub fn render(template: &str, values: &[(&str, String)]) -> String {
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
pub struct Binaries {
    /// switchyard-orchestrator.
    pub orchestrator: PathBuf,
    /// checkout.
    pub checkout: PathBuf,
    /// checkout-load.
    pub checkout_load: PathBuf,
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
pub async fn build_binaries() -> Binaries {
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
