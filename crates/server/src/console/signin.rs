//! Signing in (a token pasted into a form, sent in the POST body, never the URL) and
//! out (the session ends on the server and its cookie is deleted).

use askama::Template;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::auth::Refusal;
use crate::console::assets;
use crate::console::page::{render, render_status, PageError};
use crate::console::session::{viewer, Viewer};
use crate::environments::now_ms;
use crate::error::retry_after_seconds;
use crate::limits::Limited;
use crate::state::AppState;
use crate::tls::MaybePeer;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    error: Option<&'a str>,
    css: &'static str,
}

/// `GET /console/login`.
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    if viewer(&state, &headers).is_some() {
        return Ok(Redirect::to("/console").into_response());
    }
    render(&LoginPage {
        error: None,
        css: assets::css_url(),
    })
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /console/login`: starts a session for a valid token.
pub async fn sign_in(
    State(state): State<AppState>,
    MaybePeer(peer): MaybePeer,
    Form(form): Form<SignIn>,
) -> Result<Response, PageError> {
    let token = form.token.trim();
    let addr = peer.map(|peer| peer.addr.ip());
    // Sign-in is a token check like any other: failures count against the address.
    let limited = |limited: Limited| {
        let error = format!(
            "{} (in {} s).",
            limited.message,
            retry_after_seconds(limited.retry_after)
        );
        render_status(
            StatusCode::TOO_MANY_REQUESTS,
            &LoginPage {
                error: Some(&error),
                css: assets::css_url(),
            },
        )
    };
    if let Err(blocked) = state.limits.check_blocked(addr) {
        return limited(blocked);
    }
    let principal = match state.tokens.check(token, now_ms()) {
        Ok(principal) => principal,
        Err(refusal) => {
            if let Err(blocked) = state.limits.auth_failed(addr) {
                return limited(blocked);
            }
            let error = match refusal {
                Refusal::Unknown => "That token is not valid (or was revoked).".to_owned(),
                expired => format!("{}.", expired.message()),
            };
            return render_status(
                StatusCode::UNAUTHORIZED,
                &LoginPage {
                    error: Some(&error),
                    css: assets::css_url(),
                },
            );
        }
    };
    if let Err(refused) = state.check_admin_certificate(&principal, peer) {
        return render_status(
            StatusCode::FORBIDDEN,
            &LoginPage {
                error: Some(&format!("{}.", refused.message)),
                css: assets::css_url(),
            },
        );
    }
    let id = state.console.start(token);
    let mut response = Redirect::to("/console").into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, state.console.cookie(&id));
    Ok(response)
}

/// `POST /console/logout`.
pub async fn sign_out(State(state): State<AppState>, viewer: Viewer) -> Response {
    state.console.end(&viewer.session);
    let mut response = Redirect::to("/console/login").into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, state.console.removal());
    response
}
