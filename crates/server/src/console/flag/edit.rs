//! The flag page's writes: the JSON editor, the rollout slider, rule moves, edits and
//! additions, and the create-flag form. Each builds the new flag from the version the
//! form was rendered with and hands it to the domain's `put_item` with `If-Match` at
//! that version: validation, audit and live push are the admin API's own.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde_json::{json, Value};
use switchyard_core::model::{Rollout, Rule, Serve, Split};
use switchyard_core::Flag;

use crate::console::flag::{
    detail_page, editable_json, Conflict, NewRule, Outcome, CONSTRAINT_ROWS,
};
use crate::console::form::{constraint_row, field, problem, Fields};
use crate::console::page::{render, render_status, writable_env, Chrome, PageError};
use crate::console::session::Viewer;
use crate::domain::{put_item, EnvError, Preconditions};
use crate::error::FieldProblem;
use crate::state::AppState;

fn version(fields: &Fields) -> Result<u64, PageError> {
    field(fields, "version")
        .parse()
        .map_err(|_| PageError::bad_request("the form has no valid `version`; reload the page"))
}

/// Parses JSON into `T`, naming the failing field's path under `prefix`.
fn parse_at<T: serde::de::DeserializeOwned>(value: Value, prefix: &str) -> Result<T, FieldProblem> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (prefix.is_empty(), inner.as_str()) {
            (true, _) => inner.clone(),
            (false, ".") => prefix.to_owned(),
            (false, _) if inner.starts_with('[') => format!("{prefix}{inner}"),
            (false, _) => format!("{prefix}.{inner}"),
        };
        problem(&path, e.into_inner().to_string())
    })
}

/// What a write's result shows: the flag page again (303) when it was saved, or the
/// page with the problems, or the conflict, when it was not.
pub(crate) async fn answer(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    key: &str,
    result: Result<(), EnvError>,
    attempted: Option<&Flag>,
    mut outcome: Outcome,
) -> Result<Response, PageError> {
    let status = match result {
        Ok(()) => {
            return Ok(Redirect::to(&format!("/console/envs/{env}/flags/{key}")).into_response())
        }
        Err(EnvError::Invalid(errors)) => {
            outcome.problems.extend(
                errors
                    .errors()
                    .iter()
                    .map(|e| problem(&e.path, e.problem.to_string())),
            );
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(EnvError::PreconditionFailed { current, message }) => {
            let stored = state
                .envs
                .get(env)
                .and_then(|s| s.snapshot.flag(key).cloned());
            match (current, stored) {
                (Some(theirs), Some(stored)) => {
                    outcome.conflict = Some(Conflict {
                        yours: attempted.map_or(0, |f| f.version),
                        theirs,
                        theirs_json: editable_json(&stored),
                        // A change built on the stored flag would show their change
                        // mixed in; only the JSON editor's own text is shown as yours.
                        attempted_json: outcome.json.clone(),
                    });
                }
                _ => outcome.message = Some(message),
            }
            StatusCode::CONFLICT
        }
        Err(
            e @ (EnvError::InvalidName { .. } | EnvError::BadRequest(_) | EnvError::InUse { .. }),
        ) => {
            outcome.message = Some(e.to_string());
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(other) => return Err(crate::error::ApiError::from(other).into()),
    };
    render_status(status, &detail_page(state, viewer, env, key, outcome)?)
}

/// Saves `flag` (built from the form's `version`) and answers.
async fn save(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    key: &str,
    flag: Flag,
    outcome: Outcome,
) -> Result<Response, PageError> {
    let conditions = Preconditions::at_version(flag.version);
    let result = put_item(
        state,
        &viewer.principal,
        env,
        flag.clone(),
        &conditions,
        "flag.put",
        None,
    )
    .await
    .map(drop);
    answer(state, viewer, env, key, result, Some(&flag), outcome).await
}

/// The stored flag the form's change is applied to, carrying the version the form was
/// rendered with: if another write came first, the domain's `If-Match` refuses it.
fn base_flag(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    key: &str,
    version: u64,
) -> Result<Flag, PageError> {
    let current = writable_env(state, viewer, env)?;
    let mut flag =
        current.snapshot.flag(key).cloned().ok_or_else(|| {
            PageError::not_found(format!("flag `{key}` does not exist in `{env}`"))
        })?;
    flag.version = version;
    Ok(flag)
}

/// `POST /console/envs/{env}/flags/{key}`: the JSON editor.
pub async fn save_json(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let version = version(&fields)?;
    let base = base_flag(&state, &viewer, &env, &key, version)?;
    let text = field(&fields, "json").to_owned();
    let outcome = Outcome {
        json: Some(text.clone()),
        ..Outcome::default()
    };
    let parsed = serde_json::from_str::<Value>(&text)
        .map_err(|e| problem("json", format!("not JSON: {e}")))
        .and_then(|mut value| {
            if let Some(object) = value.as_object_mut() {
                object.insert("key".into(), json!(key));
                object.insert("version".into(), json!(version));
            }
            parse_at::<Flag>(value, "")
        });
    match parsed {
        Ok(flag) => save(&state, &viewer, &env, &key, flag, outcome).await,
        Err(p) => {
            let outcome = Outcome {
                problems: vec![p],
                ..outcome
            };
            drop(base);
            render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &detail_page(&state, &viewer, &env, &key, outcome)?,
            )
        }
    }
}

/// `POST /console/envs/{env}/flags/{key}/rollout`: the default serve becomes a
/// rollout of `percent` % to `variant`, the rest to the off variant.
pub async fn save_rollout(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let version = version(&fields)?;
    let mut flag = base_flag(&state, &viewer, &env, &key, version)?;
    let variant = field(&fields, "variant").to_owned();
    let percent: f64 = field(&fields, "percent").parse().unwrap_or(-1.0);
    let baseline = flag.baseline().unwrap_or_default().to_owned();
    if !(0.0..=100.0).contains(&percent) || variant == baseline {
        let outcome = Outcome {
            problems: vec![problem(
                "default",
                "choose a variant other than the one the rest get (the off variant) and a \
                 share from 0 to 100 %",
            )],
            ..Outcome::default()
        };
        return render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &detail_page(&state, &viewer, &env, &key, outcome)?,
        );
    }
    // At most 100 000 by the range check above, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let weight = (percent * 1000.0).round() as u32;
    let split = vec![
        Split { variant, weight },
        Split {
            variant: baseline,
            weight: 100_000 - weight,
        },
    ];
    flag.default = match flag.default {
        Serve::Rollout(rollout) => Serve::Rollout(Rollout { split, ..rollout }),
        Serve::Variant(_) => {
            let rollout: Rollout = serde_json::from_value(json!({"split": split}))
                .map_err(|e| PageError::bad_request(e.to_string()))?;
            Serve::Rollout(rollout)
        }
    };
    save(&state, &viewer, &env, &key, flag, Outcome::default()).await
}

fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The add-rule form as typed.
fn new_rule(fields: &Fields) -> NewRule {
    let rows = (0..CONSTRAINT_ROWS)
        .map(|row| constraint_row(fields, row))
        .collect();
    NewRule {
        id: field(fields, "id").trim().to_owned(),
        users: field(fields, "users").to_owned(),
        groups: field(fields, "groups").to_owned(),
        segments: field(fields, "segments").to_owned(),
        constraints: rows,
        serve: field(fields, "serve").to_owned(),
    }
}

/// The rule the add-rule form describes, as core's JSON (empty condition rows left out,
/// so the rows keep their numbers only while none before them is empty).
fn rule_json(form: &NewRule) -> Value {
    let constraints: Vec<Value> = form
        .constraints
        .iter()
        .filter(|c| !c.attribute.is_empty())
        .map(|c| {
            let values: Vec<&str> = c
                .values
                .lines()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            json!({"attribute": c.attribute, "op": c.op, "values": values,
                   "negate": c.negate, "case_insensitive": c.case_insensitive})
        })
        .collect();
    json!({
        "id": form.id,
        "when": {"users": comma_list(&form.users), "groups": comma_list(&form.groups),
                 "segments": comma_list(&form.segments), "constraints": constraints},
        "serve": {"variant": form.serve},
    })
}

/// `POST /console/envs/{env}/flags/{key}/rules`: `action` = `up`, `down`, `remove`,
/// `replace` (the rule at `index` from its JSON) or `add` (the add-rule form).
pub async fn edit_rules(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let version = version(&fields)?;
    let mut flag = base_flag(&state, &viewer, &env, &key, version)?;
    let index: usize = field(&fields, "index").parse().unwrap_or(usize::MAX);
    let count = flag.rules.len();
    let missing = || PageError::bad_request("no such rule; reload the page");
    let mut outcome = Outcome::default();
    let refused = |outcome: Outcome| async {
        render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &detail_page(&state, &viewer, &env, &key, outcome)?,
        )
    };
    match field(&fields, "action") {
        "up" if index > 0 && index < count => flag.rules.swap(index - 1, index),
        "down" if index + 1 < count => flag.rules.swap(index, index + 1),
        "remove" if index < count => {
            flag.rules.remove(index);
        }
        "replace" if index < count => {
            let prefix = format!("rules[{index}]");
            let parsed = serde_json::from_str::<Value>(field(&fields, "rule"))
                .map_err(|e| problem(&prefix, format!("not JSON: {e}")))
                .and_then(|value| parse_at::<Rule>(value, &prefix));
            match parsed {
                Ok(rule) => flag.rules[index] = rule,
                Err(p) => {
                    outcome.problems.push(p);
                    return refused(outcome).await;
                }
            }
        }
        "add" => {
            let form = new_rule(&fields);
            outcome.new_rule = Some(form.clone());
            match parse_at::<Rule>(rule_json(&form), &format!("rules[{count}]")) {
                Ok(rule) => flag.rules.push(rule),
                Err(p) => {
                    outcome.problems.push(p);
                    return refused(outcome).await;
                }
            }
        }
        _ => return Err(missing()),
    }
    save(&state, &viewer, &env, &key, flag, outcome).await
}

/// The create-flag page.
#[derive(Template)]
#[template(path = "console/flag_new.html")]
pub struct NewFlagPage {
    chrome: Chrome,
    env: String,
    form: NewFlag,
    problems: Vec<FieldProblem>,
}

impl NewFlagPage {
    fn error_at(&self, path: &str) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| {
                p.path == path
                    || p.path.starts_with(&format!("{path}."))
                    || p.path.starts_with(&format!("{path}["))
            })
            .map(|p| p.message.as_str())
    }
}

/// The create-flag form, as typed.
#[derive(Debug, Clone)]
pub struct NewFlag {
    key: String,
    kind: String,
    description: String,
    tags: String,
    variants: String,
    off_variant: String,
    default: String,
}

impl Default for NewFlag {
    fn default() -> Self {
        NewFlag {
            key: String::new(),
            kind: "boolean".into(),
            description: String::new(),
            tags: String::new(),
            variants: "{\"on\": true, \"off\": false}".into(),
            off_variant: "off".into(),
            default: "off".into(),
        }
    }
}

/// `GET /console/envs/{env}/new-flag`.
pub async fn new_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
) -> Result<Response, PageError> {
    writable_env(&state, &viewer, &env)?;
    let chrome = Chrome::new(&state, &viewer, format!("New flag in {env}"), Some(&env));
    render(&NewFlagPage {
        chrome,
        env,
        form: NewFlag::default(),
        problems: Vec::new(),
    })
}

/// `POST /console/envs/{env}/flags`: creates a flag (refused if the key exists).
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    writable_env(&state, &viewer, &env)?;
    let form = NewFlag {
        key: field(&fields, "key").trim().to_owned(),
        kind: field(&fields, "kind").to_owned(),
        description: field(&fields, "description").to_owned(),
        tags: field(&fields, "tags").to_owned(),
        variants: field(&fields, "variants").to_owned(),
        off_variant: field(&fields, "off_variant").trim().to_owned(),
        default: field(&fields, "default").trim().to_owned(),
    };
    let parsed = serde_json::from_str::<Value>(&form.variants)
        .map_err(|e| problem("variants", format!("not JSON: {e}")))
        .and_then(|variants| {
            parse_at::<Flag>(
                json!({"key": form.key, "kind": form.kind, "description": form.description,
                       "tags": comma_list(&form.tags), "variants": variants,
                       "off_variant": Some(&form.off_variant).filter(|o| !o.is_empty()),
                       "default": {"variant": form.default}}),
                "",
            )
        });
    let problems = match parsed {
        Err(p) => vec![p],
        Ok(flag) => {
            let conditions = Preconditions::absent();
            match put_item(
                &state,
                &viewer.principal,
                &env,
                flag,
                &conditions,
                "flag.put",
                None,
            )
            .await
            {
                Ok(_) => {
                    let to = format!("/console/envs/{env}/flags/{}", form.key);
                    return Ok(Redirect::to(&to).into_response());
                }
                Err(EnvError::Invalid(errors)) => errors
                    .errors()
                    .iter()
                    .map(|e| problem(&e.path, e.problem.to_string()))
                    .collect(),
                Err(EnvError::PreconditionFailed { .. }) => {
                    vec![problem(
                        "key",
                        format!("a flag `{}` already exists in `{env}`", form.key),
                    )]
                }
                Err(e @ EnvError::InvalidName { .. }) => vec![problem("key", e.to_string())],
                Err(other) => return Err(crate::error::ApiError::from(other).into()),
            }
        }
    };
    let chrome = Chrome::new(&state, &viewer, format!("New flag in {env}"), Some(&env));
    render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &NewFlagPage {
            chrome,
            env,
            form,
            problems,
        },
    )
}
