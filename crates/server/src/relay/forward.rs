//! SDK metrics received by a relay, forwarded upstream: batches of every SDK are
//! merged per environment (same flag and variant: counts added, unit sketches and
//! values merged) and sent every interval under an idempotency key, which the
//! upstream uses to record a batch that was sent twice (a lost answer, a retry) once.
//!
//! Memory is bounded: at most `cap` entries wait, merged or unsent; what does not fit
//! is dropped and counted (`switchyard_relay_metrics_dropped_entries_total`), never
//! queued without limit.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use switchyard_core::guard::sketch::{SketchWire, UnitSketch};
use switchyard_core::model::{EnvName, FlagKey};
use tokio::sync::watch;

use super::upstream::{Upstream, UpstreamError};
use super::RelayTelemetry;
use crate::environments::now_ms;
use crate::http::sdk::{MetricsBody, MAX_METRICS_ENTRIES, MAX_UNKNOWN_FLAGS};
use crate::store::{EventCount, ExposureCount, MetricsBatch};
use crate::subscription::shutting_down;

/// Counts of one environment merged since the last send.
#[derive(Debug, Default)]
struct Merged {
    exposures: HashMap<(FlagKey, String), ExposureCount>,
    events: HashMap<(String, FlagKey, String), EventCount>,
    /// Keys SDKs evaluated that their snapshots lack (each one entry of the cap).
    unknown: HashSet<FlagKey>,
    /// When the oldest merged counts began (ms since the epoch).
    since_ms: u64,
}

impl Merged {
    fn len(&self) -> usize {
        self.exposures.len() + self.events.len() + self.unknown.len()
    }
}

/// A batch ready to send, kept with its key until the upstream took it.
#[derive(Debug)]
struct Unsent {
    env: EnvName,
    key: String,
    body: Bytes,
    entries: usize,
}

#[derive(Debug, Default)]
struct Queue {
    merged: HashMap<EnvName, Merged>,
    unsent: VecDeque<Unsent>,
    /// Entries in `merged` and `unsent`.
    entries: usize,
}

/// The cap's gate while merging: one more entry while `entries` is under `cap`,
/// else one more dropped.
struct Admit<'a> {
    entries: &'a mut usize,
    cap: usize,
    dropped: u64,
}

impl Admit<'_> {
    fn one(&mut self) -> bool {
        if *self.entries < self.cap {
            *self.entries += 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

/// The relay's metrics on their way upstream.
pub struct Forwarder {
    queue: Mutex<Queue>,
    cap: usize,
    telemetry: RelayTelemetry,
}

/// Unit sketches merged (an unreadable one is the SDK's problem: already refused
/// by the handler, so merging keeps what it can).
fn merge_units(into: &mut Option<SketchWire>, more: Option<&SketchWire>) {
    let Some(more) = more else { return };
    let merged = match into.as_ref().map(UnitSketch::decode) {
        Some(Ok(mut sketch)) => {
            let _ = sketch.merge_wire(more);
            sketch.encode()
        }
        _ => more.clone(),
    };
    *into = Some(merged);
}

impl Forwarder {
    /// A forwarder holding at most `cap` entries.
    pub fn new(cap: usize, telemetry: RelayTelemetry) -> Self {
        Forwarder {
            queue: Mutex::new(Queue::default()),
            cap,
            telemetry,
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `merge` on `env`'s merged counts (begun by `since_ms` at the latest) with
    /// the cap's [`Admit`], then counts what the cap refused.
    fn merge(&self, env: &EnvName, since_ms: u64, merge: impl FnOnce(&mut Merged, &mut Admit<'_>)) {
        let mut queue = self.queue();
        let Queue {
            merged, entries, ..
        } = &mut *queue;
        let merged = merged.entry(env.clone()).or_insert_with(|| Merged {
            since_ms,
            ..Merged::default()
        });
        merged.since_ms = merged.since_ms.min(since_ms);
        let mut admit = Admit {
            entries,
            cap: self.cap,
            dropped: 0,
        };
        merge(merged, &mut admit);
        let dropped = admit.dropped;
        drop(queue);
        if dropped > 0 {
            self.telemetry.metrics_dropped.inc_by(dropped);
        }
    }

    /// Merges one SDK batch of `env`, received at `received_ms`.
    pub fn add(&self, env: &EnvName, batch: &MetricsBatch, received_ms: u64) {
        let since = batch
            .units
            .iter()
            .map(|(_, record)| record.start_ms)
            .min()
            .unwrap_or(received_ms);
        self.merge(env, since, |merged, admit| {
            for e in &batch.exposures {
                let key = (e.flag.clone(), e.variant.clone());
                if let Some(into) = merged.exposures.get_mut(&key) {
                    into.count = into.count.saturating_add(e.count);
                    merge_units(&mut into.units, e.units.as_ref());
                } else if admit.one() {
                    merged.exposures.insert(key, e.clone());
                }
            }
            for e in &batch.events {
                let key = (e.event.clone(), e.flag.clone(), e.variant.clone());
                if let Some(into) = merged.events.get_mut(&key) {
                    into.count = into.count.saturating_add(e.count);
                    merge_units(&mut into.units, e.units.as_ref());
                    match (&mut into.values, &e.values) {
                        (Some(into), Some(more)) => into.merge(more),
                        (into @ None, Some(more)) => *into = Some(*more),
                        _ => {}
                    }
                } else if admit.one() {
                    merged.events.insert(key, e.clone());
                }
            }
        });
    }

    /// Merges the keys an SDK of `env` evaluated without finding them in its snapshot,
    /// so the upstream lists them as unknown flags too.
    pub fn add_unknown(&self, env: &EnvName, keys: &[FlagKey], received_ms: u64) {
        if keys.is_empty() {
            return;
        }
        self.merge(env, received_ms, |merged, admit| {
            for key in keys {
                if !merged.unknown.contains(key) && admit.one() {
                    merged.unknown.insert(key.clone());
                }
            }
        });
    }

    /// Turns everything merged into batches to send, each under a new key.
    fn seal(&self, now: u64) {
        let mut queue = self.queue();
        let merged = std::mem::take(&mut queue.merged);
        for (env, merged) in merged {
            if merged.len() == 0 {
                continue;
            }
            let window_ms = now.saturating_sub(merged.since_ms).min(86_400_000);
            let mut exposures: Vec<ExposureCount> = merged.exposures.into_values().collect();
            let mut events: Vec<EventCount> = merged.events.into_values().collect();
            let mut unknown: Vec<FlagKey> = merged.unknown.into_iter().collect();
            unknown.sort();
            while !exposures.is_empty() || !events.is_empty() || !unknown.is_empty() {
                let take_exposures = exposures.len().min(MAX_METRICS_ENTRIES);
                let take_events = events.len().min(MAX_METRICS_ENTRIES - take_exposures);
                let take_unknown = unknown.len().min(MAX_UNKNOWN_FLAGS);
                let body = MetricsBody {
                    window_ms: Some(window_ms),
                    exposures: exposures.drain(..take_exposures).collect(),
                    events: events.drain(..take_events).collect(),
                    unknown_flags: unknown.drain(..take_unknown).collect(),
                };
                let entries = take_exposures + take_events + take_unknown;
                match serde_json::to_vec(&body) {
                    Ok(json) => queue.unsent.push_back(Unsent {
                        env: env.clone(),
                        key: format!("{:032x}", rand::random::<u128>()),
                        body: Bytes::from(json),
                        entries,
                    }),
                    // Counts and sketches always serialise; should one not, it is
                    // dropped like a refused batch rather than kept forever.
                    Err(error) => {
                        tracing::warn!(%env, %error, "could not encode a metrics batch; dropped");
                        self.telemetry.metrics_dropped.inc_by(entries as u64);
                        queue.entries -= entries;
                    }
                }
            }
        }
    }

    /// Sends the batches waiting, oldest first, until the upstream cannot be reached
    /// (the rest wait for the next round, under the same keys).
    async fn send(&self, upstream: &Upstream) {
        loop {
            let next = self.queue().unsent.pop_front();
            let Some(batch) = next else { return };
            match upstream
                .post_metrics(&batch.env, batch.body.clone(), &batch.key)
                .await
            {
                Ok(()) => {
                    self.telemetry.metrics_forwarded.inc();
                    self.queue().entries -= batch.entries;
                }
                Err(error @ UpstreamError::Refused { status, .. })
                    if (400..500).contains(&status) && status != 429 =>
                {
                    // Sending it again would be refused again.
                    tracing::warn!(env = %batch.env, %error, "upstream refused a metrics batch; dropped");
                    self.telemetry.metrics_dropped.inc_by(batch.entries as u64);
                    self.queue().entries -= batch.entries;
                }
                Err(error) => {
                    tracing::debug!(env = %batch.env, %error, "metrics not forwarded yet");
                    self.queue().unsent.push_front(batch);
                    return;
                }
            }
        }
    }

    /// Forwards every `every` until `shutdown`, then once more.
    pub async fn run(
        &self,
        upstream: Upstream,
        every: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                () = shutting_down(&mut shutdown) => true,
            };
            self.seal(now_ms());
            self.send(&upstream).await;
            if stopping {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::guard::ValueSummary;

    fn exposure(flag: &str, variant: &str, count: u64, unit: Option<&str>) -> ExposureCount {
        ExposureCount {
            flag: FlagKey::new(flag),
            variant: variant.to_owned(),
            count,
            units: unit.map(|key| {
                let mut sketch = UnitSketch::new();
                sketch.insert(key);
                sketch.encode()
            }),
        }
    }

    fn sealed(forwarder: &Forwarder) -> Vec<MetricsBody> {
        forwarder.seal(1_000_000);
        forwarder
            .queue()
            .unsent
            .iter()
            .map(|u| serde_json::from_slice(&u.body).expect("a metrics body"))
            .collect()
    }

    #[test]
    fn batches_merge_per_flag_and_variant_with_their_units_and_values() {
        let forwarder = Forwarder::new(100, RelayTelemetry::default());
        let env = EnvName::new("prod");
        let event = |count, value: f64| EventCount {
            event: "checkout".to_owned(),
            flag: FlagKey::new("f"),
            variant: "on".to_owned(),
            count,
            units: None,
            values: Some(ValueSummary {
                count: 1,
                sum: value,
                sum_squares: value * value,
            }),
        };
        forwarder.add(
            &env,
            &MetricsBatch {
                exposures: vec![
                    exposure("f", "on", 2, Some("a")),
                    exposure("f", "off", 1, None),
                ],
                events: vec![event(1, 2.0)],
                units: Vec::new(),
            },
            999_000,
        );
        forwarder.add(
            &env,
            &MetricsBatch {
                exposures: vec![exposure("f", "on", 3, Some("b"))],
                events: vec![event(4, 3.0)],
                units: Vec::new(),
            },
            999_500,
        );
        let bodies = sealed(&forwarder);
        assert_eq!(bodies.len(), 1);
        let body = &bodies[0];
        assert_eq!(body.window_ms, Some(1_000));
        let on = body
            .exposures
            .iter()
            .find(|e| e.variant == "on")
            .expect("on merged");
        assert_eq!(on.count, 5);
        let units = UnitSketch::decode(on.units.as_ref().expect("units")).expect("sketch");
        assert_eq!(units.count(), 2, "the two batches' units merged");
        assert_eq!(body.exposures.len(), 2);
        assert_eq!(body.events.len(), 1);
        assert_eq!(body.events[0].count, 5);
        assert_eq!(body.events[0].values.as_ref().map(|v| v.count), Some(2));
    }

    #[test]
    fn entries_past_the_cap_are_dropped_and_counted() {
        let telemetry = RelayTelemetry::default();
        let forwarder = Forwarder::new(3, telemetry.clone());
        let env = EnvName::new("prod");
        let batch = MetricsBatch {
            exposures: (0..5)
                .map(|i| exposure(&format!("f{i}"), "on", 1, None))
                .collect(),
            ..MetricsBatch::default()
        };
        forwarder.add(&env, &batch, 1);
        // Entries already waiting still merge.
        forwarder.add(&env, &batch, 1);
        assert_eq!(telemetry.metrics_dropped.get(), 4);
        let bodies = sealed(&forwarder);
        let counts: Vec<u64> = bodies[0].exposures.iter().map(|e| e.count).collect();
        assert_eq!(counts, [2, 2, 2]);
        // Sealed batches still count against the cap until sent.
        forwarder.add(&env, &batch, 1);
        assert_eq!(telemetry.metrics_dropped.get(), 9);
    }

    #[test]
    fn unknown_keys_are_sent_once_each_within_the_cap() {
        let telemetry = RelayTelemetry::default();
        let forwarder = Forwarder::new(3, telemetry.clone());
        let env = EnvName::new("prod");
        let keys = |names: &[&str]| names.iter().map(|n| FlagKey::new(*n)).collect::<Vec<_>>();
        forwarder.add_unknown(&env, &keys(&["ghost", "phantom"]), 1);
        // A key already waiting is not a second entry; past the cap, keys are dropped.
        forwarder.add_unknown(&env, &keys(&["phantom", "spectre", "wraith"]), 1);
        assert_eq!(telemetry.metrics_dropped.get(), 1);
        let bodies = sealed(&forwarder);
        assert_eq!(bodies.len(), 1);
        assert_eq!(
            bodies[0].unknown_flags,
            keys(&["ghost", "phantom", "spectre"])
        );
        assert!(bodies[0].exposures.is_empty() && bodies[0].events.is_empty());
    }
}
