//! The daemon's HTTP API as the CLI uses it.

use switchyard_core::api_error::ErrorBody;

use super::*;

/// The daemon's HTTP API.
pub struct Client {
    base: reqwest::Url,
    shown: String,
    token: Option<String>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ReleaseList {
    releases: Vec<ReleaseSummary>,
}

impl Client {
    /// A client for the daemon at `url`, sending `token` when given.
    pub fn new(url: &str, token: Option<&str>) -> Result<Client, CliError> {
        let base = reqwest::Url::parse(url).map_err(|source| CliError::BadUrl {
            url: url.to_owned(),
            source: Box::new(source),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CliError::NotHttpUrl {
                url: url.to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| CliError::Http {
                url: url.to_owned(),
                source,
            })?;
        Ok(Client {
            shown: url.trim_end_matches('/').to_owned(),
            base,
            token: token.filter(|t| !t.is_empty()).map(str::to_owned),
            http,
        })
    }

    pub(crate) fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CliError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|source| {
            let url = source
                .url()
                .map_or_else(|| self.shown.clone(), ToString::to_string);
            if source.is_connect() {
                CliError::Unreachable {
                    url: self.shown.clone(),
                    source,
                }
            } else {
                CliError::Http { url, source }
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let url = response.url().to_string();
        let text = response
            .text()
            .await
            .map_err(|source| CliError::Http { url, source })?;
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(ErrorBody { error }) if error.code == "invalid_plan" => CliError::InvalidPlan(
                error
                    .problems
                    .unwrap_or_default()
                    .into_iter()
                    .map(Problem::from)
                    .collect(),
            ),
            Ok(ErrorBody { error }) => CliError::Api {
                status: status.as_u16(),
                code: error.code.into_owned(),
                message: error.message,
            },
            Err(_) => CliError::Api {
                status: status.as_u16(),
                code: "unknown".to_owned(),
                message: format!(
                    "the orchestrator answered {status}: {}",
                    text.chars().take(200).collect::<String>()
                ),
            },
        })
    }

    pub(crate) async fn decode<T: DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, CliError> {
        let url = response.url().to_string();
        let bytes = response.bytes().await.map_err(|source| CliError::Http {
            url: url.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| CliError::Undecodable { url, source })
    }

    /// Applies a plan; `(release, created)`.
    pub async fn apply(&self, plan: String) -> Result<(Release, bool), CliError> {
        let request = self
            .http
            .post(self.url(&["v1", "releases"]))
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(plan);
        let response = self.send(request).await?;
        let created = response.status() == reqwest::StatusCode::CREATED;
        Ok((Self::decode(response).await?, created))
    }

    /// Every release.
    pub async fn releases(&self) -> Result<Vec<ReleaseSummary>, CliError> {
        let request = self.http.get(self.url(&["v1", "releases"]));
        let list: ReleaseList = Self::decode(self.send(request).await?).await?;
        Ok(list.releases)
    }

    /// One release.
    pub async fn release(&self, name: &str) -> Result<Release, CliError> {
        let request = self.http.get(self.url(&["v1", "releases", name]));
        Self::decode(self.send(request).await?).await
    }

    /// `approve`, `pause`, `resume`, `abort` or `promote`, with its JSON body.
    pub async fn command(&self, name: &str, verb: &str, body: Value) -> Result<Release, CliError> {
        let request = self
            .http
            .post(self.url(&["v1", "releases", name, verb]))
            .json(&body);
        Self::decode(self.send(request).await?).await
    }

    /// The Markdown report.
    pub async fn report_markdown(&self, name: &str) -> Result<String, CliError> {
        let url = self.url(&["v1", "releases", name, "report"]);
        let request = self.http.get(url).query(&[("format", "markdown")]);
        let response = self.send(request).await?;
        let url = response.url().to_string();
        response
            .text()
            .await
            .map_err(|source| CliError::Http { url, source })
    }

    /// The JSON report.
    pub async fn report_json(&self, name: &str) -> Result<Value, CliError> {
        let url = self.url(&["v1", "releases", name, "report"]);
        let request = self.http.get(url).query(&[("format", "json")]);
        Self::decode(self.send(request).await?).await
    }

    /// The latest `limit` releases ever applied, newest first.
    pub async fn history(&self, limit: u32) -> Result<Vec<ReleaseSummary>, CliError> {
        let request = self
            .http
            .get(self.url(&["v1", "history"]))
            .query(&[("limit", limit)]);
        let list: ReleaseList = Self::decode(self.send(request).await?).await?;
        Ok(list.releases)
    }

    pub(crate) fn dora_request(&self, window: Duration, format: &str) -> reqwest::RequestBuilder {
        let window = report::window_text(window);
        self.http
            .get(self.url(&["v1", "dora"]))
            .query(&[("window", window.as_str()), ("format", format)])
    }

    /// DORA figures over `window` as Markdown.
    pub async fn dora_markdown(&self, window: Duration) -> Result<String, CliError> {
        let response = self.send(self.dora_request(window, "markdown")).await?;
        let url = response.url().to_string();
        response
            .text()
            .await
            .map_err(|source| CliError::Http { url, source })
    }

    /// DORA figures over `window` as JSON.
    pub async fn dora_json(&self, window: Duration) -> Result<Value, CliError> {
        let response = self.send(self.dora_request(window, "json")).await?;
        Self::decode(response).await
    }
}
