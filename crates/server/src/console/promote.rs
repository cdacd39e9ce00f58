//! Promote an environment's flags to another: choose the two environments (and
//! optionally flag keys or a tag), see what would change in the target — flags added,
//! changed (with a line diff) or already the same, and the segments they name that
//! the target lacks or holds differently — then confirm. The preview carries every
//! promoted flag's version in both environments; the confirm hands them to the
//! domain's `promote` (the path of `POST /v1/admin/promote`), which refuses the whole
//! promotion if any of them moved since, so nothing is applied that was not shown.
//! Admin tokens only.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use switchyard_core::{Flag, Segment};

use crate::console::form::{field, Fields};
use crate::console::history::{diff, Line};
use crate::console::page::{render_status, Chrome, PageError};
use crate::console::session::Viewer;
use crate::domain::{promote, promotion_diff, EnvError, PreviewedVersions, PromotionDiff};
use crate::environments::EnvState;
use crate::error::FieldProblem;
use crate::state::AppState;

/// What the form asks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Request {
    /// Source environment.
    #[serde(default)]
    pub from: String,
    /// Target environment.
    #[serde(default)]
    pub to: String,
    /// Flag keys, comma-separated (empty: every flag of the source).
    #[serde(default)]
    pub flags: String,
    /// Only flags with this tag (empty: any).
    #[serde(default)]
    pub tag: String,
}

/// One flag of the preview.
pub struct Item {
    /// The flag's key.
    pub key: String,
    /// `added`, `changed` or `same`.
    pub class: &'static str,
    /// The change in the target's flag (empty when the same).
    pub diff: Vec<Line>,
}

/// A promoted flag's versions as the preview saw them, for the confirm form.
pub struct Seen {
    /// The flag's key.
    pub key: String,
    /// Its version in the source.
    pub source: u64,
    /// Its version in the target (`-`: absent).
    pub target: String,
}

/// The preview of one promotion.
pub struct Preview {
    /// Flag by flag.
    pub items: Vec<Item>,
    /// Flags that would be added or changed.
    pub changes: usize,
    /// Notes about the segments the promoted flags name.
    pub segments: Vec<String>,
    /// Flags only the target has (promotion never removes them).
    pub only_in_target: Vec<String>,
    /// What the confirm form carries.
    pub seen: Vec<Seen>,
}

#[derive(Template)]
#[template(path = "console/promote.html")]
struct PromotePage {
    chrome: Chrome,
    request: Request,
    preview: Option<Preview>,
    notice: Option<String>,
    message: Option<String>,
    problems: Vec<FieldProblem>,
}

fn admin_only(viewer: &Viewer) -> Result<(), PageError> {
    if viewer.can_write() {
        return Ok(());
    }
    Err(PageError::forbidden(format!(
        "token `{}` is {} token; promoting needs an admin token",
        viewer.principal.name,
        crate::auth::with_article(viewer.principal.kind)
    )))
}

fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn environment(state: &AppState, name: &str) -> Result<std::sync::Arc<EnvState>, EnvError> {
    state
        .envs
        .get(name)
        .ok_or_else(|| EnvError::NoEnvironment(name.to_owned()))
}

/// A flag as compared: without its version, which a promotion does not copy.
fn comparable(flag: &Flag) -> serde_json::Value {
    let mut value = serde_json::to_value(flag).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("version");
    }
    value
}

fn same_segment(a: &Segment, b: &Segment) -> bool {
    Segment {
        version: 0,
        ..a.clone()
    } == Segment {
        version: 0,
        ..b.clone()
    }
}

/// The keys the request names: the listed ones (or all of the source's), and of those
/// only the ones with the tag when one is given. Sorted, never empty.
fn keys(source: &EnvState, request: &Request) -> Result<Vec<String>, EnvError> {
    let listed = comma_list(&request.flags);
    let mut keys: Vec<String> = if listed.is_empty() {
        source.snapshot.flags().map(|f| f.key.to_string()).collect()
    } else {
        listed
    };
    if !request.tag.is_empty() {
        keys.retain(|k| {
            source
                .snapshot
                .flag(k)
                .is_some_and(|f| f.tags.contains(&request.tag))
        });
    }
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Err(EnvError::BadRequest(format!(
            "no flag of `{}` matches{}; nothing to promote",
            request.from,
            if request.tag.is_empty() {
                String::new()
            } else {
                format!(" the tag `{}`", request.tag)
            }
        )));
    }
    Ok(keys)
}

/// What promoting `request` would change.
pub fn preview(state: &AppState, request: &Request) -> Result<Preview, EnvError> {
    if request.from == request.to {
        return Err(EnvError::BadRequest(
            "choose two different environments".into(),
        ));
    }
    let source = environment(state, &request.from)?;
    let target = environment(state, &request.to)?;
    let keys = keys(&source, request)?;
    let changes = promotion_diff(state, &request.from, &request.to, &keys)?;
    let seen = PreviewedVersions::of(&changes, &source, &target);
    let mut segment_keys: Vec<String> = Vec::new();
    let items: Vec<Item> = changes
        .iter()
        .map(|change| {
            let (class, before, after) = match change {
                PromotionDiff::Added(after) => ("added", None, Some(after.as_ref())),
                PromotionDiff::Changed(before, after) => {
                    ("changed", Some(before.as_ref()), Some(after.as_ref()))
                }
                PromotionDiff::Same(_) => ("same", None, None),
            };
            if let Some(after) = after {
                for rule in &after.rules {
                    segment_keys.extend(rule.when.segments.iter().map(ToString::to_string));
                }
            }
            Item {
                key: change.key().to_owned(),
                class,
                diff: after.map_or_else(Vec::new, |after| {
                    diff(before.map(comparable).as_ref(), Some(&comparable(after)))
                }),
            }
        })
        .collect();
    segment_keys.sort_unstable();
    segment_keys.dedup();
    let find = |env: &EnvState, key: &str| {
        env.snapshot
            .segments()
            .find(|s| s.key.as_str() == key)
            .cloned()
    };
    let segments = segment_keys
        .iter()
        .filter_map(|key| match (find(&source, key), find(&target, key)) {
            (_, None) => Some(format!(
                "segment `{key}` does not exist in `{}`: promotion copies flags only, so \
                 create it there first (the promotion is refused until then)",
                request.to
            )),
            (Some(a), Some(b)) if !same_segment(&a, &b) => Some(format!(
                "segment `{key}` differs between the environments: the promoted flags will \
                 use `{}`'s version",
                request.to
            )),
            _ => None,
        })
        .collect();
    let mut only_in_target: Vec<String> = target
        .snapshot
        .flags()
        .filter(|f| source.snapshot.flag(f.key.as_str()).is_none())
        .map(|f| f.key.to_string())
        .collect();
    only_in_target.sort_unstable();
    Ok(Preview {
        changes: items.iter().filter(|i| i.class != "same").count(),
        seen: seen
            .source
            .iter()
            .map(|(key, version)| Seen {
                key: key.clone(),
                source: *version,
                target: seen
                    .target
                    .get(key)
                    .copied()
                    .flatten()
                    .map_or_else(|| "-".to_owned(), |v| v.to_string()),
            })
            .collect(),
        items,
        segments,
        only_in_target,
    })
}

fn status_of(error: &EnvError) -> StatusCode {
    match error {
        EnvError::NoEnvironment(_) | EnvError::NotFound(_) => StatusCode::NOT_FOUND,
        EnvError::PreconditionFailed { .. } => StatusCode::CONFLICT,
        EnvError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn page_of(
    state: &AppState,
    viewer: &Viewer,
    request: Request,
    status: StatusCode,
    notice: Option<String>,
    mut message: Option<String>,
    problems: Vec<FieldProblem>,
) -> Result<Response, PageError> {
    let mut status = status;
    let preview = if request.from.is_empty() || request.to.is_empty() {
        None
    } else {
        match preview(state, &request) {
            Ok(preview) => Some(preview),
            Err(e @ (EnvError::Store(_) | EnvError::Encode(_))) => {
                return Err(crate::error::ApiError::from(e).into())
            }
            Err(e) => {
                status = status_of(&e);
                message = Some(e.to_string());
                None
            }
        }
    };
    let chrome = Chrome::new(state, viewer, "Promote", None);
    render_status(
        status,
        &PromotePage {
            chrome,
            request,
            preview,
            notice,
            message,
            problems,
        },
    )
}

/// `GET /console/promote`: the form, and the preview once both environments are chosen.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(request): Query<Request>,
) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    page_of(
        &state,
        &viewer,
        request,
        StatusCode::OK,
        None,
        None,
        Vec::new(),
    )
}

/// The versions the preview carried: `seen` = `KEY SOURCE TARGET` (`-`: absent).
fn previewed(fields: &Fields) -> Result<PreviewedVersions, PageError> {
    let malformed =
        || PageError::bad_request("the preview's versions are malformed; preview again");
    let mut seen = PreviewedVersions::default();
    for (_, value) in fields.iter().filter(|(n, _)| n == "seen") {
        let mut parts = value.split(' ');
        let (Some(key), Some(source), Some(target), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let source: u64 = source.parse().map_err(|_| malformed())?;
        let target: Option<u64> = match target {
            "-" => None,
            v => Some(v.parse().map_err(|_| malformed())?),
        };
        seen.source.insert(key.to_owned(), source);
        seen.target.insert(key.to_owned(), target);
    }
    if seen.source.is_empty() {
        return Err(PageError::bad_request(
            "the confirmation names no flags; preview first",
        ));
    }
    Ok(seen)
}

/// `POST /console/promote`: applies exactly what the preview showed, or nothing.
pub async fn confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    let request = Request {
        from: field(&fields, "from").to_owned(),
        to: field(&fields, "to").to_owned(),
        flags: field(&fields, "flags").to_owned(),
        tag: field(&fields, "tag").to_owned(),
    };
    let seen = previewed(&fields)?;
    let keys: Vec<String> = seen.source.keys().cloned().collect();
    let reason = Some(field(&fields, "reason").trim().to_owned()).filter(|r| !r.is_empty());
    let result = promote(
        &state,
        &viewer.principal,
        &request.from,
        &request.to,
        &keys,
        reason,
        Some(&seen),
    )
    .await;
    match result {
        Ok(promoted) => {
            let notice = format!(
                "Promoted {} flag(s) from `{}` to `{}` (now at revision {}).",
                promoted.flags.len(),
                request.from,
                request.to,
                promoted.revision
            );
            page_of(
                &state,
                &viewer,
                request,
                StatusCode::OK,
                Some(notice),
                None,
                Vec::new(),
            )
        }
        Err(EnvError::Invalid(errors)) => {
            let problems = crate::error::field_problems(&errors);
            let message = Some(format!(
                "Nothing was promoted: `{}` would not be valid with these flags.",
                request.to
            ));
            page_of(
                &state,
                &viewer,
                request,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                message,
                problems,
            )
        }
        Err(e @ (EnvError::Store(_) | EnvError::Encode(_))) => {
            Err(crate::error::ApiError::from(e).into())
        }
        Err(e) => {
            let status = status_of(&e);
            page_of(
                &state,
                &viewer,
                request,
                status,
                None,
                Some(e.to_string()),
                Vec::new(),
            )
        }
    }
}
