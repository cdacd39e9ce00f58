//! Applying a release plan from the browser (admins): paste the YAML or choose a file,
//! *Check* shows what the release will do (the orchestrator's dry run: environments,
//! services in the order they start, steps, flags, metrics) or every problem with its
//! path; *Start* checks again and starts only a plan without problems.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use switchyard_core::release::PlanOutline;

use crate::console::chart::number;
use crate::console::page::{render, render_status, Chrome, PageError};
use crate::console::releases::connected;
use crate::console::session::Viewer;
use crate::error::FieldProblem;
use crate::orchestrator::OrchestratorError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/release_new.html")]
struct NewReleasePage {
    chrome: Chrome,
    plan: String,
    problems: Vec<FieldProblem>,
    outline: Option<PlanOutline>,
}

impl NewReleasePage {
    /// A step in words: `weight 10 %, held 30s`, `approval`.
    fn step_words(&self, step: &switchyard_core::release::StepOutline) -> String {
        let mut words = match (step.weight, step.approve) {
            (_, true) => "wait for approval".to_owned(),
            (Some(w), false) => format!("weight {w} %"),
            (None, false) => "–".to_owned(),
        };
        if let Some(hold) = step.hold_seconds.filter(|_| !step.approve) {
            words.push_str(&format!(", held {} s and analysed", number(hold)));
        }
        if step.gates > 0 {
            words.push_str(&format!(", after {} gate(s)", step.gates));
        }
        words
    }
}

fn admin_only(viewer: &Viewer) -> Result<(), PageError> {
    if viewer.can_write() {
        return Ok(());
    }
    Err(PageError::forbidden(format!(
        "token `{}` is {} token; only admin tokens may start releases",
        viewer.principal.name,
        crate::auth::with_article(viewer.principal.kind)
    )))
}

/// `GET /console/new-release`.
pub async fn form(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    connected(&state)?;
    render(&NewReleasePage {
        chrome: Chrome::new(&state, &viewer, "Start a release", None),
        plan: String::new(),
        problems: Vec::new(),
        outline: None,
    })
}

/// The form as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PlanForm {
    plan: String,
    action: String,
}

/// `POST /console/new-release`: `action=check` outlines the plan, `action=start`
/// starts it when it has no problem.
pub async fn submit(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<PlanForm>,
) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    let client = connected(&state)?;
    let start = match form.action.as_str() {
        "check" => false,
        "start" => true,
        other => {
            return Err(PageError::bad_request(format!(
                "unknown action `{other}`: check or start"
            )))
        }
    };
    let page = |problems, outline| NewReleasePage {
        chrome: Chrome::new(&state, &viewer, "Start a release", None),
        plan: form.plan.clone(),
        problems,
        outline,
    };
    let outline = match client.dry_run(&form.plan).await {
        Ok(outline) => outline,
        Err(OrchestratorError::Refused {
            status,
            message,
            problems,
            ..
        }) if status.as_u16() == 400 || status.as_u16() == 413 => {
            let problems = if problems.is_empty() {
                vec![FieldProblem {
                    path: "plan".into(),
                    message,
                }]
            } else {
                problems
            };
            return render_status(StatusCode::UNPROCESSABLE_ENTITY, &page(problems, None));
        }
        Err(other) => return Err(other.into()),
    };
    if !start {
        return render(&page(Vec::new(), Some(outline)));
    }
    client.apply(&form.plan).await?;
    Ok(Redirect::to(&format!("/console/releases/{}", outline.name)).into_response())
}
