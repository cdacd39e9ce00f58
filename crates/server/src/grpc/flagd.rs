//! `flagd.evaluation.v1.Service` and `flagd.evaluation.v2.Service`, wire-compatible
//! with flagd, so OpenFeature flagd providers in RPC mode evaluate against Switchyard
//! unchanged, whichever version they speak ([`v1`], [`v2`]; this module is what the
//! two share).
//!
//! - Environment: a request carrying `authorization: Bearer <token>` evaluates the
//!   environment of its sdk or eval token (admin tokens are refused: they are bound
//!   to none); a request without one evaluates `--flagd-env` when the server was
//!   started with it, and is refused otherwise.
//! - Results as flagd gives them: value, reason (`STATIC`, `TARGETING_MATCH`,
//!   `SPLIT`, `DEFAULT`, `DISABLED`), variant, and metadata (`flag_version`,
//!   `rule_id`). A failed prerequisite is `DISABLED` with
//!   `metadata.reason_detail = "PREREQUISITE_FAILED"`, as in OFREP. A killed flag
//!   is a successful `DISABLED` evaluation serving its `off_variant`; a disabled flag
//!   that defers to the caller's code default has neither value nor variant (v2 leaves
//!   them unset, v1 sends their zero values), and providers return the caller's
//!   default.
//! - Errors with flagd's status codes: unknown flag → `NOT_FOUND`; a value the RPC
//!   cannot return (`ResolveBoolean` on a string flag, `ResolveInt` on 2.5) or an
//!   invalid context → `INVALID_ARGUMENT`.
//! - `EventStream`: `provider_ready`, then one `configuration_change` per change
//!   of the environment's flags with flagd's data shape
//!   (`{"flags": {"<key>": {"type": "write" | "update" | "delete"}}}`),
//!   `keep_alive` after 20 s without an event, and `provider_shutdown` before the
//!   stream ends with the server.
//!
//! docs/openfeature.md ("flagd") has the full mapping.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value as ProtoValue};
use serde_json::{json, Map, Value};
use switchyard_core::model::EnvName;
use switchyard_core::sync::{self, FlagChange};
use switchyard_core::{evaluate, Context, ErrorCode, Evaluation, Reason, Snapshot};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::{authenticate, convert, Caller, GrpcState};
use crate::auth::Principal;
use crate::environments::{ChangeEvent, EnvState, Environments};
use crate::limits::{Budget, StreamPermit};
use crate::store::TokenKind;
use crate::subscription::{holder_ended, shutting_down, Holder};
use crate::telemetry::{StreamGuard, StreamProtocol};

/// How long an `EventStream` stays silent before sending `keep_alive` (flagd's 20 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// The `api` label of `switchyard_evaluations_total` for this service.
const API: &str = "flagd";

pub mod flag_sync;
pub mod v1;
pub mod v2;

/// Adds both versions of the evaluation service and the sync service to `routes` and
/// marks them serving in the health reporter.
pub async fn register(
    routes: tonic::service::Routes,
    state: &GrpcState,
    health: &tonic_health::server::HealthReporter,
) -> tonic::service::Routes {
    let routes = v1::register(routes, state, health).await;
    let routes = v2::register(routes, state, health).await;
    flag_sync::register(routes, state, health).await
}

/// The flagd-compatible evaluation service (either version: they differ only in their
/// messages).
#[derive(Clone)]
pub struct FlagdService {
    state: GrpcState,
    keep_alive: Duration,
}

impl FlagdService {
    /// The service over `state`, with flagd's keep-alive interval.
    pub fn new(state: GrpcState) -> Self {
        FlagdService {
            state,
            keep_alive: KEEP_ALIVE,
        }
    }

    /// The environment a request evaluates: its token's, or `--flagd-env` without one.
    async fn environment(
        &self,
        caller: Caller<'_>,
        budget: Budget,
    ) -> Result<Arc<EnvState>, Status> {
        Ok(self.environment_of(caller, budget).await?.0)
    }

    /// [`FlagdService::environment`], and the principal of the token, if one was sent.
    async fn environment_of(
        &self,
        caller: Caller<'_>,
        budget: Budget,
    ) -> Result<(Arc<EnvState>, Option<Principal>), Status> {
        let mut caller_principal = None;
        let env = if caller.has_token() {
            let principal = authenticate(&self.state.app, caller, budget).await?;
            if principal.kind == TokenKind::Admin {
                return Err(Status::permission_denied(format!(
                    "token `{}` is an admin token, which is not bound to an environment; the \
                     flagd service evaluates the environment of an sdk or eval token",
                    principal.name
                )));
            }
            let env = principal
                .token_env(&[TokenKind::Sdk, TokenKind::Eval])
                .map_err(convert::status)?
                .clone();
            caller_principal = Some(principal);
            env
        } else if let Some(env) = &self.state.flagd_env {
            env.clone()
        } else {
            return Err(Status::unauthenticated(
                "missing `authorization: Bearer <token>` metadata (an sdk or eval token); \
                 the flagd service answers without a token only when the server runs with \
                 --flagd-env ENV",
            ));
        };
        let current = self.state.app.envs.get(env.as_str()).ok_or_else(|| {
            Status::failed_precondition(format!(
                "environment `{env}` does not exist; create it with PUT /v1/admin/envs/{env}"
            ))
        })?;
        Ok((current, caller_principal))
    }

    /// Answers a single-flag request: evaluates its flag, reads the served value as
    /// the RPC's type with `extract` (`None` when the flag defers to the caller's code
    /// default) and builds the version's response with `respond`.
    async fn answer<Q: FlagRequest, T, R>(
        &self,
        request: Request<Q>,
        want: Want,
        extract: impl FnOnce(&Value) -> Option<T>,
        respond: impl FnOnce(Option<T>, Details) -> R,
    ) -> Result<Response<R>, Status> {
        let current = self
            .environment(Caller::from(&request), Budget::Read)
            .await?;
        let mut message = request.into_inner();
        let ctx = flagd_context(message.take_context())?;
        let key = message.flag_key();
        let result = evaluate(&current.snapshot, key, &ctx);
        self.state
            .app
            .evaluated_one(current.name.as_str(), key, API);
        let value = match (result.error, result.value) {
            (None, Some(value)) if result.reason != Reason::Error => {
                let Some(typed) = extract(value) else {
                    return Err(type_mismatch(&current.snapshot, key, &result, want));
                };
                Some(typed)
            }
            _ if result.defers() => None,
            (error, _) => {
                return Err(failure(
                    error.unwrap_or(ErrorCode::General),
                    key,
                    &current.name,
                ))
            }
        };
        Ok(Response::new(respond(value, details(&result))))
    }

    /// The stream of provider events for a request's environment.
    async fn events(&self, caller: Caller<'_>) -> Result<Events, Status> {
        // Subscribe before reading the state, so no change falls in between.
        let changes = self.state.app.envs.subscribe();
        let (known, principal) = self.environment_of(caller, Budget::Stream).await?;
        // A token's flagd streams count against its cap of open streams, like its SSE
        // and `Sync` streams (a stream without a token has no token to count against).
        let permit = principal
            .as_ref()
            .map(|principal| self.state.app.limits.open_stream(principal))
            .transpose()
            .map_err(|limited| convert::status(limited.into()))?;
        let holder = principal.and_then(|principal| Holder::of(&self.state.app, &principal));
        let mut events = Events::new(
            Arc::clone(&self.state.app.envs),
            known,
            changes,
            self.state.app.shutdown.clone(),
            holder,
            self.keep_alive,
        );
        events._permit = permit;
        events._counted = Some(
            self.state
                .app
                .telemetry
                .stream_opened(StreamProtocol::Flagd),
        );
        Ok(events)
    }
}

/// The flag key and context of a single-flag request, of either version and any type.
trait FlagRequest {
    fn flag_key(&self) -> &str;
    /// The context, taken out of the request (its strings move into ours).
    fn take_context(&mut self) -> Option<Struct>;
}

macro_rules! flag_requests {
    ($($request:ty),* $(,)?) => {$(
        impl $crate::grpc::flagd::FlagRequest for $request {
            fn flag_key(&self) -> &str {
                &self.flag_key
            }
            fn take_context(&mut self) -> Option<prost_types::Struct> {
                self.context.take()
            }
        }
    )*};
}
pub(crate) use flag_requests;

/// What an RPC returns, for messages.
#[derive(Debug, Clone, Copy)]
enum Want {
    Boolean,
    String,
    Integer,
    Float,
    Object,
}

impl Want {
    fn rpc(self) -> &'static str {
        match self {
            Want::Boolean => "ResolveBoolean",
            Want::String => "ResolveString",
            Want::Integer => "ResolveInt",
            Want::Float => "ResolveFloat",
            Want::Object => "ResolveObject",
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Want::Boolean => "a boolean",
            Want::String => "a string",
            Want::Integer => "a whole number within 64 bits",
            Want::Float => "a number",
            Want::Object => "a JSON object",
        }
    }
}

/// A JSON value described for an error message.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn type_mismatch(snapshot: &Snapshot, key: &str, result: &Evaluation<'_>, want: Want) -> Status {
    let kind = snapshot.flag(key).map_or("unknown", |f| f.kind.as_str());
    let served = result.value.map_or_else(|| "nothing".to_owned(), describe);
    let variant = result.variant.unwrap_or_default();
    Status::invalid_argument(format!(
        "type mismatch: flag `{key}` is a {kind} flag and served {served} (variant \
         `{variant}`); {} returns {}",
        want.rpc(),
        want.needs()
    ))
}

/// The status of a failed evaluation, as flagd maps its error codes.
fn failure(code: ErrorCode, key: &str, env: &EnvName) -> Status {
    match code {
        ErrorCode::FlagNotFound => {
            Status::not_found(format!("flag `{key}` not found in environment `{env}`"))
        }
        ErrorCode::TypeMismatch => {
            Status::invalid_argument(format!("type mismatch evaluating flag `{key}`"))
        }
        ErrorCode::InvalidContext => {
            Status::invalid_argument(format!("invalid context for flag `{key}`"))
        }
        ErrorCode::ParseError => Status::data_loss(format!("flag `{key}` could not be parsed")),
        other => {
            tracing::error!(%env, flag = key, code = other.as_str(), "flagd evaluation failed");
            Status::unknown(format!(
                "flag `{key}` could not be evaluated ({}); see the server log",
                other.as_str()
            ))
        }
    }
}

/// A whole number that fits an `int64` exactly (`3` and `3.0`, not `2.5`).
fn integer(value: &Value) -> Option<i64> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None;
    }
    let f = n.as_f64()?;
    // -2^63 ≤ f < 2^63 is exactly the range of i64 a double can name.
    let in_range = (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f);
    #[allow(clippy::cast_possible_truncation)]
    (f.fract() == 0.0 && in_range).then_some(f as i64)
}

/// The context of a request. OpenFeature contexts have no list type, so providers
/// (the Rust flagd provider among them) can only send `groups` as one string:
/// a string is read as comma-separated group names. Otherwise the REST rules apply
/// (attributes are strings, numbers, booleans or string lists; nulls are absent).
fn flagd_context(mut object: Option<Struct>) -> Result<Context, Status> {
    if let Some(entry) = object.as_mut().and_then(|o| o.fields.get_mut("groups")) {
        if let Some(Kind::StringValue(list)) = &entry.kind {
            let values = list
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(|g| ProtoValue {
                    kind: Some(Kind::StringValue(g.to_owned())),
                })
                .collect();
            entry.kind = Some(Kind::ListValue(ListValue { values }));
        }
    }
    convert::context(object)
}

/// Reason, variant (none when the flag defers to the code default) and metadata of a
/// successful evaluation.
#[derive(Debug)]
struct Details {
    reason: &'static str,
    variant: Option<String>,
    metadata: Struct,
}

fn details(result: &Evaluation<'_>) -> Details {
    let (reason, detail) = result.reason.openfeature();
    let mut metadata = Map::new();
    metadata.insert("flag_version".to_owned(), json!(result.flag_version));
    if let Some(rule_id) = result.rule_id {
        metadata.insert("rule_id".to_owned(), json!(rule_id));
    }
    if let Some(detail) = detail {
        metadata.insert("reason_detail".to_owned(), json!(detail));
    }
    Details {
        reason,
        variant: result.variant.map(str::to_owned),
        metadata: convert::json_to_struct(&metadata),
    }
}

/// flagd's event types.
const PROVIDER_READY: &str = "provider_ready";
const CONFIGURATION_CHANGE: &str = "configuration_change";
const KEEP_ALIVE_EVENT: &str = "keep_alive";
const PROVIDER_SHUTDOWN: &str = "provider_shutdown";

/// flagd's change types in `configuration_change` data.
const WRITE: &str = "write";
const UPDATE: &str = "update";
const DELETE: &str = "delete";

/// One provider event, before either version's message is made of it.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    kind: &'static str,
    data: Option<Struct>,
}

fn event(kind: &'static str, data: Option<Struct>) -> Event {
    Event { kind, data }
}

/// The events of `events` as a version's response stream.
fn event_stream<R: Send + 'static>(
    events: Events,
    message: fn(Event) -> R,
) -> Pin<Box<dyn Stream<Item = Result<R, Status>> + Send + 'static>> {
    Box::pin(futures_util::stream::unfold(
        events,
        move |mut events| async move {
            let event = events.next().await?;
            Some((Ok(message(event)), events))
        },
    ))
}

/// Where a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `provider_ready` is next.
    Ready,
    /// Following changes.
    Running,
    /// `provider_shutdown` was sent; the stream ends.
    Done,
}

/// One `EventStream` client.
struct Events {
    envs: Arc<Environments>,
    env: EnvName,
    /// The state the client was last told about.
    known: Arc<EnvState>,
    changes: broadcast::Receiver<Arc<ChangeEvent>>,
    shutdown: watch::Receiver<bool>,
    /// The token that opened the stream: the stream ends when it is no longer accepted.
    holder: Option<Holder>,
    /// The stream's place among its token's open streams, given back when it ends.
    _permit: Option<StreamPermit>,
    /// Counts the stream in `switchyard_streams` until it ends.
    _counted: Option<StreamGuard>,
    keep_alive: Duration,
    last_sent: Instant,
    step: Step,
}

impl Events {
    fn new(
        envs: Arc<Environments>,
        known: Arc<EnvState>,
        changes: broadcast::Receiver<Arc<ChangeEvent>>,
        shutdown: watch::Receiver<bool>,
        holder: Option<Holder>,
        keep_alive: Duration,
    ) -> Self {
        Events {
            envs,
            env: known.name.clone(),
            known,
            changes,
            shutdown,
            holder,
            _permit: None,
            _counted: None,
            keep_alive,
            last_sent: Instant::now(),
            step: Step::Ready,
        }
    }

    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        let event = self.wait().await?;
        self.last_sent = Instant::now();
        Some(event)
    }

    async fn wait(&mut self) -> Option<Event> {
        match self.step {
            Step::Ready => {
                self.step = Step::Running;
                return Some(event(PROVIDER_READY, None));
            }
            Step::Done => return None,
            Step::Running => {}
        }
        loop {
            tokio::select! {
                biased;
                () = shutting_down(&mut self.shutdown) => {
                    self.step = Step::Done;
                    return Some(event(PROVIDER_SHUTDOWN, Some(Struct::default())));
                }
                // The token was revoked or expired: the stream ends (a reconnect is
                // refused with the reason).
                () = holder_ended(&mut self.holder) => {
                    self.step = Step::Done;
                    return None;
                }
                received = self.changes.recv() => match received {
                    Ok(change) => {
                        if change.env == self.env && change.revision > self.known.revision {
                            if let Some(event) = self.catch_up() {
                                return Some(event);
                            }
                        }
                    }
                    // Missed events: the state itself says what changed.
                    Err(RecvError::Lagged(_)) => {
                        if let Some(event) = self.catch_up() {
                            return Some(event);
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
                () = tokio::time::sleep_until(self.last_sent + self.keep_alive) => {
                    return Some(event(KEEP_ALIVE_EVENT, None));
                }
            }
        }
    }

    /// A `configuration_change` from what the client knows to the current state,
    /// if any flag changed.
    fn catch_up(&mut self) -> Option<Event> {
        let current = self.envs.get(self.env.as_str())?;
        if current.revision <= self.known.revision {
            return None;
        }
        let changed = changed_flags(&self.known.snapshot, &current.snapshot);
        self.known = current;
        if changed.is_empty() {
            return None;
        }
        let flags: Map<String, Value> = changed
            .into_iter()
            .map(|(key, kind)| (key, json!({ "type": kind })))
            .collect();
        let mut data = Map::new();
        data.insert("flags".to_owned(), Value::Object(flags));
        Some(event(
            CONFIGURATION_CHANGE,
            Some(convert::json_to_struct(&data)),
        ))
    }
}

/// The flags whose evaluation may differ between `old` and `new`
/// ([`sync::changed_flags`]), with flagd's change type: created (`write`), deleted
/// (`delete`), or `update`.
fn changed_flags(old: &Snapshot, new: &Snapshot) -> BTreeMap<String, &'static str> {
    sync::changed_flags(old, new)
        .into_iter()
        .map(|(key, change)| {
            let kind = match change {
                FlagChange::Created => WRITE,
                FlagChange::Updated => UPDATE,
                FlagChange::Deleted => DELETE,
            };
            (key.to_string(), kind)
        })
        .collect()
}

#[cfg(test)]
mod tests;
