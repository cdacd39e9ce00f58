//! A flag's history: its audit entries, newest first, each with a line diff of the
//! flag before and after, and a one-click revert to the version an entry produced
//! (the domain's `revert_flag`, with `If-Match` at the version the page showed).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use similar::{ChangeTag, TextDiff};
use switchyard_core::model::EnvName;

use crate::console::flag::edit::answer;
use crate::console::flag::Outcome;
use crate::console::page::{readable_env, render, writable_env, Chrome, PageError};
use crate::console::session::Viewer;
use crate::domain::{revert_flag, Preconditions};
use crate::state::AppState;
use crate::store::AuditQuery;

/// How many entries the page shows.
pub const ENTRIES: usize = 200;

/// One line of a diff.
pub struct Line {
    /// `add`, `del` or `same`.
    pub class: &'static str,
    /// The text, with its `+`/`-` mark.
    pub text: String,
}

/// One audit entry as shown.
pub struct Entry {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The token's name.
    pub actor: String,
    /// `flag.put`, `flag.kill`, ...
    pub action: String,
    /// Why, if said.
    pub reason: Option<String>,
    /// The version the entry produced (absent for a deletion).
    pub version: Option<u64>,
    /// The changed lines with some context.
    pub diff: Vec<Line>,
}

#[derive(Template)]
#[template(path = "console/history.html")]
struct HistoryPage {
    chrome: Chrome,
    env: String,
    key: String,
    current: Option<u64>,
    entries: Vec<Entry>,
}

fn pretty(value: Option<&serde_json::Value>) -> String {
    value
        .map(|v| serde_json::to_string_pretty(v).unwrap_or_default() + "\n")
        .unwrap_or_default()
}

/// The changed lines between two JSON documents, with two lines of context.
pub fn diff(before: Option<&serde_json::Value>, after: Option<&serde_json::Value>) -> Vec<Line> {
    let (old, new) = (pretty(before), pretty(after));
    let diff = TextDiff::from_lines(&old, &new);
    let mut lines = Vec::new();
    for group in diff.grouped_ops(2) {
        for op in group {
            for change in diff.iter_changes(&op) {
                let (class, mark) = match change.tag() {
                    ChangeTag::Insert => ("add", '+'),
                    ChangeTag::Delete => ("del", '-'),
                    ChangeTag::Equal => ("same", ' '),
                };
                lines.push(Line {
                    class,
                    text: format!("{mark} {}", change.value().trim_end_matches('\n')),
                });
            }
        }
    }
    lines
}

/// `ms` since the epoch as an RFC 3339 time to the second, UTC.
pub(crate) fn rfc3339(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `GET /console/envs/{env}/flags/{key}/history`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let current_env = readable_env(&state, &viewer, &env)?;
    let query = AuditQuery {
        env: Some(EnvName::new(env.as_str())),
        target: Some(key.clone()),
        since_ms: None,
        limit: ENTRIES,
        ..AuditQuery::default()
    };
    let entries = state
        .envs
        .store()
        .audit(&query)
        .await
        .map_err(crate::error::ApiError::from)?
        .into_iter()
        .filter(|e| e.action.starts_with("flag."))
        .map(|e| Entry {
            at: rfc3339(e.at_ms),
            diff: diff(e.before.as_ref(), e.after.as_ref()),
            version: e
                .after
                .as_ref()
                .and_then(|a| a.get("version"))
                .and_then(serde_json::Value::as_u64),
            actor: e.actor,
            action: e.action,
            reason: e.reason,
        })
        .collect();
    let chrome = Chrome::new(
        &state,
        &viewer,
        format!("History of {key} in {env}"),
        Some(&env),
    )
    .about_flag(&key);
    render(&HistoryPage {
        chrome,
        current: current_env.snapshot.flag(&key).map(|f| f.version),
        env,
        key,
        entries,
    })
}

/// The revert form.
#[derive(Deserialize)]
pub struct RevertForm {
    /// The version to go back to.
    to: u64,
    /// The version the page showed as current.
    version: u64,
}

/// `POST /console/envs/{env}/flags/{key}/revert`.
pub async fn revert(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
    Form(form): Form<RevertForm>,
) -> Result<Response, PageError> {
    writable_env(&state, &viewer, &env)?;
    let conditions = Preconditions::at_version(form.version);
    let result = revert_flag(&state, &viewer.principal, &env, &key, form.to, &conditions)
        .await
        .map(drop);
    answer(
        &state,
        &viewer,
        &env,
        &key,
        result,
        None,
        Outcome::default(),
    )
    .await
}
