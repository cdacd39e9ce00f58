//! A real `prometheus` as a child process, scraping the targets a test gives it every
//! second (job `canary`), for tests of metric analysis. Its data lives in a temporary
//! directory; it is killed when dropped.
//!
//! Also here: [`Exporter`], a `/metrics` endpoint whose gauges a test sets while it
//! runs, and [`wait_for_value`], which polls a query until Prometheus has scraped what
//! the test expects.
//!
//! `prometheus` must be on `PATH`; without it every test using this module panics
//! saying so — it never skips.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use crate::child::ChildProcess;
use crate::free_port;
use crate::http::{serve, Served};
use crate::path::find_on_path;

/// How long `prometheus`, once started, may take to answer `/-/ready`.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A generous bound for [`wait_for_value`]: with a 1 s scrape interval a value set on
/// an [`Exporter`] shows within two or three seconds, more on a loaded machine.
pub const SCRAPE_DEADLINE: Duration = Duration::from_secs(30);

/// How often readiness and queries are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long one HTTP request to Prometheus may take while polling.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `prometheus`.
pub struct PrometheusProcess {
    child: ChildProcess,
    addr: SocketAddr,
    /// Holds the config, the TSDB and `prometheus.log`; removed when dropped (after the
    /// kill: fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl PrometheusProcess {
    /// Starts `prometheus` on a free loopback port, scraping `targets` every second as
    /// job `canary`, and waits until it is ready to answer queries.
    pub async fn start(targets: &[SocketAddr]) -> PrometheusProcess {
        PrometheusProcess::start_with_config(&render_config(targets)).await
    }

    /// Starts `prometheus` with a `prometheus.yml` of the caller's (e.g. a demo's
    /// template) on a free loopback port, and waits until it is ready to answer
    /// queries.
    pub async fn start_with_config(config: &str) -> PrometheusProcess {
        let binary = find_on_path("prometheus").unwrap_or_else(|| {
            panic!(
                "prometheus not found: install the Debian package `prometheus` (scripts/test.sh does)"
            )
        });
        let dir = tempfile::tempdir().expect("temp dir for prometheus");
        let path = dir.path().join("prometheus.yml");
        std::fs::write(&path, config).expect("write prometheus.yml");
        // The port was free when chosen, but another process may take it before
        // prometheus binds it: then prometheus exits and another port is tried.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut command = Command::new(&binary);
            command
                .arg(format!("--config.file={}", path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                // Its info lines (one per startup phase) would bury the warnings that
                // explain a failed test.
                .arg("--log.level=warn");
            let mut child = ChildProcess::spawn("prometheus", &mut command, dir.path());
            match wait_ready(&mut child, addr).await {
                Ok(()) => {
                    return PrometheusProcess {
                        child,
                        addr,
                        _dir: dir,
                    }
                }
                Err(problem) => {
                    child.kill().await;
                    assert!(
                        attempts < 3,
                        "prometheus did not start: {problem}; its output:\n{}",
                        child.output()
                    );
                    eprintln!("prometheus on {addr}: {problem}; trying another port");
                }
            }
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL of its query API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What prometheus logged so far (warnings and errors only), for failure messages.
    pub fn output(&self) -> String {
        self.child.output()
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        // Killed here, before the temporary directory it writes to is removed.
        // `kill_on_drop` covers a child dropped while `start` is still waiting for it.
        self.child.start_kill();
    }
}

fn render_config(targets: &[SocketAddr]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    // A 1 s interval so scraped values show within seconds; the timeout must not be
    // longer than the interval.
    format!(
        "global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: canary
    static_configs:
      - targets: [{}]
",
        targets.join(", ")
    )
}

/// Polls `/-/ready` until it answers 200, the process exits, or [`READY_DEADLINE`].
async fn wait_ready(child: &mut ChildProcess, addr: SocketAddr) -> Result<(), String> {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/-/ready");
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(status) = child.exit_status() {
            return Err(format!("it exited ({status})"));
        }
        let last = match client.get(&url).timeout(REQUEST_TIMEOUT).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => format!("GET {url} answered {}", response.status()),
            Err(error) => format!("GET {url}: {error}"),
        };
        if Instant::now() >= deadline {
            return Err(format!("not ready within {READY_DEADLINE:?} ({last})"));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Runs the instant query `query` on the Prometheus at `url` until its one number
/// satisfies `predicate`, and returns that number; panics after `within` with the last
/// answer. Reads the API by itself, independent of the metric source under test, so
/// assertions do not trust it.
pub async fn wait_for_value(
    url: &str,
    query: &str,
    predicate: impl Fn(f64) -> bool,
    within: Duration,
) -> f64 {
    let client = reqwest::Client::new();
    let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
    let deadline = Instant::now() + within;
    loop {
        let last = match query_once(&client, &endpoint, query).await {
            Ok(Some(value)) if predicate(value) => return value,
            Ok(value) => format!("{value:?}"),
            Err(error) => error,
        };
        assert!(
            Instant::now() < deadline,
            "`{query}` at {url} did not reach the expected value within {within:?}; last answer: {last}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The query's single value (a one-series vector or a scalar); `None` for any other
/// shape, which is "not yet" while a test waits for a scrape.
async fn query_once(
    client: &reqwest::Client,
    endpoint: &str,
    query: &str,
) -> Result<Option<f64>, String> {
    let response = client
        .get(endpoint)
        .query(&[("query", query)])
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|error| format!("GET {endpoint}: {error}"))?;
    let body = response
        .text()
        .await
        .map_err(|error| format!("GET {endpoint}: {error}"))?;
    let answer: serde_json::Value =
        serde_json::from_str(&body).map_err(|error| format!("{error} in {body}"))?;
    if answer["status"] != "success" {
        return Err(body);
    }
    let data = &answer["data"];
    let value = match data["resultType"].as_str() {
        Some("scalar") => &data["result"][1],
        Some("vector") if data["result"].as_array().map(Vec::len) == Some(1) => {
            &data["result"][0]["value"][1]
        }
        _ => return Ok(None),
    };
    let text = value.as_str().ok_or_else(|| body.clone())?;
    text.parse()
        .map(Some)
        .map_err(|_| format!("`{text}` is not a number in {body}"))
}

/// A `/metrics` endpoint on a free loopback port serving gauges in Prometheus's text
/// format; a test sets and removes them while Prometheus scrapes. Stopped when dropped.
pub struct Exporter {
    served: Served,
    gauges: Gauges,
}

/// Metric name → rendered label set (`{a="1",b="2"}`) → value.
type Gauges = Arc<Mutex<BTreeMap<String, BTreeMap<String, f64>>>>;

impl Exporter {
    /// Starts it without gauges; it accepts connections when this returns.
    pub async fn start() -> Exporter {
        let gauges = Gauges::default();
        let served = gauges.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let text = render_gauges(&served.lock().expect("gauges lock"));
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
        Exporter {
            served: serve(app).await,
            gauges,
        }
    }

    /// Where it listens: the target to give [`PrometheusProcess::start`].
    pub fn addr(&self) -> SocketAddr {
        self.served.addr()
    }

    /// Sets gauge `name` with `labels` to `value` from the next scrape on.
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.gauges
            .lock()
            .expect("gauges lock")
            .entry(name.to_owned())
            .or_default()
            .insert(render_labels(labels), value);
    }

    /// Stops serving gauge `name` with `labels`; Prometheus marks the series stale at
    /// the next scrape, so queries stop returning it.
    pub fn remove(&self, name: &str, labels: &[(&str, &str)]) {
        let mut gauges = self.gauges.lock().expect("gauges lock");
        if let Some(series) = gauges.get_mut(name) {
            series.remove(&render_labels(labels));
            if series.is_empty() {
                gauges.remove(name);
            }
        }
    }
}

/// `{a="1",b="2"}` sorted by name, so the same labels in another order are the same
/// series; empty for no labels.
fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut sorted = labels.to_vec();
    sorted.sort_unstable();
    let pairs: Vec<String> = sorted
        .iter()
        .map(|(name, value)| {
            let value = value
                .replace('\\', r"\\")
                .replace('"', r#"\""#)
                .replace('\n', r"\n");
            format!("{name}=\"{value}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn render_gauges(gauges: &BTreeMap<String, BTreeMap<String, f64>>) -> String {
    let mut text = String::new();
    for (name, series) in gauges {
        let _ = writeln!(text, "# TYPE {name} gauge");
        for (labels, value) in series {
            let value = match *value {
                v if v.is_nan() => "NaN".to_owned(),
                v if v == f64::INFINITY => "+Inf".to_owned(),
                v if v == f64::NEG_INFINITY => "-Inf".to_owned(),
                v => v.to_string(),
            };
            let _ = writeln!(text, "{name}{labels} {value}");
        }
    }
    text
}
