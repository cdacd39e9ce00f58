//! The REST endpoint: `GET /v1/sdk/snapshot` and `GET /v1/sdk/stream`.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, IF_NONE_MATCH};
use reqwest::StatusCode;
use serde_json::Value;
use switchyard_core::sync::SnapshotDocument;

use super::incoming::OPEN_TIMEOUT;
use crate::error::Error;
use std::sync::Arc;

use crate::state::{read_document, Inner, Loaded, Servers};

/// How long one snapshot request may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);
/// The header a resuming SSE client sends.
const LAST_EVENT_ID: &str = "last-event-id";

/// Fetches the first snapshot, from the first server that answers; `Ok(None)` when
/// it is unchanged since `etag`.
pub(crate) async fn fetch_snapshot(
    inner: &Inner,
    etag: Option<&str>,
) -> Result<Option<Loaded>, Error> {
    let endpoint = Endpoint {
        http: inner.http.clone(),
        servers: Arc::clone(&inner.servers),
        token: inner.token.clone(),
    };
    let mut tries = inner.servers.len();
    loop {
        let url = endpoint.url().to_owned();
        match endpoint.fetch_snapshot(etag).await {
            Err(error @ Error::Unreachable { .. }) if tries > 1 => {
                tracing::debug!(%url, %error, "switchyard: first snapshot failed");
                endpoint.servers.fail_over(&url);
                tries -= 1;
            }
            fetched => return fetched,
        }
    }
}

/// Where the flags come from.
#[derive(Clone)]
pub(super) struct Endpoint {
    pub(super) http: reqwest::Client,
    pub(super) servers: Arc<Servers>,
    pub(super) token: String,
}

impl Endpoint {
    /// The server in use.
    pub(super) fn url(&self) -> &str {
        self.servers.url()
    }

    fn unreachable(&self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Unreachable {
            url: self.url().to_owned(),
            source: source.into(),
        }
    }

    /// `Unauthorized` for 401/403, `Unreachable` for any other unsuccessful status.
    async fn check(&self, response: reqwest::Response) -> Result<reqwest::Response, Error> {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Unauthorized {
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(self.unreachable(format!(
                "unexpected status {status}: {}",
                error_message(&body)
            )));
        }
        Ok(response)
    }

    /// `GET /v1/sdk/snapshot`; `Ok(None)` on 304.
    pub(super) async fn fetch_snapshot(&self, etag: Option<&str>) -> Result<Option<Loaded>, Error> {
        let mut request = self
            .http
            .get(format!("{}/v1/sdk/snapshot", self.url()))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .timeout(SNAPSHOT_TIMEOUT);
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let response = self.check(response).await?;
        let body = response.bytes().await.map_err(|e| self.unreachable(e))?;
        let document: SnapshotDocument =
            read_document(&mut serde_json::Deserializer::from_slice(&body))?;
        Loaded::from_snapshot(document).map(Some)
    }

    /// `GET /v1/sdk/stream`, resuming after `last` when given. The error's flag says
    /// whether nothing answered at all (rather than an error status).
    pub(super) async fn open_stream(
        &self,
        last: Option<u64>,
    ) -> Result<reqwest::Response, (Error, bool)> {
        let mut request = self
            .http
            .get(format!("{}/v1/sdk/stream", self.url()))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(ACCEPT, "text/event-stream");
        if let Some(last) = last {
            request = request.header(LAST_EVENT_ID, last.to_string());
        }
        let response = match tokio::time::timeout(OPEN_TIMEOUT, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err((self.unreachable(error), true)),
            Err(_) => {
                let message = format!("the stream did not open within {OPEN_TIMEOUT:?}");
                return Err((self.unreachable(message), true));
            }
        };
        let response = self.check(response).await.map_err(|error| (error, false))?;
        let is_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !is_stream {
            return Err((self.unreachable("the answer is not an event stream"), false));
        }
        Ok(response)
    }
}

/// The message of a `{"error": {"message"}}` body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_the_error_body() {
        assert_eq!(
            error_message(r#"{"error": {"code": "unauthorized", "message": "invalid token"}}"#),
            "invalid token"
        );
        assert_eq!(error_message(" plain \n"), "plain");
    }
}
