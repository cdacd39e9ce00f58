//! The plan's gates (checks a release waits on) and notifications (webhooks told of
//! its events).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schema::duration;

/// Gates run before the release starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Run once, before any service starts.
    #[serde(default)]
    pub pre: Vec<Gate>,
}

impl Gates {
    pub(super) fn is_empty(&self) -> bool {
        self.pre.is_empty()
    }
}

/// A check that lets a release (or a step) go on: a webhook answering 2xx, or a
/// command exiting 0. A timeout or any other answer halts; it is retried first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GateWritten")]
pub struct Gate {
    /// What is checked.
    #[serde(flatten)]
    pub check: GateCheck,
    /// How long one attempt may take.
    #[serde(default = "default_gate_timeout", with = "duration")]
    pub timeout: Duration,
    /// Further attempts after a failed one.
    #[serde(default = "default_gate_retries")]
    pub retries: u32,
}

/// What a [`Gate`] runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateCheck {
    /// `POST url` with the release's state as JSON; 2xx passes.
    Webhook(String),
    /// `sh -c command`; exit status 0 passes.
    Command(String),
}

/// A [`Gate`] as written; read through this so that a mistyped gate is told which
/// forms there are (serde's `flatten` would only say that no variant matched).
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a gate: `webhook: URL` or `command: COMMAND`, with optional `timeout` and `retries`"
)]
struct GateWritten {
    webhook: Option<String>,
    command: Option<String>,
    #[serde(default = "default_gate_timeout", with = "duration")]
    timeout: Duration,
    #[serde(default = "default_gate_retries")]
    retries: u32,
}

impl TryFrom<GateWritten> for Gate {
    type Error = &'static str;

    fn try_from(written: GateWritten) -> Result<Self, Self::Error> {
        let check = match (written.webhook, written.command) {
            (Some(url), None) => GateCheck::Webhook(url),
            (None, Some(command)) => GateCheck::Command(command),
            _ => {
                return Err(
                    "a gate has exactly one of `webhook: URL` or `command: COMMAND` \
                     (and optional `timeout` and `retries`)",
                )
            }
        };
        Ok(Gate {
            check,
            timeout: written.timeout,
            retries: written.retries,
        })
    }
}

pub(super) fn default_gate_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_gate_retries() -> u32 {
    2
}

/// A notification target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// `POST`ed to for each event.
    pub webhook: String,
    /// The payload's shape.
    #[serde(default)]
    pub format: NotifyFormat,
    /// The events sent; every event when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NotifyEvent>,
}

/// A notification payload's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// `{ release, event, service, message, environment, at }`.
    #[default]
    Json,
    /// Slack's incoming-webhook shape: `{ text }`.
    Slack,
}

/// A release event that can be notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// The release started (in an environment).
    Started,
    /// A service reached a new weight.
    Step,
    /// A service was paused.
    Paused,
    /// A service waits for approval.
    AwaitingApproval,
    /// The release was promoted (in an environment).
    Promoted,
    /// The release was rolled back.
    RolledBack,
}
