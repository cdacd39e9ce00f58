//! The gate of every state-changing console request: the browser must say it comes
//! from this origin (`Sec-Fetch-Site` / `Origin`), and every request but the sign-in
//! itself must carry the session's synchronizer token, as the form field `csrf` or
//! the `X-CSRF-Token` header. Anything else is a 403 page and nothing is written.
//! GET and HEAD never change state, so they pass.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::console::page::PageError;
use crate::console::session::viewer;
use crate::http::MAX_BODY;
use crate::state::AppState;

/// The header a script may send the token in instead of the form field.
pub const HEADER: &str = "x-csrf-token";

#[derive(Deserialize)]
struct Field {
    csrf: Option<String>,
}

/// Whether the browser marks the request as coming from another site. Requests
/// without either header (non-browser clients) pass this check and still need the
/// synchronizer token.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return false;
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    origin_host.is_none() || origin_host != host
}

/// The middleware: see the module documentation.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    if cross_site(request.headers()) {
        return PageError::forbidden("cross-site request refused").into_response();
    }
    if request.uri().path() == "/login" || request.uri().path().ends_with("/console/login") {
        return next.run(request).await;
    }
    let Some(viewer) = viewer(&state, request.headers()) else {
        return PageError::forbidden("your session has ended; sign in again").into_response();
    };
    let (mut parts, body) = request.into_parts();
    let header = parts
        .headers
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return PageError::bad_request("the form is too large").into_response();
    };
    let field = serde_urlencoded::from_bytes::<Field>(&bytes)
        .ok()
        .and_then(|f| f.csrf);
    let presented = header.or(field);
    if !presented.is_some_and(|token| viewer.csrf_matches(&token)) {
        return PageError::forbidden(
            "this form's security token is missing or out of date; reload the page and try again",
        )
        .into_response();
    }
    parts.extensions.insert(viewer);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn only_same_origin_browser_requests_and_non_browser_clients_pass() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("sec-fetch-site", "same-origin")], false),
            (&[("sec-fetch-site", "none")], false),
            (&[("sec-fetch-site", "cross-site")], true),
            (&[("sec-fetch-site", "same-site")], true),
            (&[("host", "a:1"), ("origin", "http://a:1")], false),
            (&[("host", "a:1"), ("origin", "http://evil:1")], true),
            (&[("host", "a:1"), ("origin", "null")], true),
        ];
        for (pairs, expected) in cases {
            assert_eq!(cross_site(&headers(pairs)), *expected, "{pairs:?}");
        }
    }
}
