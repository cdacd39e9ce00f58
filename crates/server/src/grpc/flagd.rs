//! `flagd.evaluation.v1.Service`, wire-compatible with flagd, so OpenFeature flagd
//! providers in RPC mode evaluate against Switchyard unchanged.
//!
//! - Environment: a request carrying `authorization: Bearer <token>` evaluates the
//!   environment of its sdk or eval token (admin tokens are refused: they are bound
//!   to none); a request without one evaluates `--flagd-env` when the server was
//!   started with it, and is refused otherwise.
//! - Results as flagd gives them: value, reason (`STATIC`, `TARGETING_MATCH`,
//!   `SPLIT`, `DEFAULT`, `DISABLED`), variant, and metadata (`flag_version`,
//!   `rule_id`). A failed prerequisite is `DISABLED` with
//!   `metadata.reason_detail = "PREREQUISITE_FAILED"`, as in OFREP. A killed flag
//!   is a successful `DISABLED` evaluation serving its `off_variant`.
//! - Errors with flagd's status codes: unknown flag → `NOT_FOUND`; a value the RPC
//!   cannot return (`ResolveBoolean` on a string flag, `ResolveInt` on 2.5) or an
//!   invalid context → `INVALID_ARGUMENT`.
//! - `EventStream`: `provider_ready`, then one `configuration_change` per change
//!   of the environment's flags with flagd's data shape
//!   (`{"flags": {"<key>": {"type": "write" | "update" | "delete"}}}`),
//!   `keep_alive` after 20 s without an event, and `provider_shutdown` before the
//!   stream ends with the server.
//!
//! docs/server.md ("flagd compatibility") has the full mapping.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value as ProtoValue};
use serde_json::{json, Map, Value};
use switchyard_core::model::EnvName;
use switchyard_core::sync::{self, FlagChange};
use switchyard_core::{evaluate, evaluate_all, Context, ErrorCode, Evaluation, Reason, Snapshot};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::proto::flagd as pb;
use super::proto::flagd::service_server::{Service, ServiceServer};
use super::{authenticate, convert, GrpcState};
use crate::environments::{ChangeEvent, EnvState, Environments};
use crate::store::TokenKind;
use crate::subscription::shutting_down;

/// How long an `EventStream` stays silent before sending `keep_alive` (flagd's 20 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// The `api` label of `switchyard_evaluations_total` for this service.
const API: &str = "flagd";

/// Adds the service to `routes` and marks it serving in the health reporter.
pub async fn register(
    routes: tonic::service::Routes,
    state: &GrpcState,
    health: &tonic_health::server::HealthReporter,
) -> tonic::service::Routes {
    health.set_serving::<ServiceServer<FlagdService>>().await;
    routes.add_service(ServiceServer::new(FlagdService::new(state.clone())))
}

/// The flagd-compatible evaluation service.
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
    fn environment(&self, metadata: &MetadataMap) -> Result<Arc<EnvState>, Status> {
        let env = if metadata.contains_key("authorization") {
            let principal = authenticate(&self.state.app, metadata)?;
            if principal.kind == TokenKind::Admin {
                return Err(Status::permission_denied(format!(
                    "token `{}` is an admin token, which is not bound to an environment; the \
                     flagd service evaluates the environment of an sdk or eval token",
                    principal.name
                )));
            }
            principal
                .token_env(&[TokenKind::Sdk, TokenKind::Eval])
                .map_err(convert::status)?
                .clone()
        } else if let Some(env) = &self.state.flagd_env {
            env.clone()
        } else {
            return Err(Status::unauthenticated(
                "missing `authorization: Bearer <token>` metadata (an sdk or eval token); \
                 the flagd service answers without a token only when the server runs with \
                 --flagd-env ENV",
            ));
        };
        self.state.app.envs.get(env.as_str()).ok_or_else(|| {
            Status::failed_precondition(format!(
                "environment `{env}` does not exist; create it with PUT /v1/admin/envs/{env}"
            ))
        })
    }

    /// Evaluates `key` and reads the served value as the RPC's type with `extract`.
    fn resolve<T>(
        &self,
        metadata: &MetadataMap,
        key: &str,
        context: Option<&Struct>,
        want: Want,
        extract: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<(T, Details), Status> {
        let current = self.environment(metadata)?;
        let ctx = flagd_context(context)?;
        let result = evaluate(&current.snapshot, key, &ctx);
        self.state
            .app
            .telemetry
            .evaluated(current.name.as_str(), API, 1);
        let value = match (result.error, result.value) {
            (None, Some(value)) if result.reason != Reason::Error => value,
            (error, _) => {
                return Err(failure(
                    error.unwrap_or(ErrorCode::General),
                    key,
                    &current.name,
                ))
            }
        };
        let Some(typed) = extract(value) else {
            return Err(type_mismatch(&current.snapshot, key, &result, want));
        };
        Ok((typed, details(&result)))
    }
}

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
fn flagd_context(object: Option<&Struct>) -> Result<Context, Status> {
    let groups = object.and_then(|o| match o.fields.get("groups") {
        Some(ProtoValue {
            kind: Some(Kind::StringValue(list)),
        }) => Some(list),
        _ => None,
    });
    let (Some(object), Some(list)) = (object, groups) else {
        return convert::context(object);
    };
    let values = list
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| ProtoValue {
            kind: Some(Kind::StringValue(g.to_owned())),
        })
        .collect();
    let mut object = object.clone();
    object.fields.insert(
        "groups".to_owned(),
        ProtoValue {
            kind: Some(Kind::ListValue(ListValue { values })),
        },
    );
    convert::context(Some(&object))
}

/// Reason, variant and metadata of a successful evaluation.
#[derive(Debug)]
struct Details {
    reason: &'static str,
    variant: String,
    metadata: Struct,
}

/// The wire reason, and the precise one for metadata when they differ: flagd has no
/// `PREREQUISITE_FAILED`; the flag serves its off variant, so it is `DISABLED`.
fn reason_of(reason: Reason) -> (&'static str, Option<&'static str>) {
    match reason {
        Reason::PrerequisiteFailed => (Reason::Disabled.as_str(), Some(reason.as_str())),
        other => (other.as_str(), None),
    }
}

fn details(result: &Evaluation<'_>) -> Details {
    let (reason, detail) = reason_of(result.reason);
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
        variant: result.variant.unwrap_or_default().to_owned(),
        metadata: convert::json_to_struct(&metadata),
    }
}

/// A value as `AnyFlag`'s oneof; `None` for arrays and null, which flagd's types
/// cannot carry.
fn any_value(value: &Value) -> Option<pb::any_flag::Value> {
    use pb::any_flag::Value as V;
    match value {
        Value::Bool(b) => Some(V::BoolValue(*b)),
        Value::String(s) => Some(V::StringValue(s.clone())),
        Value::Number(n) => n.as_f64().map(V::DoubleValue),
        Value::Object(o) => Some(V::ObjectValue(convert::json_to_struct(o))),
        Value::Array(_) | Value::Null => None,
    }
}

#[tonic::async_trait]
impl Service for FlagdService {
    async fn resolve_all(
        &self,
        request: Request<pb::ResolveAllRequest>,
    ) -> Result<Response<pb::ResolveAllResponse>, Status> {
        let current = self.environment(request.metadata())?;
        let ctx = flagd_context(request.get_ref().context.as_ref())?;
        let mut flags = HashMap::with_capacity(current.snapshot.len());
        for (key, result) in evaluate_all(&current.snapshot, &ctx) {
            let value = match (result.error, result.value) {
                (None, Some(value)) if result.reason != Reason::Error => value,
                (error, _) => {
                    let code = error.unwrap_or(ErrorCode::General).as_str();
                    tracing::error!(env = %current.name, flag = key, code, "flagd evaluation failed");
                    continue;
                }
            };
            let Some(value) = any_value(value) else {
                tracing::debug!(
                    flag = key,
                    "ResolveAll skips a value that is not a boolean, string, number or object"
                );
                continue;
            };
            let details = details(&result);
            flags.insert(
                key.to_owned(),
                pb::AnyFlag {
                    reason: details.reason.to_owned(),
                    variant: details.variant,
                    value: Some(value),
                    metadata: Some(details.metadata),
                },
            );
        }
        self.state.app.telemetry.evaluated(
            current.name.as_str(),
            API,
            current.snapshot.len() as u64,
        );
        let metadata =
            json!({ "environment": current.name.as_str(), "revision": current.revision });
        Ok(Response::new(pb::ResolveAllResponse {
            flags,
            metadata: metadata.as_object().map(convert::json_to_struct),
        }))
    }

    async fn resolve_boolean(
        &self,
        request: Request<pb::ResolveBooleanRequest>,
    ) -> Result<Response<pb::ResolveBooleanResponse>, Status> {
        let message = request.get_ref();
        let (value, d) = self.resolve(
            request.metadata(),
            &message.flag_key,
            message.context.as_ref(),
            Want::Boolean,
            Value::as_bool,
        )?;
        Ok(Response::new(pb::ResolveBooleanResponse {
            value,
            reason: d.reason.to_owned(),
            variant: d.variant,
            metadata: Some(d.metadata),
        }))
    }

    async fn resolve_string(
        &self,
        request: Request<pb::ResolveStringRequest>,
    ) -> Result<Response<pb::ResolveStringResponse>, Status> {
        let message = request.get_ref();
        let (value, d) = self.resolve(
            request.metadata(),
            &message.flag_key,
            message.context.as_ref(),
            Want::String,
            |v| v.as_str().map(str::to_owned),
        )?;
        Ok(Response::new(pb::ResolveStringResponse {
            value,
            reason: d.reason.to_owned(),
            variant: d.variant,
            metadata: Some(d.metadata),
        }))
    }

    async fn resolve_float(
        &self,
        request: Request<pb::ResolveFloatRequest>,
    ) -> Result<Response<pb::ResolveFloatResponse>, Status> {
        let message = request.get_ref();
        let (value, d) = self.resolve(
            request.metadata(),
            &message.flag_key,
            message.context.as_ref(),
            Want::Float,
            Value::as_f64,
        )?;
        Ok(Response::new(pb::ResolveFloatResponse {
            value,
            reason: d.reason.to_owned(),
            variant: d.variant,
            metadata: Some(d.metadata),
        }))
    }

    async fn resolve_int(
        &self,
        request: Request<pb::ResolveIntRequest>,
    ) -> Result<Response<pb::ResolveIntResponse>, Status> {
        let message = request.get_ref();
        let (value, d) = self.resolve(
            request.metadata(),
            &message.flag_key,
            message.context.as_ref(),
            Want::Integer,
            integer,
        )?;
        Ok(Response::new(pb::ResolveIntResponse {
            value,
            reason: d.reason.to_owned(),
            variant: d.variant,
            metadata: Some(d.metadata),
        }))
    }

    async fn resolve_object(
        &self,
        request: Request<pb::ResolveObjectRequest>,
    ) -> Result<Response<pb::ResolveObjectResponse>, Status> {
        let message = request.get_ref();
        let (value, d) = self.resolve(
            request.metadata(),
            &message.flag_key,
            message.context.as_ref(),
            Want::Object,
            |v| v.as_object().map(convert::json_to_struct),
        )?;
        Ok(Response::new(pb::ResolveObjectResponse {
            value: Some(value),
            reason: d.reason.to_owned(),
            variant: d.variant,
            metadata: Some(d.metadata),
        }))
    }

    type EventStreamStream =
        Pin<Box<dyn Stream<Item = Result<pb::EventStreamResponse, Status>> + Send + 'static>>;

    async fn event_stream(
        &self,
        request: Request<pb::EventStreamRequest>,
    ) -> Result<Response<Self::EventStreamStream>, Status> {
        // Subscribe before reading the state, so no change falls in between.
        let changes = self.state.app.envs.subscribe();
        let known = self.environment(request.metadata())?;
        let events = Events::new(
            Arc::clone(&self.state.app.envs),
            known,
            changes,
            self.state.app.shutdown.clone(),
            self.keep_alive,
        );
        let stream = futures_util::stream::unfold(events, |mut events| async move {
            let event = events.next().await?;
            Some((Ok(event), events))
        });
        Ok(Response::new(Box::pin(stream)))
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

fn event(kind: &str, data: Option<Struct>) -> pb::EventStreamResponse {
    pb::EventStreamResponse {
        r#type: kind.to_owned(),
        data,
    }
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
        keep_alive: Duration,
    ) -> Self {
        Events {
            envs,
            env: known.name.clone(),
            known,
            changes,
            shutdown,
            keep_alive,
            last_sent: Instant::now(),
            step: Step::Ready,
        }
    }

    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<pb::EventStreamResponse> {
        let event = self.wait().await?;
        self.last_sent = Instant::now();
        Some(event)
    }

    async fn wait(&mut self) -> Option<pb::EventStreamResponse> {
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
    fn catch_up(&mut self) -> Option<pb::EventStreamResponse> {
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
mod tests {
    use super::*;
    use crate::environments::Change;
    use crate::state::AppState;
    use crate::Server;
    use switchyard_core::{Flag, Segment};

    fn flag(value: Value) -> Flag {
        serde_json::from_value(value).expect("flag")
    }

    fn boolean(key: &str) -> Flag {
        flag(json!({
            "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
            "off_variant": "off", "default": {"variant": "off"}
        }))
    }

    fn segment(key: &str, group: &str) -> Segment {
        serde_json::from_value(json!({"key": key, "when": {"groups": [group]}})).expect("segment")
    }

    fn compile(flags: Vec<Flag>, segments: Vec<Segment>) -> Snapshot {
        Snapshot::compile(flags, segments).expect("compiles")
    }

    #[test]
    fn integers_are_whole_numbers_that_fit_64_bits() {
        let cases = [
            (json!(3), Some(3)),
            (json!(-3), Some(-3)),
            (json!(3.0), Some(3)),
            (json!(i64::MAX), Some(i64::MAX)),
            (json!(2.5), None),
            (json!(u64::MAX), None),
            (json!(1e300), None),
            (json!("3"), None),
            (json!(true), None),
        ];
        for (value, expected) in cases {
            assert_eq!(integer(&value), expected, "{value}");
        }
    }

    #[test]
    fn groups_may_be_one_comma_separated_string() {
        let object = convert::json_to_struct(
            json!({"targetingKey": "u", "groups": "beta, staff,,"})
                .as_object()
                .expect("object"),
        );
        let ctx = flagd_context(Some(&object)).expect("valid");
        assert_eq!(ctx.groups(), ["beta", "staff"]);
        let object =
            convert::json_to_struct(json!({"groups": ["a,b"]}).as_object().expect("object"));
        assert_eq!(
            flagd_context(Some(&object)).expect("valid").groups(),
            ["a,b"]
        );
        let object = convert::json_to_struct(json!({"groups": 3}).as_object().expect("object"));
        let status = flagd_context(Some(&object)).expect_err("not groups");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            flagd_context(None).expect("anonymous").targeting_key(),
            None
        );
    }

    #[test]
    fn prerequisite_failures_are_disabled_with_the_precise_reason_in_metadata() {
        assert_eq!(
            reason_of(Reason::PrerequisiteFailed),
            ("DISABLED", Some("PREREQUISITE_FAILED"))
        );
        for reason in [
            Reason::Static,
            Reason::TargetingMatch,
            Reason::Split,
            Reason::Default,
            Reason::Disabled,
        ] {
            assert_eq!(reason_of(reason), (reason.as_str(), None));
        }
    }

    #[test]
    fn error_codes_map_to_flagds_statuses() {
        let env = EnvName::new("prod");
        let cases = [
            (ErrorCode::FlagNotFound, tonic::Code::NotFound),
            (ErrorCode::TypeMismatch, tonic::Code::InvalidArgument),
            (ErrorCode::InvalidContext, tonic::Code::InvalidArgument),
            (ErrorCode::ParseError, tonic::Code::DataLoss),
            (ErrorCode::General, tonic::Code::Unknown),
        ];
        for (code, status) in cases {
            assert_eq!(failure(code, "f", &env).code(), status, "{code:?}");
        }
    }

    #[test]
    fn changes_list_writes_updates_deletes_and_dependents() {
        let mut uses_segment = boolean("uses-segment");
        uses_segment.rules = serde_json::from_value(json!([
            {"id": "r", "when": {"segments": ["staff"]}, "serve": {"variant": "on"}}
        ]))
        .expect("rules");
        let mut child = boolean("child");
        child.prerequisites = serde_json::from_value(json!([{"flag": "parent", "variant": "on"}]))
            .expect("prerequisites");
        let mut grandchild = boolean("grandchild");
        grandchild.prerequisites =
            serde_json::from_value(json!([{"flag": "child", "variant": "on"}]))
                .expect("prerequisites");
        let old = compile(
            vec![
                boolean("same"),
                boolean("gone"),
                boolean("parent"),
                child.clone(),
                grandchild.clone(),
                uses_segment.clone(),
            ],
            vec![segment("staff", "staff")],
        );

        let mut killed = boolean("parent");
        killed.enabled = false;
        let new = compile(
            vec![
                boolean("same"),
                killed,
                child,
                grandchild,
                uses_segment.clone(),
                boolean("fresh"),
            ],
            vec![segment("staff", "staff")],
        );
        let expected: BTreeMap<String, &str> = [
            ("child", UPDATE),
            ("fresh", WRITE),
            ("gone", DELETE),
            ("grandchild", UPDATE),
            ("parent", UPDATE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(changed_flags(&old, &new), expected);

        // A segment change touches the flags that use it, and nothing else.
        let resegmented = compile(
            vec![boolean("same"), uses_segment],
            vec![segment("staff", "employees")],
        );
        let before = compile(
            vec![
                boolean("same"),
                resegmented.flag("uses-segment").cloned().expect("flag"),
            ],
            vec![segment("staff", "staff")],
        );
        let expected: BTreeMap<String, &str> =
            [("uses-segment".to_owned(), UPDATE)].into_iter().collect();
        assert_eq!(changed_flags(&before, &resegmented), expected);
        assert!(changed_flags(&before, &before).is_empty());
    }

    /// A server state with an empty `prod` and `dev`.
    async fn state(dir: &std::path::Path) -> AppState {
        let server = Server::open_embedded(dir, Some("admin"))
            .await
            .expect("server loads");
        let state = server.state.clone();
        for env in ["prod", "dev"] {
            state
                .envs
                .create(&EnvName::new(env), "test")
                .await
                .expect("env created");
        }
        state
    }

    async fn put(state: &AppState, env: &str, flag: Flag) {
        state
            .envs
            .apply(env, |_| {
                Ok(Change {
                    flags: vec![(flag.key.clone(), Some(flag.clone()))],
                    ..Change::default()
                })
            })
            .await
            .expect("write");
    }

    async fn next(events: &mut Events) -> Option<(String, Option<Value>)> {
        let next = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time");
        next.map(|e| {
            let data = e.data.map(|d| Value::Object(convert::struct_to_json(&d)));
            (e.r#type, data)
        })
    }

    fn events(
        state: &AppState,
        changes: broadcast::Receiver<Arc<ChangeEvent>>,
        shutdown: watch::Receiver<bool>,
        keep_alive: Duration,
    ) -> Events {
        let known = state.envs.get("prod").expect("prod");
        Events::new(
            Arc::clone(&state.envs),
            known,
            changes,
            shutdown,
            keep_alive,
        )
    }

    #[tokio::test]
    async fn stream_reports_its_environments_changes_and_catches_up_after_lagging() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state(dir.path()).await;
        let (_stop, shutdown) = watch::channel(false);
        let long = Duration::from_secs(3600);
        let mut stream = events(&state, state.envs.subscribe(), shutdown.clone(), long);
        assert_eq!(
            next(&mut stream).await,
            Some((PROVIDER_READY.to_owned(), None))
        );
        put(&state, "dev", boolean("elsewhere")).await;
        put(&state, "prod", boolean("here")).await;
        assert_eq!(
            next(&mut stream).await,
            Some((
                CONFIGURATION_CHANGE.to_owned(),
                Some(json!({"flags": {"here": {"type": "write"}}}))
            ))
        );

        // A receiver that lagged learns everything from the state at once.
        let (tx, rx) = broadcast::channel(1);
        let mut lagging = events(&state, rx, shutdown, long);
        assert_eq!(
            next(&mut lagging).await.map(|e| e.0),
            Some(PROVIDER_READY.to_owned())
        );
        put(&state, "prod", boolean("one")).await;
        put(&state, "prod", boolean("two")).await;
        let current = state.envs.get("prod").expect("prod");
        for revision in [current.revision - 1, current.revision] {
            let _ = tx.send(Arc::new(ChangeEvent {
                env: EnvName::new("prod"),
                revision,
                document: bytes::Bytes::new(),
            }));
        }
        assert_eq!(
            next(&mut lagging).await,
            Some((
                CONFIGURATION_CHANGE.to_owned(),
                Some(json!({"flags": {"one": {"type": "write"}, "two": {"type": "write"}}}))
            ))
        );
        drop(tx);
        assert_eq!(next(&mut lagging).await, None, "a closed channel ends it");
    }

    #[tokio::test]
    async fn an_idle_stream_keeps_alive_and_shutdown_ends_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state(dir.path()).await;
        let (stop, shutdown) = watch::channel(false);
        let mut stream = events(
            &state,
            state.envs.subscribe(),
            shutdown,
            Duration::from_millis(1),
        );
        assert_eq!(
            next(&mut stream).await.map(|e| e.0),
            Some(PROVIDER_READY.to_owned())
        );
        assert_eq!(
            next(&mut stream).await,
            Some((KEEP_ALIVE_EVENT.to_owned(), None))
        );
        stop.send(true).expect("sent");
        assert_eq!(
            next(&mut stream).await,
            Some((PROVIDER_SHUTDOWN.to_owned(), Some(json!({}))))
        );
        assert_eq!(next(&mut stream).await, None);
    }
}
