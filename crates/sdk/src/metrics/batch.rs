//! Splitting counts (and unit sketches) into POST bodies within the entry and byte
//! limits.

use std::collections::HashMap;

use serde::Serialize;
use switchyard_core::guard::sketch::SketchWire;
use switchyard_core::guard::ValueSummary;

use super::units::Recorded;
use super::{Key, Limits};

/// One entry kept to retry: the key, its count, and its units if any.
pub(super) type Held<const N: usize> = (Key<N>, u64, Option<Recorded>);

/// One POST body and the entries it carries (kept to retry).
pub(super) struct Batch {
    pub(super) body: Vec<u8>,
    pub(super) exposures: Vec<Held<2>>,
    pub(super) events: Vec<Held<3>>,
}

#[derive(Serialize)]
struct ExposureEntry<'a> {
    flag: &'a str,
    variant: &'a str,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    units: Option<SketchWire>,
}

#[derive(Serialize)]
struct EventEntry<'a> {
    event: &'a str,
    flag: &'a str,
    variant: &'a str,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    units: Option<SketchWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<ValueSummary>,
}

const BODY_MIDDLE: &[u8] = br#"],"events":["#;
const BODY_END: &[u8] = br#"]}"#;

/// Accumulates one batch.
struct Builder {
    start: Vec<u8>,
    exposure_json: Vec<u8>,
    event_json: Vec<u8>,
    batch_exposures: Vec<Held<2>>,
    batch_events: Vec<Held<3>>,
}

impl Builder {
    fn new(window_ms: u64) -> Self {
        Builder {
            start: format!(r#"{{"window_ms":{window_ms},"exposures":["#).into_bytes(),
            exposure_json: Vec::new(),
            event_json: Vec::new(),
            batch_exposures: Vec::new(),
            batch_events: Vec::new(),
        }
    }

    fn entries(&self) -> usize {
        self.batch_exposures.len() + self.batch_events.len()
    }

    fn size(&self) -> usize {
        self.start.len()
            + self.exposure_json.len()
            + BODY_MIDDLE.len()
            + self.event_json.len()
            + BODY_END.len()
    }

    /// Whether an entry of `len` JSON bytes still fits.
    fn fits(&self, len: usize, limits: Limits) -> bool {
        self.entries() == 0
            || (self.entries() < limits.batch_entries
                && self.size() + 1 + len <= limits.batch_bytes)
    }

    fn finish(self) -> Batch {
        let mut body = Vec::with_capacity(self.size());
        body.extend_from_slice(&self.start);
        body.extend_from_slice(&self.exposure_json);
        body.extend_from_slice(BODY_MIDDLE);
        body.extend_from_slice(&self.event_json);
        body.extend_from_slice(BODY_END);
        Batch {
            body,
            exposures: self.batch_exposures,
            events: self.batch_events,
        }
    }
}

fn append(json: &mut Vec<u8>, entry: &[u8]) {
    if !json.is_empty() {
        json.push(b',');
    }
    json.extend_from_slice(entry);
}

/// Pairs each key's count with its units: a key may have either or both.
pub(super) fn held<const N: usize>(
    counts: HashMap<Key<N>, u64>,
    mut units: HashMap<Key<N>, Recorded>,
) -> Vec<Held<N>> {
    let mut entries: Vec<Held<N>> = counts
        .into_iter()
        .map(|(key, count)| {
            let recorded = units.remove(&key);
            (key, count, recorded)
        })
        .collect();
    entries.extend(units.into_iter().map(|(key, r)| (key, 0, Some(r))));
    entries
}

/// Splits the entries into POST bodies within the entry and byte limits; every body
/// says how long its counts took to accumulate (`window_ms`).
pub(super) fn batches(
    exposures: Vec<Held<2>>,
    events: Vec<Held<3>>,
    window_ms: u64,
    limits: Limits,
) -> Vec<Batch> {
    let mut done = Vec::new();
    let mut current = Builder::new(window_ms);
    for held in exposures {
        let ([flag, variant], count, recorded) = &held;
        let Ok(entry) = serde_json::to_vec(&ExposureEntry {
            flag,
            variant,
            count: *count,
            units: recorded
                .as_ref()
                .filter(|r| !r.units.is_empty())
                .map(|r| r.units.wire()),
        }) else {
            continue;
        };
        if !current.fits(entry.len(), limits) {
            done.push(std::mem::replace(&mut current, Builder::new(window_ms)).finish());
        }
        append(&mut current.exposure_json, &entry);
        current.batch_exposures.push(held);
    }
    for held in events {
        let ([event, flag, variant], count, recorded) = &held;
        let Ok(entry) = serde_json::to_vec(&EventEntry {
            event,
            flag,
            variant,
            count: *count,
            units: recorded
                .as_ref()
                .filter(|r| !r.units.is_empty())
                .map(|r| r.units.wire()),
            values: recorded.as_ref().map(|r| r.values).filter(|v| v.count > 0),
        }) else {
            continue;
        };
        if !current.fits(entry.len(), limits) {
            done.push(std::mem::replace(&mut current, Builder::new(window_ms)).finish());
        }
        append(&mut current.event_json, &entry);
        current.batch_events.push(held);
    }
    if current.entries() > 0 {
        done.push(current.finish());
    }
    done
}
