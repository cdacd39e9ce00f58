//! An environment's segments: the list (key, description, size, the flags that use
//! each), and one segment's editor — a structured form for users, groups and
//! conditions, a JSON editor for the whole segment, and delete. Every write is the
//! domain's `put_item` / `delete_item` with `If-Match` at the version the page was
//! rendered with, so a concurrent edit is a conflict showing the other version; a
//! segment still used by a flag is not deleted (the domain's `InUse`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde_json::{json, Value};
use switchyard_core::model::{Constraint, Operator, When};
use switchyard_core::Segment;

use crate::console::flag::{ConstraintRow, OPERATORS};
use crate::console::form::{constraint_row, field, problem, Fields};
use crate::console::page::{readable_env, render, render_status, writable_env, Chrome, PageError};
use crate::console::session::Viewer;
use crate::domain::{delete_item, put_item, EnvError, Item, Preconditions};
use crate::environments::EnvState;
use crate::error::FieldProblem;
use crate::state::AppState;

/// Empty condition rows the form offers after the segment's own.
pub const SPARE_ROWS: usize = 2;

/// One row of the list.
pub struct Row {
    /// The segment's key.
    pub key: String,
    /// Its description.
    pub description: String,
    /// Users and groups listed by name.
    pub members: usize,
    /// Conditions.
    pub constraints: usize,
    /// The flags whose rules name it.
    pub used_by: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/segments.html")]
struct ListPage {
    chrome: Chrome,
    env: String,
    rows: Vec<Row>,
}

/// The structured form, as typed (or as stored).
#[derive(Debug, Clone, Default)]
pub struct SegmentForm {
    /// Key (only typed when creating).
    pub key: String,
    /// Description.
    pub description: String,
    /// Targeting keys, comma-separated.
    pub users: String,
    /// Groups, comma-separated.
    pub groups: String,
    /// Condition rows.
    pub constraints: Vec<ConstraintRow>,
}

/// A write refused because the segment changed since the page was rendered.
pub struct Conflict {
    /// The version the form was rendered with.
    pub yours: u64,
    /// The version stored now.
    pub theirs: u64,
    /// The stored segment as JSON.
    pub theirs_json: String,
}

#[derive(Template)]
#[template(path = "console/segment.html")]
struct EditPage {
    chrome: Chrome,
    env: String,
    /// `None` on the create page.
    stored: Option<Segment>,
    used_by: Vec<String>,
    form: SegmentForm,
    json: String,
    json_typed: bool,
    operators: Vec<&'static str>,
    problems: Vec<FieldProblem>,
    message: Option<String>,
    conflict: Option<Conflict>,
}

impl EditPage {
    /// The first problem at `path` or below it (paths may carry the environment's
    /// `segments[key].` prefix).
    fn error_at(&self, path: &str) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| {
                let own = p
                    .path
                    .split_once("].")
                    .filter(|(head, _)| head.starts_with("segments["))
                    .map_or(p.path.as_str(), |(_, rest)| rest);
                own == path
                    || own
                        .strip_prefix(path)
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .map(|p| p.message.as_str())
    }

    fn constraint_error(&self, row: impl std::fmt::Display, field: &str) -> Option<&str> {
        self.error_at(&format!("when.constraints[{row}].{field}"))
    }

    fn action(&self) -> String {
        match &self.stored {
            Some(s) => format!("/console/envs/{}/segments/{}", self.env, s.key),
            None => format!("/console/envs/{}/segments", self.env),
        }
    }
}

fn users_of(state: &EnvState, key: &str) -> Vec<String> {
    let mut users: Vec<String> = Segment::users(state, key)
        .into_iter()
        .map(str::to_owned)
        .collect();
    users.sort_unstable();
    users
}

/// The segment as its JSON editor shows it: without `key` and `version`.
fn editable_json(segment: &Segment) -> String {
    let mut value = serde_json::to_value(segment).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("key");
        object.remove("version");
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

fn form_of(segment: &Segment) -> SegmentForm {
    SegmentForm {
        key: segment.key.to_string(),
        description: segment.description.clone(),
        users: segment.when.users.join(", "),
        groups: segment.when.groups.join(", "),
        constraints: segment
            .when
            .constraints
            .iter()
            .map(|c| ConstraintRow {
                attribute: c.attribute.clone(),
                op: c.op.as_str().to_owned(),
                values: c.values.join("\n"),
                negate: c.negate,
                case_insensitive: c.case_insensitive,
            })
            .collect(),
    }
}

fn with_spare_rows(mut form: SegmentForm) -> SegmentForm {
    let rows = form.constraints.len() + SPARE_ROWS;
    form.constraints.resize(rows, ConstraintRow::default());
    form
}

/// `GET /console/envs/{env}/segments`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
) -> Result<Response, PageError> {
    let current = readable_env(&state, &viewer, &env)?;
    let mut rows: Vec<Row> = current
        .snapshot
        .segments()
        .map(|s| Row {
            key: s.key.to_string(),
            description: s.description.clone(),
            members: s.when.users.len() + s.when.groups.len(),
            constraints: s.when.constraints.len(),
            used_by: users_of(&current, s.key.as_str()),
        })
        .collect();
    rows.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let chrome = Chrome::new(&state, &viewer, format!("Segments in {env}"), Some(&env));
    render(&ListPage { chrome, env, rows })
}

struct Refused {
    status: StatusCode,
    form: SegmentForm,
    json: Option<String>,
    problems: Vec<FieldProblem>,
    message: Option<String>,
    conflict: Option<Conflict>,
}

impl Refused {
    fn new(status: StatusCode, form: SegmentForm, json: Option<String>) -> Self {
        Refused {
            status,
            form,
            json,
            problems: Vec::new(),
            message: None,
            conflict: None,
        }
    }
}

/// Renders the editor of `key` (the create page when `None`) after a refused write,
/// or as stored when `refused` is `None`.
fn edit_page(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    key: Option<&str>,
    refused: Option<Refused>,
) -> Result<Response, PageError> {
    let current = readable_env(state, viewer, env)?;
    let stored = match key {
        Some(key) => Some(
            Segment::find(&current, key)
                .cloned()
                .ok_or_else(|| not_found(env, key))?,
        ),
        None => None,
    };
    let title = match &stored {
        Some(s) => format!("Segment {} in {env}", s.key),
        None => format!("New segment in {env}"),
    };
    let chrome = Chrome::new(state, viewer, title, Some(env));
    let used_by = key.map(|k| users_of(&current, k)).unwrap_or_default();
    let (status, form, json, problems, message, conflict) = match refused {
        Some(r) => (r.status, r.form, r.json, r.problems, r.message, r.conflict),
        None => (
            StatusCode::OK,
            stored.as_ref().map(form_of).unwrap_or_default(),
            None,
            Vec::new(),
            None,
            None,
        ),
    };
    let json_typed = json.is_some();
    let json = json.unwrap_or_else(|| {
        stored
            .as_ref()
            .map_or_else(|| "{\n  \"when\": {}\n}".to_owned(), editable_json)
    });
    render_status(
        status,
        &EditPage {
            chrome,
            env: env.to_owned(),
            stored,
            used_by,
            form: with_spare_rows(form),
            json,
            json_typed,
            operators: OPERATORS.iter().map(|o| o.as_str()).collect(),
            problems,
            message,
            conflict,
        },
    )
}

fn not_found(env: &str, key: &str) -> PageError {
    PageError::not_found(format!("segment `{key}` does not exist in `{env}`"))
}

/// `GET /console/envs/{env}/segments/{key}`.
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
) -> Result<Response, PageError> {
    edit_page(&state, &viewer, &env, Some(&key), None)
}

/// `GET /console/envs/{env}/new-segment`.
pub async fn new_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
) -> Result<Response, PageError> {
    writable_env(&state, &viewer, &env)?;
    edit_page(&state, &viewer, &env, None, None)
}

fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The structured form as typed: as many condition rows as the page sent.
fn typed_form(fields: &Fields) -> SegmentForm {
    let rows: usize = field(fields, "rows").parse().unwrap_or(0).min(100);
    SegmentForm {
        key: field(fields, "key").trim().to_owned(),
        description: field(fields, "description").to_owned(),
        users: field(fields, "users").to_owned(),
        groups: field(fields, "groups").to_owned(),
        constraints: (0..rows).map(|row| constraint_row(fields, row)).collect(),
    }
}

/// The condition a structured form describes. Rows without an attribute are left
/// out, and the rows that stay are renumbered, so problems name the row as typed only
/// while no empty row precedes it: the form keeps filled rows first.
fn when_of(form: &SegmentForm, base: Option<&When>) -> Result<When, FieldProblem> {
    let mut constraints = Vec::new();
    for (row, c) in form
        .constraints
        .iter()
        .filter(|c| !c.attribute.is_empty())
        .enumerate()
    {
        let op: Operator = OPERATORS
            .iter()
            .copied()
            .find(|o| o.as_str() == c.op)
            .ok_or_else(|| {
                problem(
                    &format!("when.constraints[{row}].op"),
                    format!("unknown operator `{}`", c.op),
                )
            })?;
        constraints.push(Constraint {
            attribute: c.attribute.clone(),
            op,
            values: c
                .values
                .lines()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect(),
            negate: c.negate,
            case_insensitive: c.case_insensitive,
        });
    }
    Ok(When {
        users: comma_list(&form.users),
        groups: comma_list(&form.groups),
        constraints,
        // Not on the form (the JSON editor has them): kept as stored.
        segments: base.map(|w| w.segments.clone()).unwrap_or_default(),
        percentage: base.and_then(|w| w.percentage.clone()),
    })
}

/// Parses the JSON editor's text as the segment `key` at `version`.
fn segment_from_json(text: &str, key: &str, version: u64) -> Result<Segment, FieldProblem> {
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| problem("json", format!("not JSON: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(problem("json", "the segment must be a JSON object"));
    };
    object.insert("key".into(), json!(key));
    object.insert("version".into(), json!(version));
    serde_path_to_error::deserialize::<_, Segment>(value)
        .map_err(|e| problem(&e.path().to_string(), e.into_inner().to_string()))
}

/// Writes `segment` with `conditions` and answers: the segment's page (303) when
/// saved, the editor with the problems or the conflict when not.
async fn save(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    segment: Segment,
    conditions: &Preconditions,
    creating: bool,
    mut refused: Refused,
) -> Result<Response, PageError> {
    let key = segment.key.to_string();
    let yours = segment.version;
    let result = put_item(
        state,
        &viewer.principal,
        env,
        segment,
        conditions,
        "segment.put",
        None,
    )
    .await;
    match result {
        Ok(_) => {
            return Ok(Redirect::to(&format!("/console/envs/{env}/segments/{key}")).into_response())
        }
        Err(EnvError::Invalid(errors)) => {
            refused.status = StatusCode::UNPROCESSABLE_ENTITY;
            refused.problems.extend(
                errors
                    .errors()
                    .iter()
                    .map(|e| problem(&e.path, e.problem.to_string())),
            );
        }
        Err(EnvError::PreconditionFailed { current, message }) if creating => {
            refused.status = StatusCode::CONFLICT;
            let exists = current.map_or(message, |_| {
                format!("a segment `{key}` already exists in `{env}`")
            });
            refused.problems.push(problem("key", exists));
        }
        Err(EnvError::PreconditionFailed { current, message }) => {
            refused.status = StatusCode::CONFLICT;
            let stored = state
                .envs
                .get(env)
                .and_then(|s| Segment::find(&s, &key).cloned());
            match (current, stored) {
                (Some(theirs), Some(stored)) => {
                    refused.conflict = Some(Conflict {
                        yours,
                        theirs,
                        theirs_json: editable_json(&stored),
                    });
                }
                _ => refused.message = Some(message),
            }
        }
        Err(e @ EnvError::InvalidName { .. }) => {
            refused.status = StatusCode::UNPROCESSABLE_ENTITY;
            refused.problems.push(problem("key", e.to_string()));
        }
        Err(e @ (EnvError::BadRequest(_) | EnvError::InUse { .. })) => {
            refused.status = StatusCode::UNPROCESSABLE_ENTITY;
            refused.message = Some(e.to_string());
        }
        Err(other) => return Err(crate::error::ApiError::from(other).into()),
    }
    let shown = (!creating).then_some(key.as_str());
    if shown.is_some_and(|k| {
        state
            .envs
            .get(env)
            .and_then(|s| Segment::find(&s, k).cloned())
            .is_none()
    }) {
        return Err(not_found(env, &key));
    }
    edit_page(state, viewer, env, shown, Some(refused))
}

/// `POST /console/envs/{env}/segments`: creates a segment from the structured form
/// (refused if the key exists).
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    writable_env(&state, &viewer, &env)?;
    let form = typed_form(&fields);
    let mut refused = Refused::new(StatusCode::UNPROCESSABLE_ENTITY, form.clone(), None);
    let when = match when_of(&form, None) {
        Ok(when) => when,
        Err(p) => {
            refused.problems.push(p);
            return edit_page(&state, &viewer, &env, None, Some(refused));
        }
    };
    if form.key.is_empty() {
        refused
            .problems
            .push(problem("key", "a segment needs a key"));
        return edit_page(&state, &viewer, &env, None, Some(refused));
    }
    let segment = Segment {
        key: form.key.as_str().into(),
        description: form.description.clone(),
        when,
        version: 0,
    };
    save(
        &state,
        &viewer,
        &env,
        segment,
        &Preconditions::absent(),
        true,
        refused,
    )
    .await
}

/// `POST /console/envs/{env}/segments/{key}`: `action` = `form` (the structured form)
/// or `json` (the JSON editor), each at the form's `version`.
pub async fn update(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let current = writable_env(&state, &viewer, &env)?;
    let base = Segment::find(&current, &key)
        .cloned()
        .ok_or_else(|| not_found(&env, &key))?;
    let version: u64 = field(&fields, "version")
        .parse()
        .map_err(|_| PageError::bad_request("the form has no valid `version`; reload the page"))?;
    let (parsed, refused) = match field(&fields, "action") {
        "form" => {
            let form = SegmentForm {
                key: key.clone(),
                ..typed_form(&fields)
            };
            let parsed = when_of(&form, Some(&base.when)).map(|when| Segment {
                description: form.description.clone(),
                when,
                version,
                ..base.clone()
            });
            (
                parsed,
                Refused::new(StatusCode::UNPROCESSABLE_ENTITY, form, None),
            )
        }
        "json" => {
            let text = field(&fields, "json").to_owned();
            (
                segment_from_json(&text, &key, version),
                Refused::new(StatusCode::UNPROCESSABLE_ENTITY, form_of(&base), Some(text)),
            )
        }
        _ => {
            return Err(PageError::bad_request(
                "unknown form action; reload the page",
            ))
        }
    };
    match parsed {
        Ok(segment) => {
            let conditions = Preconditions::at_version(version);
            save(&state, &viewer, &env, segment, &conditions, false, refused).await
        }
        Err(p) => {
            let mut refused = refused;
            refused.problems.push(p);
            edit_page(&state, &viewer, &env, Some(&key), Some(refused))
        }
    }
}

/// `POST /console/envs/{env}/segments/{key}/delete`, at the form's `version`; refused
/// while a flag uses the segment.
pub async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    writable_env(&state, &viewer, &env)?;
    let version: u64 = field(&fields, "version")
        .parse()
        .map_err(|_| PageError::bad_request("the form has no valid `version`; reload the page"))?;
    let conditions = Preconditions::at_version(version);
    let result = delete_item::<Segment>(&state, &viewer.principal, &env, &key, &conditions).await;
    let (status, message) = match result {
        Ok(()) => return Ok(Redirect::to(&format!("/console/envs/{env}/segments")).into_response()),
        Err(e @ EnvError::InUse { .. }) => (StatusCode::CONFLICT, e.to_string()),
        Err(e @ EnvError::PreconditionFailed { .. }) => {
            (StatusCode::CONFLICT, format!("not deleted: {e}"))
        }
        Err(other) => return Err(crate::error::ApiError::from(other).into()),
    };
    let current = readable_env(&state, &viewer, &env)?;
    let base = Segment::find(&current, &key)
        .cloned()
        .ok_or_else(|| not_found(&env, &key))?;
    let mut refused = Refused::new(status, form_of(&base), None);
    refused.message = Some(message);
    edit_page(&state, &viewer, &env, Some(&key), Some(refused))
}
