//! The HAProxy router: moves traffic by changing two servers' weights through
//! HAProxy's runtime API (a `stats socket … level admin`, over TCP or a unix socket).
//!
//! One short-lived connection per command: HAProxy's CLI in non-interactive mode
//! answers one command and closes, so "read until EOF" delimits the answer without
//! parsing prompts. Weights are absolute (`canary = w`, `stable = 100 - w`), which keeps
//! `set_weight` idempotent as [`TrafficRouter`] requires; a server at weight 0 gets no
//! new traffic, which is exactly what promotion (stable 0) and rollback (canary 0) need.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{RouterError, TrafficRouter};
use crate::plan::HaproxyCanary;

/// How long one command may take, connecting included. The runtime API answers in
/// microseconds; anything slower means HAProxy is wedged or the address is wrong, and
/// the driver must hear about it instead of hanging a release.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Sets weights through HAProxy's runtime API.
#[derive(Debug, Clone)]
pub struct Haproxy {
    config: HaproxyCanary,
    endpoint: Endpoint,
}

/// Where the runtime API listens, as [`HaproxyCanary::address`] spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// `host:port` (HAProxy's `ipv4@` prefix tolerated, since configs spell it so).
    Tcp(String),
    /// `unix:/path`, or a bare path (`/…`, `./…`, `../…`).
    Unix(PathBuf),
}

impl Endpoint {
    fn parse(address: &str) -> Endpoint {
        if let Some(path) = address.strip_prefix("unix:") {
            return Endpoint::Unix(PathBuf::from(path));
        }
        if address.starts_with('/') || address.starts_with("./") || address.starts_with("../") {
            return Endpoint::Unix(PathBuf::from(address));
        }
        let host_port = address
            .strip_prefix("ipv4@")
            .or_else(|| address.strip_prefix("tcp:"))
            .unwrap_or(address);
        Endpoint::Tcp(host_port.to_owned())
    }
}

impl Haproxy {
    /// A router for the servers `config` names.
    pub fn new(config: HaproxyCanary) -> Self {
        let endpoint = Endpoint::parse(&config.address);
        Haproxy { config, endpoint }
    }

    /// Sends `command` and returns HAProxy's answer with surrounding whitespace trimmed
    /// (HAProxy ends every answer with an empty line).
    pub(super) async fn command(&self, command: &str) -> Result<String, RouterError> {
        let unreachable = |source| RouterError::Unreachable {
            address: self.config.address.clone(),
            source,
        };
        let exchange = async {
            match &self.endpoint {
                Endpoint::Tcp(address) => {
                    exchange(tokio::net::TcpStream::connect(address).await?, command).await
                }
                #[cfg(unix)]
                Endpoint::Unix(path) => {
                    exchange(tokio::net::UnixStream::connect(path).await?, command).await
                }
                #[cfg(not(unix))]
                Endpoint::Unix(_) => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "unix sockets are not available on this platform",
                )),
            }
        };
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, exchange)
            .await
            .map_err(|elapsed| unreachable(io::Error::new(io::ErrorKind::TimedOut, elapsed)))?
            .map_err(unreachable)?;
        Ok(answer.trim().to_owned())
    }

    /// `set server <backend>/<server> weight <weight>`; HAProxy answers nothing on
    /// success, and a sentence ("No such server.") otherwise.
    async fn set_server_weight(&self, server: &str, weight: u32) -> Result<(), RouterError> {
        let command = format!(
            "set server {}/{server} weight {weight}",
            self.config.backend
        );
        let answer = self.command(&command).await?;
        if answer.is_empty() {
            Ok(())
        } else {
            Err(self.rejected(command, answer))
        }
    }

    /// `set server <backend>/<server> state <state>` (`ready`, `maint`).
    async fn set_server_state(&self, server: &str, state: &str) -> Result<(), RouterError> {
        let command = format!("set server {}/{server} state {state}", self.config.backend);
        let answer = self.command(&command).await?;
        if answer.is_empty() {
            Ok(())
        } else {
            Err(self.rejected(command, answer))
        }
    }

    /// `get weight <backend>/<server>`: the server's current weight.
    async fn server_weight(&self, server: &str) -> Result<u32, RouterError> {
        let command = format!("get weight {}/{server}", self.config.backend);
        let answer = self.command(&command).await?;
        parse_weight(&answer).ok_or_else(|| self.rejected(command, answer))
    }

    pub(super) fn rejected(&self, command: String, answer: String) -> RouterError {
        RouterError::Rejected {
            address: self.config.address.clone(),
            command,
            answer,
        }
    }
}

#[async_trait]
impl TrafficRouter for Haproxy {
    async fn set_weight(&self, weight: u32) -> Result<(), RouterError> {
        if weight > 100 {
            return Err(RouterError::InvalidWeight { weight });
        }
        let canary = (self.config.canary.first(), weight);
        let stable = (self.config.stable.first(), 100 - weight);
        // Between the two commands one server already has its new weight and the other
        // still has its old one. Setting the server whose new weight is >= 50 first
        // means that moment never has both servers at 0 (which would answer 503s), e.g.
        // when a rollback goes from canary 100 / stable 0 to canary 0 / stable 100.
        let order = if weight >= 50 {
            [canary, stable]
        } else {
            [stable, canary]
        };
        for (server, weight) in order {
            // A server an earlier blue-green release retired (`maint`) takes traffic
            // again when a release gives it some (the next release's canary).
            if weight > 0 {
                self.set_server_state(server, "ready").await?;
            }
            self.set_server_weight(server, weight).await?;
        }
        // HAProxy applies a weight synchronously, but "returns once confirmed" is the
        // trait's contract: read both back so a lost or clamped change is an error.
        for (server, expected) in order {
            let command = format!("get weight {}/{server}", self.config.backend);
            let answer = self.command(&command).await?;
            if parse_weight(&answer) != Some(expected) {
                return Err(self.rejected(command, answer));
            }
        }
        Ok(())
    }

    /// The stable server goes to `maint`: no traffic, no health checks.
    async fn retire_previous(&self) -> Result<(), RouterError> {
        for server in &self.config.stable.0 {
            self.set_server_state(server, "maint").await?;
        }
        Ok(())
    }

    async fn weight(&self) -> Result<u32, RouterError> {
        let canary = self.server_weight(self.config.canary.first()).await?;
        let stable = self.server_weight(self.config.stable.first()).await?;
        Ok(canary_percent(canary, stable))
    }
}

/// Writes `command` and a newline, then reads until HAProxy closes the connection.
async fn exchange<S>(mut stream: S, command: &str) -> io::Result<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    // The runtime API speaks ASCII; a stray byte must not hide the rest of an answer.
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Parses a trimmed answer to `get weight`: `25 (initial 1)`, or a bare `25`. Anything
/// else (`No such server.`, `No such backend.`) is not a weight.
fn parse_weight(answer: &str) -> Option<u32> {
    let (current, rest) = match answer.split_once(' ') {
        Some((current, rest)) => (current, Some(rest)),
        None => (answer, None),
    };
    let current = parse_digits(current)?;
    match rest {
        None => Some(current),
        Some(rest) => {
            let initial = rest.strip_prefix("(initial ")?.strip_suffix(')')?;
            parse_digits(initial).map(|_| current)
        }
    }
}

/// A plain decimal number (`u32::from_str` would also take `+25`).
fn parse_digits(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The canary's share in percent, rounded half up; 0 when neither server gets traffic
/// (a backend that serves nothing sends nothing to the canary either).
fn canary_percent(canary: u32, stable: u32) -> u32 {
    let total = u64::from(canary) + u64::from(stable);
    if total == 0 {
        return 0;
    }
    let percent = (u64::from(canary) * 100 + total / 2) / total;
    // percent <= 100 because canary <= total.
    percent as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_get_weight_answers() {
        let cases: &[(&str, Option<u32>)] = &[
            ("25 (initial 1)", Some(25)),
            ("0 (initial 0)", Some(0)),
            ("256 (initial 100)", Some(256)),
            ("75", Some(75)),
            ("No such server.", None),
            ("No such backend.", None),
            ("Require 'backend/server'.", None),
            ("", None),
            ("+25 (initial 1)", None),
            ("-1 (initial 1)", None),
            ("25 (initial x)", None),
            ("25 (initial 1", None),
            ("25 something", None),
            ("99999999999 (initial 1)", None),
        ];
        for (answer, expected) in cases {
            assert_eq!(parse_weight(answer), *expected, "answer {answer:?}");
        }
    }

    #[test]
    fn computes_the_canary_share() {
        let cases: &[(u32, u32, u32)] = &[
            (0, 0, 0),
            (0, 100, 0),
            (100, 0, 100),
            (25, 75, 25),
            (1, 1, 50),
            (1, 2, 33),
            (2, 1, 67),
            (1, 199, 1),
            (1, 201, 0),
            (256, 256, 50),
            (u32::MAX, u32::MAX, 50),
        ];
        for &(canary, stable, expected) in cases {
            assert_eq!(
                canary_percent(canary, stable),
                expected,
                "canary {canary}, stable {stable}"
            );
        }
    }

    #[test]
    fn reads_the_address_forms() {
        let cases: &[(&str, Endpoint)] = &[
            ("127.0.0.1:9999", Endpoint::Tcp("127.0.0.1:9999".into())),
            ("localhost:9999", Endpoint::Tcp("localhost:9999".into())),
            (
                "ipv4@127.0.0.1:9999",
                Endpoint::Tcp("127.0.0.1:9999".into()),
            ),
            (
                "/run/haproxy/admin.sock",
                Endpoint::Unix("/run/haproxy/admin.sock".into()),
            ),
            (
                "unix:/run/haproxy/admin.sock",
                Endpoint::Unix("/run/haproxy/admin.sock".into()),
            ),
            ("unix:admin.sock", Endpoint::Unix("admin.sock".into())),
            ("./admin.sock", Endpoint::Unix("./admin.sock".into())),
        ];
        for (address, expected) in cases {
            assert_eq!(Endpoint::parse(address), *expected, "address {address:?}");
        }
    }

    #[tokio::test]
    async fn refuses_weights_above_100_before_connecting() {
        // Nothing listens on port 1: the refusal must come before any connection.
        let router = Haproxy::new(HaproxyCanary {
            address: "127.0.0.1:1".into(),
            backend: "app".into(),
            stable: "stable".into(),
            canary: "canary".into(),
        });
        let error = router.set_weight(101).await.unwrap_err();
        assert!(
            matches!(error, RouterError::InvalidWeight { weight: 101 }),
            "{error:?}"
        );
    }
}
