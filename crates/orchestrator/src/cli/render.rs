//! How the CLI prints releases, timelines and tables.

use super::*;

/// `HH:MM:SS  service  message`, then one indented line per measurement.
pub(crate) fn timeline_lines(entry: &Entry) -> String {
    let service = entry.service.as_deref().unwrap_or("-");
    let mut text = format!("{}  {service}  {}\n", clock(entry.at), entry.message);
    for m in &entry.measurements {
        text.push_str(&format!(
            "          {} ({})\n",
            m.explain(),
            name_of(&m.verdict)
        ));
    }
    text
}

pub(crate) fn outcome_line(release: &Release) -> String {
    let name = release.name();
    let reason = release
        .state
        .reason
        .as_deref()
        .unwrap_or("no reason recorded");
    match release.state.phase {
        Phase::Succeeded => format!("release {name} promoted"),
        Phase::RolledBack => format!("release {name} rolled back: {reason}"),
        Phase::Failed => {
            format!("release {name} failed: {reason}; its rollback did not complete, so look at it")
        }
        phase => format!("release {name} is {}", name_of(&phase)),
    }
}

/// `HH:MM:SS` in UTC.
pub(crate) fn clock(at: Millis) -> String {
    i64::try_from(at)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "--:--:--".to_owned(),
            |t| t.format("%H:%M:%S").to_string(),
        )
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub(crate) fn date_time(at: Millis) -> String {
    i64::try_from(at)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || at.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

/// `[#####...............] 25%`
pub fn progress_bar(weight: u32) -> String {
    const WIDTH: usize = 20;
    let weight = weight.min(100);
    let filled = (weight as usize * WIDTH + 50) / 100;
    format!(
        "[{}{}] {weight}%",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    )
}

/// Columns padded to their widest cell, two spaces apart.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Every release, one row each.
pub fn render_list(releases: &[ReleaseSummary]) -> String {
    if releases.is_empty() {
        return "no releases\n".to_owned();
    }
    let mut rows = vec![
        ["NAME", "ENVIRONMENT", "PHASE", "CREATED (UTC)", "SERVICES"]
            .map(String::from)
            .to_vec(),
    ];
    for r in releases {
        let services: Vec<String> = r
            .services
            .iter()
            .map(|s| match s.step {
                Some(step) => format!(
                    "{} {step}/{} {}% ({})",
                    s.name,
                    s.steps,
                    s.weight,
                    name_of(&s.phase)
                ),
                None => format!("{} ({})", s.name, name_of(&s.phase)),
            })
            .collect();
        let mut phase = name_of(&r.phase);
        if r.hotfix.is_some() {
            phase.push_str(" (hotfix)");
        }
        rows.push(vec![
            r.name.clone(),
            r.environment.clone(),
            phase,
            date_time(r.created_at),
            services.join(", "),
        ]);
    }
    table(&rows)
}

/// Past releases, one row each: name, environments, outcome, start, duration, reason.
pub fn render_history(releases: &[ReleaseSummary]) -> String {
    if releases.is_empty() {
        return "no releases\n".to_owned();
    }
    let mut rows = vec![[
        "NAME",
        "ENVIRONMENT",
        "OUTCOME",
        "STARTED (UTC)",
        "DURATION",
        "REASON",
    ]
    .map(String::from)
    .to_vec()];
    for r in releases {
        let environments = if r.environments.is_empty() {
            r.environment.clone()
        } else {
            r.environments.join(",")
        };
        let took = match (r.started_at, r.finished_at) {
            (Some(started), Some(finished)) => {
                let ms = finished.saturating_sub(started);
                // Seconds are enough past a minute; short releases keep their milliseconds.
                let took = if ms >= 60_000 {
                    Duration::from_secs(ms / 1000)
                } else {
                    Duration::from_millis(ms)
                };
                humantime::format_duration(took).to_string()
            }
            _ => "-".to_owned(),
        };
        let reason = r.reason.as_deref().map_or_else(
            || "-".to_owned(),
            |reason| reason.lines().collect::<Vec<_>>().join(" "),
        );
        rows.push(vec![
            r.name.clone(),
            environments,
            r.phase.outcome().to_owned(),
            r.started_at.map_or_else(|| "-".to_owned(), date_time),
            took,
            reason,
        ]);
    }
    table(&rows)
}

/// One release: its services with step, weight bar and last analysis.
pub fn render_release(release: &Release) -> String {
    let summary = report::summary(release);
    let state = &release.state;
    let mut text = format!(
        "release {}  environment {}  phase {}\n",
        summary.name,
        summary.environment,
        name_of(&summary.phase)
    );
    if let Some(reason) = &state.reason {
        text.push_str(&format!("why: {reason}\n"));
    }
    text.push('\n');
    let mut rows = vec![["SERVICE", "PHASE", "STEP", "WEIGHT"]
        .map(String::from)
        .to_vec()];
    for s in &summary.services {
        let step = s
            .step
            .map_or_else(|| format!("-/{}", s.steps), |i| format!("{i}/{}", s.steps));
        rows.push(vec![
            s.name.clone(),
            name_of(&s.phase),
            step,
            progress_bar(s.weight),
        ]);
    }
    text.push_str(&table(&rows));
    let analysed: Vec<_> = state
        .services
        .iter()
        .filter(|s| !s.last_analysis.is_empty())
        .collect();
    if !analysed.is_empty() {
        text.push_str("\nlast analysis\n");
        for s in analysed {
            for m in &s.last_analysis {
                text.push_str(&format!(
                    "  {}  {} ({})\n",
                    s.name,
                    m.explain(),
                    name_of(&m.verdict)
                ));
            }
        }
    }
    if let Some(last) = state.timeline.last() {
        text.push_str(&format!("\nlast event: {}", timeline_lines(last)));
    }
    text
}
