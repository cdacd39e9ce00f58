//! [`ActionError`]: why the driver could not perform an action, with its sources kept;
//! turned into the timeline's words ([`ActionError::describe`]) only where the machine
//! records the failure.

use crate::analysis::error_chain;
use crate::analysis::health::HealthError;
use crate::flags::FlagError;
use crate::gates::{GateFailed, NotifyFailed};
use crate::routers::RouterError;

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The traffic router refused or could not be reached.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The flag server's admin API refused, or a flag cannot be ramped.
    #[error(transparent)]
    Flags(#[from] FlagError),
    /// A pre-check's health check failed.
    #[error(transparent)]
    Health(#[from] HealthError),
    /// A gate failed on every attempt.
    #[error(transparent)]
    Gate(#[from] GateFailed),
    /// A notification target was not told.
    #[error(transparent)]
    Notify(#[from] NotifyFailed),
    /// The action names a service the plan does not have.
    #[error("no service `{0}` in the plan")]
    UnknownService(String),
    /// A router or flag change failed on every attempt.
    #[error("failed after {attempts} attempts")]
    Retried {
        /// How many attempts were made.
        attempts: u32,
        /// Why the last one failed.
        #[source]
        last: Box<ActionError>,
    },
}

impl ActionError {
    /// The failure as the timeline says it: the error with its sources (`outer: inner`)
    /// and, after retries, how many attempts there were.
    pub fn describe(&self) -> String {
        match self {
            ActionError::Retried { attempts, last } => {
                format!("{} (after {attempts} attempts)", last.describe())
            }
            ActionError::Gate(failed) => failed.describe(),
            other => error_chain(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::gates::GateError;

    fn unreachable() -> RouterError {
        RouterError::Unreachable {
            address: "127.0.0.1:9".into(),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        }
    }

    #[test]
    fn the_timeline_says_the_error_its_sources_and_the_attempts() {
        let cases = [
            (
                ActionError::from(unreachable()),
                "cannot reach the router at 127.0.0.1:9: refused",
            ),
            (
                ActionError::Retried {
                    attempts: 3,
                    last: Box::new(unreachable().into()),
                },
                "cannot reach the router at 127.0.0.1:9: refused (after 3 attempts)",
            ),
            (
                GateFailed {
                    attempts: 2,
                    last: GateError::CommandStart {
                        command: "deploy-check".into(),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no sh"),
                    },
                }
                .into(),
                "command `deploy-check` could not start: no sh (after 2 attempts)",
            ),
            (
                ActionError::UnknownService("web".into()),
                "no service `web` in the plan",
            ),
        ];
        for (error, said) in cases {
            assert_eq!(error.describe(), said);
        }
    }

    #[test]
    fn the_sources_are_kept_not_stringified() {
        let retried = ActionError::Retried {
            attempts: 3,
            last: Box::new(unreachable().into()),
        };
        let last = retried
            .source()
            .and_then(|e| e.downcast_ref::<Box<ActionError>>())
            .expect("the last attempt's error");
        assert!(
            matches!(**last, ActionError::Router(RouterError::Unreachable { .. })),
            "{last:?}"
        );
        let io = last.source().expect("the router error's own source");
        assert_eq!(
            io.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
    }
}
