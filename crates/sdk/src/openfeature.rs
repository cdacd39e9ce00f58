//! An [OpenFeature](https://openfeature.dev) provider (crate `open-feature`) backed by
//! the client's local evaluation, so code written against the OpenFeature API uses
//! Switchyard's synced flags with no network on the evaluation path.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use open_feature::{EvaluationContext, OpenFeature};
//! use switchyard_sdk::openfeature::SwitchyardProvider;
//! use switchyard_sdk::Client;
//!
//! let client = Client::builder("http://127.0.0.1:8080", "swy_...").build().await?;
//! OpenFeature::singleton_mut()
//!     .await
//!     .set_provider(SwitchyardProvider::new(client))
//!     .await;
//! let flags = OpenFeature::singleton().await.create_client();
//! let ctx = EvaluationContext::default()
//!     .with_targeting_key("user-42")
//!     .with_custom_field("groups", "beta,staff")
//!     .with_custom_field("country", "IT");
//! // Errors (`FLAG_NOT_FOUND`, `TYPE_MISMATCH`, ...) come back as `Err`.
//! let on = flags
//!     .get_bool_value("new-checkout", Some(&ctx), None)
//!     .await
//!     .unwrap_or(false);
//! # let _ = on; Ok(()) }
//! ```
//!
//! **Results.** Values come with the served variant, the reason (`STATIC`,
//! `TARGETING_MATCH`, `SPLIT`, `DEFAULT`, `DISABLED`; a failed prerequisite is
//! `DISABLED` with metadata `reason_detail: "PREREQUISITE_FAILED"`, as in OFREP) and flag
//! metadata `flag_version` and, when a rule served, `rule_id`. An unknown flag is
//! `FLAG_NOT_FOUND`; a value of another type than asked is `TYPE_MISMATCH` (an integer
//! request accepts a whole float, a float request any number; a struct request needs a
//! JSON object — its `null` fields are left out, a `null` inside a list cannot be
//! represented). Every resolution counts an exposure, like the client's own calls.
//!
//! **Context.** The targeting key is the context's; custom fields become attributes:
//! strings, booleans, integers and floats (as numbers), date-times as RFC 3339 strings
//! (for `before`/`after`). OpenFeature fields have no list type, so `groups` may be one
//! comma-separated string (`"beta, staff"`), and a list of strings may be passed as a
//! struct field holding a `Vec<String>` or `Vec<&'static str>`
//! ([`EvaluationContextFieldValue::new_struct`]) or a `serde_json::Value`. Other struct
//! fields are `INVALID_CONTEXT`.

use std::collections::HashMap;

use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue,
};
use serde_json::Value;
use switchyard_core::{AttributeValue, Context, ErrorCode, Evaluation, Reason};

use crate::client::Client;
use crate::state::Status;

/// The details of a tracked event (OpenFeature's `TrackingEventDetails`): an optional
/// numeric value, e.g. a latency or an amount.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrackingEventDetails {
    /// The event's value.
    pub value: Option<f64>,
}

/// The provider's name in OpenFeature metadata.
pub const PROVIDER_NAME: &str = "switchyard";

/// An OpenFeature provider evaluating with a [`Client`].
#[derive(Debug, Clone)]
pub struct SwitchyardProvider {
    client: Client,
    metadata: ProviderMetadata,
}

impl SwitchyardProvider {
    /// A provider answering from `client`'s flags (build the client first: `build`
    /// waits for the first snapshot).
    pub fn new(client: Client) -> Self {
        SwitchyardProvider {
            client,
            metadata: ProviderMetadata::new(PROVIDER_NAME),
        }
    }

    /// The client behind the provider (e.g. to `close` it on shutdown).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// OpenFeature's tracking (`track(event, context, details)`, spec section 6): the
    /// `open-feature` crate (0.3) has no tracking API yet, so the provider offers it.
    /// The event is attributed to the variant the context is served for each flag, and
    /// with a targeting key the unit (and `details.value`) feed a guard
    /// (docs/guard.md) — the same as [`Client::track`] / [`Client::track_value`].
    pub fn track(
        &self,
        event: &str,
        context: &EvaluationContext,
        details: Option<&TrackingEventDetails>,
    ) -> Result<(), EvaluationError> {
        let ctx = context_of(context)?;
        match details.and_then(|d| d.value) {
            Some(value) => self.client.track_value(event, &ctx, value),
            None => self.client.track(event, &ctx),
        }
        Ok(())
    }

    /// Evaluates `key` and converts its value with `convert` (`None`: the value has
    /// another type than `expected`).
    fn resolve<T>(
        &self,
        key: &str,
        context: &EvaluationContext,
        expected: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let context = context_of(context)?;
        self.client.with_evaluation(key, &context, |evaluation| {
            if let Some(code) = evaluation.error {
                return Err(error(
                    error_code(code),
                    format!("flag `{key}`: {}", code.as_str()),
                ));
            }
            let Some(value) = evaluation.value else {
                // A disabled flag that defers to the caller's code default: the Rust
                // OpenFeature API has no "no value" answer, so it is an error the client
                // answers with the caller's default.
                let why = if evaluation.defers() {
                    "is disabled and defers to the caller's default (off_variant: null)"
                } else {
                    "served no value"
                };
                return Err(error(
                    EvaluationErrorCode::General("GENERAL".to_owned()),
                    format!("flag `{key}` {why}"),
                ));
            };
            let Some(value) = convert(value) else {
                return Err(error(
                    EvaluationErrorCode::TypeMismatch,
                    format!("flag `{key}` has value {value}, which is not {expected}"),
                ));
            };
            Ok(ResolutionDetails {
                value,
                variant: evaluation.variant.map(str::to_owned),
                reason: Some(reason(evaluation.reason)),
                flag_metadata: Some(metadata(evaluation)),
            })
        })
    }
}

#[open_feature::async_trait]
impl FeatureProvider for SwitchyardProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    fn status(&self) -> ProviderStatus {
        match self.client.status() {
            Status::Ready | Status::Offline => ProviderStatus::Ready,
            Status::Stale { .. } => ProviderStatus::STALE,
            Status::Failed { .. } => ProviderStatus::Error,
        }
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, evaluation_context, "a boolean", Value::as_bool)
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(flag_key, evaluation_context, "an integer", integer)
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, evaluation_context, "a number", Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, evaluation_context, "a string", |value| {
            value.as_str().map(str::to_owned)
        })
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(
            flag_key,
            evaluation_context,
            "an object (without null in lists)",
            |value| match value {
                Value::Object(fields) => struct_value(fields),
                _ => None,
            },
        )
    }
}

fn error(code: EvaluationErrorCode, message: String) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message),
    }
}

fn error_code(code: ErrorCode) -> EvaluationErrorCode {
    match code {
        ErrorCode::FlagNotFound => EvaluationErrorCode::FlagNotFound,
        ErrorCode::TypeMismatch => EvaluationErrorCode::TypeMismatch,
        ErrorCode::InvalidContext => EvaluationErrorCode::InvalidContext,
        ErrorCode::ParseError => EvaluationErrorCode::ParseError,
        other => EvaluationErrorCode::General(other.as_str().to_owned()),
    }
}

fn reason(reason: Reason) -> EvaluationReason {
    match reason {
        Reason::Static => EvaluationReason::Static,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Split => EvaluationReason::Split,
        Reason::Default => EvaluationReason::Default,
        // As in OFREP: a failed prerequisite turns the flag off, with the detail in
        // the metadata.
        Reason::Disabled | Reason::PrerequisiteFailed => EvaluationReason::Disabled,
        Reason::Error => EvaluationReason::Error,
    }
}

fn metadata(evaluation: &Evaluation<'_>) -> FlagMetadata {
    let mut metadata = FlagMetadata::default().with_value(
        "flag_version",
        i64::try_from(evaluation.flag_version).unwrap_or(i64::MAX),
    );
    if let Some(rule) = evaluation.rule_id {
        metadata.add_value("rule_id", rule);
    }
    if evaluation.reason == Reason::PrerequisiteFailed {
        metadata.add_value("reason_detail", Reason::PrerequisiteFailed.as_str());
    }
    metadata
}

/// A JSON number as an integer: an integer, or a float without a fraction in range.
fn integer(value: &Value) -> Option<i64> {
    let Value::Number(number) = value else {
        return None;
    };
    if let Some(int) = number.as_i64() {
        return Some(int);
    }
    let float = number.as_f64()?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let whole = (float.fract() == 0.0 && float >= i64::MIN as f64 && float < i64::MAX as f64)
        .then_some(float as i64);
    whole
}

/// A JSON object as an OpenFeature struct; `null` fields are left out, `None` for a
/// `null` inside a list.
fn struct_value(fields: &serde_json::Map<String, Value>) -> Option<StructValue> {
    let fields = fields
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(name, value)| Some((name.clone(), open_feature_value(value)?)))
        .collect::<Option<HashMap<_, _>>>()?;
    Some(StructValue { fields })
}

fn open_feature_value(value: &Value) -> Option<open_feature::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => open_feature::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(int) => open_feature::Value::Int(int),
            None => open_feature::Value::Float(n.as_f64()?),
        },
        Value::String(s) => open_feature::Value::String(s.clone()),
        Value::Array(items) => open_feature::Value::Array(
            items
                .iter()
                .map(open_feature_value)
                .collect::<Option<Vec<_>>>()?,
        ),
        Value::Object(fields) => open_feature::Value::Struct(struct_value(fields)?),
    })
}

const TARGETING_KEY: &str = "targetingKey";
const GROUPS: &str = "groups";

/// An OpenFeature evaluation context as a Switchyard [`Context`].
pub fn context_of(context: &EvaluationContext) -> Result<Context, EvaluationError> {
    let mut ctx = Context::anonymous();
    for (name, field) in &context.custom_fields {
        let value = attribute(name, field)?;
        let fits = match name.as_str() {
            TARGETING_KEY => matches!(value, AttributeValue::String(_)),
            GROUPS => matches!(value, AttributeValue::List(_)),
            _ => true,
        };
        if !fits {
            return Err(invalid(format!(
                "`{name}` must be a {}",
                if name == GROUPS {
                    "list of strings or a comma-separated string"
                } else {
                    "string"
                }
            )));
        }
        ctx.set(name.clone(), value);
    }
    if let Some(key) = &context.targeting_key {
        ctx.set(
            TARGETING_KEY.to_owned(),
            AttributeValue::String(key.clone()),
        );
    }
    Ok(ctx)
}

fn invalid(message: String) -> EvaluationError {
    error(EvaluationErrorCode::InvalidContext, message)
}

fn attribute(
    name: &str,
    field: &EvaluationContextFieldValue,
) -> Result<AttributeValue, EvaluationError> {
    Ok(match field {
        EvaluationContextFieldValue::Bool(b) => AttributeValue::Bool(*b),
        EvaluationContextFieldValue::Int(i) => AttributeValue::from(*i),
        EvaluationContextFieldValue::Float(f) => AttributeValue::Number(*f),
        EvaluationContextFieldValue::String(s) if name == GROUPS => AttributeValue::List(
            s.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        EvaluationContextFieldValue::String(s) => AttributeValue::String(s.clone()),
        EvaluationContextFieldValue::DateTime(t) => {
            let instant = chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
                .ok_or_else(|| invalid(format!("`{name}`: the date-time is out of range")))?;
            AttributeValue::String(instant.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        EvaluationContextFieldValue::Struct(any) => {
            let any: &(dyn std::any::Any + Send + Sync) = &**any;
            if let Some(list) = any.downcast_ref::<Vec<String>>() {
                AttributeValue::List(list.clone())
            } else if let Some(list) = any.downcast_ref::<Vec<&'static str>>() {
                AttributeValue::List(list.iter().map(|s| (*s).to_owned()).collect())
            } else if let Some(value) = any.downcast_ref::<Value>() {
                json_attribute(name, value)?
            } else {
                return Err(invalid(format!(
                    "`{name}`: a struct field must hold a Vec<String>, a Vec<&str> or a \
                     serde_json::Value"
                )));
            }
        }
    })
}

fn json_attribute(name: &str, value: &Value) -> Result<AttributeValue, EvaluationError> {
    match value {
        Value::String(s) => Ok(AttributeValue::String(s.clone())),
        Value::Bool(b) => Ok(AttributeValue::Bool(*b)),
        Value::Number(n) => n
            .as_f64()
            .map(AttributeValue::Number)
            .ok_or_else(|| invalid(format!("`{name}`: the number is out of range"))),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(AttributeValue::List)
            .ok_or_else(|| invalid(format!("`{name}`: a list must hold only strings"))),
        Value::Null | Value::Object(_) => Err(invalid(format!(
            "`{name}`: must be a string, number, boolean or list of strings"
        ))),
    }
}
