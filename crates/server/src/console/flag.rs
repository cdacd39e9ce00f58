//! A flag in one environment: its state, variants, rules in order, default serve with
//! the rollout slider, prerequisites, and the forms that change them (in `flag/edit.rs`).
//! A page rendered after a refused write shows every problem next to the field its
//! path names, and the version the form was rendered with, so a concurrent change is a
//! conflict, never a lost update.

pub mod edit;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use switchyard_core::model::{Constraint, Operator, Serve, When};
use switchyard_core::Flag;

use crate::console::flags::{percent, ramp_weight, state_of, FlagState};
use crate::console::page::{readable_env, render_status, Chrome, PageError};
use crate::console::session::Viewer;
use crate::error::FieldProblem;
use crate::state::AppState;

/// Every constraint operator, in the order of docs/flags.md.
pub const OPERATORS: [Operator; 21] = [
    Operator::In,
    Operator::NotIn,
    Operator::Eq,
    Operator::Neq,
    Operator::Contains,
    Operator::StartsWith,
    Operator::EndsWith,
    Operator::Matches,
    Operator::Lt,
    Operator::Lte,
    Operator::Gt,
    Operator::Gte,
    Operator::SemverEq,
    Operator::SemverLt,
    Operator::SemverLte,
    Operator::SemverGt,
    Operator::SemverGte,
    Operator::Before,
    Operator::After,
    Operator::InCidr,
    Operator::Exists,
];

/// How many condition rows the add-rule form offers (more through the JSON editor).
pub const CONSTRAINT_ROWS: usize = 3;

/// One rule as shown.
pub struct RuleView {
    /// Its position (0-based).
    pub index: usize,
    /// Its id.
    pub id: String,
    /// Its conditions, one line each.
    pub when: Vec<String>,
    /// What it serves.
    pub serve: String,
    /// The rule as JSON, for its editor.
    pub json: String,
}

/// One condition row of the add-rule form, as typed.
#[derive(Debug, Clone, Default)]
pub struct ConstraintRow {
    /// Attribute name.
    pub attribute: String,
    /// Operator name.
    pub op: String,
    /// Values, one per line.
    pub values: String,
    /// Negated.
    pub negate: bool,
    /// Case-insensitive.
    pub case_insensitive: bool,
}

/// The add-rule form, as typed (kept when the write is refused).
#[derive(Debug, Clone, Default)]
pub struct NewRule {
    /// Rule id.
    pub id: String,
    /// Targeting keys, comma-separated.
    pub users: String,
    /// Groups, comma-separated.
    pub groups: String,
    /// Segments, comma-separated.
    pub segments: String,
    /// Condition rows.
    pub constraints: Vec<ConstraintRow>,
    /// The variant served.
    pub serve: String,
}

/// The rollout slider: what share of users get `variant`.
pub struct Slider {
    /// The variant ramped.
    pub variant: String,
    /// Its share now, in percent.
    pub percent: String,
    /// The variants that may be ramped (all but the off variant).
    pub choices: Vec<String>,
}

/// A write refused because the flag changed since the page was rendered.
pub struct Conflict {
    /// The version the form was rendered with.
    pub yours: u64,
    /// The version now stored.
    pub theirs: u64,
    /// The stored flag as JSON.
    pub theirs_json: String,
    /// What the refused write would have saved, when there is one.
    pub attempted_json: Option<String>,
}

/// What a refused write leaves on the page.
#[derive(Default)]
pub struct Outcome {
    /// Validation problems with their field paths.
    pub problems: Vec<FieldProblem>,
    /// A message not tied to a field.
    pub message: Option<String>,
    /// A concurrent change.
    pub conflict: Option<Conflict>,
    /// The add-rule form as typed.
    pub new_rule: Option<NewRule>,
    /// The JSON editor's text as typed.
    pub json: Option<String>,
    /// The kill/revive reason as typed.
    pub reason: Option<String>,
    /// A confirmation after a successful write.
    pub notice: Option<String>,
}

/// The flag detail page.
#[derive(Template)]
#[template(path = "console/flag.html")]
pub struct DetailPage {
    chrome: Chrome,
    /// The running releases ramping this flag here (the GET page looks them up).
    ramping: Vec<String>,
    env: String,
    key: String,
    flag: Flag,
    state: FlagState,
    kind: String,
    variants: Vec<(String, String)>,
    rules: Vec<RuleView>,
    default_text: String,
    slider: Option<Slider>,
    prerequisites: Vec<String>,
    json: String,
    new_rule: NewRule,
    operators: Vec<&'static str>,
    outcome: Outcome,
}

impl DetailPage {
    /// The first problem at `path` or below it.
    fn error_at(&self, path: &str) -> Option<&str> {
        self.outcome
            .problems
            .iter()
            .find(|p| {
                p.path == path
                    || p.path
                        .strip_prefix(path)
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .map(|p| p.message.as_str())
    }

    /// The problem of the new rule's field `field` (`id`, `serve`, ...).
    fn new_rule_error(&self, field: &str) -> Option<&str> {
        self.error_at(&format!("rules[{}].{field}", self.rules.len()))
    }

    /// The problem of the new rule's condition `row`, field `field`.
    fn constraint_error(&self, row: impl std::fmt::Display, field: &str) -> Option<&str> {
        self.error_at(&format!(
            "rules[{}].when.constraints[{row}].{field}",
            self.rules.len()
        ))
    }

    /// The problem of an existing rule.
    fn rule_error(&self, index: impl std::fmt::Display) -> Option<&str> {
        self.error_at(&format!("rules[{index}]"))
    }
}

fn list(values: &[String]) -> String {
    values.join(", ")
}

fn constraint_text(c: &Constraint) -> String {
    let not = if c.negate { "not " } else { "" };
    let ci = if c.case_insensitive {
        " (any case)"
    } else {
        ""
    };
    if c.op == Operator::Exists {
        return format!("{not}{} exists", c.attribute);
    }
    format!(
        "{not}{} {} {}{ci}",
        c.attribute,
        c.op.as_str(),
        list(&c.values)
    )
}

fn when_text(when: &When) -> Vec<String> {
    let mut lines = Vec::new();
    if !when.users.is_empty() {
        lines.push(format!("user is {}", list(&when.users)));
    }
    if !when.groups.is_empty() {
        lines.push(format!("in group {}", list(&when.groups)));
    }
    if !when.segments.is_empty() {
        let segments: Vec<String> = when.segments.iter().map(ToString::to_string).collect();
        lines.push(format!("in segment {}", list(&segments)));
    }
    lines.extend(when.constraints.iter().map(constraint_text));
    if let Some(p) = &when.percentage {
        lines.push(format!("in the first {} % of buckets", percent(p.weight)));
    }
    if lines.is_empty() {
        lines.push("everyone".to_owned());
    }
    lines
}

/// What `serve` means for people: `on`, or `30 % on, 70 % off`.
pub fn serve_text(serve: &Serve) -> String {
    match serve {
        Serve::Variant(v) => v.clone(),
        Serve::Rollout(r) => r
            .split
            .iter()
            .map(|s| format!("{} % {}", percent(s.weight), s.variant))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn slider(flag: &Flag) -> Option<Slider> {
    let baseline = flag.baseline();
    let choices: Vec<String> = flag
        .variants
        .keys()
        .filter(|v| Some(v.as_str()) != baseline)
        .cloned()
        .collect();
    let variant = match &flag.default {
        Serve::Rollout(r) => r
            .split
            .iter()
            .find(|s| Some(s.variant.as_str()) != baseline && s.weight > 0)
            .map(|s| s.variant.clone()),
        Serve::Variant(v) if Some(v.as_str()) != baseline => Some(v.clone()),
        Serve::Variant(_) => None,
    }
    .or_else(|| choices.first().cloned())?;
    let weight = match &flag.default {
        Serve::Variant(v) if *v == variant => 100_000,
        Serve::Variant(_) => 0,
        Serve::Rollout(_) => ramp_weight(flag).unwrap_or(0),
    };
    Some(Slider {
        variant,
        percent: percent(weight),
        choices,
    })
}

/// The flag as its JSON editor shows it: without `key` and `version`, which the page
/// gives.
pub fn editable_json(flag: &Flag) -> String {
    let mut value = serde_json::to_value(flag).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("key");
        object.remove("version");
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Builds the page for `key` in `env` with what a write left (`outcome`).
pub fn detail_page(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    key: &str,
    outcome: Outcome,
) -> Result<DetailPage, PageError> {
    let current = readable_env(state, viewer, env)?;
    let flag = current
        .snapshot
        .flag(key)
        .ok_or_else(|| PageError::not_found(format!("flag `{key}` does not exist in `{env}`")))?
        .clone();
    let chrome = Chrome::new(state, viewer, format!("{key} in {env}"), Some(env)).about_flag(key);
    let variants = flag
        .variants
        .iter()
        .map(|(name, value)| (name.clone(), value.to_string()))
        .collect();
    let rules = flag
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| RuleView {
            index,
            id: rule.id.clone(),
            when: when_text(&rule.when),
            serve: serve_text(&rule.serve),
            json: serde_json::to_string_pretty(rule).unwrap_or_default(),
        })
        .collect();
    let prerequisites = flag
        .prerequisites
        .iter()
        .map(|p| format!("{} is {}", p.flag, p.variants.join(" or ")))
        .collect();
    let mut new_rule = outcome.new_rule.clone().unwrap_or_default();
    new_rule.constraints.resize(
        CONSTRAINT_ROWS.max(new_rule.constraints.len()),
        ConstraintRow::default(),
    );
    if new_rule.serve.is_empty() {
        new_rule.serve = flag.variants.keys().next().cloned().unwrap_or_default();
    }
    Ok(DetailPage {
        chrome,
        ramping: Vec::new(),
        env: env.to_owned(),
        key: key.to_owned(),
        state: state_of(&flag),
        kind: format!("{:?}", flag.kind).to_lowercase(),
        default_text: serve_text(&flag.default),
        slider: slider(&flag),
        json: outcome.json.clone().unwrap_or_else(|| editable_json(&flag)),
        variants,
        rules,
        prerequisites,
        new_rule,
        operators: OPERATORS.iter().map(|o| o.as_str()).collect(),
        flag,
        outcome,
    })
}

/// `GET /console/envs/{env}/flags/{key}`.
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let mut page = detail_page(&state, &viewer, &env, &key, Outcome::default())?;
    page.ramping = crate::console::releases::ramping(&state, &env, &key).await;
    render_status(StatusCode::OK, &page)
}
