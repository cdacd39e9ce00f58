//! The release orchestrator's HTTP API, as the console calls it on a signed-in user's
//! behalf (`--orchestrator-url`, `--orchestrator-token`): the browser never talks to
//! the orchestrator and never sees its token.
//!
//! The documents are core's `release` types, the ones the orchestrator writes; an
//! answer that does not read as one is an [`OrchestratorError::Unreadable`], never a
//! guess.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use switchyard_core::api_error::{ErrorBody, FieldProblem};
use switchyard_core::release::{DoraReport, PlanOutline, ReleaseReport, ReleaseSummary};

/// How long one call to the orchestrator may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to the orchestrator did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// No connection, a timeout, a broken answer.
    #[error("the orchestrator at {url} cannot be reached: {message}")]
    Unreachable {
        /// Where it was called.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// It answered with an error (`{"error": {"code", "message", "problems"}}`).
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// Its code (`not_found`, `refused`, `invalid_plan`, `unauthorized`).
        code: String,
        /// Its message.
        message: String,
        /// A plan's problems with their paths.
        problems: Vec<FieldProblem>,
    },
    /// It answered something that is not the document expected.
    #[error("the orchestrator's answer to {what} could not be read: {message}")]
    Unreadable {
        /// The request.
        what: String,
        /// Why.
        message: String,
    },
}

/// A command a person gives a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Pass the approval step(s) the release waits at.
    Approve,
    /// Stop every progressing service where it is.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Roll back now.
    Abort,
    /// Skip every remaining step: each service to 100 %.
    PromoteFully,
}

impl Command {
    /// Every command, as the console offers them.
    pub const ALL: [Command; 5] = [
        Command::Approve,
        Command::Pause,
        Command::Resume,
        Command::Abort,
        Command::PromoteFully,
    ];

    /// The word in the console's URLs (`promote-fully`).
    pub fn slug(self) -> &'static str {
        match self {
            Command::Approve => "approve",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Abort => "abort",
            Command::PromoteFully => "promote-fully",
        }
    }

    /// The command named by `slug`.
    pub fn from_slug(slug: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.slug() == slug)
    }

    /// The orchestrator's route word.
    fn verb(self) -> &'static str {
        match self {
            Command::PromoteFully => "promote",
            other => other.slug(),
        }
    }
}

#[derive(Serialize)]
struct CommandBody<'a> {
    by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    full: bool,
}

#[derive(Deserialize)]
struct Releases {
    releases: Vec<ReleaseSummary>,
}

/// A client of one orchestrator.
#[derive(Debug, Clone)]
pub struct OrchestratorClient {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl OrchestratorClient {
    /// A client of the orchestrator at `url` (`http://host:port`), sending `token` as
    /// `Authorization: Bearer` when given.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, String> {
        let base = Url::parse(url.trim())
            .map_err(|e| format!("the orchestrator URL `{url}` is not a URL: {e}"))?;
        if base.scheme() != "http" {
            return Err(format!(
                "the orchestrator URL `{url}` must be http:// (put TLS in front of both \
                 services, or keep them on one private network)"
            ));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(format!("the orchestrator URL `{url}` names no host"));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(OrchestratorClient {
            base,
            token: token.filter(|t| !t.trim().is_empty()),
            http,
        })
    }

    /// Where the orchestrator is.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// `GET /v1/releases`: every release not archived, running or not.
    pub async fn releases(&self) -> Result<Vec<ReleaseSummary>, OrchestratorError> {
        let answer: Releases = self
            .call(Method::GET, &["v1", "releases"], &[], None)
            .await?;
        Ok(answer.releases)
    }

    /// `GET /v1/history`: every release ever applied, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<ReleaseSummary>, OrchestratorError> {
        let limit = limit.to_string();
        let answer: Releases = self
            .call(Method::GET, &["v1", "history"], &[("limit", &limit)], None)
            .await?;
        Ok(answer.releases)
    }

    /// `GET /v1/releases/{name}/report`.
    pub async fn report(&self, name: &str) -> Result<ReleaseReport, OrchestratorError> {
        self.call(
            Method::GET,
            &["v1", "releases", name, "report"],
            &[("format", "json")],
            None,
        )
        .await
    }

    /// `GET /v1/dora?window=…`.
    pub async fn dora(&self, window: &str) -> Result<DoraReport, OrchestratorError> {
        self.call(
            Method::GET,
            &["v1", "dora"],
            &[("window", window), ("format", "json")],
            None,
        )
        .await
    }

    /// `POST /v1/releases?dry_run=true`: the plan checked and outlined; nothing starts.
    pub async fn dry_run(&self, plan: &str) -> Result<PlanOutline, OrchestratorError> {
        self.call(
            Method::POST,
            &["v1", "releases"],
            &[("dry_run", "true")],
            Some(plan.to_owned()),
        )
        .await
    }

    /// `POST /v1/releases`: starts the plan (or finds it already running).
    pub async fn apply(&self, plan: &str) -> Result<(), OrchestratorError> {
        let _: serde_json::Value = self
            .call(
                Method::POST,
                &["v1", "releases"],
                &[],
                Some(plan.to_owned()),
            )
            .await?;
        Ok(())
    }

    /// `POST /v1/releases/{name}/{command}`, attributed to `by`.
    pub async fn command(
        &self,
        name: &str,
        command: Command,
        by: &str,
        reason: Option<&str>,
    ) -> Result<(), OrchestratorError> {
        let body = CommandBody {
            by,
            reason: reason.filter(|_| command == Command::Abort),
            full: command == Command::PromoteFully,
        };
        let body = serde_json::to_string(&body).map_err(|e| OrchestratorError::Unreadable {
            what: "the command".into(),
            message: e.to_string(),
        })?;
        let _: serde_json::Value = self
            .call(
                Method::POST,
                &["v1", "releases", name, command.verb()],
                &[],
                Some(body),
            )
            .await?;
        Ok(())
    }

    /// `GET /v1/releases/{name}/report?format=notes`: the release notes, Markdown.
    pub async fn notes(&self, name: &str) -> Result<String, OrchestratorError> {
        let (what, bytes) = self
            .send(
                Method::GET,
                &["v1", "releases", name, "report"],
                &[("format", "notes")],
                None,
            )
            .await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| OrchestratorError::Unreadable {
            what,
            message: e.to_string(),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<T, OrchestratorError> {
        let (what, bytes) = self.send(method, segments, query, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| OrchestratorError::Unreadable {
            what,
            message: e.to_string(),
        })
    }

    /// Sends a request; the successful answer's body, with what was asked (for errors).
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<(String, bytes::Bytes), OrchestratorError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| OrchestratorError::Unreachable {
                url: self.base.to_string(),
                message: "not a base URL".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let what = format!("{method} {}", url.path());
        let mut request = self.http.request(method, url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let unreachable = |e: reqwest::Error| OrchestratorError::Unreachable {
            url: self.base.to_string(),
            message: e.without_url().to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => OrchestratorError::Refused {
                    status,
                    code: body.error.code.into_owned(),
                    message: body.error.message,
                    problems: body.error.problems.unwrap_or_default(),
                },
                Err(_) => OrchestratorError::Unreadable {
                    what,
                    message: format!("status {status} without an error body"),
                },
            });
        }
        Ok((what, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_with_a_host_are_taken() {
        assert!(OrchestratorClient::new("http://127.0.0.1:9090", None).is_ok());
        for bad in [
            "https://o.example",
            "127.0.0.1:9090",
            "not a url",
            "mailto:x@y",
        ] {
            assert!(OrchestratorClient::new(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_round_trip_through_their_slugs() {
        for command in Command::ALL {
            assert_eq!(Command::from_slug(command.slug()), Some(command));
        }
        assert_eq!(Command::PromoteFully.verb(), "promote");
        assert_eq!(Command::from_slug("rollback"), None);
    }
}
