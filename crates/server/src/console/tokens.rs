//! API tokens, for admins only: the list (never a secret or its hash), issuing one
//! (its secret is shown on the answer page once, never again, never in a URL or log)
//! and revoking one after a confirmation. The domain's `list_tokens`, `issue_token` and
//! `revoke_token`, as for the admin API; revoking a token ends its console sessions at
//! their next request, since every request authenticates the session's token again.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use crate::console::form::problem;
use crate::console::history::rfc3339;
use crate::console::page::{render_status, Chrome, PageError};
use crate::console::session::Viewer;
use crate::domain::{issue_token, list_tokens, revoke_token, EnvError, TokenSource};
use crate::error::{ApiError, FieldProblem};
use crate::state::AppState;
use crate::store::{StoreError, TokenKind};

/// One token as listed.
pub struct Row {
    name: String,
    kind: &'static str,
    env: Option<String>,
    created: Option<String>,
    /// When it expires / expired; `None`: never.
    expires: Option<String>,
    expired: bool,
    last_used: Option<String>,
    revocable: bool,
}

/// A token just issued: shown once.
pub struct Shown {
    name: String,
    kind: &'static str,
    env: Option<String>,
    secret: String,
}

/// The issue form as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewTokenForm {
    name: String,
    kind: String,
    env: String,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    chrome: Chrome,
    rows: Vec<Row>,
    form: NewTokenForm,
    problems: Vec<FieldProblem>,
    issued: Option<Shown>,
    notice: Option<String>,
}

impl TokensPage {
    fn error_at(&self, field: &str) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| p.path == field)
            .map(|p| p.message.as_str())
    }
}

#[derive(Template)]
#[template(path = "console/token_revoke.html")]
struct RevokePage {
    chrome: Chrome,
    name: String,
    kind: &'static str,
    env: Option<String>,
}

/// Only admin tokens manage tokens; anyone else gets a 403, whatever they sent.
fn admin_only(viewer: &Viewer) -> Result<(), PageError> {
    if viewer.can_write() {
        return Ok(());
    }
    Err(PageError::forbidden(format!(
        "token `{}` is {} token; only admin tokens may see or manage tokens",
        viewer.principal.name,
        crate::auth::with_article(viewer.principal.kind)
    )))
}

async fn tokens_page(
    state: &AppState,
    viewer: &Viewer,
    form: NewTokenForm,
    problems: Vec<FieldProblem>,
    issued: Option<Shown>,
    notice: Option<String>,
) -> Result<TokensPage, PageError> {
    let rows = list_tokens(state)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|t| Row {
            name: t.name,
            kind: crate::auth::kind_name(t.kind),
            env: t.env.map(|e| e.to_string()),
            created: t.created_ms.map(rfc3339),
            expires: t.expires_ms.map(rfc3339),
            expired: t.expired,
            last_used: t.last_used_ms.map(rfc3339),
            revocable: t.source == TokenSource::Store,
        })
        .collect();
    Ok(TokensPage {
        chrome: Chrome::new(state, viewer, "Tokens", None),
        rows,
        form,
        problems,
        issued,
        notice,
    })
}

/// `GET /console/tokens`.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    let page = tokens_page(
        &state,
        &viewer,
        NewTokenForm::default(),
        Vec::new(),
        None,
        None,
    )
    .await?;
    render_status(StatusCode::OK, &page)
}

fn kind(text: &str) -> Result<TokenKind, FieldProblem> {
    match text {
        "admin" => Ok(TokenKind::Admin),
        "sdk" => Ok(TokenKind::Sdk),
        "eval" => Ok(TokenKind::Eval),
        other => Err(problem(
            "kind",
            format!("`{other}` is not a kind: choose admin, sdk or eval"),
        )),
    }
}

/// Where an issuing error is shown, and with which status; `None` for errors that are
/// not the form's (the store failing).
fn placed(error: &EnvError) -> Option<(&'static str, StatusCode)> {
    match error {
        EnvError::InvalidName { .. } => Some(("name", StatusCode::BAD_REQUEST)),
        EnvError::Conflict(_) | EnvError::Store(StoreError::DuplicateToken(_)) => {
            Some(("name", StatusCode::CONFLICT))
        }
        EnvError::BadRequest(_) => Some(("env", StatusCode::BAD_REQUEST)),
        EnvError::NoEnvironment(_) => Some(("env", StatusCode::NOT_FOUND)),
        _ => None,
    }
}

/// `POST /console/tokens`: issues a token and shows its secret, this once. The answer
/// is rendered, not redirected to, so the secret is in no URL; like every console page
/// it is sent with `Cache-Control: no-store`.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<NewTokenForm>,
) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    let kind = match kind(form.kind.trim()) {
        Ok(kind) => kind,
        Err(problem) => {
            let page = tokens_page(&state, &viewer, form, vec![problem], None, None).await?;
            return render_status(StatusCode::BAD_REQUEST, &page);
        }
    };
    let name = form.name.trim().to_owned();
    let env = Some(form.env.trim()).filter(|e| !e.is_empty());
    match issue_token(&state, &viewer.principal, &name, kind, env, None).await {
        Ok(issued) => {
            let record = issued.record;
            let shown = Shown {
                name: record.name,
                kind: crate::auth::kind_name(record.kind),
                env: record.env.map(|e| e.to_string()),
                secret: issued.secret,
            };
            let page = tokens_page(
                &state,
                &viewer,
                NewTokenForm::default(),
                Vec::new(),
                Some(shown),
                None,
            )
            .await?;
            render_status(StatusCode::CREATED, &page)
        }
        Err(error) => {
            let Some((field, status)) = placed(&error) else {
                return Err(ApiError::from(error).into());
            };
            let problems = vec![problem(field, error.to_string())];
            let page = tokens_page(&state, &viewer, form, problems, None, None).await?;
            render_status(status, &page)
        }
    }
}

/// `GET /console/tokens/{name}/revoke`: what revoking it means, and the button.
pub async fn confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    let listed = list_tokens(&state)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .find(|t| t.name == name && t.source == TokenSource::Store)
        .ok_or_else(|| PageError::not_found(format!("no revocable token named `{name}`")))?;
    let page = RevokePage {
        chrome: Chrome::new(&state, &viewer, format!("Revoke token {name}"), None),
        kind: crate::auth::kind_name(listed.kind),
        env: listed.env.map(|e| e.to_string()),
        name,
    };
    render_status(StatusCode::OK, &page)
}

/// `POST /console/tokens/{name}/revoke`: revokes it and shows the list again.
pub async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    revoke_token(&state, &viewer.principal, &name)
        .await
        .map_err(ApiError::from)?;
    let notice = format!(
        "Token `{name}` is revoked: it no longer works, and consoles signed in with it are signed out."
    );
    let page = tokens_page(
        &state,
        &viewer,
        NewTokenForm::default(),
        Vec::new(),
        None,
        Some(notice),
    )
    .await?;
    render_status(StatusCode::OK, &page)
}
