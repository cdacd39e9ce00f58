//! What every front end of the server shares (REST and SSE handlers, gRPC services,
//! the console): the environments, the tokens, telemetry and the server's life cycle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::auth::{Principal, Refusal, Tokens};
use crate::console::session::Sessions;
use crate::environments::{now_ms, Environments};
use crate::error::ApiError;
use crate::limits::Budget;
use crate::orchestrator::OrchestratorClient;
use crate::telemetry::Telemetry;
use crate::tls::Peer;

/// Everything handlers share, behind one `Arc`: axum clones the state for every
/// request and every middleware layer, and one reference count is all a clone costs
/// (a count per field was a fifth of a bulk evaluation's server time). Fields read
/// through `Deref`; changing one (only before serving: `Server`'s settings, tests)
/// copies them first if the state is already shared, as a clone of the fields would.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state holding `shared`.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }
}

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    /// Environments: snapshots for reading, the write path for admin.
    pub envs: Arc<Environments>,
    /// Accepted API tokens.
    pub tokens: Arc<Tokens>,
    /// Prometheus metrics.
    pub telemetry: Arc<Telemetry>,
    /// Set once the snapshots are loaded (for `/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Flips to `true` when the server shuts down, so long-lived streams end and
    /// graceful shutdown can complete.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// How often an idle SSE stream sends a keep-alive comment (15 s by default; set
    /// `Server::state.sse_heartbeat` before `serve` to change it, e.g. in tests).
    pub sse_heartbeat: std::time::Duration,
    /// Set while a shared store (Redis) is unreachable; `/readyz` reports "degraded".
    pub store_degraded: Arc<AtomicBool>,
    /// The web console's sessions (and their settings: replace before `serve`).
    pub console: Arc<Sessions>,
    /// When each flag was last evaluated, not yet written to the store (`usage.rs`).
    pub usage: Arc<crate::usage::Usage>,
    /// Rate limits (`limits.rs`).
    pub limits: Arc<crate::limits::Limits>,
    /// Whether admin tokens need a TLS client certificate (`tls.rs`).
    pub admin_needs_client_certificate: bool,
    /// Origins browsers may call the read APIs from (`--cors-origin`; none: CORS off).
    pub cors_origins: Arc<[axum::http::HeaderValue]>,
    /// SHA-256 of `--ops-token`: when set, `/metrics` and `/openapi.json` need it (or
    /// an admin token).
    pub ops_token: Option<[u8; 32]>,
    /// The release orchestrator the console shows and steers (`--orchestrator-url`);
    /// none, and the console's Releases section says how to connect one.
    pub orchestrator: Option<OrchestratorClient>,
    /// Set when this server is a relay of another (`--upstream`, docs/relay.md).
    pub relay: Option<Arc<crate::relay::Relay>>,
    /// Idempotency keys of recently recorded metric batches.
    pub metric_batches: Arc<crate::idempotency::RecentKeys>,
}

impl AppState {
    /// Counts one evaluation of `flag` in `env` through `api` and notes the flag as
    /// used now (an unknown one too: `usage.rs`).
    pub fn evaluated_one(&self, env: &str, flag: &str, api: &'static str) {
        self.telemetry.evaluated(env, api, 1);
        self.usage.seen(env, flag, crate::environments::now_ms());
    }

    /// The principal a presented token stands for: a token of this server's, or, on a
    /// relay, one the upstream vouches for (checked once per TTL). 401 saying why
    /// when it is not valid (unknown, expired, a rotated secret past its grace).
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let now = now_ms();
        let refusal = match self.tokens.check(token, now) {
            Ok(principal) => {
                self.usage.token_used(&principal.name, now);
                return Ok(principal);
            }
            Err(refusal) => refusal,
        };
        let relayed = match &self.relay {
            Some(relay) if refusal == Refusal::Unknown => {
                relay.tokens.authenticate(token).await.map_err(|error| {
                    ApiError::unavailable(format!(
                        "cannot check the token: this relay's upstream is unreachable ({error})"
                    ))
                })?
            }
            _ => None,
        };
        relayed.ok_or_else(|| ApiError::unauthorized(refusal.message()))
    }

    /// [`AppState::authenticate`] for a request from `peer`, within the rate limits:
    /// 429 while the peer's address is refused for failed authentications (and for
    /// the failure that exhausts its budget), or when the token or address is over
    /// `budget`; 403 for an admin token from a peer without a client certificate when
    /// the server asks for one (`--admin-needs-client-certificate`).
    pub async fn authenticate_within(
        &self,
        token: &str,
        budget: Budget,
        peer: Option<Peer>,
    ) -> Result<Principal, ApiError> {
        let addr = peer.map(|peer| peer.addr.ip());
        self.limits.check_blocked(addr)?;
        match self.authenticate(token).await {
            Ok(principal) => {
                self.limits.admit(budget, &principal, addr)?;
                self.check_admin_certificate(&principal, peer)?;
                Ok(principal)
            }
            Err(error) if error.status == axum::http::StatusCode::UNAUTHORIZED => {
                self.limits.auth_failed(addr)?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// 403 for an admin token from a peer without a verified client certificate,
    /// when the server requires one.
    pub fn check_admin_certificate(
        &self,
        principal: &Principal,
        peer: Option<Peer>,
    ) -> Result<(), ApiError> {
        let certified = peer.is_some_and(|peer| peer.client_certified);
        if self.admin_needs_client_certificate
            && principal.kind == crate::store::TokenKind::Admin
            && !certified
        {
            return Err(ApiError::forbidden(format!(
                "admin token `{}` is accepted only over a TLS connection that presented a client \
                 certificate signed by the server's --tls-client-ca",
                principal.name
            )));
        }
        Ok(())
    }

    /// A stream ticket for `principal` (OFREP `eventStreams`): its token's, here or,
    /// on a relay, as the upstream vouched for it.
    pub fn ticket(&self, principal: &Principal, now_ms: u64) -> Option<String> {
        self.tokens.ticket(principal, now_ms).or_else(|| {
            self.relay
                .as_ref()
                .and_then(|relay| relay.tokens.ticket(principal, now_ms))
        })
    }

    /// The principal a stream ticket stands for.
    pub fn redeem(
        &self,
        ticket: &str,
        now_ms: u64,
    ) -> Result<Principal, crate::auth::ticket::TicketError> {
        match (self.tokens.redeem(ticket, now_ms), &self.relay) {
            (Err(crate::auth::ticket::TicketError::Invalid), Some(relay)) => {
                relay.tokens.redeem(ticket, now_ms)
            }
            (answer, _) => answer,
        }
    }

    /// Whether the server has loaded its state and can serve.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
