//! The guard's unit counts (docs/guard.md): the [`UnitsRecord`]s an SDK batch brings,
//! checked and grouped per flag, and their merge into the [`FlagUnits`] the admin API
//! answers. Sketches merge by register maximum, values by adding.

use std::collections::BTreeMap;

use switchyard_core::admin::{EventUnits, FlagUnits, VariantUnits};
use switchyard_core::guard::sketch::{SketchWire, UnitSketch, RELATIVE_ERROR};
use switchyard_core::guard::ValueSummary;
use switchyard_core::model::FlagKey;

use crate::store::{EventCount, EventUnitsRecord, ExposureCount, UnitsRecord};

/// The longest `window_ms` a batch may claim: a day.
pub const MAX_WINDOW_MS: u64 = 86_400_000;

/// What is wrong with a batch's units, naming the entry.
#[derive(Debug, thiserror::Error)]
pub enum UnitsError {
    /// A sketch that is not one.
    #[error("{path}: {source}")]
    Sketch {
        /// The entry's field.
        path: String,
        /// Why.
        #[source]
        source: switchyard_core::guard::sketch::SketchError,
    },
    /// Values that are not numbers.
    #[error("{path}: the sums must be finite numbers and the count at least 1")]
    Values {
        /// The entry's field.
        path: String,
    },
    /// Units without the time they took.
    #[error("window_ms: required with units, at most {MAX_WINDOW_MS}")]
    Window,
}

fn merge_into(
    sketch: &mut Option<UnitSketch>,
    wire: &SketchWire,
    path: impl Fn() -> String,
) -> Result<(), UnitsError> {
    sketch
        .get_or_insert_with(UnitSketch::new)
        .merge_wire(wire)
        .map_err(|source| UnitsError::Sketch {
            path: path(),
            source,
        })
}

/// The batch's units per flag, as records that began at `received_ms − window_ms`;
/// every sketch and value checked first (nothing is recorded from a bad batch).
pub fn records(
    exposures: &[ExposureCount],
    events: &[EventCount],
    window_ms: Option<u64>,
    received_ms: u64,
    id: impl Fn() -> u64,
) -> Result<Vec<(FlagKey, UnitsRecord)>, UnitsError> {
    type Sketches = BTreeMap<String, Option<UnitSketch>>;
    /// Per (variant, event): the units that had it and the values.
    type EventSketches = BTreeMap<(String, String), (Option<UnitSketch>, ValueSummary)>;
    let mut exposed: BTreeMap<&FlagKey, Sketches> = BTreeMap::new();
    let mut had: BTreeMap<&FlagKey, EventSketches> = BTreeMap::new();
    for (i, e) in exposures.iter().enumerate() {
        if let Some(wire) = &e.units {
            let slot = exposed
                .entry(&e.flag)
                .or_default()
                .entry(e.variant.clone())
                .or_default();
            merge_into(slot, wire, || format!("exposures[{i}].units"))?;
        }
    }
    for (i, e) in events.iter().enumerate() {
        if e.units.is_none() && e.values.is_none() {
            continue;
        }
        let slot = had
            .entry(&e.flag)
            .or_default()
            .entry((e.variant.clone(), e.event.clone()))
            .or_default();
        if let Some(wire) = &e.units {
            merge_into(&mut slot.0, wire, || format!("events[{i}].units"))?;
        }
        if let Some(values) = &e.values {
            if values.count == 0 || !values.sum.is_finite() || !values.sum_squares.is_finite() {
                return Err(UnitsError::Values {
                    path: format!("events[{i}].values"),
                });
            }
            slot.1.merge(values);
        }
    }
    if exposed.is_empty() && had.is_empty() {
        return Ok(Vec::new());
    }
    let window = window_ms
        .filter(|w| *w <= MAX_WINDOW_MS)
        .ok_or(UnitsError::Window)?;
    let start_ms = received_ms.saturating_sub(window);
    let mut flags: BTreeMap<FlagKey, UnitsRecord> = BTreeMap::new();
    let new_record = || UnitsRecord {
        start_ms,
        id: id(),
        ..UnitsRecord::default()
    };
    for (flag, variants) in exposed {
        let r = flags.entry(flag.clone()).or_insert_with(new_record);
        for (variant, sketch) in variants {
            r.variants
                .insert(variant, sketch.unwrap_or_default().encode());
        }
    }
    for (flag, entries) in had {
        let r = flags.entry(flag.clone()).or_insert_with(new_record);
        for ((variant, event), (sketch, values)) in entries {
            r.events.push(EventUnitsRecord {
                variant,
                event,
                units: sketch.map(|s| s.encode()).unwrap_or_default(),
                values,
            });
        }
    }
    Ok(flags.into_iter().collect())
}

/// Merges a flag's records into the answer: distinct units per variant and, per event
/// (only `event` when given), the units that had it and the values' sums. A record
/// whose sketch cannot be read (written by another version) is skipped.
pub fn merge(records: &[UnitsRecord], event: Option<&str>, since: String) -> FlagUnits {
    let mut exposed: BTreeMap<&str, UnitSketch> = BTreeMap::new();
    let mut had: BTreeMap<(&str, &str), (UnitSketch, ValueSummary)> = BTreeMap::new();
    for record in records {
        for (variant, wire) in &record.variants {
            let _ = exposed.entry(variant).or_default().merge_wire(wire);
        }
        for e in &record.events {
            if event.is_some_and(|wanted| wanted != e.event) {
                continue;
            }
            let slot = had.entry((&e.variant, &e.event)).or_default();
            let _ = slot.0.merge_wire(&e.units);
            slot.1.merge(&e.values);
        }
    }
    let mut variants: BTreeMap<String, VariantUnits> = BTreeMap::new();
    for (variant, sketch) in exposed {
        variants.entry(variant.to_owned()).or_default().units = sketch.count();
    }
    for ((variant, name), (sketch, values)) in had {
        variants
            .entry(variant.to_owned())
            .or_default()
            .events
            .insert(
                name.to_owned(),
                EventUnits {
                    units: sketch.count(),
                    values,
                },
            );
    }
    FlagUnits {
        since,
        relative_error: RELATIVE_ERROR,
        variants,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(units: std::ops::Range<u32>) -> SketchWire {
        let mut s = UnitSketch::new();
        units.for_each(|i| s.insert(&format!("u{i}")));
        s.encode()
    }

    fn exposure(variant: &str, units: std::ops::Range<u32>) -> ExposureCount {
        ExposureCount {
            flag: FlagKey::new("f"),
            variant: variant.into(),
            count: 1,
            units: Some(wire(units)),
        }
    }

    #[test]
    fn records_merge_into_distinct_units_per_variant() {
        let event = EventCount {
            event: "e".into(),
            flag: FlagKey::new("f"),
            variant: "on".into(),
            count: 3,
            units: Some(wire(0..5)),
            values: Some(ValueSummary {
                count: 3,
                sum: 6.0,
                sum_squares: 14.0,
            }),
        };
        let first = records(
            &[exposure("on", 0..100), exposure("off", 100..300)],
            std::slice::from_ref(&event),
            Some(1000),
            10_000,
            || 1,
        )
        .unwrap();
        let second = records(
            &[exposure("on", 50..150)],
            &[event],
            Some(500),
            20_000,
            || 2,
        )
        .unwrap();
        assert_eq!(first[0].1.start_ms, 9_000);
        assert_eq!(second[0].1.start_ms, 19_500);
        let all: Vec<UnitsRecord> = first.into_iter().chain(second).map(|(_, r)| r).collect();
        let units = merge(&all, None, "since".into());
        // The union, within the sketch's error (nearly exact at this size).
        assert!(units.variants["on"].units.abs_diff(150) <= 2, "{units:?}");
        assert!(units.variants["off"].units.abs_diff(200) <= 2, "{units:?}");
        let e = &units.variants["on"].events["e"];
        assert_eq!((e.units, e.values.count, e.values.sum), (5, 6, 12.0));
        assert!(merge(&all, Some("other"), "s".into()).variants["on"]
            .events
            .is_empty());
    }

    #[test]
    fn bad_units_name_the_entry_and_units_need_a_window() {
        let mut bad = exposure("on", 0..3);
        bad.units = Some(SketchWire(vec![7 << 8]));
        let error = records(&[exposure("on", 0..3), bad], &[], Some(1), 0, || 0).unwrap_err();
        assert_eq!(
            error.to_string(),
            "exposures[1].units: register 7 has rank 0; ranks are 1 to 51"
        );
        let error = records(&[exposure("on", 0..3)], &[], None, 0, || 0).unwrap_err();
        assert!(matches!(error, UnitsError::Window));
        let error = records(
            &[exposure("on", 0..3)],
            &[],
            Some(MAX_WINDOW_MS + 1),
            0,
            || 0,
        )
        .unwrap_err();
        assert!(matches!(error, UnitsError::Window));
        // No units: nothing to record, no window needed.
        let plain = ExposureCount {
            units: None,
            ..exposure("on", 0..1)
        };
        assert!(records(&[plain], &[], None, 0, || 0).unwrap().is_empty());
    }
}
