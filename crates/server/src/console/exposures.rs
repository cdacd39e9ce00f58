//! A flag's exposures and tracked events over time, from the counts SDKs post to
//! `POST /v1/sdk/metrics` (stored per minute): an inline SVG chart drawn here — one
//! line per variant's exposures and per tracked event and variant — with a vertical
//! marker at every change of the flag in its audit log, and the same numbers as a
//! table. The window is the last hour (1-minute buckets), day (30 minutes) or 7 days
//! (2 hours); each bucket is one read of the store's per-minute sums.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use switchyard_core::model::{EnvName, FlagKey};

use crate::console::page::{readable_env, render, Chrome, PageError};
use crate::console::session::Viewer;
use crate::environments::now_ms;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::AuditQuery;

/// The chart's drawing area, in SVG user units.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 32.0;

/// Line colours, cycled.
const COLOURS: [&str; 8] = [
    "#1f5fbf", "#127a3a", "#b42318", "#9a5b00", "#6941c6", "#0e7490", "#c11574", "#475467",
];

/// A window the page offers: its query value, label, bucket count and bucket size.
struct Window {
    name: &'static str,
    label: &'static str,
    buckets: u64,
    minutes: u64,
}

const WINDOWS: [Window; 3] = [
    Window {
        name: "hour",
        label: "Last hour",
        buckets: 60,
        minutes: 1,
    },
    Window {
        name: "day",
        label: "Last day",
        buckets: 48,
        minutes: 30,
    },
    Window {
        name: "week",
        label: "Last 7 days",
        buckets: 84,
        minutes: 120,
    },
];

/// The query string.
#[derive(Debug, Default, Deserialize)]
pub struct ExposureQuery {
    /// `hour`, `day` or `week`.
    #[serde(default)]
    pub window: Option<String>,
}

/// One line of the chart.
pub struct Series {
    /// For people: `exposures of on`, `event checkout_error (on)`.
    pub name: String,
    /// `exposures` or `event`.
    pub class: &'static str,
    /// Its colour.
    pub colour: &'static str,
    /// Per bucket.
    pub counts: Vec<u64>,
    /// Over the window.
    pub total: u64,
    /// SVG polyline points.
    pub points: String,
}

/// A change of the flag, drawn as a vertical line.
pub struct Marker {
    /// 1-based, newest last; the chart labels the line with it.
    pub number: usize,
    /// Its x position.
    pub x: String,
    /// What happened, for people.
    pub label: String,
}

/// One row of the table.
pub struct Bucket {
    /// When the bucket starts (UTC).
    pub label: String,
    /// Per series, in the order of the series.
    pub counts: Vec<u64>,
}

/// An axis label.
pub struct Tick {
    /// Position (x or y).
    pub at: String,
    /// Text.
    pub text: String,
}

#[derive(Template)]
#[template(path = "console/exposures.html")]
struct ExposurePage {
    chrome: Chrome,
    env: String,
    key: String,
    window: &'static str,
    windows: Vec<(&'static str, &'static str)>,
    window_label: &'static str,
    series: Vec<Series>,
    markers: Vec<Marker>,
    rows: Vec<Bucket>,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    width: f64,
    height: f64,
    plot_left: f64,
    plot_right: f64,
    plot_top: f64,
    plot_bottom: f64,
}

fn utc(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `2024-05-01T12:30:00Z` as `05-01 12:30` (week) or `12:30`.
fn bucket_label(ms: u64, with_date: bool) -> String {
    let text = utc(ms);
    let range = if with_date { 5..16 } else { 11..16 };
    text.get(range).unwrap_or(&text).replace('T', " ")
}

/// Counts are far below 2^52, so the conversion to f64 is exact where it matters.
#[allow(clippy::cast_precision_loss)]
fn as_f64(n: u64) -> f64 {
    n as f64
}

fn y_of(count: u64, max: u64) -> f64 {
    let plot = HEIGHT - TOP - BOTTOM;
    TOP + plot - as_f64(count) / as_f64(max.max(1)) * plot
}

fn x_of(bucket: usize, buckets: usize) -> f64 {
    let plot = WIDTH - LEFT - RIGHT;
    LEFT + (as_f64(bucket as u64) + 0.5) * plot / as_f64(buckets.max(1) as u64)
}

/// `GET /console/envs/{env}/flags/{key}/exposures?window=hour|day|week`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((env, key)): Path<(String, String)>,
    Query(query): Query<ExposureQuery>,
) -> Result<Response, PageError> {
    let current = readable_env(&state, &viewer, &env)?;
    if current.snapshot.flag(&key).is_none() {
        return Err(PageError::not_found(format!(
            "flag `{key}` does not exist in `{env}`"
        )));
    }
    let asked = query.window.as_deref().unwrap_or("hour");
    let window = WINDOWS.iter().find(|w| w.name == asked).ok_or_else(|| {
        PageError::bad_request(format!(
            "`window` must be `hour`, `day` or `week`, not `{asked}`"
        ))
    })?;
    let now_minute = now_ms() / 60_000;
    let first_minute = (now_minute + 1).saturating_sub(window.buckets * window.minutes);
    let start_ms = first_minute * 60_000;
    let end_ms = (now_minute + 1) * 60_000;
    let store = state.envs.store();
    let (env_name, flag_key) = (EnvName::new(env.as_str()), FlagKey::new(key.as_str()));

    // Series key: (0, variant, "") for exposures, (1, variant, event) for events.
    let mut by_series: BTreeMap<(u8, String, String), Vec<u64>> = BTreeMap::new();
    let buckets = usize::try_from(window.buckets).unwrap_or(0);
    for bucket in 0..window.buckets {
        let from = first_minute + bucket * window.minutes;
        let counts = store
            .flag_metrics(&env_name, &flag_key, from, from + window.minutes - 1)
            .await
            .map_err(ApiError::from)?;
        let index = usize::try_from(bucket).unwrap_or(0);
        for (variant, counts) in counts {
            let mut add = |series: (u8, String, String), n: u64| {
                by_series.entry(series).or_insert_with(|| vec![0; buckets])[index] += n;
            };
            if counts.exposures > 0 {
                add((0, variant.clone(), String::new()), counts.exposures);
            }
            for (event, n) in counts.events {
                add((1, variant.clone(), event), n);
            }
        }
    }
    let max = by_series
        .values()
        .flat_map(|c| c.iter().copied())
        .max()
        .unwrap_or(0);
    let series: Vec<Series> = by_series
        .into_iter()
        .enumerate()
        .map(|(i, ((kind, variant, event), counts))| Series {
            name: if kind == 0 {
                format!("exposures of {variant}")
            } else {
                format!("event {event} ({variant})")
            },
            class: if kind == 0 { "exposures" } else { "event" },
            colour: COLOURS[i % COLOURS.len()],
            total: counts.iter().sum(),
            points: counts
                .iter()
                .enumerate()
                .map(|(b, n)| format!("{:.1},{:.1}", x_of(b, buckets), y_of(*n, max)))
                .collect::<Vec<_>>()
                .join(" "),
            counts,
        })
        .collect();

    let audit = AuditQuery {
        env: Some(env_name.clone()),
        target: Some(key.clone()),
        since_ms: Some(start_ms),
        limit: 200,
        ..AuditQuery::default()
    };
    let mut changes: Vec<_> = store
        .audit(&audit)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .filter(|e| e.action.starts_with("flag.") && e.at_ms < end_ms)
        .collect();
    changes.reverse();
    let plot = WIDTH - LEFT - RIGHT;
    let markers = changes
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let version = e
                .after
                .as_ref()
                .and_then(|a| a.get("version"))
                .and_then(serde_json::Value::as_u64)
                .map(|v| format!(" → version {v}"))
                .unwrap_or_default();
            let reason = e.reason.map(|r| format!(" ({r})")).unwrap_or_default();
            let share = as_f64(e.at_ms.saturating_sub(start_ms)) / as_f64(end_ms - start_ms);
            Marker {
                number: i + 1,
                x: format!("{:.1}", LEFT + share * plot),
                label: format!(
                    "{}{version} by {} at {}{reason}",
                    e.action,
                    e.actor,
                    utc(e.at_ms)
                ),
            }
        })
        .collect();

    let with_date = window.name == "week";
    let rows = (0..buckets)
        .filter(|b| series.iter().any(|s| s.counts[*b] > 0))
        .map(|b| Bucket {
            label: bucket_label(
                (first_minute + b as u64 * window.minutes) * 60_000,
                with_date,
            ),
            counts: series.iter().map(|s| s.counts[b]).collect(),
        })
        .collect();
    let x_ticks = [0, buckets / 2, buckets.saturating_sub(1)]
        .into_iter()
        .map(|b| Tick {
            at: format!("{:.1}", x_of(b, buckets)),
            text: bucket_label(
                (first_minute + b as u64 * window.minutes) * 60_000,
                with_date,
            ),
        })
        .collect();
    let y_ticks = [0, max / 2, max]
        .into_iter()
        .map(|n| Tick {
            at: format!("{:.1}", y_of(n, max)),
            text: n.to_string(),
        })
        .collect();
    let chrome = Chrome::new(
        &state,
        &viewer,
        format!("Exposures of {key} in {env}"),
        Some(&env),
    )
    .about_flag(&key);
    render(&ExposurePage {
        chrome,
        env,
        key,
        window: window.name,
        windows: WINDOWS.iter().map(|w| (w.name, w.label)).collect(),
        window_label: window.label,
        series,
        markers,
        rows,
        x_ticks,
        y_ticks,
        width: WIDTH,
        height: HEIGHT,
        plot_left: LEFT,
        plot_right: WIDTH - RIGHT,
        plot_top: TOP,
        plot_bottom: HEIGHT - BOTTOM,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_spread_over_the_plot_and_counts_scale_to_its_height() {
        assert!((x_of(0, 2) - (LEFT + (WIDTH - LEFT - RIGHT) / 4.0)).abs() < 1e-9);
        assert!((y_of(0, 10) - (HEIGHT - BOTTOM)).abs() < 1e-9);
        assert!((y_of(10, 10) - TOP).abs() < 1e-9);
        assert!(
            (y_of(0, 0) - (HEIGHT - BOTTOM)).abs() < 1e-9,
            "no data: flat"
        );
    }

    #[test]
    fn labels_show_the_date_only_for_the_week() {
        let ms = 1_714_566_600_000; // 2024-05-01T12:30:00Z
        assert_eq!(bucket_label(ms, false), "12:30");
        assert_eq!(bucket_label(ms, true), "05-01 12:30");
    }
}
