//! Splitting counts into POST bodies within the entry and byte limits.

use serde::Serialize;

use super::{Key, Limits};

/// One POST body and the entries it carries (kept to retry).
pub(super) struct Batch {
    pub(super) body: Vec<u8>,
    pub(super) exposures: Vec<(Key<2>, u64)>,
    pub(super) events: Vec<(Key<3>, u64)>,
}

#[derive(Serialize)]
struct ExposureEntry<'a> {
    flag: &'a str,
    variant: &'a str,
    count: u64,
}

#[derive(Serialize)]
struct EventEntry<'a> {
    event: &'a str,
    flag: &'a str,
    variant: &'a str,
    count: u64,
}

const BODY_START: &[u8] = br#"{"exposures":["#;
const BODY_MIDDLE: &[u8] = br#"],"events":["#;
const BODY_END: &[u8] = br#"]}"#;

/// Accumulates one batch.
#[derive(Default)]
struct Builder {
    exposure_json: Vec<u8>,
    event_json: Vec<u8>,
    batch_exposures: Vec<(Key<2>, u64)>,
    batch_events: Vec<(Key<3>, u64)>,
}

impl Builder {
    fn entries(&self) -> usize {
        self.batch_exposures.len() + self.batch_events.len()
    }

    fn size(&self) -> usize {
        BODY_START.len()
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
        body.extend_from_slice(BODY_START);
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

/// Splits the counts into POST bodies within the entry and byte limits.
pub(super) fn batches(
    exposures: Vec<(Key<2>, u64)>,
    events: Vec<(Key<3>, u64)>,
    limits: Limits,
) -> Vec<Batch> {
    let mut done = Vec::new();
    let mut current = Builder::default();
    for (key, count) in exposures {
        let [flag, variant] = &key;
        let Ok(entry) = serde_json::to_vec(&ExposureEntry {
            flag,
            variant,
            count,
        }) else {
            continue;
        };
        if !current.fits(entry.len(), limits) {
            done.push(std::mem::take(&mut current).finish());
        }
        append(&mut current.exposure_json, &entry);
        current.batch_exposures.push((key, count));
    }
    for (key, count) in events {
        let [event, flag, variant] = &key;
        let Ok(entry) = serde_json::to_vec(&EventEntry {
            event,
            flag,
            variant,
            count,
        }) else {
            continue;
        };
        if !current.fits(entry.len(), limits) {
            done.push(std::mem::take(&mut current).finish());
        }
        append(&mut current.event_json, &entry);
        current.batch_events.push((key, count));
    }
    if current.entries() > 0 {
        done.push(current.finish());
    }
    done
}
