use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};

use serde_json::Value;

use super::table::{lock, stripe_index, Counters, MAX_NAME_LEN};
use super::*;

type Sums = BTreeMap<Vec<String>, u64>;

/// Adds a body's entries to `exposures` and `events`, checking the body's shape.
fn add_body(body: &[u8], exposures: &mut Sums, events: &mut Sums) -> usize {
    let value: Value = serde_json::from_slice(body).expect("a JSON body");
    if value.get("unknown_flags").is_some() {
        return 0; // checked by `unknown_in`
    }
    let mut entries = 0;
    for e in value["exposures"].as_array().expect("exposures") {
        let key = vec![
            e["flag"].as_str().expect("flag").to_owned(),
            e["variant"].as_str().expect("variant").to_owned(),
        ];
        let count = e["count"].as_u64().expect("count");
        assert!(count > 0, "counts are positive: {e}");
        *exposures.entry(key).or_default() += count;
        entries += 1;
    }
    for e in value["events"].as_array().expect("events") {
        let key = vec![
            e["event"].as_str().expect("event").to_owned(),
            e["flag"].as_str().expect("flag").to_owned(),
            e["variant"].as_str().expect("variant").to_owned(),
        ];
        let count = e["count"].as_u64().expect("count");
        assert!(count > 0, "counts are positive: {e}");
        *events.entry(key).or_default() += count;
        entries += 1;
    }
    entries
}

/// A sender that accepts everything and records the bodies.
#[derive(Default, Clone)]
struct Recorder {
    bodies: Arc<StdMutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn send(&self) -> impl FnMut(Vec<u8>) -> std::future::Ready<Delivery> + '_ {
        |body| {
            self.bodies.lock().expect("lock").push(body);
            std::future::ready(Delivery::Accepted)
        }
    }

    fn sums(&self) -> (Sums, Sums) {
        let (mut exposures, mut events) = (Sums::new(), Sums::new());
        for body in self.bodies.lock().expect("lock").iter() {
            add_body(body, &mut exposures, &mut events);
        }
        (exposures, events)
    }
}

fn key(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_racing_flushes_sum_exactly() {
    let metrics = Arc::new(Metrics::default());
    let recorder = Recorder::default();
    const THREADS: usize = 8;
    const ROUNDS: u64 = 20_000;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let metrics = Arc::clone(&metrics);
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    metrics.exposure("checkout", if round % 3 == 0 { "on" } else { "off" });
                    // Many distinct keys, so tables grow while flushes run.
                    let flag = format!("flag-{}", round % 300);
                    metrics.exposure(&flag, "v");
                    if round % 2 == 0 {
                        metrics.event("purchase", "checkout", "on");
                    }
                    if t == 0 {
                        metrics.event("error", &flag, "v");
                    }
                }
            })
        })
        .collect();
    // Flush over and over while the threads count.
    let mut flushes = 0;
    while !workers.iter().all(|w| w.is_finished()) {
        metrics.flush_with(recorder.send()).await;
        flushes += 1;
        tokio::task::yield_now().await;
    }
    for worker in workers {
        worker.join().expect("worker");
    }
    metrics.flush_with(recorder.send()).await;
    assert!(flushes > 0);

    let (exposures, events) = recorder.sums();
    let threads = THREADS as u64;
    let on = (0..ROUNDS).filter(|r| r % 3 == 0).count() as u64;
    assert_eq!(exposures[&key(&["checkout", "on"])], threads * on);
    assert_eq!(
        exposures[&key(&["checkout", "off"])],
        threads * (ROUNDS - on)
    );
    for i in 0..300u64 {
        let per_flag = (0..ROUNDS).filter(|r| r % 300 == i).count() as u64;
        let flag = format!("flag-{i}");
        assert_eq!(exposures[&key(&[&flag, "v"])], threads * per_flag, "{flag}");
        assert_eq!(events[&key(&["error", &flag, "v"])], per_flag, "{flag}");
    }
    assert_eq!(exposures.len(), 302);
    assert_eq!(
        events[&key(&["purchase", "checkout", "on"])],
        threads * ROUNDS / 2
    );
    assert_eq!(events.len(), 301);
    assert_eq!(metrics.dropped(), 0);
    // Nothing is left to send.
    let before = recorder.bodies.lock().expect("lock").len();
    metrics.flush_with(recorder.send()).await;
    assert_eq!(recorder.bodies.lock().expect("lock").len(), before);
}

#[tokio::test]
async fn keys_beyond_the_cap_and_invalid_names_are_dropped_and_counted() {
    let metrics = Metrics::with_limits(Limits {
        max_keys: 5,
        ..Limits::default()
    });
    // One thread: one stripe, so the cap applies to these keys exactly.
    for _ in 0..3 {
        for i in 0..8 {
            metrics.exposure(&format!("flag-{i}"), "on");
        }
        for i in 0..7 {
            metrics.event(&format!("event-{i}"), "checkout", "on");
        }
    }
    assert_eq!(metrics.dropped(), 3 * 3 + 2 * 3);
    let long = "x".repeat(MAX_NAME_LEN + 1);
    metrics.event("", "checkout", "on");
    metrics.event(&long, "checkout", "on");
    metrics.event("bad\nname", "checkout", "on");
    metrics.exposure("checkout", &long);
    assert_eq!(metrics.dropped(), 15 + 4);
    let recorder = Recorder::default();
    metrics.flush_with(recorder.send()).await;
    let (exposures, events) = recorder.sums();
    assert_eq!(exposures.len(), 5);
    assert!(exposures.values().all(|&count| count == 3), "{exposures:?}");
    assert_eq!(events.len(), 5);
    assert!(events.values().all(|&count| count == 3), "{events:?}");

    // The counted keys stay held while active: a new one is still over the cap.
    metrics.event("event-new", "checkout", "on");
    assert_eq!(metrics.dropped(), 20);
    // An interval without them evicts them; then there is room, and a name of
    // exactly the limit is accepted.
    metrics.flush_with(Recorder::default().send()).await;
    let at_limit = "y".repeat(MAX_NAME_LEN);
    metrics.event(&at_limit, "checkout", "on");
    let recorder = Recorder::default();
    metrics.flush_with(recorder.send()).await;
    let (_, events) = recorder.sums();
    assert_eq!(events[&key(&[&at_limit, "checkout", "on"])], 1);
    assert_eq!(metrics.dropped(), 20);
}

#[tokio::test]
async fn a_failed_flush_keeps_the_counts_for_the_next_one() {
    let metrics = Metrics::default();
    for _ in 0..5 {
        metrics.exposure("checkout", "on");
        metrics.event("purchase", "checkout", "on");
    }
    let mut attempts = 0;
    metrics
        .flush_with(|_| {
            attempts += 1;
            std::future::ready(Delivery::Retry("connection refused".to_owned()))
        })
        .await;
    assert_eq!(attempts, 1);
    // More counts arrive before the next flush, which succeeds.
    for _ in 0..2 {
        metrics.exposure("checkout", "on");
        metrics.exposure("checkout", "off");
    }
    let recorder = Recorder::default();
    metrics.flush_with(recorder.send()).await;
    let (exposures, events) = recorder.sums();
    assert_eq!(exposures[&key(&["checkout", "on"])], 7);
    assert_eq!(exposures[&key(&["checkout", "off"])], 2);
    assert_eq!(events[&key(&["purchase", "checkout", "on"])], 5);
    assert_eq!(metrics.dropped(), 0);
    // Delivered once: nothing is sent again.
    let again = Recorder::default();
    metrics.flush_with(again.send()).await;
    assert!(again.bodies.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_refused_batch_is_dropped_not_retried() {
    let metrics = Metrics::default();
    metrics.exposure("checkout", "on");
    metrics
        .flush_with(|_| std::future::ready(Delivery::Rejected("403".to_owned())))
        .await;
    assert_eq!(metrics.dropped(), 1);
    let recorder = Recorder::default();
    metrics.flush_with(recorder.send()).await;
    assert!(recorder.bodies.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn after_a_failure_the_remaining_batches_wait_and_unsent_counts_are_bounded() {
    let metrics = Metrics::with_limits(Limits {
        max_keys: 6,
        batch_entries: 2,
        batch_bytes: MAX_BATCH_BYTES,
        ..Limits::default()
    });
    for i in 0..6 {
        metrics.exposure(&format!("flag-{i}"), "on");
    }
    let mut attempts = 0;
    metrics
        .flush_with(|_| {
            attempts += 1;
            std::future::ready(Delivery::Retry("503".to_owned()))
        })
        .await;
    assert_eq!(
        attempts, 1,
        "after a failure the other batches are not tried"
    );
    // Another failed flush: the six keys, idle for an interval, leave the table
    // (their counts stay unsent).
    metrics
        .flush_with(|_| std::future::ready(Delivery::Retry("503".to_owned())))
        .await;
    // Six more keys fit in the table, but make twelve unsent keys: bounded to six.
    for i in 6..12 {
        metrics.exposure(&format!("flag-{i}"), "on");
    }
    assert_eq!(metrics.dropped(), 0);
    metrics
        .flush_with(|_| std::future::ready(Delivery::Retry("503".to_owned())))
        .await;
    assert_eq!(metrics.dropped(), 6);
    let recorder = Recorder::default();
    metrics.flush_with(recorder.send()).await;
    let (exposures, _) = recorder.sums();
    assert_eq!(exposures.len(), 6);
    assert_eq!(exposures.values().sum::<u64>(), 6);
}

#[tokio::test]
async fn batches_respect_the_entry_and_byte_limits() {
    let limits = Limits {
        max_keys: MAX_KEYS,
        batch_entries: 3,
        batch_bytes: MAX_BATCH_BYTES,
        ..Limits::default()
    };
    let metrics = Metrics::with_limits(limits);
    for i in 0..10 {
        for _ in 0..=i {
            metrics.exposure(&format!("flag-{i}"), "on");
        }
    }
    for i in 0..5 {
        metrics.event(&format!("event-{i}"), "checkout", "on");
    }
    let recorder = Recorder::default();
    metrics.flush_with(recorder.send()).await;
    let bodies = recorder.bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 5, "15 entries in batches of 3");
    for body in &bodies {
        let (mut e, mut v) = (Sums::new(), Sums::new());
        assert!(add_body(body, &mut e, &mut v) <= 3);
    }
    let (exposures, events) = recorder.sums();
    for i in 0..10u64 {
        assert_eq!(exposures[&key(&[&format!("flag-{i}"), "on"])], i + 1);
    }
    assert_eq!(events.len(), 5);

    // Long names: the byte limit splits batches.
    let limits = Limits {
        max_keys: MAX_KEYS,
        batch_entries: MAX_BATCH_ENTRIES,
        batch_bytes: 4096,
        ..Limits::default()
    };
    let metrics = Metrics::with_limits(limits);
    let long = |i: usize| format!("{i:0>250}");
    for i in 0..40 {
        metrics.event(&long(i), &long(i + 1), "on");
    }
    let recorder = Recorder::default();
    metrics.flush_with(recorder.send()).await;
    let bodies = recorder.bodies.lock().expect("lock").clone();
    assert!(bodies.len() > 1);
    assert!(
        bodies.iter().all(|b| b.len() <= 4096),
        "bodies within 4096 bytes"
    );
    let (_, events) = recorder.sums();
    assert_eq!(events.len(), 40);
    assert!(events.values().all(|&c| c == 1));
}

#[tokio::test]
async fn idle_keys_are_evicted_by_a_flush_and_active_ones_kept() {
    let counters = Counters::<2>::new(MAX_KEYS);
    assert!(counters.add(["a", "on"]));
    assert!(counters.add(["b", "on"]));
    let mut out = HashMap::new();
    counters.drain_into(&mut out);
    assert_eq!(out.len(), 2);
    let stripe = &counters.stripes[stripe_index()];
    // Both were counted since the last drain: both are kept.
    assert_eq!(stripe.current.load().keys(), 2);
    assert!(counters.add(["a", "on"]));
    let mut out = HashMap::new();
    counters.drain_into(&mut out);
    // Only `a` was counted this time.
    assert_eq!(stripe.current.load().keys(), 1);
    assert_eq!(out.len(), 1);
    // Retired tables are released once swept with no reader.
    counters.drain_into(&mut HashMap::new());
    assert!(lock(&counters.retired).is_empty());
}

#[test]
fn tables_grow_and_keep_their_keys() {
    let counters = Counters::<2>::new(MAX_KEYS);
    for i in 0..1000 {
        let flag = format!("flag-{i}");
        assert!(counters.add([&flag, "on"]));
        assert!(counters.add([&flag, "on"]));
    }
    let stripe = &counters.stripes[stripe_index()];
    assert!(stripe.current.load().slots.len() >= 1024);
    assert_eq!(stripe.current.load().keys(), 1000);
    let mut out = HashMap::new();
    counters.drain_into(&mut out);
    assert_eq!(out.len(), 1000);
    assert!(out.values().all(|&c| c == 2));
}

/// The units of the first exposure (or event) entry of `key` in the bodies.
fn units_in(bodies: &[Vec<u8>], list: &str, flag: &str) -> Option<u64> {
    use switchyard_core::guard::sketch::{SketchWire, UnitSketch};
    let mut sketch = UnitSketch::new();
    let mut found = false;
    for body in bodies {
        let value: Value = serde_json::from_slice(body).expect("JSON");
        assert!(
            value["window_ms"].is_u64(),
            "every body dates its counts: {value}"
        );
        for e in value[list].as_array().expect("entries") {
            if e["flag"] == flag {
                if let Some(units) = e.get("units") {
                    let wire: SketchWire = serde_json::from_value(units.clone()).expect("wire");
                    sketch.merge_wire(&wire).expect("a sketch");
                    found = true;
                }
            }
        }
    }
    found.then(|| sketch.count())
}

#[tokio::test]
async fn units_travel_with_the_counts_and_survive_a_failed_flush() {
    let metrics = Metrics::default();
    for i in 0..50 {
        let unit = format!("user-{}", i % 20);
        metrics.exposure("checkout", "on");
        metrics.exposure_unit("checkout", "on", &unit);
        if i % 10 == 0 {
            metrics.event("error", "checkout", "on");
            metrics.event_unit("error", "checkout", "on", &unit, Some(3.0));
        }
    }
    metrics
        .flush_with(|_| std::future::ready(Delivery::Retry("503".to_owned())))
        .await;
    metrics.exposure("checkout", "on");
    metrics.exposure_unit("checkout", "on", "user-99");
    let recorder = Recorder::default();
    metrics.flush_with(recorder.send()).await;
    let bodies = recorder.bodies.lock().expect("lock").clone();
    assert_eq!(units_in(&bodies, "exposures", "checkout"), Some(21));
    // Five events from two users (user-0 and user-10): two units, five values.
    assert_eq!(units_in(&bodies, "events", "checkout"), Some(2));
    let value: Value = serde_json::from_slice(&bodies[0]).expect("JSON");
    let event = &value["events"][0];
    assert_eq!(event["values"]["count"], 5, "{value}");
    assert_eq!(event["values"]["sum"], 15.0, "{value}");
    let (exposures, _) = recorder.sums();
    assert_eq!(exposures[&key(&["checkout", "on"])], 51);
}

/// The `unknown_flags` of the bodies that carry them, one list per body.
fn unknown_in(bodies: &[Vec<u8>]) -> Vec<Vec<String>> {
    bodies
        .iter()
        .filter_map(|body| {
            let value: Value = serde_json::from_slice(body).expect("a JSON body");
            let keys = value.get("unknown_flags")?.as_array()?.clone();
            assert_eq!(
                value.as_object().map(|o| o.len()),
                Some(1),
                "unknown flags travel alone: {value}"
            );
            Some(
                keys.iter()
                    .map(|k| k.as_str().expect("a key").to_owned())
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn unknown_flags_are_sent_once_per_flush_capped_and_kept_on_failure() {
    let metrics = Metrics::with_limits(Limits {
        max_unknown: 3,
        ..Limits::default()
    });
    for _ in 0..4 {
        for key in ["ghost-b", "ghost-a", "ghost-c", "ghost-d"] {
            metrics.unknown_flag(key);
        }
    }
    metrics.unknown_flag("");
    metrics.unknown_flag("bad\nkey");
    metrics.exposure("checkout", "on");
    // The 4th distinct key, four times, and two names the server would refuse.
    assert_eq!(metrics.dropped(), 6);

    // A failed POST keeps them for the next flush.
    let mut tried = Vec::new();
    metrics
        .flush_with(|body| {
            tried.push(body);
            std::future::ready(Delivery::Retry("503".to_owned()))
        })
        .await;
    assert_eq!(
        tried.len(),
        1,
        "the server is unreachable after the counts fail"
    );
    let recorder = Recorder::default();
    metrics.flush_with(recorder.send()).await;
    let bodies = recorder.bodies.lock().expect("lock").clone();
    assert_eq!(
        unknown_in(&bodies),
        [vec!["ghost-a", "ghost-b", "ghost-c"]],
        "sorted, after the counts"
    );
    assert_eq!(recorder.sums().0[&key(&["checkout", "on"])], 1);

    // Sent: the next flush has none; a refused body is dropped and counted.
    metrics.flush_with(recorder.send()).await;
    assert_eq!(recorder.bodies.lock().expect("lock").len(), bodies.len());
    metrics.unknown_flag("ghost-e");
    metrics
        .flush_with(|_| std::future::ready(Delivery::Rejected("400".to_owned())))
        .await;
    assert_eq!(metrics.dropped(), 7);
    metrics.flush_with(recorder.send()).await;
    assert_eq!(recorder.bodies.lock().expect("lock").len(), bodies.len());
}
