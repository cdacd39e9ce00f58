//! The environments overview (the console's home) and the environment switcher.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::console::page::{readable_env, render, Chrome, PageError};
use crate::console::session::Viewer;
use crate::state::AppState;

struct EnvRow {
    name: String,
    revision: u64,
    flags: usize,
    killed: usize,
    segments: usize,
}

#[derive(Template)]
#[template(path = "console/envs.html")]
struct Overview {
    chrome: Chrome,
    rows: Vec<EnvRow>,
}

/// `GET /console`: every environment the viewer may see.
pub async fn overview(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&state, &viewer, "Environments", None);
    let rows = chrome
        .envs
        .iter()
        .filter_map(|name| state.envs.get(name))
        .map(|env| EnvRow {
            name: env.name.to_string(),
            revision: env.revision,
            flags: env.snapshot.len(),
            killed: env.snapshot.flags().filter(|f| !f.enabled).count(),
            segments: env.snapshot.segments().count(),
        })
        .collect();
    render(&Overview { chrome, rows })
}

/// The switcher's query.
#[derive(Deserialize)]
pub struct Switch {
    env: String,
    flag: Option<String>,
}

/// `GET /console/switch?env=..[&flag=..]`: the same flag in another environment when
/// it has it, else that environment's flag list.
pub async fn switch(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(to): Query<Switch>,
) -> Result<Response, PageError> {
    let env = readable_env(&state, &viewer, &to.env)?;
    let target = match to.flag {
        Some(flag) if env.snapshot.flag(&flag).is_some() => {
            format!("/console/envs/{}/flags/{flag}", to.env)
        }
        _ => format!("/console/envs/{}/flags", to.env),
    };
    Ok(Redirect::to(&target).into_response())
}
