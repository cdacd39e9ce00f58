//! The relay's one HTTP client of its upstream (a server or another relay): which
//! environments its token reads, snapshots, the SDK stream, token checks and
//! metric batches. Every answer is read into a typed contract.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use switchyard_core::model::EnvName;

use crate::http::whoami::WhoAmI;
use crate::store::TokenKind;

/// How long a request other than the stream may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the upstream did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Nothing answered (connection refused, timeout, broken stream).
    #[error("upstream {url} unreachable: {source}")]
    Unreachable {
        /// The upstream.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// It answered with an error.
    #[error("upstream {url} answered {status}: {message}")]
    Refused {
        /// The upstream.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Its error message.
        message: String,
    },
    /// It answered something that is not what it should be.
    #[error("upstream {url} sent an unreadable answer: {message}")]
    Unreadable {
        /// The upstream.
        url: String,
        /// Why.
        message: String,
    },
}

impl UpstreamError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `GET /v1/admin/envs`, as far as the relay reads it.
#[derive(Deserialize)]
struct EnvList {
    environments: Vec<EnvEntry>,
}

#[derive(Deserialize)]
struct EnvEntry {
    name: EnvName,
}

/// The error body every Switchyard error has.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

/// The upstream: its URL, the relay's token, one connection pool.
#[derive(Debug, Clone)]
pub struct Upstream {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Upstream {
    /// A client of the server at `url` (`http://host:port`), using `token`.
    pub fn new(url: &str, token: &str) -> Result<Upstream, String> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("--upstream `{url}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "--upstream `{url}` must be an http:// or https:// URL with a host"
            ));
        }
        if token.trim().is_empty() {
            return Err("--upstream-token (SWITCHYARD_UPSTREAM_TOKEN) is empty".to_owned());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("building the upstream client: {e}"))?;
        Ok(Upstream {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    /// The upstream's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn unreachable(&self, source: reqwest::Error) -> UpstreamError {
        UpstreamError::Unreachable {
            url: self.url.clone(),
            source,
        }
    }

    fn unreadable(&self, message: impl std::fmt::Display) -> UpstreamError {
        UpstreamError::Unreadable {
            url: self.url.clone(),
            message: message.to_string(),
        }
    }

    /// Sends `request`; an error status becomes [`UpstreamError::Refused`] with the
    /// upstream's message.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|body| body.error.message)
            .unwrap_or(text);
        Err(UpstreamError::Refused {
            url: self.url.clone(),
            status: status.as_u16(),
            message,
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, UpstreamError> {
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.unreadable(e))
    }

    fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
    }

    /// What `token` is, as the upstream sees it; `None` when it is not valid there.
    pub async fn whoami(&self, token: &str) -> Result<Option<WhoAmI>, UpstreamError> {
        match self.send(self.get("/v1/whoami", token)).await {
            Ok(response) => self.json(response).await.map(Some),
            Err(error) if error.status() == Some(401) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The environments the relay's token reads: its own for an sdk token, every one
    /// for an admin token.
    pub async fn environments(&self) -> Result<Vec<EnvName>, UpstreamError> {
        let Some(me) = self.whoami(&self.token).await? else {
            return Err(UpstreamError::Refused {
                url: self.url.clone(),
                status: 401,
                message: "the relay's --upstream-token is not valid there".to_owned(),
            });
        };
        match (me.kind, me.env) {
            (TokenKind::Admin, _) => {
                let list: EnvList = self
                    .json(self.send(self.get("/v1/admin/envs", &self.token)).await?)
                    .await?;
                Ok(list.environments.into_iter().map(|e| e.name).collect())
            }
            (TokenKind::Sdk, Some(env)) => Ok(vec![env]),
            (kind, _) => Err(UpstreamError::Refused {
                url: self.url.clone(),
                status: 403,
                message: format!(
                    "the relay's --upstream-token is {} token; a relay needs an sdk or admin token",
                    crate::auth::with_article(kind)
                ),
            }),
        }
    }

    /// The snapshot document of `env`; `None` when the upstream has no such
    /// environment.
    pub async fn snapshot(&self, env: &EnvName) -> Result<Option<Bytes>, UpstreamError> {
        let request = self
            .get("/v1/sdk/snapshot", &self.token)
            .query(&[("env", env.as_str())]);
        match self.send(request).await {
            Ok(response) => response
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.unreachable(e)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Opens `env`'s SDK stream, resuming after revision `after`.
    pub async fn stream(
        &self,
        env: &EnvName,
        after: Option<u64>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut request = self
            .http
            .get(format!("{}/v1/sdk/stream", self.url))
            .bearer_auth(&self.token)
            .query(&[("env", env.as_str())])
            .header("accept", "text/event-stream");
        if let Some(after) = after {
            request = request.header("last-event-id", after.to_string());
        }
        self.send(request).await
    }

    /// Posts one metrics batch of `env` (JSON `body`) under `key`, which the upstream
    /// uses to record a batch sent twice only once.
    pub async fn post_metrics(
        &self,
        env: &EnvName,
        body: Bytes,
        key: &str,
    ) -> Result<(), UpstreamError> {
        let request = self
            .http
            .post(format!("{}/v1/sdk/metrics", self.url))
            .bearer_auth(&self.token)
            .query(&[("env", env.as_str())])
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .timeout(REQUEST_TIMEOUT)
            .body(body);
        self.send(request).await.map(drop)
    }
}
