//! Console sessions: a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie,
//! mapped in memory to the token that signed in, its principal and the session's CSRF
//! token. The token is authenticated again on every request, so revoking it ends its
//! sessions. Sessions live in this replica's memory: behind a load balancer with
//! several replicas, the console needs sticky sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::auth::Principal;
use crate::state::AppState;
use crate::store::TokenKind;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "sy_console";

/// How sessions behave; set on `AppState::console` before serving.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Mark the cookie `Secure` (the console is served over TLS by a proxy in front).
    pub secure_cookie: bool,
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            secure_cookie: false,
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 60 * 60),
        }
    }
}

/// One signed-in browser.
struct Session {
    /// Authenticated again on every request.
    token: String,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Every console session of this replica.
pub struct Sessions {
    settings: SessionSettings,
    by_id: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let mut bytes = [0_u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// No sessions yet.
    pub fn new(settings: SessionSettings) -> Self {
        Sessions {
            settings,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session for `token` (already authenticated); returns its id.
    pub fn start(&self, token: &str) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut sessions = self.lock();
        // Sign-ins are rare: forgetting expired sessions here keeps the map bounded.
        sessions.retain(|_, s| !self.expired(s, now));
        sessions.insert(
            id.clone(),
            Session {
                token: token.to_owned(),
                csrf: random_hex(),
                created: now,
                last_seen: now,
            },
        );
        id
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) > self.settings.idle
            || now.duration_since(session.created) > self.settings.absolute
    }

    /// The token and CSRF token of a live session, marking it used; an expired
    /// session is removed.
    fn touch(&self, id: &str) -> Option<(String, String)> {
        let now = Instant::now();
        let mut sessions = self.lock();
        let session = sessions.get_mut(id)?;
        if self.expired(session, now) {
            sessions.remove(id);
            return None;
        }
        session.last_seen = now;
        Some((session.token.clone(), session.csrf.clone()))
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many sessions are held (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `Set-Cookie` value carrying `id`: a browser-session cookie (no `Max-Age`);
    /// the server enforces the idle and absolute expiry.
    pub fn cookie(&self, id: &str) -> HeaderValue {
        let cookie = Cookie::build((COOKIE_NAME, id.to_owned()))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/console")
            .secure(self.settings.secure_cookie)
            .build();
        cookie_header(&cookie)
    }

    /// The `Set-Cookie` value deleting the session cookie.
    pub fn removal(&self) -> HeaderValue {
        let mut cookie = Cookie::build((COOKIE_NAME, ""))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/console")
            .secure(self.settings.secure_cookie)
            .build();
        cookie.make_removal();
        cookie_header(&cookie)
    }
}

fn cookie_header(cookie: &Cookie<'_>) -> HeaderValue {
    // Ids are hex and the attributes fixed, so this is always a valid header value.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// The session id the request's cookie carries.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == COOKIE_NAME)
        .map(|cookie| cookie.value().to_owned())
}

/// Who is looking at a console page: a live session whose token is still valid.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The session id (never logged or shown).
    pub session: String,
    /// The token's principal, as of this request.
    pub principal: Principal,
    /// The session's CSRF token, put into every form.
    pub csrf: String,
}

impl Viewer {
    /// Whether this viewer may write (admin tokens only).
    pub fn can_write(&self) -> bool {
        self.principal.kind == TokenKind::Admin
    }

    /// Whether this viewer may see `env`.
    pub fn may_read(&self, env: &str) -> bool {
        self.can_write()
            || self
                .principal
                .env
                .as_ref()
                .is_some_and(|e| e.as_str() == env)
    }

    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The session of a request, if it has a live one with a valid token; a session whose
/// token was revoked is ended here.
pub fn viewer(state: &AppState, headers: &HeaderMap) -> Option<Viewer> {
    let sessions = &state.console;
    let id = session_id(headers)?;
    let (token, csrf) = sessions.touch(&id)?;
    let Some(principal) = state.tokens.authenticate(&token) else {
        sessions.end(&id);
        return None;
    };
    Some(Viewer {
        session: id,
        principal,
        csrf,
    })
}

/// Sends a request without a live session to the sign-in page, clearing a stale cookie.
pub struct SignInFirst(Arc<Sessions>);

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        let mut response = Redirect::to("/console/login").into_response();
        response.headers_mut().insert(SET_COOKIE, self.0.removal());
        response
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SignInFirst> {
        if let Some(viewer) = parts.extensions.get::<Viewer>() {
            return Ok(viewer.clone());
        }
        viewer(state, &parts.headers).ok_or_else(|| SignInFirst(Arc::clone(&state.console)))
    }
}
