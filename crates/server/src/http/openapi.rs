//! `GET /openapi.json`: the OpenAPI document, generated from the handlers'
//! annotations (utoipa), so it cannot drift from the routes.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{admin, evaluate, ofrep, ops, sdk, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard",
        description = "Feature flags: evaluation (REST and OFREP), SDK sync and the admin API. Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin, sdk or eval token"))
                    .build(),
            ),
        );
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(admin::AdminApi::openapi());
    doc.merge(evaluate::EvaluateApi::openapi());
    doc.merge(ofrep::OfrepApi::openapi());
    doc.merge(sdk::SdkApi::openapi());
    doc.merge(ops::OpsApi::openapi());
    doc
}

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> Response {
    axum::Json(document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = serde_json::to_value(document()).expect("serialises");
        for path in [
            "/v1/admin/envs",
            "/v1/admin/envs/{env}",
            "/v1/admin/envs/{env}/flags",
            "/v1/admin/envs/{env}/flags/{key}",
            "/v1/admin/envs/{env}/flags/{key}/kill",
            "/v1/admin/envs/{env}/flags/{key}/revive",
            "/v1/admin/envs/{env}/flags/{key}/metrics",
            "/v1/admin/envs/{env}/kill",
            "/v1/admin/envs/{env}/segments",
            "/v1/admin/envs/{env}/segments/{key}",
            "/v1/admin/promote",
            "/v1/admin/tokens",
            "/v1/admin/tokens/{name}",
            "/v1/admin/audit",
            "/v1/evaluate/{env}/{flag}",
            "/v1/evaluate/{env}",
            "/ofrep/v1/evaluate/flags/{key}",
            "/ofrep/v1/evaluate/flags",
            "/v1/sdk/snapshot",
            "/v1/sdk/stream",
            "/v1/sdk/metrics",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
        assert_eq!(
            doc["paths"].as_object().map(|p| p.len()),
            Some(24),
            "no undocumented extras"
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
