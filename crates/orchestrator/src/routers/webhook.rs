//! The webhook router: tells a URL the weights and lets whatever answers there move the
//! traffic (a service mesh's API, a load balancer's control plane, a script).
//!
//! `set_weight(w)` sends `POST <url>` with the JSON body
//! `{"service": "<name>", "stable": 100 - w, "canary": w}` and succeeds on any 2xx answer
//! within the plan's `timeout` (connecting and reading the answer included). Any other
//! status — redirects too, which are not followed, since following one would turn the
//! POST into a GET — is [`RouterError::Rejected`] with the status and the beginning of
//! the body; no answer in time is [`RouterError::TimedOut`]. The weights are absolute,
//! so the receiver can apply a repeated call as a no-op.
//!
//! A webhook cannot be read back: `weight()` returns the last weight a 2xx confirmed in
//! this process, and 0 before any (also after a restart — the driver re-sends the weight
//! of the step it resumes, so that gap closes with its next call).

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use serde::Serialize;

use super::{RouterError, TrafficRouter};
use crate::plan::WebhookCanary;

/// How much of a refusing answer's body goes into the error, in characters.
const BODY_EXCERPT: usize = 200;

/// `POST`s the weights to a URL.
#[derive(Debug)]
pub struct Webhook {
    service: String,
    config: WebhookCanary,
    http: tokio::sync::OnceCell<reqwest::Client>,
    /// The last weight confirmed with a 2xx.
    last: AtomicU32,
}

/// The body sent.
#[derive(Debug, Serialize)]
struct Weights<'a> {
    service: &'a str,
    stable: u32,
    canary: u32,
}

impl Webhook {
    /// A router telling `config.url` the weights of the service named `service`.
    pub fn new(service: &str, config: WebhookCanary) -> Self {
        Webhook {
            service: service.to_owned(),
            config,
            http: tokio::sync::OnceCell::new(),
            last: AtomicU32::new(0),
        }
    }

    /// The HTTP client, built on first use (building one can fail, a router cannot).
    async fn http(&self) -> Result<&reqwest::Client, RouterError> {
        self.http
            .get_or_try_init(|| async {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
            })
            .await
            .map_err(|source| self.failed(source))
    }

    fn failed(&self, source: reqwest::Error) -> RouterError {
        let address = self.config.url.clone();
        if source.is_timeout() {
            RouterError::TimedOut {
                address,
                timeout: self.config.timeout,
                source,
            }
        } else {
            RouterError::Request { address, source }
        }
    }
}

#[async_trait]
impl TrafficRouter for Webhook {
    async fn set_weight(&self, weight: u32) -> Result<(), RouterError> {
        if weight > 100 {
            return Err(RouterError::InvalidWeight { weight });
        }
        let body = Weights {
            service: &self.service,
            stable: 100 - weight,
            canary: weight,
        };
        let response = self
            .http()
            .await?
            .post(&self.config.url)
            .timeout(self.config.timeout)
            .json(&body)
            .send()
            .await
            .map_err(|source| self.failed(source))?;
        let status = response.status();
        if status.is_success() {
            self.last.store(weight, Ordering::Release);
            return Ok(());
        }
        let text = match response.text().await {
            Ok(text) => text,
            Err(source) => return Err(self.failed(source)),
        };
        Err(RouterError::Rejected {
            address: self.config.url.clone(),
            command: format!(
                "POST {}",
                serde_json::to_string(&body).unwrap_or_else(|_| format!("{body:?}"))
            ),
            answer: format!("HTTP {status}{}", excerpt(&text)),
        })
    }

    async fn weight(&self) -> Result<u32, RouterError> {
        Ok(self.last.load(Ordering::Acquire))
    }
}

/// `: <body>` trimmed and cut at [`BODY_EXCERPT`] characters, or nothing for an empty one.
fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let mut chars = body.chars();
    let head: String = chars.by_ref().take(BODY_EXCERPT).collect();
    if chars.next().is_some() {
        format!(": {head}…")
    } else {
        format!(": {head}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_long_bodies() {
        assert_eq!(excerpt(""), "");
        assert_eq!(excerpt("  \n"), "");
        assert_eq!(excerpt(" boom\n"), ": boom");
        let long = "é".repeat(BODY_EXCERPT + 1);
        assert_eq!(excerpt(&long), format!(": {}…", "é".repeat(BODY_EXCERPT)));
        assert_eq!(
            excerpt(&long[..long.len() - 2]),
            format!(": {}", "é".repeat(BODY_EXCERPT))
        );
    }

    #[tokio::test]
    async fn refuses_weights_above_100_before_sending() {
        // Nothing listens on port 1: the refusal must come before any request.
        let router = Webhook::new(
            "auth",
            WebhookCanary {
                url: "http://127.0.0.1:1/weights".into(),
                timeout: std::time::Duration::from_secs(1),
            },
        );
        let error = router.set_weight(101).await.unwrap_err();
        assert!(
            matches!(error, RouterError::InvalidWeight { weight: 101 }),
            "{error:?}"
        );
        assert_eq!(router.weight().await.unwrap(), 0);
    }
}
