//! What every console page shares: the chrome around it (who is signed in, the
//! environment switcher, the CSRF token for its forms, the asset URLs), rendering a
//! template into a response, and the error page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::console::assets;
use crate::console::session::Viewer;
use crate::error::ApiError;
use crate::state::AppState;

/// The frame of every signed-in page.
pub struct Chrome {
    /// The page's title.
    pub title: String,
    /// The signed-in token's name and kind.
    pub who: String,
    /// `admin`, `sdk` or `eval`.
    pub kind: &'static str,
    /// Whether write controls are shown.
    pub can_write: bool,
    /// The session's CSRF token, for every form.
    pub csrf: String,
    /// The environments this viewer may see, for the switcher.
    pub envs: Vec<String>,
    /// The environment the page is about, if any (the switcher's selection, and the
    /// live stream's environment).
    pub env: Option<String>,
    /// The flag the page is about, so switching environments stays on it.
    pub flag: Option<String>,
    /// The stylesheet's URL (content-hashed).
    pub css: &'static str,
    /// The script's URL (content-hashed).
    pub js: &'static str,
    /// Refetch the page's live parts this often (ms): pages about what the flag
    /// server's stream does not carry (releases).
    pub poll_ms: Option<u32>,
}

impl Chrome {
    /// The chrome for `viewer` on a page titled `title` about `env`.
    pub fn new(
        state: &AppState,
        viewer: &Viewer,
        title: impl Into<String>,
        env: Option<&str>,
    ) -> Self {
        let mut envs = state.envs.names();
        envs.retain(|e| viewer.may_read(e));
        envs.sort();
        Chrome {
            title: title.into(),
            who: viewer.principal.name.clone(),
            kind: crate::auth::kind_name(viewer.principal.kind),
            can_write: viewer.can_write(),
            csrf: viewer.csrf.clone(),
            envs,
            env: env.map(str::to_owned),
            flag: None,
            css: assets::css_url(),
            js: assets::js_url(),
            poll_ms: None,
        }
    }

    /// The same chrome, refetching the page's live parts every `ms`.
    pub fn polling(mut self, ms: u32) -> Self {
        self.poll_ms = Some(ms);
        self
    }

    /// The same chrome, for a page about the flag `key`.
    pub fn about_flag(mut self, key: &str) -> Self {
        self.flag = Some(key.to_owned());
        self
    }
}

/// Renders a page (200).
pub fn render(template: &impl Template) -> Result<Response, PageError> {
    render_status(StatusCode::OK, template)
}

/// Renders a page with `status`.
pub fn render_status(status: StatusCode, template: &impl Template) -> Result<Response, PageError> {
    let html = template.render().map_err(|e| {
        tracing::error!(error = %e, "console template failed");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page could not be rendered; see the server log",
        )
    })?;
    Ok((
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Html(html),
    )
        .into_response())
}

/// An error shown as a page of its own.
#[derive(Debug)]
pub struct PageError {
    /// The answer's status.
    pub status: StatusCode,
    /// What went wrong, for people.
    pub message: String,
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
    css: &'static str,
}

impl PageError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError::new(error.status, error.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
            css: assets::css_url(),
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

/// The environment `env` if the viewer may see it (404 otherwise, 403 for a scoped
/// token naming another environment).
pub fn readable_env(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
) -> Result<std::sync::Arc<crate::environments::EnvState>, PageError> {
    if !viewer.may_read(env) {
        return Err(PageError::forbidden(format!(
            "token `{}` may not read environment `{env}`",
            viewer.principal.name
        )));
    }
    state
        .envs
        .get(env)
        .ok_or_else(|| PageError::not_found(format!("environment `{env}` does not exist")))
}

/// Refuses a write by a viewer without write rights (403), whatever the page showed.
pub fn writable_env(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
) -> Result<std::sync::Arc<crate::environments::EnvState>, PageError> {
    if !viewer.can_write() {
        return Err(PageError::forbidden(format!(
            "token `{}` is {} token and may not change anything",
            viewer.principal.name,
            crate::auth::with_article(viewer.principal.kind)
        )));
    }
    readable_env(state, viewer, env)
}
