//! The audit log: every audited write, newest first, 50 to a page, filtered by actor,
//! action, environment, key and time. The store filters (the same `Store::audit` read
//! as `GET /v1/admin/audit`, with [`AuditQuery::admits`]); the page only pages through
//! the newest [`MAX_ENTRIES`] matching entries (narrow with *until* for older ones).
//! A viewer sees only the environments it may read: a scoped token its own.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use switchyard_core::model::EnvName;

use crate::console::form::problem;
use crate::console::history::rfc3339;
use crate::console::page::{render_status, Chrome, PageError};
use crate::console::session::Viewer;
use crate::error::{ApiError, FieldProblem};
use crate::state::AppState;
use crate::store::{AuditEntry, AuditQuery};

/// Entries on a page.
pub const PAGE: usize = 50;
/// The most matching entries the pages reach (20 pages); older ones are reached by
/// narrowing the filters, e.g. with *until*.
pub const MAX_ENTRIES: usize = 1_000;

/// The actions the store records, for the action filter.
pub const ACTIONS: &[&str] = &[
    "flag.put",
    "flag.delete",
    "flag.kill",
    "flag.revive",
    "flag.revert",
    "flag.promote",
    "segment.put",
    "segment.delete",
    "env.create",
    "env.delete",
    "token.create",
    "token.delete",
];

/// The filters, as the form's query carries them (all text, so that a bad value is a
/// message at its field, not a bare rejection).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Filters {
    /// The token's name.
    pub actor: String,
    /// An action of [`ACTIONS`].
    pub action: String,
    /// An environment.
    pub env: String,
    /// A flag, segment, token or environment name.
    pub key: String,
    /// From this time (UTC), inclusive.
    pub since: String,
    /// Up to this time (UTC), inclusive.
    pub until: String,
    /// The page, from 1.
    #[serde(skip_serializing)]
    pub page: String,
}

/// One entry as shown.
pub struct Row {
    at: String,
    actor: String,
    action: String,
    env: Option<String>,
    key: String,
    reason: Option<String>,
    /// A degraded entry's problem.
    problem: Option<String>,
    /// The flag's history page, for a flag entry in an environment the viewer reads.
    history: Option<String>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    filters: Filters,
    actions: &'static [&'static str],
    /// The environments the filter offers (empty: the viewer's only one is forced).
    envs: Vec<String>,
    problems: Vec<FieldProblem>,
    rows: Vec<Row>,
    page: usize,
    newer: Option<String>,
    older: Option<String>,
    /// Older matching entries exist beyond [`MAX_ENTRIES`].
    bounded: bool,
}

impl AuditPage {
    fn error_at(&self, field: &str) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| p.path == field)
            .map(|p| p.message.as_str())
    }
}

/// A `datetime-local` value (`2025-03-01T14:30`, seconds optional) or an RFC 3339
/// time, read as UTC; milliseconds since the epoch. `end` rounds a time given to the
/// minute or second up to the end of it, so *until 14:30* includes 14:30:59.
fn instant(field: &str, text: &str, end: bool) -> Result<Option<u64>, FieldProblem> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (full, slack) = match text.len() {
        16 => (format!("{text}:00"), 59_999),
        19 => (text.to_owned(), 999),
        _ => (text.to_owned(), 0),
    };
    let at = humantime::parse_rfc3339_weak(&full).map_err(|_| {
        problem(
            field,
            format!("`{text}` is not a time; use the picker or write 2025-03-01T14:30 (UTC)"),
        )
    })?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok(Some(if end { ms.saturating_add(slack) } else { ms }))
}

/// The store query the filters ask for, or the problems at their fields.
fn query(
    viewer: &Viewer,
    filters: &Filters,
) -> Result<(AuditQuery, usize), (StatusCode, Vec<FieldProblem>)> {
    let mut problems = Vec::new();
    let mut status = StatusCode::BAD_REQUEST;
    let text = |value: &str| {
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_owned())
    };
    let env = match (text(&filters.env), viewer.can_write()) {
        (env, true) => env,
        (Some(env), false) if viewer.may_read(&env) => Some(env),
        // A read-only token without an environment reads none.
        (None, false) if viewer.principal.env.is_some() => {
            viewer.principal.env.as_ref().map(ToString::to_string)
        }
        (env, false) => {
            let env = env.unwrap_or_default();
            status = StatusCode::FORBIDDEN;
            problems.push(problem(
                "env",
                format!(
                    "token `{}` may not read environment `{env}`",
                    viewer.principal.name
                ),
            ));
            None
        }
    };
    let action = text(&filters.action);
    if let Some(action) = action.as_deref().filter(|a| !ACTIONS.contains(a)) {
        problems.push(problem(
            "action",
            format!("`{action}` is not an action; choose one from the list"),
        ));
    }
    let since = instant("since", &filters.since, false).unwrap_or_else(|p| {
        problems.push(p);
        None
    });
    let until = instant("until", &filters.until, true).unwrap_or_else(|p| {
        problems.push(p);
        None
    });
    if let (Some(since), Some(until)) = (since, until) {
        if since > until {
            problems.push(problem("until", "`until` is before `since`"));
        }
    }
    let page = match filters.page.trim() {
        "" => 1,
        page => match page.parse::<usize>() {
            Ok(page) if page >= 1 && (page - 1) * PAGE < MAX_ENTRIES => page,
            _ => {
                problems.push(problem(
                    "page",
                    format!(
                        "`{page}` is not a page: pages run from 1 to {} (the newest {MAX_ENTRIES} \
                         matching entries); narrow the filters for older ones",
                        MAX_ENTRIES / PAGE
                    ),
                ));
                1
            }
        },
    };
    if !problems.is_empty() {
        return Err((status, problems));
    }
    let query = AuditQuery {
        env: env.map(EnvName::new),
        target: text(&filters.key),
        since_ms: since,
        until_ms: until,
        actor: text(&filters.actor),
        action,
        // One more than the page shows, to know whether an older page exists.
        limit: page * PAGE + 1,
    };
    Ok((query, page))
}

fn row(viewer: &Viewer, entry: AuditEntry) -> Row {
    let env = entry.env.map(|e| e.to_string());
    let history = match &env {
        Some(env) if entry.action.starts_with("flag.") && viewer.may_read(env) => Some(format!(
            "/console/envs/{env}/flags/{}/history",
            entry.target
        )),
        _ => None,
    };
    Row {
        at: if entry.at_ms == 0 {
            "unknown".to_owned()
        } else {
            rfc3339(entry.at_ms)
        },
        actor: entry.actor,
        action: entry.action,
        env,
        key: entry.target,
        reason: entry.reason,
        problem: entry.error,
        history,
    }
}

fn link(filters: &Filters, page: usize) -> String {
    let query = serde_urlencoded::to_string(filters).unwrap_or_default();
    format!("/console/audit?{query}&page={page}")
}

/// `GET /console/audit?actor=..&action=..&env=..&key=..&since=..&until=..&page=..`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&state, &viewer, "Audit log", None);
    let envs = if viewer.can_write() {
        chrome.envs.clone()
    } else {
        Vec::new()
    };
    let mut page = AuditPage {
        chrome,
        filters,
        actions: ACTIONS,
        envs,
        problems: Vec::new(),
        rows: Vec::new(),
        page: 1,
        newer: None,
        older: None,
        bounded: false,
    };
    let (query, number) = match query(&viewer, &page.filters) {
        Ok(found) => found,
        Err((status, problems)) => {
            page.problems = problems;
            return render_status(status, &page);
        }
    };
    let mut entries = state
        .envs
        .store()
        .audit(&query)
        .await
        .map_err(ApiError::from)?;
    let more = entries.len() > number * PAGE;
    entries.truncate(number * PAGE);
    page.rows = entries
        .into_iter()
        .skip((number - 1) * PAGE)
        .map(|e| row(&viewer, e))
        .collect();
    page.page = number;
    page.newer = (number > 1).then(|| link(&page.filters, number - 1));
    let reachable = number * PAGE < MAX_ENTRIES;
    page.older = (more && reachable).then(|| link(&page.filters, number + 1));
    page.bounded = more && !reachable;
    render_status(StatusCode::OK, &page)
}
