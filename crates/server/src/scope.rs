//! What every transport's readers share (REST, OFREP, SSE, gRPC, flagd): the
//! environment a token is scoped to, the current state of an environment, the limits
//! on an evaluation context, and the evaluation of a flag that must exist.

use std::sync::Arc;

use switchyard_core::{evaluate, Context, ErrorCode, Evaluation};

use crate::auth::Principal;
use crate::environments::EnvState;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TokenKind;

/// The environment a request reads when the token decides it (SDK sync here, and
/// gRPC): the own environment of an `allowed` token (naming another one is refused),
/// or the one an admin token names in `requested` (400 with `missing` when it names
/// none). Other token kinds are refused.
pub fn scoped_env(
    principal: &Principal,
    requested: Option<&str>,
    allowed: &[TokenKind],
    missing: &str,
) -> Result<String, ApiError> {
    if principal.kind == TokenKind::Admin {
        return requested
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request(missing));
    }
    let own = principal.token_env(allowed)?;
    match requested {
        Some(env) if env != own.as_str() => Err(ApiError::forbidden(format!(
            "token `{}` is not valid for environment `{env}`",
            principal.name
        ))),
        _ => Ok(own.to_string()),
    }
}

/// The current state of `env`; 404 when it does not exist.
pub fn env_state(state: &AppState, env: &str) -> Result<Arc<EnvState>, ApiError> {
    state
        .envs
        .get(env)
        .ok_or_else(|| ApiError::not_found(format!("environment `{env}` does not exist")))
}

/// Evaluates `flag` in `current`; a flag the environment does not have is a 404.
pub fn evaluate_known<'s>(
    current: &'s EnvState,
    flag: &str,
    ctx: &Context,
) -> Result<Evaluation<'s>, ApiError> {
    let result = evaluate(&current.snapshot, flag, ctx);
    if result.error == Some(ErrorCode::FlagNotFound) {
        return Err(ApiError::not_found(format!(
            "flag `{flag}` does not exist in `{}`",
            current.name
        )));
    }
    Ok(result)
}

/// Reads an evaluation context from its JSON document (`{"targetingKey": .., "groups":
/// [..], attribute: value, ..}`), strictly (core's `json_body`: duplicate keys refused,
/// the path of the first problem named) and within [`check_context`]'s limits; a
/// document of only whitespace is the anonymous context. The REST evaluation API reads
/// its bodies with it and the console's playground the context its form describes, so
/// both evaluate exactly the same context. The error is the 400's words.
pub fn read_context(json: &[u8]) -> Result<Context, String> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Context::anonymous());
    }
    let ctx: Context =
        switchyard_core::json_body::parse(json).map_err(|e| format!("invalid context: {e}"))?;
    check_context(&ctx).map_err(|e| format!("invalid context: {e}"))?;
    Ok(ctx)
}

/// The most attributes (and groups) an evaluation context may carry.
pub const MAX_CONTEXT_ATTRIBUTES: usize = 1_000;
/// The most items in one list attribute.
pub const MAX_LIST_ITEMS: usize = 1_000;

/// Size limits on an evaluation context (its depth is bounded by its shape: values
/// are scalars or lists of strings).
pub fn check_context(ctx: &Context) -> Result<(), String> {
    let attributes = ctx.attributes().count();
    if attributes > MAX_CONTEXT_ATTRIBUTES {
        return Err(format!(
            "the context has {attributes} attributes; at most {MAX_CONTEXT_ATTRIBUTES} are allowed"
        ));
    }
    if ctx.groups().len() > MAX_LIST_ITEMS {
        return Err(format!("`groups` has more than {MAX_LIST_ITEMS} items"));
    }
    for (name, value) in ctx.attributes() {
        if let switchyard_core::AttributeValue::List(items) = value {
            if items.len() > MAX_LIST_ITEMS {
                return Err(format!(
                    "attribute `{name}` has more than {MAX_LIST_ITEMS} items"
                ));
            }
        }
    }
    Ok(())
}
