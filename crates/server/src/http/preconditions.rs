//! `If-Match` / `If-None-Match` read from a request's headers into the domain's
//! [`Preconditions`] (RFC 9110 §13; the rules are in `domain/preconditions.rs`).

use axum::http::header::{IF_MATCH, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName};

use crate::domain::{Header, Malformed, Preconditions};
use crate::error::ApiError;

/// Reads both headers (each may be sent several times; the lists join). A value that
/// is not text, or not `*` or a list of entity tags, is 400.
pub fn from_headers(headers: &HeaderMap) -> Result<Preconditions, ApiError> {
    let if_match = values(headers, IF_MATCH, Header::IfMatch)?;
    let if_none_match = values(headers, IF_NONE_MATCH, Header::IfNoneMatch)?;
    Ok(Preconditions::parse(if_match, if_none_match)?)
}

fn values(headers: &HeaderMap, name: HeaderName, header: Header) -> Result<Vec<&str>, Malformed> {
    headers
        .get_all(name)
        .iter()
        .map(|value| {
            value.to_str().map_err(|_| Malformed {
                header,
                text: "(not visible ASCII)".to_owned(),
            })
        })
        .collect()
}
