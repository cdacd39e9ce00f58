//! The flag list of an environment: key, description, kind, tags and each flag's state
//! in every environment the viewer may see, side by side; search, filters, and one
//! page at a time (so 10 000 flags render as fast as 50).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use switchyard_core::model::Serve;
use switchyard_core::Flag;

use crate::console::page::{readable_env, render, Chrome, PageError};
use crate::console::session::Viewer;
use crate::state::AppState;

/// Flags per page.
pub const PAGE_SIZE: usize = 50;

/// What a flag serves, in a word or three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagState {
    /// `on`, `off`, `killed` or `ramping` (the filter's values, and the CSS class).
    pub class: &'static str,
    /// For people: `killed`, `serves on`, `ramping 30 %`.
    pub label: String,
}

/// The share (in 1/100 000) of the default rollout that is not the baseline
/// ([`Flag::baseline`]: the off variant, or the last variant).
pub fn ramp_weight(flag: &Flag) -> Option<u32> {
    match &flag.default {
        Serve::Rollout(rollout) => Some(
            rollout
                .split
                .iter()
                .filter(|s| Some(s.variant.as_str()) != flag.baseline())
                .map(|s| s.weight)
                .sum(),
        ),
        Serve::Variant(_) => None,
    }
}

/// A percentage of 1/100 000 units, without a trailing `.0`.
pub fn percent(weight: u32) -> String {
    if weight % 1000 == 0 {
        format!("{}", weight / 1000)
    } else {
        format!("{:.1}", f64::from(weight) / 1000.0)
    }
}

/// The state of `flag`.
pub fn state_of(flag: &Flag) -> FlagState {
    if !flag.enabled {
        return FlagState {
            class: "killed",
            label: "killed".to_owned(),
        };
    }
    match (&flag.default, ramp_weight(flag)) {
        (Serve::Variant(v), _) => FlagState {
            class: if Some(v.as_str()) == flag.baseline() && flag.rules.is_empty() {
                "off"
            } else {
                "on"
            },
            label: format!("serves {v}"),
        },
        (_, Some(w)) if w >= 100_000 => FlagState {
            class: "on",
            label: "on (100 %)".to_owned(),
        },
        (_, Some(0)) => FlagState {
            class: "off",
            label: "ramping 0 %".to_owned(),
        },
        (_, w) => FlagState {
            class: "ramping",
            label: format!("ramping {} %", percent(w.unwrap_or(0))),
        },
    }
}

/// The list's query string.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Words found in the key or the description.
    #[serde(default)]
    pub q: String,
    /// Only flags with this tag.
    #[serde(default)]
    pub tag: String,
    /// Only flags in this state here (`on`, `off`, `killed`, `ramping`).
    #[serde(default)]
    pub state: String,
    /// 1-based page.
    #[serde(default)]
    pub page: Option<usize>,
}

/// One row of the list.
pub struct Row {
    /// The flag's key.
    pub key: String,
    /// Its description.
    pub description: String,
    /// Its kind.
    pub kind: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its state in each shown environment (`None`: the environment lacks it).
    pub states: Vec<Option<FlagState>>,
}

/// The flag list page.
#[derive(Template)]
#[template(path = "console/flags.html")]
pub struct ListPage {
    chrome: Chrome,
    env: String,
    query: ListQuery,
    columns: Vec<String>,
    rows: Vec<Row>,
    total: usize,
    matching: usize,
    page: usize,
    pages: usize,
    tags: Vec<String>,
}

impl ListPage {
    fn link(&self, page: usize) -> String {
        let query = serde_urlencoded::to_string([
            ("q", self.query.q.as_str()),
            ("tag", self.query.tag.as_str()),
            ("state", self.query.state.as_str()),
            ("page", page.to_string().as_str()),
        ])
        .unwrap_or_default();
        format!("/console/envs/{}/flags?{query}", self.env)
    }
}

fn matches(flag: &Flag, query: &ListQuery, words: &[String]) -> bool {
    if !query.tag.is_empty() && !flag.tags.contains(&query.tag) {
        return false;
    }
    if !query.state.is_empty() && state_of(flag).class != query.state {
        return false;
    }
    words.iter().all(|word| {
        flag.key.as_str().to_lowercase().contains(word)
            || flag.description.to_lowercase().contains(word)
    })
}

/// Builds the list page (also what the bench renders).
pub fn list_page(
    state: &AppState,
    viewer: &Viewer,
    env: &str,
    query: ListQuery,
) -> Result<ListPage, PageError> {
    let current = readable_env(state, viewer, env)?;
    let chrome = Chrome::new(state, viewer, format!("Flags in {env}"), Some(env));
    let others: Vec<_> = chrome
        .envs
        .iter()
        .filter_map(|name| state.envs.get(name))
        .collect();
    let words: Vec<String> = query.q.split_whitespace().map(str::to_lowercase).collect();
    let mut hits: Vec<&Flag> = current
        .snapshot
        .flags()
        .filter(|f| matches(f, &query, &words))
        .collect();
    hits.sort_unstable_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let matching = hits.len();
    let pages = matching.div_ceil(PAGE_SIZE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let rows = hits
        .iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|flag| Row {
            key: flag.key.to_string(),
            description: flag.description.clone(),
            kind: format!("{:?}", flag.kind).to_lowercase(),
            tags: flag.tags.clone(),
            states: others
                .iter()
                .map(|other| other.snapshot.flag(flag.key.as_str()).map(state_of))
                .collect(),
        })
        .collect();
    let mut tags: Vec<String> = current
        .snapshot
        .flags()
        .flat_map(|f| f.tags.iter().cloned())
        .collect();
    tags.sort_unstable();
    tags.dedup();
    Ok(ListPage {
        columns: others.iter().map(|e| e.name.to_string()).collect(),
        total: current.snapshot.len(),
        env: env.to_owned(),
        chrome,
        query,
        rows,
        matching,
        page,
        pages,
        tags,
    })
}

/// `GET /console/envs/{env}/flags`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(env): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    render(&list_page(&state, &viewer, &env, query)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_read_as_people_say_them() {
        let flag = |extra: serde_json::Value| -> Flag {
            let mut base = json!({"key": "f", "kind": "boolean",
                "variants": {"on": true, "off": false}, "off_variant": "off",
                "default": {"variant": "off"}});
            if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
                base.extend(extra.clone());
            }
            serde_json::from_value(base).expect("flag")
        };
        let ramp = |on: u32| {
            json!({"default": {"rollout": {"split": [
            {"variant": "on", "weight": on}, {"variant": "off", "weight": 100_000 - on}]}}})
        };
        let cases = [
            (json!({}), "off", "serves off"),
            (json!({"default": {"variant": "on"}}), "on", "serves on"),
            (json!({"enabled": false}), "killed", "killed"),
            (ramp(30_000), "ramping", "ramping 30 %"),
            (ramp(2_500), "ramping", "ramping 2.5 %"),
            (ramp(100_000), "on", "on (100 %)"),
        ];
        for (extra, class, label) in cases {
            let state = state_of(&flag(extra.clone()));
            assert_eq!(
                (state.class, state.label.as_str()),
                (class, label),
                "{extra}"
            );
        }
    }
}
