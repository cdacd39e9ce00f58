//! The web console under `/console`: server-rendered pages (askama templates in
//! `crates/server/templates/console/`, checked when the crate compiles), a small
//! vendored script for live updates and the rollout slider, and sessions signed in
//! with an API token. One page is one module here and one template there.
//!
//! Every write goes through the admin API's domain path (validation, `If-Match`, audit,
//! live push); the pages only collect input and render results. Every state-changing
//! request passes [`csrf::guard`] first.

pub mod assets;
pub mod audit;
pub mod chart;
pub mod csrf;
pub mod envs;
pub mod exposures;
pub mod flag;
pub mod flags;
pub mod form;
pub mod history;
pub mod kill;
pub mod live;
pub mod page;
pub mod playground;
pub mod promote;
pub mod release;
pub mod release_plan;
pub mod releases;
pub mod segments;
pub mod session;
pub mod signin;
pub mod tokens;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// The console's routes, relative to `/console`.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(envs::overview))
        .route("/login", get(signin::form).post(signin::sign_in))
        .route("/logout", post(signin::sign_out))
        .route("/switch", get(envs::switch))
        .route("/events", get(live::events))
        .route("/assets/{name}", get(assets::serve))
        .route(
            "/envs/{env}/flags",
            get(flags::list).post(flag::edit::create),
        )
        .route("/envs/{env}/new-flag", get(flag::edit::new_form))
        .route(
            "/envs/{env}/kill-tag",
            get(kill::tag_preview).post(kill::kill_tag),
        )
        .route(
            "/envs/{env}/flags/{key}",
            get(flag::detail).post(flag::edit::save_json),
        )
        .route(
            "/envs/{env}/flags/{key}/rollout",
            post(flag::edit::save_rollout),
        )
        .route(
            "/envs/{env}/flags/{key}/rules",
            post(flag::edit::edit_rules),
        )
        .route("/envs/{env}/flags/{key}/kill", post(kill::kill))
        .route("/envs/{env}/flags/{key}/revive", post(kill::revive))
        .route("/envs/{env}/flags/{key}/history", get(history::page))
        .route("/envs/{env}/flags/{key}/revert", post(history::revert))
        .route("/envs/{env}/flags/{key}/exposures", get(exposures::page))
        .route(
            "/envs/{env}/segments",
            get(segments::list).post(segments::create),
        )
        .route("/envs/{env}/new-segment", get(segments::new_form))
        .route(
            "/envs/{env}/segments/{key}",
            get(segments::detail).post(segments::update),
        )
        .route("/envs/{env}/segments/{key}/delete", post(segments::delete))
        .route("/promote", get(promote::page).post(promote::confirm))
        .route("/releases", get(releases::list))
        .route("/dora", get(releases::dora))
        .route(
            "/new-release",
            get(release_plan::form).post(release_plan::submit),
        )
        .route("/releases/{name}", get(release::detail))
        .route(
            "/releases/{name}/{command}",
            get(release::confirm).post(release::command),
        )
        .route(
            "/envs/{env}/playground",
            get(playground::form).post(playground::evaluate),
        )
        .route("/audit", get(audit::page))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route(
            "/tokens/{name}/revoke",
            get(tokens::confirm).post(tokens::revoke),
        )
        .fallback(|| async { page::PageError::not_found("no such console page") })
        .layer(axum::middleware::from_fn_with_state(state, csrf::guard))
}

/// `/` sends people to the console.
pub async fn root() -> Redirect {
    Redirect::to("/console")
}
