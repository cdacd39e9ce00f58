//! The playground: a context typed into a form (targeting key, groups, attributes),
//! evaluated against one flag or every flag of an environment. The context is read by
//! the REST evaluation API's own reader (`scope::read_context`) and evaluated by its own
//! functions (`scope::evaluate_known`, core's `evaluate_all`), so the page shows what
//! `POST /v1/evaluate/{env}[/{flag}]` answers for the same context. The form posts: a
//! context may be personal data, so it stays out of URLs.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_core::{evaluate_all, json_body, Evaluation};

use crate::console::page::{readable_env, render_status, Chrome, PageError};
use crate::console::session::Viewer;
use crate::error::FieldProblem;
use crate::scope::{evaluate_known, read_context};
use crate::state::AppState;

/// The form as typed; every field may be empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PlaygroundForm {
    /// The context's `targetingKey`.
    pub targeting_key: String,
    /// Groups, comma-separated.
    pub groups: String,
    /// `name=value` lines, or one JSON object.
    pub attributes: String,
    /// One flag's key, or empty for every flag.
    pub flag: String,
}

/// One evaluation as shown.
pub struct Answer {
    /// The flag.
    pub flag: String,
    /// The served variant.
    pub variant: Option<String>,
    /// The served value as JSON.
    pub value: String,
    /// `TARGETING_MATCH`, `DEFAULT`, ...
    pub reason: &'static str,
    /// The rule that served, if one did.
    pub rule: Option<String>,
    /// The error code with reason `ERROR`.
    pub error: Option<&'static str>,
}

impl Answer {
    fn new(flag: &str, evaluation: &Evaluation<'_>) -> Self {
        Answer {
            flag: flag.to_owned(),
            variant: evaluation.variant.map(str::to_owned),
            value: if evaluation.defers() {
                "none: the caller's code default".to_owned()
            } else {
                evaluation
                    .value
                    .map_or_else(|| "null".to_owned(), Value::to_string)
            },
            reason: evaluation.reason.as_str(),
            rule: evaluation.rule_id.map(str::to_owned),
            error: evaluation.error.map(|e| e.as_str()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/playground.html")]
struct PlaygroundPage {
    chrome: Chrome,
    env: String,
    flags: Vec<String>,
    form: PlaygroundForm,
    problems: Vec<FieldProblem>,
    answers: Option<Vec<Answer>>,
}

impl PlaygroundPage {
    /// The problem at the form field `field`.
    fn error_at(&self, field: &str) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| p.path == field)
            .map(|p| p.message.as_str())
    }

    /// The flag the form names when the environment has no such flag, so the select
    /// shows what was asked for next to its error.
    fn unlisted_flag(&self) -> Option<&str> {
        let flag = self.form.flag.as_str();
        (!flag.is_empty() && !self.flags.iter().any(|f| f == flag)).then_some(flag)
    }
}

fn problem(field: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        path: field.to_owned(),
        message: message.into(),
    }
}

/// The attributes field: one JSON object (its values as the API takes them), or
/// `name=value` lines (string values; core compares them as numbers, versions, ... where
/// an operator asks for that).
fn attributes(text: &str) -> Result<Map<String, Value>, FieldProblem> {
    let text = text.trim();
    if text.starts_with('{') {
        return json_body::parse::<Map<String, Value>>(text.as_bytes()).map_err(|e| {
            problem(
                "attributes",
                format!("not a JSON object of attributes: {e}"),
            )
        });
    }
    let mut map = Map::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(problem(
                "attributes",
                format!(
                    "line {}: `{line}` is not `name=value`; write one attribute per line, or a JSON object",
                    n + 1
                ),
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(problem(
                "attributes",
                format!("line {}: the attribute has no name", n + 1),
            ));
        }
        if map
            .insert(name.to_owned(), Value::String(value.trim().to_owned()))
            .is_some()
        {
            return Err(problem(
                "attributes",
                format!("line {}: attribute `{name}` is written twice", n + 1),
            ));
        }
    }
    Ok(map)
}

/// The context document the form describes, as the REST API would receive it.
fn context_document(form: &PlaygroundForm) -> Result<Vec<u8>, FieldProblem> {
    let mut document = attributes(&form.attributes)?;
    for reserved in ["targetingKey", "groups"] {
        if document.contains_key(reserved) {
            return Err(problem(
                "attributes",
                format!("`{reserved}` has a field of its own above; remove it from the attributes"),
            ));
        }
    }
    let key = form.targeting_key.trim();
    if !key.is_empty() {
        document.insert("targetingKey".into(), Value::String(key.to_owned()));
    }
    let groups: Vec<Value> = form
        .groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| Value::String(g.to_owned()))
        .collect();
    if !groups.is_empty() {
        document.insert("groups".into(), Value::Array(groups));
    }
    serde_json::to_vec(&document)
        .map_err(|e| problem("attributes", format!("cannot be encoded: {e}")))
}

/// Which field a problem of the whole context is about.
fn field_of(message: &str) -> &'static str {
    if message.contains("`groups`") {
        "groups"
    } else if message.contains("`targetingKey`") {
        "targeting_key"
    } else {
        "attributes"
    }
}

/// Evaluates what the form asks for: the answers, or the problem at its field.
fn answers(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    form: &PlaygroundForm,
) -> Result<Result<Vec<Answer>, FieldProblem>, PageError> {
    let current = readable_env(state, viewer, env)?;
    let document = match context_document(form) {
        Ok(document) => document,
        Err(problem) => return Ok(Err(problem)),
    };
    let ctx = match read_context(&document) {
        Ok(ctx) => ctx,
        Err(message) => return Ok(Err(problem(field_of(&message), message))),
    };
    let flag = form.flag.trim();
    if flag.is_empty() {
        let mut all: Vec<Answer> = evaluate_all(&current.snapshot, &ctx)
            .map(|(key, evaluation)| Answer::new(key, &evaluation))
            .collect();
        all.sort_by(|a, b| a.flag.cmp(&b.flag));
        return Ok(Ok(all));
    }
    Ok(match evaluate_known(&current, flag, &ctx) {
        Ok(evaluation) => Ok(vec![Answer::new(flag, &evaluation)]),
        Err(error) => Err(problem("flag", error.message)),
    })
}

fn page(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    form: PlaygroundForm,
    problems: Vec<FieldProblem>,
    answers: Option<Vec<Answer>>,
) -> Result<PlaygroundPage, PageError> {
    let current = readable_env(state, viewer, env)?;
    let mut flags: Vec<String> = current
        .snapshot
        .flags()
        .map(|f| f.key.to_string())
        .collect();
    flags.sort_unstable();
    Ok(PlaygroundPage {
        chrome: Chrome::new(state, viewer, format!("Playground in {env}"), Some(env)),
        env: env.to_owned(),
        flags,
        form,
        problems,
        answers,
    })
}

/// The query of the empty form: a flag to preselect.
#[derive(Deserialize)]
pub struct Preselect {
    #[serde(default)]
    flag: String,
}

/// `GET /console/envs/{env}/playground[?flag=..]`: the empty form.
pub async fn form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
    Query(preselect): Query<Preselect>,
) -> Result<Response, PageError> {
    let form = PlaygroundForm {
        flag: preselect.flag,
        ..PlaygroundForm::default()
    };
    render_status(
        StatusCode::OK,
        &page(&state, &viewer, &env, form, Vec::new(), None)?,
    )
}

/// `POST /console/envs/{env}/playground`: the answers, or the form with the problem
/// at its field (400). Any viewer who may read the environment may use it.
pub async fn evaluate(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
    Form(form): Form<PlaygroundForm>,
) -> Result<Response, PageError> {
    let (status, problems, shown) = match answers(&state, &viewer, &env, &form)? {
        Ok(shown) => (StatusCode::OK, Vec::new(), Some(shown)),
        Err(problem) => (StatusCode::BAD_REQUEST, vec![problem], None),
    };
    render_status(status, &page(&state, &viewer, &env, form, problems, shown)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(targeting_key: &str, groups: &str, attributes: &str) -> Result<Value, String> {
        let form = PlaygroundForm {
            targeting_key: targeting_key.into(),
            groups: groups.into(),
            attributes: attributes.into(),
            flag: String::new(),
        };
        context_document(&form)
            .map(|bytes| serde_json::from_slice(&bytes).expect("JSON"))
            .map_err(|p| format!("{}: {}", p.path, p.message))
    }

    #[test]
    fn the_form_becomes_the_apis_context_document() {
        let cases: &[(&str, &str, &str, Result<Value, &str>)] = &[
            ("", "", "", Ok(serde_json::json!({}))),
            (
                " u1 ",
                "beta, staff ,,",
                "country = IT\n\nplan=pro",
                Ok(
                    serde_json::json!({"targetingKey": "u1", "groups": ["beta", "staff"],
                                      "country": "IT", "plan": "pro"}),
                ),
            ),
            (
                "u1",
                "",
                r#"{"age": 42, "admin": true, "tags": ["a"]}"#,
                Ok(
                    serde_json::json!({"targetingKey": "u1", "age": 42, "admin": true, "tags": ["a"]}),
                ),
            ),
            ("", "", "country", Err("attributes: line 1")),
            (
                "",
                "",
                "=IT",
                Err("attributes: line 1: the attribute has no name"),
            ),
            (
                "",
                "",
                "a=1\na=2",
                Err("attributes: line 2: attribute `a` is written twice"),
            ),
            ("", "", r#"{"age": 4"#, Err("attributes: not a JSON object")),
            (
                "",
                "",
                r#"{"a": 1, "a": 2}"#,
                Err("attributes: not a JSON object"),
            ),
            (
                "",
                "",
                "groups=x",
                Err("attributes: `groups` has a field of its own"),
            ),
        ];
        for (key, groups, attributes, expected) in cases {
            let got = document(key, groups, attributes);
            match expected {
                Ok(value) => assert_eq!(got.as_ref(), Ok(value), "{attributes}"),
                Err(start) => {
                    let message = got.expect_err(attributes);
                    assert!(message.starts_with(start), "{attributes}: {message}");
                }
            }
        }
    }

    #[test]
    fn problems_of_the_whole_context_are_shown_at_their_field() {
        let nested = document("", "", r#"{"nested": {"a": 1}}"#).expect("a JSON object");
        let message = read_context(nested.to_string().as_bytes()).expect_err("refused");
        assert_eq!(field_of(&message), "attributes", "{message}");
        assert_eq!(
            field_of("invalid context: `groups` has more than 1000 items"),
            "groups"
        );
    }
}
