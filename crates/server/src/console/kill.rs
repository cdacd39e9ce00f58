//! Kill and revive one flag with a required reason, and kill every flag with a tag
//! after a preview of the flags it hits. The writes are the domain's `set_enabled` and
//! `kill_tag`, as for the admin API.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use crate::console::flag::edit::answer;
use crate::console::flag::{detail_page, Outcome};
use crate::console::page::{readable_env, render, render_status, writable_env, Chrome, PageError};
use crate::console::session::Viewer;
use crate::domain::{flags_with_tag, set_enabled, Preconditions};
use crate::error::FieldProblem;
use crate::state::AppState;

/// The kill / revive form.
#[derive(Deserialize)]
pub struct SwitchForm {
    version: u64,
    #[serde(default)]
    reason: String,
}

async fn switch(
    state: AppState,
    viewer: Viewer,
    (env, key): (String, String),
    form: SwitchForm,
    enabled: bool,
) -> Result<Response, PageError> {
    writable_env(&state, &viewer, &env)?;
    let reason = form.reason.trim().to_owned();
    if reason.is_empty() {
        let outcome = Outcome {
            problems: vec![FieldProblem {
                path: "reason".into(),
                message: "say why: the reason is recorded in the audit log".into(),
            }],
            ..Outcome::default()
        };
        return render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &detail_page(&state, &viewer, &env, &key, outcome)?,
        );
    }
    let conditions = Preconditions::at_version(form.version);
    let result = set_enabled(
        &state,
        &viewer.principal,
        &env,
        &key,
        enabled,
        Some(reason.clone()),
        &conditions,
    )
    .await
    .map(drop);
    let outcome = Outcome {
        reason: Some(reason),
        ..Outcome::default()
    };
    answer(&state, &viewer, &env, &key, result, None, outcome).await
}

/// `POST /console/envs/{env}/flags/{key}/kill`.
pub async fn kill(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(target): Path<(String, String)>,
    Form(form): Form<SwitchForm>,
) -> Result<Response, PageError> {
    switch(state, viewer, target, form, false).await
}

/// `POST /console/envs/{env}/flags/{key}/revive`.
pub async fn revive(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(target): Path<(String, String)>,
    Form(form): Form<SwitchForm>,
) -> Result<Response, PageError> {
    switch(state, viewer, target, form, true).await
}

/// The kill-by-tag page: a preview, or what was killed.
#[derive(Template)]
#[template(path = "console/kill_tag.html")]
struct TagPage {
    chrome: Chrome,
    env: String,
    tag: String,
    tags: Vec<String>,
    hits: Vec<String>,
    killed: Option<Vec<String>>,
    error: Option<String>,
}

/// The preview's query.
#[derive(Deserialize)]
pub struct TagQuery {
    #[serde(default)]
    tag: String,
}

/// `GET /console/envs/{env}/kill-tag?tag=..`: the flags the kill would hit.
pub async fn tag_preview(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
    Query(query): Query<TagQuery>,
) -> Result<Response, PageError> {
    writable_env(&state, &viewer, &env)?;
    render(&tag_page(&state, &viewer, &env, query.tag, None, None)?)
}

fn tag_page(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    tag: String,
    killed: Option<Vec<String>>,
    error: Option<String>,
) -> Result<TagPage, PageError> {
    let current = readable_env(state, viewer, env)?;
    let mut tags: Vec<String> = current
        .snapshot
        .flags()
        .flat_map(|f| f.tags.iter().cloned())
        .collect();
    tags.sort_unstable();
    tags.dedup();
    let mut hits: Vec<String> = flags_with_tag(&current, &tag)
        .map(|f| f.key.to_string())
        .collect();
    hits.sort_unstable();
    Ok(TagPage {
        chrome: Chrome::new(state, viewer, format!("Kill by tag in {env}"), Some(env)),
        env: env.to_owned(),
        tag,
        tags,
        hits,
        killed,
        error,
    })
}

/// The kill-by-tag form.
#[derive(Deserialize)]
pub struct TagForm {
    tag: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/envs/{env}/kill-tag`.
pub async fn kill_tag(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
    Form(form): Form<TagForm>,
) -> Result<Response, PageError> {
    writable_env(&state, &viewer, &env)?;
    let reason = form.reason.trim().to_owned();
    if reason.is_empty() {
        let page = tag_page(
            &state,
            &viewer,
            &env,
            form.tag,
            None,
            Some("say why: the reason is recorded in the audit log".into()),
        )?;
        return render_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let (killed, _) =
        crate::domain::kill_tag(&state, &viewer.principal, &env, &form.tag, Some(reason))
            .await
            .map_err(crate::error::ApiError::from)?;
    let killed = killed.iter().map(ToString::to_string).collect();
    render(&tag_page(
        &state,
        &viewer,
        &env,
        form.tag,
        Some(killed),
        None,
    )?)
}
