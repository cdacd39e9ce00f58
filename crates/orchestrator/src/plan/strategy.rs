//! Release strategies and the hotfix path, and the steps each gives a service.
//!
//! A strategy is a shape of ramp, so each is turned into the weight steps the machine
//! already runs (`canary`: the plan's `steps`; `blue-green`: an optional preview at
//! weight 0, then one switch to 100 held for the bake; `rolling`: one step per batch of
//! servers); a hotfix collapses any of them into one step at 100 held for its bake. The
//! expansion is computed whenever a plan is read ([`super::PlanWritten::into_plan`]),
//! so a stored plan keeps only what was written.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schema::optional_duration;
use super::Step;

/// How a service's new version takes over: written `canary` (the default),
/// `blue-green`, `rolling`, or a map with `type` and the strategy's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Strategy {
    /// The plan's `steps`: weights rising step by step, each analysed.
    #[default]
    Canary,
    /// The new version at 0 % while checked, then all traffic at once.
    BlueGreen(BlueGreen),
    /// Old servers replaced by new ones a batch at a time.
    Rolling(Rolling),
}

/// `strategy: { type: blue-green, preview, bake, keep_previous }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlueGreen {
    /// How long the new version is analysed at weight 0 (reached only directly, e.g.
    /// by smoke tests) before the switch; no preview step when absent.
    pub preview: Option<Duration>,
    /// How long all traffic stays on the new version, analysed, before it is promoted;
    /// one analysis interval when absent.
    pub bake: Option<Duration>,
    /// How long after the promotion the previous version may still be switched back to
    /// (`rollback`); the orchestrator's rollback window when absent.
    pub keep_previous: Option<Duration>,
}

/// `strategy: { type: rolling, batch, max_unavailable, hold }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rolling {
    /// How many servers each batch replaces.
    pub batch: Batch,
    /// How many of the backend's servers may be out of service while a batch changes
    /// (a count, or a share rounded down): 0, the default, brings each batch's new
    /// servers up before any old one drains; from `batch` on, old servers drain
    /// before the new ones come up (no extra capacity needed).
    pub max_unavailable: Batch,
    /// How long each batch is held (and analysed); one analysis interval when absent.
    pub hold: Option<Duration>,
}

/// A number of servers: a count (`1`) or a share of the servers (`"25%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// This many servers.
    Count(u32),
    /// This percentage of the servers, rounded up.
    Percent(u32),
}

impl Batch {
    /// Servers per batch out of `servers` (at least one).
    pub fn size(self, servers: u32) -> u32 {
        match self {
            Batch::Count(n) => n.clamp(1, servers.max(1)),
            Batch::Percent(p) => (servers * p).div_ceil(100).clamp(1, servers.max(1)),
        }
    }

    /// Servers allowed out of service out of `servers`: a share rounded down (as
    /// Kubernetes rounds `maxUnavailable`), at most `servers`.
    pub fn unavailable(self, servers: u32) -> u32 {
        match self {
            Batch::Count(n) => n.min(servers),
            Batch::Percent(p) => (servers * p) / 100,
        }
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Batch::Count(n) => write!(f, "{n}"),
            Batch::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `hotfix: { reason, bake }`: the ramp collapses to one step at 100 held for `bake`
/// (one analysis interval when absent); gates, pre-checks and analysis still run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hotfix {
    /// Why the ramp is skipped; required.
    pub reason: String,
    /// How long the new version is held at 100 % and analysed before it is promoted.
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub bake: Option<Duration>,
}

impl Strategy {
    /// The word the strategy is written with.
    pub fn word(&self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::BlueGreen(_) => "blue-green",
            Strategy::Rolling(_) => "rolling",
        }
    }

    /// The steps a service with `servers` new servers (rolling) runs under this
    /// strategy, given the plan's written `steps` and its analysis `interval`.
    pub fn steps(&self, steps: &[Step], servers: u32, interval: Duration) -> Vec<Step> {
        match self {
            Strategy::Canary => steps.to_vec(),
            Strategy::BlueGreen(b) => {
                let preview = b.preview.map(|hold| held(0, hold));
                let switch = held(100, b.bake.unwrap_or(interval));
                preview.into_iter().chain([switch]).collect()
            }
            Strategy::Rolling(r) => {
                let servers = servers.max(1);
                let batch = r.batch.size(servers);
                let hold = r.hold.unwrap_or(interval);
                (1..=servers.div_ceil(batch))
                    .map(|k| held(((k * batch).min(servers) * 100) / servers, hold))
                    .collect()
            }
        }
    }
}

impl Hotfix {
    /// The one step a hotfix runs.
    pub fn steps(&self, interval: Duration) -> Vec<Step> {
        vec![held(100, self.bake.unwrap_or(interval))]
    }
}

fn held(weight: u32, hold: Duration) -> Step {
    Step {
        weight: Some(weight),
        hold: Some(hold),
        approve: false,
        gates: Vec::new(),
        ramp: None,
    }
}

/// [`Strategy`] as written in a map.
#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
struct Written {
    #[serde(rename = "type")]
    kind: String,
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    preview: Option<Duration>,
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    bake: Option<Duration>,
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    keep_previous: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch: Option<BatchWritten>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_unavailable: Option<BatchWritten>,
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    hold: Option<Duration>,
}

#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum BatchWritten {
    Count(i64),
    Text(String),
    /// Anything else (a float, a list): refused with the field's forms.
    #[serde(skip_serializing)]
    Other(serde::de::IgnoredAny),
}

const KINDS: &[&str] = &["canary", "blue-green", "rolling"];

impl Written {
    fn into_strategy(self) -> Result<Strategy, String> {
        let only = |allowed: &[&str]| -> Result<(), String> {
            let given = [
                ("preview", self.preview.is_some()),
                ("bake", self.bake.is_some()),
                ("keep_previous", self.keep_previous.is_some()),
                ("batch", self.batch.is_some()),
                ("max_unavailable", self.max_unavailable.is_some()),
                ("hold", self.hold.is_some()),
            ];
            match given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
                Some((field, _)) => Err(format!(
                    "`{field}` is not a setting of `{}` (it has {})",
                    self.kind,
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                )),
                None => Ok(()),
            }
        };
        match self.kind.as_str() {
            "canary" => only(&[]).map(|()| Strategy::Canary),
            "blue-green" => {
                only(&["preview", "bake", "keep_previous"])?;
                Ok(Strategy::BlueGreen(BlueGreen {
                    preview: self.preview,
                    bake: self.bake,
                    keep_previous: self.keep_previous,
                }))
            }
            "rolling" => {
                only(&["batch", "max_unavailable", "hold"])?;
                let batch = match self.batch {
                    None => {
                        return Err(
                            "`rolling` needs `batch`: a server count or a share like \"25%\""
                                .into(),
                        )
                    }
                    Some(BatchWritten::Count(n)) => match u32::try_from(n) {
                        Ok(n) if n >= 1 => Batch::Count(n),
                        _ => return Err("`batch` must be at least 1".into()),
                    },
                    Some(BatchWritten::Text(text)) => parse_batch(&text)?,
                    Some(BatchWritten::Other(_)) => {
                        return Err("`batch` is a server count or a share like \"25%\"".into())
                    }
                };
                let max_unavailable = match self.max_unavailable {
                    None => Batch::Count(0),
                    Some(BatchWritten::Count(n)) => {
                        u32::try_from(n).map(Batch::Count).map_err(|_| {
                            format!("`max_unavailable` must not be negative, not `{n}`")
                        })?
                    }
                    Some(BatchWritten::Text(text)) => parse_unavailable(&text)?,
                    Some(BatchWritten::Other(_)) => {
                        return Err(
                            "`max_unavailable` is a server count or a share like \"25%\"".into(),
                        )
                    }
                };
                Ok(Strategy::Rolling(Rolling {
                    batch,
                    max_unavailable,
                    hold: self.hold,
                }))
            }
            other => Err(format!(
                "unknown strategy `{other}`, expected one of {}",
                KINDS.join(", ")
            )),
        }
    }
}

fn parse_batch(text: &str) -> Result<Batch, String> {
    let trimmed = text.trim();
    let bad = || format!("`batch` is a server count or a share like \"25%\", not `{text}`");
    match trimmed.strip_suffix('%') {
        Some(p) => match p.trim().parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) => Ok(Batch::Percent(p)),
            Ok(_) => Err("a `batch` share is between 1% and 100%".into()),
            Err(_) => Err(bad()),
        },
        None => match trimmed.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Batch::Count(n)),
            _ => Err(bad()),
        },
    }
}

fn parse_unavailable(text: &str) -> Result<Batch, String> {
    let trimmed = text.trim();
    let bad =
        || format!("`max_unavailable` is a server count or a share like \"25%\", not `{text}`");
    match trimmed.strip_suffix('%') {
        Some(p) => match p.trim().parse::<u32>() {
            Ok(p) if p <= 100 => Ok(Batch::Percent(p)),
            Ok(_) => Err("a `max_unavailable` share is between 0% and 100%".into()),
            Err(_) => Err(bad()),
        },
        None => trimmed.parse::<u32>().map(Batch::Count).map_err(|_| bad()),
    }
}

impl Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let written = match self {
            Strategy::Canary => return s.serialize_str("canary"),
            Strategy::BlueGreen(b) if *b == BlueGreen::default() => {
                return s.serialize_str("blue-green")
            }
            Strategy::BlueGreen(b) => Written {
                kind: "blue-green".into(),
                preview: b.preview,
                bake: b.bake,
                keep_previous: b.keep_previous,
                ..Written::default()
            },
            Strategy::Rolling(r) => Written {
                kind: "rolling".into(),
                batch: Some(match r.batch {
                    Batch::Count(n) => BatchWritten::Count(n.into()),
                    Batch::Percent(_) => BatchWritten::Text(r.batch.to_string()),
                }),
                max_unavailable: match r.max_unavailable {
                    Batch::Count(0) => None,
                    Batch::Count(n) => Some(BatchWritten::Count(n.into())),
                    Batch::Percent(_) => Some(BatchWritten::Text(r.max_unavailable.to_string())),
                },
                hold: r.hold,
                ..Written::default()
            },
        };
        written.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Strategy;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`canary`, `blue-green`, `rolling` or `{ type, ... }`")
            }
            fn visit_str<E: serde::de::Error>(self, word: &str) -> Result<Strategy, E> {
                Written {
                    kind: word.to_owned(),
                    ..Written::default()
                }
                .into_strategy()
                .map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Strategy, A::Error> {
                Written::deserialize(serde::de::value::MapAccessDeserializer::new(map))?
                    .into_strategy()
                    .map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(steps: &[Step]) -> Vec<u32> {
        steps.iter().filter_map(|s| s.weight).collect()
    }

    #[test]
    fn rolling_steps_follow_the_batches() {
        let rolling = |batch| {
            Strategy::Rolling(Rolling {
                batch,
                max_unavailable: Batch::Count(0),
                hold: None,
            })
        };
        let interval = Duration::from_secs(30);
        assert_eq!(
            weights(&rolling(Batch::Percent(25)).steps(&[], 4, interval)),
            [25, 50, 75, 100]
        );
        assert_eq!(
            weights(&rolling(Batch::Count(2)).steps(&[], 5, interval)),
            [40, 80, 100]
        );
        assert_eq!(
            weights(&rolling(Batch::Count(9)).steps(&[], 3, interval)),
            [100]
        );
    }

    #[test]
    fn blue_green_previews_at_zero_then_switches() {
        let interval = Duration::from_secs(30);
        let plain = Strategy::BlueGreen(BlueGreen::default()).steps(&[], 1, interval);
        assert_eq!(weights(&plain), [100]);
        assert_eq!(plain[0].hold, Some(interval));
        let previewed = Strategy::BlueGreen(BlueGreen {
            preview: Some(Duration::from_secs(60)),
            bake: Some(Duration::from_secs(300)),
            keep_previous: None,
        })
        .steps(&[], 1, interval);
        assert_eq!(weights(&previewed), [0, 100]);
        assert_eq!(previewed[1].hold, Some(Duration::from_secs(300)));
    }

    #[test]
    fn reads_words_and_maps_and_names_what_is_wrong() {
        let read = |yaml: &str| serde_yaml_ng::from_str::<Strategy>(yaml);
        assert_eq!(read("canary").unwrap(), Strategy::Canary);
        assert_eq!(
            read("blue-green").unwrap(),
            Strategy::BlueGreen(BlueGreen::default())
        );
        assert_eq!(
            read("{type: rolling, batch: 25%}").unwrap(),
            Strategy::Rolling(Rolling {
                batch: Batch::Percent(25),
                max_unavailable: Batch::Count(0),
                hold: None
            })
        );
        assert_eq!(
            read("{type: rolling, batch: 1, max_unavailable: 50%}").unwrap(),
            Strategy::Rolling(Rolling {
                batch: Batch::Count(1),
                max_unavailable: Batch::Percent(50),
                hold: None
            })
        );
        let error = |yaml: &str| read(yaml).unwrap_err().to_string();
        assert!(error("rolling").contains("needs `batch`"));
        assert!(error("{type: blue-green, batch: 1}")
            .contains("`batch` is not a setting of `blue-green`"));
        assert!(error("{type: rolling, batch: \"0%\"}").contains("between 1% and 100%"));
        assert!(error("linear").contains("unknown strategy `linear`"));
        assert!(
            error("{type: rolling, batch: 1, max_unavailable: \"101%\"}")
                .contains("a `max_unavailable` share is between 0% and 100%")
        );
        assert!(error("{type: rolling, batch: 1, max_unavailable: some}")
            .contains("`max_unavailable` is a server count or a share"));
        assert!(error("{type: rolling, batch: 1, max_unavailable: -1}")
            .contains("`max_unavailable` must not be negative"));
        assert!(error("{type: rolling, batch: 1, max_unavailable: 1.5}")
            .contains("`max_unavailable` is a server count or a share"));
        assert!(error("{type: rolling, batch: -2}").contains("`batch` must be at least 1"));
        assert!(error("{type: blue-green, max_unavailable: 1}")
            .contains("`max_unavailable` is not a setting of `blue-green`"));
        for s in [
            "canary",
            "blue-green",
            "{type: blue-green, preview: 1m, keep_previous: 1h}",
            "{type: rolling, batch: 2, hold: 1m}",
            "{type: rolling, batch: 25%}",
            "{type: rolling, batch: 1, max_unavailable: 2}",
            "{type: rolling, batch: 1, max_unavailable: 0%}",
            "{type: rolling, batch: 1, max_unavailable: 0}",
        ] {
            let strategy = read(s).unwrap();
            let again = serde_yaml_ng::to_string(&strategy).unwrap();
            assert_eq!(read(&again).unwrap(), strategy, "{s} → {again}");
        }
    }
}
