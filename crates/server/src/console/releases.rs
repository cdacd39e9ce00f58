//! The Releases section: the list of releases (filtered by state, live), history with
//! DORA figures and their charts over time, and what every release page shares — the
//! connected orchestrator, which releases a viewer may see, orchestrator errors as
//! pages. Without `--orchestrator-url` the section says how to connect one.
//!
//! Every read and command goes through [`crate::orchestrator::OrchestratorClient`]
//! from the server, never from the browser.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use switchyard_core::release::{DoraReport, Phase, ReleaseSummary};

use crate::console::chart::{number, Chart, ChartBuilder};
use crate::console::history::rfc3339;
use crate::console::page::{render, Chrome, PageError};
use crate::console::session::Viewer;
use crate::orchestrator::{OrchestratorClient, OrchestratorError};
use crate::state::AppState;

/// How often a page about a running release refetches itself (ms).
pub const POLL_MS: u32 = 1500;
/// How many past releases the list and the DORA charts read.
const HISTORY_LIMIT: usize = 500;

/// The orchestrator, or the page that says none is connected.
pub fn connected(state: &AppState) -> Result<&OrchestratorClient, PageError> {
    state.orchestrator.as_ref().ok_or_else(|| {
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no release orchestrator is connected: start switchyard-server with \
             --orchestrator-url URL (or SWITCHYARD_ORCHESTRATOR_URL) and, if the \
             orchestrator has an API token, --orchestrator-token",
        )
    })
}

/// Whether `viewer` may see a release through `environments` (any of them).
pub fn may_see(viewer: &Viewer, environments: &[String]) -> bool {
    environments.iter().any(|e| viewer.may_read(e))
}

impl From<OrchestratorError> for PageError {
    fn from(error: OrchestratorError) -> Self {
        match &error {
            OrchestratorError::Refused { code, .. } if code == "unauthorized" => PageError::new(
                StatusCode::BAD_GATEWAY,
                "the orchestrator refused this server's token: set --orchestrator-token \
                     (SWITCHYARD_ORCHESTRATOR_TOKEN) to its `serve --api-token`",
            ),
            OrchestratorError::Refused {
                status, message, ..
            } => {
                let status = StatusCode::from_u16(status.as_u16())
                    .ok()
                    .filter(|s| s.is_client_error())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                PageError::new(status, message.clone())
            }
            OrchestratorError::Unreachable { .. } | OrchestratorError::Unreadable { .. } => {
                tracing::warn!(error = %error, "orchestrator call failed");
                PageError::new(StatusCode::BAD_GATEWAY, error.to_string())
            }
        }
    }
}

/// `3m 20s`, from milliseconds.
pub fn took(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One release as listed.
pub struct Row {
    name: String,
    environments: String,
    phase: &'static str,
    outcome: &'static str,
    progress: Vec<String>,
    started: Option<String>,
    duration: Option<String>,
    reason: Option<String>,
}

impl Row {
    fn of(r: &ReleaseSummary, now: u64) -> Row {
        let progress = r
            .services
            .iter()
            .map(|s| match s.step {
                Some(step) => format!(
                    "{}: step {step} of {}, weight {} %",
                    s.name, s.steps, s.weight
                ),
                None => format!("{}: {}", s.name, s.phase.words()),
            })
            .collect();
        let environments = if r.environments.is_empty() {
            r.environment.clone()
        } else {
            r.environments.join(" → ")
        };
        Row {
            name: r.name.clone(),
            environments,
            phase: r.phase.name(),
            outcome: r.phase.outcome(),
            progress,
            started: r.started_at.map(rfc3339),
            duration: r
                .started_at
                .map(|start| took(r.finished_at.unwrap_or(now).saturating_sub(start))),
            reason: r.reason.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/releases.html")]
struct ReleasesPage {
    chrome: Chrome,
    connected: bool,
    orchestrator: String,
    rows: Vec<Row>,
    filter: String,
    filters: Vec<(&'static str, &'static str)>,
}

/// The list's filter.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    state: String,
}

/// `GET /console/releases?state=…`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&state, &viewer, "Releases", None).polling(POLL_MS);
    let filters: Vec<(&'static str, &'static str)> = std::iter::once(("", "all"))
        .chain(Phase::ALL.iter().map(|p| (p.name(), p.outcome())))
        .collect();
    if !filters.iter().any(|(name, _)| *name == query.state) {
        return Err(PageError::bad_request(format!(
            "unknown state `{}`: one of {}",
            query.state,
            Phase::ALL.map(Phase::name).join(", ")
        )));
    }
    let Some(client) = state.orchestrator.as_ref() else {
        return render(&ReleasesPage {
            chrome,
            connected: false,
            orchestrator: String::new(),
            rows: Vec::new(),
            filter: query.state,
            filters,
        });
    };
    let now = now_ms();
    let rows = client
        .history(HISTORY_LIMIT)
        .await?
        .iter()
        .filter(|r| may_see(&viewer, &environments(r)))
        .filter(|r| query.state.is_empty() || r.phase.name() == query.state)
        .map(|r| Row::of(r, now))
        .collect();
    render(&ReleasesPage {
        chrome,
        connected: true,
        orchestrator: client.url().to_owned(),
        rows,
        filter: query.state,
        filters,
    })
}

/// How long a flag's page waits for the orchestrator to say which release ramps it.
const RAMPING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The running releases ramping `flag` in `env`: none when no orchestrator is
/// connected or it does not answer in time (the flag's page does not wait on it).
pub async fn ramping(state: &AppState, env: &str, flag: &str) -> Vec<String> {
    let Some(client) = state.orchestrator.as_ref() else {
        return Vec::new();
    };
    match tokio::time::timeout(RAMPING_TIMEOUT, client.releases()).await {
        Ok(Ok(releases)) => releases
            .into_iter()
            .filter(|r| !r.phase.is_terminal() && r.environment == env)
            .filter(|r| r.services.iter().any(|s| s.flags.iter().any(|f| f == flag)))
            .map(|r| r.name)
            .collect(),
        Ok(Err(error)) => {
            tracing::debug!(%error, "no releases for the flag's page");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

/// Every environment of a release (older summaries name only the current one).
pub fn environments(r: &ReleaseSummary) -> Vec<String> {
    if r.environments.is_empty() {
        vec![r.environment.clone()]
    } else {
        r.environments.clone()
    }
}

// --- history and DORA ---------------------------------------------------------------

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// The window of the DORA page, in days.
const DORA_DAYS: u64 = 30;

#[derive(Template)]
#[template(path = "console/dora.html")]
struct DoraPage {
    chrome: Chrome,
    figures: DoraReport,
    per_day: String,
    failure_rate: String,
    median_restore: String,
    charts: Vec<Chart>,
    rows: Vec<Row>,
}

/// `GET /console/dora`: past releases with outcome and duration, the DORA figures of
/// the last 30 days and, per day, deployments and the change failure rate, and each
/// rollback's time to restore.
pub async fn dora(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let client = connected(&state)?;
    let figures = client.dora(&format!("{DORA_DAYS}d")).await?;
    let history: Vec<ReleaseSummary> = client
        .history(HISTORY_LIMIT)
        .await?
        .into_iter()
        .filter(|r| may_see(&viewer, &environments(r)))
        .collect();
    let now = now_ms();
    let from = now.saturating_sub(DORA_DAYS * DAY_MS);
    let finished: Vec<&ReleaseSummary> = history
        .iter()
        .filter(|r| r.phase.is_terminal() && r.finished_at.is_some_and(|t| t >= from))
        .collect();
    let day_start = |day: u64| from + day * DAY_MS;
    let mut promoted = Vec::new();
    let mut failure_rate = Vec::new();
    for day in 0..DORA_DAYS {
        let (start, end) = (day_start(day), day_start(day + 1));
        let that_day: Vec<&&ReleaseSummary> = finished
            .iter()
            .filter(|r| r.finished_at.is_some_and(|t| start <= t && t < end))
            .collect();
        let ok = that_day
            .iter()
            .filter(|r| r.phase == Phase::Succeeded)
            .count();
        promoted.push((start, ok as f64));
        if !that_day.is_empty() {
            let failed = that_day.len() - ok;
            failure_rate.push((start, failed as f64 / that_day.len() as f64));
        }
    }
    let max_promoted = promoted.iter().map(|&(_, n)| n).fold(1.0, f64::max);
    let restores: Vec<(u64, f64)> = finished
        .iter()
        .filter_map(|r| Some((r.finished_at?, r.time_to_restore_seconds?)))
        .collect();
    let max_restore = restores.iter().map(|&(_, s)| s).fold(1.0, f64::max);
    let mut restore_chart = ChartBuilder::new(
        "dora-restore",
        "Time to restore of each rollback (seconds)",
        from,
        now,
        max_restore * 1.1,
    );
    for &(at, seconds) in &restores {
        restore_chart = restore_chart.dot(at, seconds, "fail", format!("{} s", number(seconds)));
    }
    let charts = vec![
        ChartBuilder::new(
            "dora-deployments",
            "Deployments (promoted releases) per day",
            from,
            now,
            max_promoted,
        )
        .steps("promoted per day", &promoted, now)
        .build(),
        ChartBuilder::new(
            "dora-failure-rate",
            "Change failure rate per day (rolled back or failed, of finished)",
            from,
            now,
            1.0,
        )
        .points("change failure rate", &failure_rate)
        .build(),
        restore_chart.build(),
    ];
    let page = DoraPage {
        chrome: Chrome::new(&state, &viewer, "History and DORA", None),
        per_day: number(figures.deployment_frequency.per_day),
        failure_rate: figures
            .change_failure_rate
            .rate
            .map_or_else(|| "–".to_owned(), |r| format!("{} %", number(r * 100.0))),
        median_restore: figures
            .time_to_restore
            .median_seconds
            .map_or_else(|| "–".to_owned(), |s| format!("{} s", number(s))),
        figures,
        charts,
        rows: history
            .iter()
            .filter(|r| r.phase.is_terminal())
            .map(|r| Row::of(r, now))
            .collect(),
    };
    render(&page)
}
