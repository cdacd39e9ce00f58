//! `GET /v1/whoami`: what the presented token is (name, kind, environment). Relays
//! ask their upstream this once per token and cache the answer (docs/relay.md).

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use switchyard_core::model::EnvName;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TokenKind;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/whoami", get(whoami))
}

/// The answer of `GET /v1/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub kind: TokenKind,
    /// The environment an `sdk` or `eval` token is limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub env: Option<EnvName>,
}

impl From<WhoAmI> for Principal {
    fn from(who: WhoAmI) -> Self {
        Principal {
            name: who.name,
            token_id: None,
            kind: who.kind,
            env: who.env,
            credential: None,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "sdk",
    summary = "The presented token: name, kind and environment",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token", body = WhoAmI),
        (status = 401, description = "Missing, invalid or revoked token")
    )
)]
async fn whoami(principal: Principal) -> Result<Response, ApiError> {
    Ok(axum::Json(WhoAmI {
        name: principal.name,
        kind: principal.kind,
        env: principal.env,
    })
    .into_response())
}

/// The OpenAPI description of this route.
#[derive(utoipa::OpenApi)]
#[openapi(paths(whoami))]
pub struct WhoAmIApi;
