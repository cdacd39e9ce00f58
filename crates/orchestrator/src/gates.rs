//! Gates and notifications: the release's calls out to people's systems.
//!
//! A gate lets a release (or one step) go on: a webhook answering 2xx, or a command
//! exiting 0 — for CI pipelines that check something the orchestrator cannot. A
//! timeout or any other answer counts as a failed attempt; the gate is retried
//! `retries` times with a growing pause before it fails. Notifications are best
//! effort: one attempt per target, bounded by a timeout, and a failure is recorded in
//! the timeline without stopping the release.

use std::time::Duration;

use serde_json::{json, Value};

use crate::analysis::error_chain;
use crate::plan::{Gate, GateCheck, Notify, NotifyEvent, NotifyFormat};

/// How long a notification call may take.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why one attempt of a gate failed.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The webhook did not answer within the gate's timeout.
    #[error("webhook {url} did not answer within {}", humantime::format_duration(*timeout))]
    WebhookTimedOut {
        /// The webhook.
        url: String,
        /// The gate's timeout.
        timeout: Duration,
    },
    /// The webhook could not be called.
    #[error("webhook {url}")]
    WebhookUnreachable {
        /// The webhook.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The webhook answered, but not 2xx.
    #[error("webhook {url} answered {status}{excerpt}")]
    WebhookRefused {
        /// The webhook.
        url: String,
        /// What it answered.
        status: reqwest::StatusCode,
        /// `: ` and the first line of its body, or nothing.
        excerpt: String,
    },
    /// The command could not be started.
    #[error("command `{command}` could not start")]
    CommandStart {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command did not finish within the gate's timeout.
    #[error("command `{command}` did not finish within {}", humantime::format_duration(*timeout))]
    CommandTimedOut {
        /// The command.
        command: String,
        /// The gate's timeout.
        timeout: Duration,
    },
    /// The command's output could not be read.
    #[error("command `{command}`")]
    CommandOutput {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command exited with another status than 0.
    #[error("command `{command}` {status}{excerpt}")]
    CommandFailed {
        /// The command.
        command: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// `: ` and the first line of its standard error, or nothing.
        excerpt: String,
    },
}

/// A gate that failed on every attempt.
#[derive(Debug, thiserror::Error)]
#[error("gate failed after {attempts} attempts")]
pub struct GateFailed {
    /// How many attempts were made.
    pub attempts: u32,
    /// Why the last one failed.
    #[source]
    pub last: GateError,
}

impl GateFailed {
    /// The failure as the timeline says it: the last attempt's error with its sources,
    /// and how many attempts there were.
    pub fn describe(&self) -> String {
        format!(
            "{} (after {} attempts)",
            error_chain(&self.last),
            self.attempts
        )
    }
}

/// Runs `gate` (with its retries); `context` is the JSON a webhook gate receives.
pub async fn run(gate: &Gate, context: &Value, http: &reqwest::Client) -> Result<(), GateFailed> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match attempt_once(gate, context, http).await {
            Ok(()) => return Ok(()),
            Err(last) if attempt > gate.retries => {
                return Err(GateFailed {
                    attempts: attempt,
                    last,
                });
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), attempt, "gate failed; retrying");
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
            }
        }
    }
}

async fn attempt_once(
    gate: &Gate,
    context: &Value,
    http: &reqwest::Client,
) -> Result<(), GateError> {
    match &gate.check {
        GateCheck::Webhook(url) => {
            let response = http
                .post(url)
                .timeout(gate.timeout)
                .json(context)
                .send()
                .await
                .map_err(|source| {
                    if source.is_timeout() {
                        GateError::WebhookTimedOut {
                            url: url.clone(),
                            timeout: gate.timeout,
                        }
                    } else {
                        GateError::WebhookUnreachable {
                            url: url.clone(),
                            source,
                        }
                    }
                })?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                let body = response.text().await.unwrap_or_default();
                Err(GateError::WebhookRefused {
                    url: url.clone(),
                    status,
                    excerpt: excerpt(&body),
                })
            }
        }
        GateCheck::Command(command) => {
            let child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .env("SWITCHYARD_GATE_CONTEXT", context.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| GateError::CommandStart {
                    command: command.clone(),
                    source,
                })?;
            let output = tokio::time::timeout(gate.timeout, child.wait_with_output())
                .await
                .map_err(|_| GateError::CommandTimedOut {
                    command: command.clone(),
                    timeout: gate.timeout,
                })?
                .map_err(|source| GateError::CommandOutput {
                    command: command.clone(),
                    source,
                })?;
            if output.status.success() {
                Ok(())
            } else {
                Err(GateError::CommandFailed {
                    command: command.clone(),
                    status: output.status,
                    excerpt: excerpt(&String::from_utf8_lossy(&output.stderr)),
                })
            }
        }
    }
}

/// `: first line of the body` (bounded), or nothing.
fn excerpt(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.is_empty() {
        return String::new();
    }
    let cut: String = line.chars().take(200).collect();
    format!(": {cut}")
}

/// What one notification says.
pub struct Notice<'a> {
    /// The release.
    pub release: &'a str,
    /// The environment.
    pub environment: &'a str,
    /// What happened.
    pub event: NotifyEvent,
    /// The service concerned, if one.
    pub service: Option<&'a str>,
    /// The timeline's words.
    pub message: &'a str,
    /// When (ms since the Unix epoch).
    pub at: u64,
}

/// The body `target` receives for `notice`.
pub fn payload(target: &Notify, notice: &Notice) -> Value {
    let event = crate::report::name_of(&notice.event);
    match target.format {
        NotifyFormat::Json => json!({
            "release": notice.release,
            "environment": notice.environment,
            "event": event,
            "service": notice.service,
            "message": notice.message,
            "at": notice.at,
        }),
        NotifyFormat::Slack => {
            let icon = match notice.event {
                NotifyEvent::Started => ":rocket:",
                NotifyEvent::Step => ":arrow_up:",
                NotifyEvent::Paused => ":double_vertical_bar:",
                NotifyEvent::AwaitingApproval => ":raising_hand:",
                NotifyEvent::Promoted => ":white_check_mark:",
                NotifyEvent::RolledBack => ":rewind:",
            };
            let service = notice
                .service
                .map(|s| format!(" · {s}"))
                .unwrap_or_default();
            json!({
                "text": format!(
                    "{icon} *{}* ({}){service}: {}",
                    notice.release, notice.environment, notice.message
                )
            })
        }
    }
}

/// A notification target that was not told.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// It answered, but not 2xx.
    #[error("{webhook} answered {status}")]
    Refused {
        /// The target.
        webhook: String,
        /// What it answered.
        status: reqwest::StatusCode,
    },
    /// It could not be called.
    #[error("{webhook}")]
    Unreachable {
        /// The target.
        webhook: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

/// The targets of one notice that were not told (at least one), each with its error.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| error_chain(e)).collect::<Vec<_>>().join("; "))]
pub struct NotifyFailed(pub Vec<NotifyError>);

/// Sends `notice` to every target that wants its event; the errors, if any.
pub async fn notify(
    targets: &[Notify],
    notice: &Notice<'_>,
    http: &reqwest::Client,
) -> Result<(), NotifyFailed> {
    let mut errors = Vec::new();
    for target in targets {
        if !(target.events.is_empty() || target.events.contains(&notice.event)) {
            continue;
        }
        let sent = http
            .post(&target.webhook)
            .timeout(NOTIFY_TIMEOUT)
            .json(&payload(target, notice))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => errors.push(NotifyError::Refused {
                webhook: target.webhook.clone(),
                status: r.status(),
            }),
            Err(source) => errors.push(NotifyError::Unreachable {
                webhook: target.webhook.clone(),
                source,
            }),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(NotifyFailed(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(format: NotifyFormat) -> Notify {
        Notify {
            webhook: "http://127.0.0.1:9/hook".into(),
            format,
            events: vec![],
        }
    }

    #[test]
    fn payloads() {
        let notice = Notice {
            release: "checkout-v3",
            environment: "production",
            event: NotifyEvent::RolledBack,
            service: Some("checkout"),
            message: "checkout: error-rate 0.2 > max 0.05",
            at: 7,
        };
        assert_eq!(
            payload(&target(NotifyFormat::Json), &notice),
            json!({ "release": "checkout-v3", "environment": "production", "event": "rolled_back",
                    "service": "checkout", "message": "checkout: error-rate 0.2 > max 0.05", "at": 7 })
        );
        assert_eq!(
            payload(&target(NotifyFormat::Slack), &notice),
            json!({ "text": ":rewind: *checkout-v3* (production) · checkout: checkout: error-rate 0.2 > max 0.05" })
        );
    }

    #[tokio::test]
    async fn command_gates_pass_on_exit_0_and_say_why_they_fail() {
        let http = reqwest::Client::new();
        let gate = |command: &str, retries| Gate {
            check: GateCheck::Command(command.into()),
            timeout: Duration::from_secs(5),
            retries,
        };
        let context = json!({ "release": "r" });
        run(
            &gate(
                "test \"$(echo $SWITCHYARD_GATE_CONTEXT)\" = '{\"release\":\"r\"}'",
                0,
            ),
            &context,
            &http,
        )
        .await
        .unwrap();
        let err = run(&gate("echo 'tests failed' >&2; exit 3", 0), &context, &http)
            .await
            .unwrap_err();
        assert!(
            matches!(err.last, GateError::CommandFailed { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.describe(),
            "command `echo 'tests failed' >&2; exit 3` exit status: 3: tests failed (after 1 attempts)"
        );
        let slow = Gate {
            timeout: Duration::from_millis(100),
            ..gate("sleep 5", 1)
        };
        let err = run(&slow, &context, &http).await.unwrap_err();
        assert_eq!(
            err.describe(),
            "command `sleep 5` did not finish within 100ms (after 2 attempts)"
        );
    }
}
