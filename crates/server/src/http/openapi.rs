//! `GET /openapi.json`: the OpenAPI document, generated from the handlers'
//! annotations and the model's schemas (utoipa), so it cannot drift from the routes.
//!
//! What the annotations would repeat on every route is added here, in one place:
//! the name pattern on path parameters and key schemas, the error shape on every
//! error response, unique operation ids, the flag and segment write bodies (the
//! model without `key`, which comes from the path), and links from the operations
//! that create objects to the ones that use them, so generated request sequences
//! (schemathesis' stateful phase) reach objects that exist.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::http::{admin, evaluate, ofrep, ops, sdk, whoami};
use crate::state::AppState;

/// The names of environments, flags, segments and tokens (core's one rule).
pub const NAME_PATTERN: &str = switchyard_core::validation::NAME_PATTERN;

/// The longest name, in bytes.
pub const NAME_MAX: usize = switchyard_core::validation::MAX_NAME_LEN;

/// Free text without control characters (metric variant and event names).
pub const TEXT_PATTERN: &str = switchyard_core::model::schema::NO_CONTROL_PATTERN;

/// `If-Match` and `If-None-Match` on admin writes (RFC 9110 §13.1): `*`, or a list of
/// entity tags such as `"12", W/"13"` (see `http/preconditions.rs`).
const PRECONDITION_PATTERN: &str = "^(\\*|(W/)?\"[!#-~]*\"( *, *(W/)?\"[!#-~]*\")*)$";

/// Path and query parameters that carry a name.
const NAME_PARAMETERS: [&str; 4] = ["env", "key", "flag", "name"];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard",
        description = "Feature flags: evaluation (REST and OFREP), SDK sync and the admin API. Errors are `{\"error\": {\"code\", \"message\", \"details\"?}}` (schema `ErrorBody`), except OFREP's own error bodies."
    ),
    components(schemas(ErrorBody)),
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
    doc.merge(whoami::WhoAmIApi::openapi());
    name_patterns(&mut doc);
    write_bodies(&mut doc);
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations(item) {
            unique_operation_id(operation);
            token_responses(operation);
            store_write_responses(path, method, operation);
            retry_after(operation);
            error_bodies(operation);
        }
    }
    doc
}

/// Every operation of a path, with its method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("patch", &mut item.patch),
        ("head", &mut item.head),
        ("options", &mut item.options),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|o| (method, o)))
}

fn name_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(NAME_MAX))
        .pattern(Some(NAME_PATTERN))
        .into()
}

/// Free text of 1 to [`NAME_MAX`] bytes without control characters.
pub fn text_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(NAME_MAX))
        .pattern(Some(TEXT_PATTERN))
        .into()
}

/// The name pattern on the key schemas and on every parameter that carries a name.
fn name_patterns(doc: &mut utoipa::openapi::OpenApi) {
    if let Some(components) = doc.components.as_mut() {
        for name in ["FlagKey", "SegmentKey", "EnvName"] {
            if let Some(schema) = components.schemas.get_mut(name) {
                *schema = RefOr::T(name_schema());
            }
        }
    }
    let header = |pattern: &str| -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .into()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        // OFREP's bulk `If-None-Match` is its own (a cache validator answered by 304).
        let admin = path.starts_with("/v1/admin/");
        for (_, operation) in operations(item) {
            for parameter in operation.parameters.iter_mut().flatten() {
                let name = parameter.name.as_str();
                let schema = match parameter.parameter_in {
                    ParameterIn::Path | ParameterIn::Query if NAME_PARAMETERS.contains(&name) => {
                        name_schema()
                    }
                    // The versions the admin API writes: an entity tag such as "12".
                    ParameterIn::Header
                        if admin && (name == "If-Match" || name == "If-None-Match") =>
                    {
                        header(PRECONDITION_PATTERN)
                    }
                    _ => continue,
                };
                parameter.schema = Some(RefOr::T(schema));
            }
        }
    }
}

/// `FlagWrite` and `SegmentWrite`: `Flag` and `Segment` without `key` (the path
/// names it; a body may repeat it, but only as the same key, which a schema cannot
/// say), used as the PUT bodies.
fn write_bodies(doc: &mut utoipa::openapi::OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (model, write) in [("Flag", "FlagWrite"), ("Segment", "SegmentWrite")] {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get(model) else {
            continue;
        };
        let mut object = object.clone();
        object.properties.shift_remove("key");
        object.required.retain(|field| field != "key");
        object.description = Some(format!(
            "A {} as written with PUT: `key` comes from the path.",
            model.to_lowercase()
        ));
        components
            .schemas
            .insert(write.to_owned(), RefOr::T(Schema::Object(object)));
    }
    for (path, write) in [
        ("/v1/admin/envs/{env}/flags/{key}", "FlagWrite"),
        ("/v1/admin/envs/{env}/segments/{key}", "SegmentWrite"),
    ] {
        let body = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.put.as_mut())
            .and_then(|put| put.request_body.as_mut());
        for content in body.into_iter().flat_map(|body| body.content.values_mut()) {
            content.schema = Some(RefOr::Ref(Ref::from_schema_name(write)));
        }
    }
}

/// `<tag>_<handler>`: handler names repeat across modules (`one`, `bulk`, `metrics`).
fn unique_operation_id(operation: &mut Operation) {
    let tag = operation
        .tags
        .as_ref()
        .and_then(|tags| tags.first())
        .cloned()
        .unwrap_or_default();
    if let Some(id) = operation.operation_id.as_mut() {
        *id = format!("{tag}_{id}");
    }
}

/// `ErrorBody` on every 4xx/5xx response that does not describe its own body.
/// 401, 403 and 429 on every operation that takes a token, written once here instead
/// of on each handler (an operation may still say more about its own 403).
fn token_responses(operation: &mut Operation) {
    if operation.security.as_ref().is_none_or(Vec::is_empty) {
        return;
    }
    for (status, description) in [
        ("401", "Missing or invalid token"),
        ("403", "Token may not do this"),
        (
            "429",
            "Over a rate limit (the token's, or the client address's after failed authentications); `Retry-After` says when to try again",
        ),
    ] {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(utoipa::openapi::Response::new(description)));
    }
}

/// Whether `method` on `path` writes to the store: every admin write and the SDKs'
/// metrics batches.
fn writes_to_the_store(path: &str, method: &str) -> bool {
    matches!(method, "post" | "put" | "delete" | "patch")
        && (path.starts_with("/v1/admin/") || path == "/v1/sdk/metrics")
}

/// 503 and 507 on every operation that writes to the store (`StoreError` into
/// `ApiError`, error.rs): the store unreachable, or the disk under the embedded
/// store full — in both cases nothing was written.
fn store_write_responses(path: &str, method: &str, operation: &mut Operation) {
    if !writes_to_the_store(path, method) {
        return;
    }
    for (status, description) in [
        ("503", "Store unavailable; nothing written"),
        (
            "507",
            "The disk under the embedded store is full; nothing written (evaluations go on from memory)",
        ),
    ] {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(utoipa::openapi::Response::new(description)));
    }
}

/// `Retry-After` (whole seconds) on every 429.
fn retry_after(operation: &mut Operation) {
    let Some(RefOr::T(response)) = operation.responses.responses.get_mut("429") else {
        return;
    };
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .build();
    response.headers.insert(
        "Retry-After".to_owned(),
        utoipa::openapi::header::HeaderBuilder::new()
            .schema(seconds)
            .description(Some("Seconds until the budget allows the request again"))
            .build(),
    );
}

fn error_bodies(operation: &mut Operation) {
    for (status, response) in &mut operation.responses.responses {
        let RefOr::T(response) = response else {
            continue;
        };
        if (status.starts_with('4') || status.starts_with('5')) && response.content.is_empty() {
            response.content.insert(
                "application/json".to_owned(),
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            );
        }
    }
}

/// Links from the operations that create objects to those that use them. Added to
/// the JSON: utoipa 5.5 serialises its `Link` with snake_case field names
/// (`operation_id`), which OpenAPI does not know.
fn add_links(doc: &mut Value) {
    let env = json!("$request.path.env");
    let key = json!("$request.path.key");
    let etag = json!("$response.header.ETag");
    let env_only = json!({ "env": env });
    let keyed = json!({ "env": env, "key": key });
    let versioned = json!({ "env": env, "key": key, "header.If-Match": etag });
    let table = [
        (
            "/v1/admin/envs/{env}",
            "put",
            &["200", "201"][..],
            vec![
                ("admin_list_flags", &env_only),
                ("admin_put_flag", &env_only),
                ("admin_list_segments", &env_only),
                ("admin_put_segment", &env_only),
                ("admin_kill_tag", &env_only),
            ],
        ),
        (
            "/v1/admin/envs/{env}/flags/{key}",
            "put",
            &["200", "201"][..],
            vec![
                ("admin_get_flag", &keyed),
                ("admin_kill_flag", &keyed),
                ("admin_revive_flag", &keyed),
                ("admin_flag_metrics", &keyed),
                ("admin_flag_units", &keyed),
                ("admin_put_flag", &versioned),
                ("admin_delete_flag", &versioned),
            ],
        ),
        (
            "/v1/admin/envs/{env}/flags/{key}/kill",
            "post",
            &["200"][..],
            vec![("admin_revive_flag", &keyed), ("admin_get_flag", &keyed)],
        ),
        (
            "/v1/admin/envs/{env}/segments/{key}",
            "put",
            &["200", "201"][..],
            vec![
                ("admin_get_segment", &keyed),
                ("admin_put_segment", &versioned),
                ("admin_delete_segment", &versioned),
            ],
        ),
    ];
    let token = json!({ "name": "$response.body#/name" });
    let table = table.into_iter().chain([(
        "/v1/admin/tokens",
        "post",
        &["201"][..],
        vec![("admin_delete_token", &token)],
    )]);
    for (path, method, statuses, targets) in table {
        for status in statuses {
            let Some(response) = doc
                .pointer_mut(&format!(
                    "/paths/{}/{method}/responses/{status}",
                    path.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let links: serde_json::Map<String, Value> = targets
                .iter()
                .map(|(id, parameters)| {
                    let link = json!({ "operationId": id, "parameters": parameters });
                    ((*id).to_owned(), link)
                })
                .collect();
            response.insert("links".to_owned(), Value::Object(links));
        }
    }
}

/// The document as served: [`document`] with links.
pub fn document_json() -> Value {
    let mut doc = serde_json::to_value(document()).unwrap_or_default();
    add_links(&mut doc);
    doc
}

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> Response {
    axum::Json(document_json()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = document_json();
        for path in [
            "/v1/admin/envs",
            "/v1/admin/envs/{env}",
            "/v1/admin/envs/{env}/flags",
            "/v1/admin/envs/{env}/flags/{key}",
            "/v1/admin/envs/{env}/flags/{key}/kill",
            "/v1/admin/envs/{env}/flags/{key}/revive",
            "/v1/admin/envs/{env}/flags/{key}/revert",
            "/v1/admin/envs/{env}/flags/{key}/metrics",
            "/v1/admin/envs/{env}/flags/{key}/units",
            "/v1/admin/envs/{env}/kill",
            "/v1/admin/envs/{env}/segments",
            "/v1/admin/envs/{env}/segments/{key}",
            "/v1/admin/promote",
            "/v1/admin/envs/{env}/apply",
            "/v1/admin/envs/{env}/lifecycle",
            "/v1/admin/envs/{env}/schedules",
            "/v1/admin/envs/{env}/schedules/{id}",
            "/v1/admin/tokens",
            "/v1/admin/tokens/{name}",
            "/v1/admin/audit",
            "/v1/evaluate/{env}/{flag}",
            "/v1/evaluate/{env}",
            "/ofrep/v1/evaluate/flags/{key}",
            "/ofrep/v1/evaluate/flags",
            "/ofrep/v1/events",
            "/v1/sdk/snapshot",
            "/v1/sdk/stream",
            "/v1/sdk/metrics",
            "/v1/whoami",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
        assert_eq!(
            doc["paths"].as_object().map(|p| p.len()),
            Some(33),
            "no undocumented extras"
        );
        // The event stream's ticket is a required query parameter.
        let ticket = &doc["paths"]["/ofrep/v1/events"]["get"]["parameters"][0];
        assert_eq!(
            (&ticket["name"], &ticket["in"], &ticket["required"]),
            (&json!("ticket"), &json!("query"), &json!(true)),
            "{ticket}"
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    /// Every operation describes its request body and every answer with a body by a
    /// schema, every error answer by `ErrorBody` (or OFREP's own), and operation ids
    /// are unique (links name them).
    #[test]
    fn every_body_has_a_schema() {
        let doc = document_json();
        let mut ids = std::collections::BTreeSet::new();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                operations += 1;
                let at = format!("{method} {path}");
                let id = operation["operationId"].as_str().expect("operationId");
                assert!(
                    ids.insert(id.to_owned()),
                    "{at}: duplicate operationId {id}"
                );
                if let Some(body) = operation.get("requestBody") {
                    let content = body["content"].as_object().expect("content");
                    assert!(!content.is_empty(), "{at}: request body without content");
                    for (media, content) in content {
                        let schema = &content["schema"];
                        assert!(schema.is_object(), "{at}: request {media} has no schema");
                        assert_ne!(
                            schema,
                            &json!({ "type": "object" }),
                            "{at}: request {media} is a bare object"
                        );
                    }
                }
                if operation.get("security").is_some_and(|s| s != &json!([])) {
                    for status in ["401", "403"] {
                        assert!(
                            operation["responses"].get(status).is_some(),
                            "{at}: takes a token but documents no {status}"
                        );
                    }
                }
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    if status == "204" || status == "304" {
                        assert!(
                            response.get("content").is_none(),
                            "{at} {status} has a body"
                        );
                        continue;
                    }
                    let content = response["content"]
                        .as_object()
                        .unwrap_or_else(|| panic!("{at} {status}: no content"));
                    for (media, content) in content {
                        assert!(
                            content["schema"].is_object(),
                            "{at} {status} {media}: no schema"
                        );
                    }
                    if status.starts_with('4') && !path.starts_with("/ofrep/") {
                        assert_eq!(
                            content["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{at} {status}"
                        );
                    }
                }
            }
        }
        assert_eq!(operations, 40, "every operation was checked");
    }

    /// Every operation that writes to the store documents 507 (disk full) and 503
    /// with the error body, no read does; every 429 declares `Retry-After`.
    #[test]
    fn store_failures_and_rate_limits_are_documented() {
        let doc = document_json();
        let (mut writes, mut limited) = (0, 0);
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let at = format!("{method} {path}");
                let responses = &operation["responses"];
                if writes_to_the_store(path, method) {
                    writes += 1;
                    for status in ["503", "507"] {
                        assert_eq!(
                            responses[status]["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{at} {status}"
                        );
                    }
                } else {
                    assert!(responses.get("507").is_none(), "{at} does not write");
                }
                if let Some(too_many) = responses.get("429") {
                    limited += 1;
                    let header = &too_many["headers"]["Retry-After"];
                    assert_eq!(header["schema"]["type"], "integer", "{at}: {too_many}");
                }
            }
        }
        // Environments (2), flags (2), kill, revive, revert, a tag's kill, segments
        // (2), promote, apply, schedules (2), tokens (3), SDK metrics.
        assert_eq!(writes, 18, "the store's writers");
        assert!(limited >= writes, "{limited} operations answer 429");
        let put_flag = &doc["paths"]["/v1/admin/envs/{env}/flags/{key}"]["put"]["responses"];
        assert!(put_flag["507"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("disk")));
    }

    /// Path parameters that name things carry the name pattern, and the links that
    /// lead from created objects to their routes name existing operations.
    #[test]
    fn names_are_constrained_and_links_resolve() {
        let doc = document_json();
        let put_flag = &doc["paths"]["/v1/admin/envs/{env}/flags/{key}"]["put"];
        for parameter in put_flag["parameters"].as_array().expect("parameters") {
            if parameter["in"] == "path" {
                assert_eq!(parameter["schema"]["pattern"], NAME_PATTERN);
                assert_eq!(parameter["schema"]["maxLength"], 256);
            }
        }
        assert_eq!(
            put_flag["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/FlagWrite"
        );
        let flag_write = &doc["components"]["schemas"]["FlagWrite"];
        assert!(flag_write["properties"].get("key").is_none());
        assert_eq!(flag_write["additionalProperties"], false);
        assert_eq!(
            doc["components"]["schemas"]["FlagKey"]["pattern"],
            NAME_PATTERN
        );
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().expect("item").values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        let mut links = 0;
        for item in doc["paths"].as_object().expect("paths").values() {
            for operation in item.as_object().expect("item").values() {
                for response in operation["responses"]
                    .as_object()
                    .expect("responses")
                    .values()
                {
                    for link in response["links"]
                        .as_object()
                        .into_iter()
                        .flat_map(|l| l.values())
                    {
                        links += 1;
                        let target = link["operationId"].as_str().expect("operationId");
                        assert!(ids.contains(&target), "link to unknown {target}");
                    }
                }
            }
        }
        assert!(links >= 20, "{links} links");
        let token = &doc["paths"]["/v1/admin/tokens"]["post"]["responses"]["201"]["links"];
        assert_eq!(
            token["admin_delete_token"]["parameters"]["name"],
            "$response.body#/name"
        );
    }
}
