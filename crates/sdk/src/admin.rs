//! A typed client for the server's admin API (`/v1/admin`, admin tokens), used by
//! the orchestrator, CI scripts and tests.
//!
//! ```no_run
//! # async fn run() -> Result<(), switchyard_sdk::Error> {
//! let admin = switchyard_sdk::admin::AdminClient::new("http://127.0.0.1:8080", "swy_...")?;
//! admin.kill("production", "new-checkout", "error rate doubled").await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use reqwest::header::{ETAG, IF_MATCH};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
pub use switchyard_core::admin::{TokenKind, VariantCounts};
use switchyard_core::api_error::ErrorBody;
use switchyard_core::{Flag, Segment};

use crate::error::Error;

/// `text` as one path segment: percent-encoded, so a name with `/`, `?` or `#` (which
/// the server refuses with a 400 naming the rule) cannot reach another route.
/// `.` and `..` are refused here: URL parsers fold them into the path, so they would
/// address another route.
fn seg(text: &str) -> Result<percent_encoding::PercentEncode<'_>, Error> {
    if text == "." || text == ".." {
        return Err(Error::InvalidName(text.to_owned()));
    }
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b':');
    Ok(percent_encoding::utf8_percent_encode(text, SEGMENT))
}

/// A flag as stored, with the version to send back in `If-Match`.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The object.
    pub value: T,
    /// Its version (the `ETag`).
    pub version: u64,
}

/// A token as issued (the secret is only in [`IssuedToken::token`], once).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssuedToken {
    /// Its name.
    pub name: String,
    /// What it may do.
    pub kind: TokenKind,
    /// The environment it is bound to.
    #[serde(default)]
    pub env: Option<String>,
    /// The secret to present as `Bearer`.
    pub token: String,
    /// When it stops being accepted, ms since the epoch (`None`: never).
    #[serde(default)]
    pub expires_ms: Option<u64>,
    /// After a rotation: until when the replaced secret is still accepted.
    #[serde(default)]
    pub previous_valid_until_ms: Option<u64>,
}

/// The admin API client.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for the server at `base` with an admin token.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Result<Self, Error> {
        AdminClient::with_ca(base, token, None)
    }

    /// A client for the server at `base` (`https://` trusting only the PEM
    /// certificates in `ca`, when given, instead of the system's roots).
    pub fn with_ca(
        base: impl Into<String>,
        token: impl Into<String>,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, Error> {
        Ok(AdminClient {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http: crate::tls::trusting(reqwest::Client::builder(), ca)?.build()?,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<u64>,
    ) -> Result<reqwest::Response, Error> {
        let mut request = self
            .http
            .request(method, format!("{}/v1/admin{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(version) = if_match {
            request = request.header(IF_MATCH, format!("\"{version}\""));
        }
        let response = request.send().await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => (body.error.code.into_owned(), body.error.message),
            Err(_) => ("unknown".to_owned(), text),
        };
        Err(Error::Api {
            status,
            code,
            message,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, Error> {
        Ok(self.send(method, path, body, None).await?.json().await?)
    }

    fn versioned<T>(response: &reqwest::Response, value: T) -> Versioned<T> {
        let version = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or(0);
        Versioned { value, version }
    }

    /// Creates an environment (no error if it exists).
    pub async fn create_env(&self, env: &str) -> Result<(), Error> {
        self.send(Method::PUT, &format!("/envs/{}", seg(env)?), None, None)
            .await
            .map(drop)
    }

    /// The names of every environment.
    pub async fn environments(&self) -> Result<Vec<String>, Error> {
        #[derive(Deserialize)]
        struct Environment {
            name: String,
        }
        #[derive(Deserialize)]
        struct Environments {
            environments: Vec<Environment>,
        }
        let body: Environments = self.json(Method::GET, "/envs", None).await?;
        Ok(body.environments.into_iter().map(|e| e.name).collect())
    }

    /// The current revision of `env` (`None` if there is no such environment).
    pub async fn revision(&self, env: &str) -> Result<Option<u64>, Error> {
        #[derive(Deserialize)]
        struct Environment {
            name: String,
            revision: u64,
        }
        #[derive(Deserialize)]
        struct Environments {
            environments: Vec<Environment>,
        }
        let body: Environments = self.json(Method::GET, "/envs", None).await?;
        Ok(body
            .environments
            .into_iter()
            .find(|e| e.name == env)
            .map(|e| e.revision))
    }

    /// Every flag of `env`.
    pub async fn flags(&self, env: &str) -> Result<Vec<Flag>, Error> {
        #[derive(Deserialize)]
        struct Flags {
            flags: Vec<Flag>,
        }
        let body: Flags = self
            .json(Method::GET, &format!("/envs/{}/flags", seg(env)?), None)
            .await?;
        Ok(body.flags)
    }

    /// One flag and its version; `None` when it does not exist.
    pub async fn flag(&self, env: &str, key: &str) -> Result<Option<Versioned<Flag>>, Error> {
        match self
            .send(
                Method::GET,
                &format!("/envs/{}/flags/{}", seg(env)?, seg(key)?),
                None,
                None,
            )
            .await
        {
            Ok(response) => {
                let flag: Flag = response.json().await?;
                let version = flag.version;
                Ok(Some(Versioned {
                    value: flag,
                    version,
                }))
            }
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates or replaces a flag; with `if_match`, only over that version (a
    /// conflict is `Error::Api { status: 412, .. }`).
    pub async fn put_flag(
        &self,
        env: &str,
        flag: &Flag,
        if_match: Option<u64>,
    ) -> Result<Versioned<Flag>, Error> {
        let body = json!(flag);
        let response = self
            .send(
                Method::PUT,
                &format!("/envs/{}/flags/{}", seg(env)?, seg(flag.key.as_str())?),
                Some(&body),
                if_match,
            )
            .await?;
        let version = Self::versioned(&response, ()).version;
        let flag: Flag = response.json().await?;
        Ok(Versioned {
            value: flag,
            version,
        })
    }

    /// Deletes a flag.
    pub async fn delete_flag(
        &self,
        env: &str,
        key: &str,
        if_match: Option<u64>,
    ) -> Result<(), Error> {
        self.send(
            Method::DELETE,
            &format!("/envs/{}/flags/{}", seg(env)?, seg(key)?),
            None,
            if_match,
        )
        .await
        .map(drop)
    }

    /// Kill switch: everyone gets the off variant.
    pub async fn kill(&self, env: &str, key: &str, reason: &str) -> Result<Flag, Error> {
        let body = json!({ "reason": reason });
        self.json(
            Method::POST,
            &format!("/envs/{}/flags/{}/kill", seg(env)?, seg(key)?),
            Some(&body),
        )
        .await
    }

    /// Undoes a kill.
    pub async fn revive(&self, env: &str, key: &str, reason: &str) -> Result<Flag, Error> {
        let body = json!({ "reason": reason });
        self.json(
            Method::POST,
            &format!("/envs/{}/flags/{}/revive", seg(env)?, seg(key)?),
            Some(&body),
        )
        .await
    }

    /// Kills every flag carrying `tag`; returns their keys.
    pub async fn kill_tag(&self, env: &str, tag: &str, reason: &str) -> Result<Vec<String>, Error> {
        #[derive(Deserialize)]
        struct Killed {
            killed: Vec<String>,
        }
        let body = json!({ "tag": tag, "reason": reason });
        let killed: Killed = self
            .json(
                Method::POST,
                &format!("/envs/{}/kill", seg(env)?),
                Some(&body),
            )
            .await?;
        Ok(killed.killed)
    }

    /// Creates or replaces a segment.
    pub async fn put_segment(&self, env: &str, segment: &Segment) -> Result<Segment, Error> {
        let body = json!(segment);
        self.json(
            Method::PUT,
            &format!(
                "/envs/{}/segments/{}",
                seg(env)?,
                seg(segment.key.as_str())?
            ),
            Some(&body),
        )
        .await
    }

    /// Deletes a segment.
    pub async fn delete_segment(&self, env: &str, key: &str) -> Result<(), Error> {
        self.send(
            Method::DELETE,
            &format!("/envs/{}/segments/{}", seg(env)?, seg(key)?),
            None,
            None,
        )
        .await
        .map(drop)
    }

    /// Issues a token (`env` for [`TokenKind::Sdk`] and [`TokenKind::Eval`]).
    pub async fn create_token(
        &self,
        name: &str,
        kind: TokenKind,
        env: Option<&str>,
    ) -> Result<IssuedToken, Error> {
        self.create_token_until(name, kind, env, None).await
    }

    /// Issues a token accepted until `expires_ms` (ms since the epoch; `None`: never).
    pub async fn create_token_until(
        &self,
        name: &str,
        kind: TokenKind,
        env: Option<&str>,
        expires_ms: Option<u64>,
    ) -> Result<IssuedToken, Error> {
        let mut body = json!({ "name": name, "kind": kind });
        if let Some(env) = env {
            body["env"] = json!(env);
        }
        if let Some(expires_ms) = expires_ms {
            body["expires_ms"] = json!(expires_ms);
        }
        self.json(Method::POST, "/tokens", Some(&body)).await
    }

    /// Gives a token a new secret; the old one stays accepted for `grace` (whole
    /// seconds, at most 30 days).
    pub async fn rotate_token(
        &self,
        name: &str,
        grace: std::time::Duration,
    ) -> Result<IssuedToken, Error> {
        let body = json!({ "grace_seconds": grace.as_secs() });
        let path = format!("/tokens/{}/rotate", seg(name)?);
        self.json(Method::POST, &path, Some(&body)).await
    }

    /// Revokes a token.
    pub async fn delete_token(&self, name: &str) -> Result<(), Error> {
        self.send(
            Method::DELETE,
            &format!("/tokens/{}", seg(name)?),
            None,
            None,
        )
        .await
        .map(drop)
    }

    /// A flag's exposures and events per variant over `window` (e.g. `5m`).
    pub async fn flag_metrics(
        &self,
        env: &str,
        key: &str,
        window: &str,
    ) -> Result<BTreeMap<String, VariantCounts>, Error> {
        #[derive(Deserialize)]
        struct Metrics {
            variants: BTreeMap<String, VariantCounts>,
        }
        let body: Metrics = self
            .json(
                Method::GET,
                &format!(
                    "/envs/{}/flags/{}/metrics?window={}",
                    seg(env)?,
                    seg(key)?,
                    seg(window)?
                ),
                None,
            )
            .await?;
        Ok(body.variants)
    }

    /// The distinct units of each variant of a flag in the counts SDKs began at or
    /// after `since`, with the units that had `event` (every event when `None`).
    pub async fn flag_units(
        &self,
        env: &str,
        key: &str,
        since: chrono::DateTime<chrono::Utc>,
        event: Option<&str>,
    ) -> Result<switchyard_core::admin::FlagUnits, Error> {
        let mut path = format!(
            "/envs/{}/flags/{}/units?since={}",
            seg(env)?,
            seg(key)?,
            since.timestamp_millis().max(0)
        );
        if let Some(event) = event {
            path.push_str(&format!("&event={}", seg(event)?));
        }
        self.json(Method::GET, &path, None).await
    }

    /// Audit entries, newest first (`query` e.g. `env=prod&flag=x&limit=10`).
    pub async fn audit(&self, query: &str) -> Result<Vec<Value>, Error> {
        #[derive(Deserialize)]
        struct Audit {
            entries: Vec<Value>,
        }
        let body: Audit = self
            .json(Method::GET, &format!("/audit?{query}"), None)
            .await?;
        Ok(body.entries)
    }

    /// Every segment of `env`.
    pub async fn segments(&self, env: &str) -> Result<Vec<Segment>, Error> {
        #[derive(Deserialize)]
        struct Segments {
            segments: Vec<Segment>,
        }
        let body: Segments = self
            .json(Method::GET, &format!("/envs/{}/segments", seg(env)?), None)
            .await?;
        Ok(body.segments)
    }

    /// Every token, without secrets (as the server describes them).
    pub async fn tokens(&self) -> Result<Vec<Value>, Error> {
        #[derive(Deserialize)]
        struct Tokens {
            tokens: Vec<Value>,
        }
        let body: Tokens = self.json(Method::GET, "/tokens", None).await?;
        Ok(body.tokens)
    }

    /// Writes and deletes flags and segments of `env` in one atomic commit, only if
    /// the environment is still at `revision` (when given).
    pub async fn apply(
        &self,
        env: &str,
        body: &switchyard_core::admin::ApplyBody,
        revision: Option<u64>,
    ) -> Result<switchyard_core::admin::ApplyAnswer, Error> {
        let body = json!(body);
        let path = format!("/envs/{}/apply", seg(env)?);
        let response = self
            .send(Method::POST, &path, Some(&body), revision)
            .await?;
        Ok(response.json().await?)
    }

    /// The scheduled changes of `env`, by due time.
    pub async fn schedules(
        &self,
        env: &str,
    ) -> Result<Vec<switchyard_core::admin::Schedule>, Error> {
        #[derive(Deserialize)]
        struct Schedules {
            schedules: Vec<switchyard_core::admin::Schedule>,
        }
        let body: Schedules = self
            .json(Method::GET, &format!("/envs/{}/schedules", seg(env)?), None)
            .await?;
        Ok(body.schedules)
    }

    /// Schedules a change to a flag of `env`.
    pub async fn schedule(
        &self,
        env: &str,
        new: &switchyard_core::admin::NewSchedule,
    ) -> Result<switchyard_core::admin::Schedule, Error> {
        let body = json!(new);
        self.json(
            Method::POST,
            &format!("/envs/{}/schedules", seg(env)?),
            Some(&body),
        )
        .await
    }

    /// Cancels a pending scheduled change of `env`.
    pub async fn cancel_schedule(
        &self,
        env: &str,
        id: &str,
    ) -> Result<switchyard_core::admin::Schedule, Error> {
        self.json(
            Method::DELETE,
            &format!("/envs/{}/schedules/{}", seg(env)?, seg(id)?),
            None,
        )
        .await
    }

    /// Which flags of `env` are stale (unused or fully rolled out for
    /// `stale_after_seconds`; 30 days when `None`) or expired, and the unknown keys
    /// evaluated there.
    pub async fn lifecycle(
        &self,
        env: &str,
        stale_after_seconds: Option<u64>,
    ) -> Result<switchyard_core::admin::Lifecycle, Error> {
        let mut path = format!("/envs/{}/lifecycle", seg(env)?);
        if let Some(seconds) = stale_after_seconds {
            path.push_str(&format!("?stale_after_seconds={seconds}"));
        }
        self.json(Method::GET, &path, None).await
    }

    /// Whether the server answers (`/healthz`).
    pub async fn healthy(&self) -> bool {
        self.http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    }
}
