//! Regions: one release rolled out region by region, primary first.
//!
//! A plan with `regions` is expanded, whenever it is read, into one machine service per
//! region and service released there, named `service@region`: its router is the
//! region's (`routers`), its flags are ramped through the region's rule (`flag_rule`,
//! the region's name by default), its canary steps stop at the region's `max_weight`
//! before the promotion, and it depends on its own dependencies in the same region and
//! on the previous wave (`waves: in-order`, the default) or the primary region
//! (`waves: parallel`). So the machine and the driver run regions with no notion of
//! them beyond `on_failure` scope ([`RegionFailure`]), and a stored plan keeps only
//! what was written ([`Regions::services`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Canary, FlagRef, Service, Step};

/// One region of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Its name, e.g. `eu-central-1`.
    pub name: String,
    /// The region released first; exactly one is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub primary: bool,
    /// The highest canary weight before promotion here, in percent (canary steps
    /// above it are left out); 100 when absent.
    #[serde(default = "all", skip_serializing_if = "is_all")]
    pub max_weight: u32,
    /// The services released here, by name; every service when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    /// Each service's router here, by service name; the service's own `canary` when
    /// absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routers: BTreeMap<String, Canary>,
    /// The rule of each ramped flag that targets this region (e.g. `region ==
    /// eu-central-1`); the region's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_rule: Option<String>,
}

fn all() -> u32 {
    100
}

fn is_all(weight: &u32) -> bool {
    *weight == 100
}

/// When the regions after the primary start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Waves {
    /// Each region once the one before it is promoted.
    #[default]
    InOrder,
    /// Every other region together, once the primary is promoted.
    Parallel,
}

/// What a failing region rolls back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegionFailure {
    /// Every region.
    #[default]
    All,
    /// Only the failing region (and the regions waiting for it, which never start);
    /// the others go on.
    Region,
}

/// A plan's regions and its services as written (the plan's `services` are their
/// expansion).
#[derive(Debug, Clone, PartialEq)]
pub struct Regions {
    /// The regions as written.
    pub list: Vec<Region>,
    /// When the regions after the primary start.
    pub waves: Waves,
    /// What a failing region rolls back.
    pub on_failure: RegionFailure,
    /// The services as written.
    pub services: Vec<Service>,
}

impl Region {
    fn releases(&self, service: &str) -> bool {
        self.services
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == service))
    }

    /// The rule its flags are ramped through.
    pub fn rule(&self) -> &str {
        self.flag_rule.as_deref().unwrap_or(&self.name)
    }
}

impl Regions {
    /// The regions in release order: the primary first, the others as written.
    pub fn ordered(&self) -> impl Iterator<Item = &Region> {
        let primary = self.list.iter().filter(|r| r.primary);
        primary.chain(self.list.iter().filter(|r| !r.primary))
    }

    /// The region named `name`.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.list.iter().find(|r| r.name == name)
    }

    /// One service per region and service released there (see the module's doc).
    pub fn expand(&self) -> Vec<Service> {
        let mut units: Vec<Service> = Vec::new();
        let mut waves: Vec<Vec<String>> = Vec::new();
        for (k, region) in self.ordered().enumerate() {
            let before = match self.waves {
                _ if k == 0 => None,
                Waves::InOrder => waves.last(),
                Waves::Parallel => waves.first(),
            };
            let before = before.cloned().unwrap_or_default();
            let mut wave = Vec::new();
            for service in self.services.iter().filter(|s| region.releases(&s.name)) {
                let unit_name = |name: &str| format!("{name}@{}", region.name);
                let mut depends_on: Vec<String> = service
                    .depends_on
                    .iter()
                    .filter(|d| region.releases(d))
                    .map(|d| unit_name(d))
                    .collect();
                depends_on.extend(before.iter().cloned());
                let unit = Service {
                    name: unit_name(&service.name),
                    depends_on,
                    canary: region
                        .routers
                        .get(&service.name)
                        .unwrap_or(&service.canary)
                        .clone(),
                    flags: service
                        .flags
                        .iter()
                        .map(|f| FlagRef {
                            key: f.key.clone(),
                            rule: Some(region.rule().to_owned()),
                        })
                        .collect(),
                    health: service.health.clone(),
                    strategy: service.strategy.clone(),
                    steps: Vec::new(),
                    region: Some(region.name.clone()),
                };
                wave.push(unit.name.clone());
                units.push(unit);
            }
            waves.push(wave);
        }
        units
    }

    /// What serde cannot check: names, one primary, known services, weights.
    pub fn check(&self, problem: &mut impl FnMut(String, String)) {
        let primaries = self.list.iter().filter(|r| r.primary).count();
        if primaries != 1 {
            problem(
                "regions".into(),
                format!("exactly one region is `primary: true` ({primaries} are)"),
            );
        }
        for (i, region) in self.list.iter().enumerate() {
            let at = format!("regions[{i}]");
            if !super::validate::is_name(&region.name) {
                problem(format!("{at}.name"), super::validate::NAME_RULE.into());
            }
            if self.list[..i].iter().any(|r| r.name == region.name) {
                problem(
                    format!("{at}.name"),
                    format!("region `{}` is listed twice", region.name),
                );
            }
            if !(1..=100).contains(&region.max_weight) {
                problem(
                    format!("{at}.max_weight"),
                    "must be between 1 and 100".into(),
                );
            }
            for (j, name) in region.services.iter().flatten().enumerate() {
                if !self.services.iter().any(|s| &s.name == name) {
                    problem(
                        format!("{at}.services[{j}]"),
                        format!("unknown service `{name}`"),
                    );
                }
            }
            if region.services.as_ref().is_some_and(Vec::is_empty) {
                problem(
                    format!("{at}.services"),
                    "a region releases at least one service (leave it out for all)".into(),
                );
            }
            for name in region.routers.keys() {
                if !region.releases(name) {
                    problem(
                        format!("{at}.routers.{name}"),
                        format!("service `{name}` is not released in this region"),
                    );
                }
            }
            if region.rule().trim().is_empty() {
                problem(format!("{at}.flag_rule"), "must not be empty".into());
            }
        }
    }
}

/// `steps` with canary weights capped at `max_weight`: the steps below it, then one at
/// it (with the gates and hold of the first step that reached it).
pub fn capped(steps: &[Step], max_weight: u32) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len());
    let mut capped = false;
    for step in steps {
        match step.weight {
            Some(w) if !step.approve && w >= max_weight => {
                if !capped {
                    capped = true;
                    out.push(Step {
                        weight: Some(max_weight),
                        ..step.clone()
                    });
                }
            }
            _ => out.push(step.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn step(weight: u32) -> Step {
        Step {
            weight: Some(weight),
            hold: Some(Duration::from_secs(weight.into())),
            approve: false,
            gates: Vec::new(),
            ramp: None,
        }
    }

    #[test]
    fn caps_stop_the_ramp_at_the_region_weight() {
        let steps = [step(5), step(10), step(25), step(50)];
        let weights = |cap| -> Vec<u32> {
            capped(&steps, cap)
                .iter()
                .filter_map(|s| s.weight)
                .collect()
        };
        assert_eq!(weights(10), [5, 10]);
        assert_eq!(weights(3), [3]);
        assert_eq!(weights(30), [5, 10, 25, 30]);
        assert_eq!(weights(100), [5, 10, 25, 50]);
        // The capped step keeps the hold of the step that reached the cap.
        assert_eq!(capped(&steps, 30)[3].hold, Some(Duration::from_secs(50)));
    }
}
