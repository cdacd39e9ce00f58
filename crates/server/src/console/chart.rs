//! A line chart over time drawn by the server as inline SVG (`templates/console/chart.html`):
//! series as polylines (steps or points), horizontal threshold lines, vertical markers,
//! and dots coloured by a verdict. The page carries the same numbers as a table, so the
//! chart is never the only way to read them.

use crate::console::history::rfc3339;

/// The drawing's size in SVG units (scaled to the page's width).
pub const WIDTH: f64 = 720.0;
/// The drawing's height.
pub const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = WIDTH - 16.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = HEIGHT - 28.0;
const COLOURS: [&str; 6] = [
    "#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2",
];

/// One series.
pub struct Line {
    /// Its name (legend, `data-series`).
    pub name: String,
    /// SVG `points`.
    pub points: String,
    /// Stroke colour.
    pub colour: &'static str,
    /// The last value, for the legend.
    pub last: String,
}

/// A threshold as a dashed horizontal line.
pub struct Threshold {
    /// Where (SVG y).
    pub y: f64,
    /// `max 0.05`.
    pub label: String,
}

/// A vertical marker (a step, an event).
pub struct Marker {
    /// Where (SVG x).
    pub x: f64,
    /// Its short text (`1`, `rollback`).
    pub text: String,
    /// What it marks, in full.
    pub label: String,
    /// How its text sits on the line (`middle`; `end` near the right edge, so it
    /// is not cut off).
    pub anchor: &'static str,
}

/// A value with a verdict.
pub struct Dot {
    /// SVG x.
    pub x: f64,
    /// SVG y.
    pub y: f64,
    /// `pass`, `fail` or `ignored`.
    pub class: &'static str,
    /// What it says (time, value, verdict).
    pub label: String,
}

/// A tick on an axis.
pub struct Tick {
    /// Where.
    pub at: f64,
    /// Its text.
    pub text: String,
}

/// A chart ready to render.
pub struct Chart {
    /// The SVG's id.
    pub id: String,
    /// Its title (SVG `<title>` and caption).
    pub title: String,
    /// Its series.
    pub lines: Vec<Line>,
    /// Its thresholds.
    pub thresholds: Vec<Threshold>,
    /// Its markers.
    pub markers: Vec<Marker>,
    /// Its dots.
    pub dots: Vec<Dot>,
    /// The y axis' ticks.
    pub y_ticks: Vec<Tick>,
    /// The x axis' ticks.
    pub x_ticks: Vec<Tick>,
    /// Drawing bounds, for the template.
    pub width: f64,
    /// See `width`.
    pub height: f64,
    /// See `width`.
    pub left: f64,
    /// See `width`.
    pub right: f64,
    /// See `width`.
    pub top: f64,
    /// See `width`.
    pub bottom: f64,
}

/// Builds a [`Chart`] over `[from, to]` (ms since the epoch) and `[0, y_max]`.
pub struct ChartBuilder {
    chart: Chart,
    from: u64,
    to: u64,
    y_max: f64,
}

impl ChartBuilder {
    /// An empty chart with its time and value ranges (`y_max` > 0).
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        from: u64,
        to: u64,
        y_max: f64,
    ) -> Self {
        let to = to.max(from + 1000);
        let y_max = if y_max.is_finite() && y_max > 0.0 {
            y_max
        } else {
            1.0
        };
        let y_ticks = (0..=4)
            .map(|i| {
                let value = y_max * f64::from(i) / 4.0;
                Tick {
                    at: BOTTOM - (BOTTOM - TOP) * f64::from(i) / 4.0,
                    text: number(value),
                }
            })
            .collect();
        let x_ticks = (0..=3)
            .map(|i| {
                let ms = from + (to - from) * i / 3;
                Tick {
                    at: LEFT + (RIGHT - LEFT) * (i as f64) / 3.0,
                    text: time_label(ms, to - from),
                }
            })
            .collect();
        ChartBuilder {
            chart: Chart {
                id: id.into(),
                title: title.into(),
                lines: Vec::new(),
                thresholds: Vec::new(),
                markers: Vec::new(),
                dots: Vec::new(),
                y_ticks,
                x_ticks,
                width: WIDTH,
                height: HEIGHT,
                left: LEFT,
                right: RIGHT,
                top: TOP,
                bottom: BOTTOM,
            },
            from,
            to,
            y_max,
        }
    }

    fn x(&self, ms: u64) -> f64 {
        let span = (self.to - self.from) as f64;
        let at = ms.clamp(self.from, self.to) - self.from;
        round(LEFT + (RIGHT - LEFT) * (at as f64) / span)
    }

    fn y(&self, value: f64) -> f64 {
        round(BOTTOM - (BOTTOM - TOP) * (value.clamp(0.0, self.y_max) / self.y_max))
    }

    /// A series that holds each value until the next (weights), drawn to `until`.
    pub fn steps(mut self, name: impl Into<String>, values: &[(u64, f64)], until: u64) -> Self {
        let mut points = Vec::new();
        for (i, &(at, value)) in values.iter().enumerate() {
            let y = self.y(value);
            points.push(format!("{},{y}", self.x(at)));
            let next = values.get(i + 1).map_or(until, |&(next, _)| next);
            points.push(format!("{},{y}", self.x(next)));
        }
        self.push_line(name.into(), points, values.last().map(|&(_, v)| v));
        self
    }

    /// A series joining its points (measurements).
    pub fn points(mut self, name: impl Into<String>, values: &[(u64, f64)]) -> Self {
        let points = values
            .iter()
            .map(|&(at, value)| format!("{},{}", self.x(at), self.y(value)))
            .collect();
        self.push_line(name.into(), points, values.last().map(|&(_, v)| v));
        self
    }

    fn push_line(&mut self, name: String, points: Vec<String>, last: Option<f64>) {
        let colour = COLOURS[self.chart.lines.len() % COLOURS.len()];
        self.chart.lines.push(Line {
            name,
            points: points.join(" "),
            colour,
            last: last.map_or_else(|| "–".to_owned(), number),
        });
    }

    /// A dashed line at `value`.
    pub fn threshold(mut self, value: f64, label: impl Into<String>) -> Self {
        let y = self.y(value);
        self.chart.thresholds.push(Threshold {
            y,
            label: label.into(),
        });
        self
    }

    /// A vertical marker at `at`.
    pub fn marker(mut self, at: u64, text: impl Into<String>, label: impl Into<String>) -> Self {
        let x = self.x(at);
        let near_right = x > self.chart.right - (self.chart.right - self.chart.left) / 5.0;
        self.chart.markers.push(Marker {
            x,
            text: text.into(),
            label: label.into(),
            anchor: if near_right { "end" } else { "middle" },
        });
        self
    }

    /// A dot at `(at, value)` with a verdict's class.
    pub fn dot(
        mut self,
        at: u64,
        value: f64,
        class: &'static str,
        label: impl Into<String>,
    ) -> Self {
        let (x, y) = (self.x(at), self.y(value));
        self.chart.dots.push(Dot {
            x,
            y,
            class,
            label: label.into(),
        });
        self
    }

    /// The chart.
    pub fn build(self) -> Chart {
        self.chart
    }
}

/// A time on the x axis: its date (`12-05`) over spans of two days or more, else its
/// time of day (UTC, `16:42:45`).
fn time_label(ms: u64, span_ms: u64) -> String {
    const TWO_DAYS_MS: u64 = 2 * 24 * 60 * 60 * 1000;
    let text = rfc3339(ms);
    let part = if span_ms >= TWO_DAYS_MS {
        5..10
    } else {
        11..19
    };
    text.get(part).unwrap_or_default().to_owned()
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A value as the page shows it: at most 4 significant decimals, no trailing zeros.
pub fn number(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_series_holds_each_value_until_the_next() {
        let chart = ChartBuilder::new("c", "t", 0, 10_000, 100.0)
            .steps("w", &[(0, 10.0), (5_000, 50.0)], 10_000)
            .build();
        let y10 = round(BOTTOM - (BOTTOM - TOP) * 0.1);
        let y50 = round(BOTTOM - (BOTTOM - TOP) * 0.5);
        let mid = round(LEFT + (RIGHT - LEFT) / 2.0);
        assert_eq!(
            chart.lines[0].points,
            format!("{LEFT},{y10} {mid},{y10} {mid},{y50} {RIGHT},{y50}")
        );
        assert_eq!(chart.lines[0].last, "50");
    }

    #[test]
    fn the_time_axis_shows_dates_over_days_and_times_within_a_day() {
        const DAY: u64 = 24 * 60 * 60 * 1000;
        // 2026-12-05T16:42:45Z
        let now = 1_796_488_965_000;
        let month = ChartBuilder::new("c", "t", now - 30 * DAY, now, 1.0).build();
        let dates: Vec<&str> = month.x_ticks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(dates, ["11-05", "11-15", "11-25", "12-05"]);
        let minute = ChartBuilder::new("c", "t", now - 60_000, now, 1.0).build();
        assert_eq!(minute.x_ticks[3].text, "16:42:45");
        assert_eq!(minute.x_ticks[0].text, "16:41:45");
    }

    #[test]
    fn values_above_the_range_stay_inside_the_plot() {
        let chart = ChartBuilder::new("c", "t", 0, 1_000, 1.0)
            .points("v", &[(0, 5.0), (2_000, -1.0)])
            .threshold(0.5, "max 0.5")
            .build();
        assert_eq!(
            chart.lines[0].points,
            format!("{LEFT},{TOP} {RIGHT},{BOTTOM}")
        );
        assert!(chart.thresholds[0].y > TOP && chart.thresholds[0].y < BOTTOM);
    }

    #[test]
    fn numbers_lose_their_trailing_zeros() {
        assert_eq!(number(0.05), "0.05");
        assert_eq!(number(100.0), "100");
        assert_eq!(number(0.123456), "0.1235");
    }
}
