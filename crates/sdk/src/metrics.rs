//! Exposure and tracked-event counts, aggregated in memory and flushed to
//! `POST /v1/sdk/metrics`. (Simple version; to be replaced by an allocation-free one.)

use std::collections::HashMap;
use std::sync::{Mutex, Weak};

use serde_json::json;
use tokio::sync::watch;

use crate::client::Inner;

/// Counts since the last flush.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    exposures: Mutex<HashMap<(String, String), u64>>,
    events: Mutex<HashMap<(String, String, String), u64>>,
}

impl Metrics {
    pub(crate) fn exposure(&self, flag: &str, variant: &str) {
        if let Ok(mut map) = self.exposures.lock() {
            *map.entry((flag.to_owned(), variant.to_owned()))
                .or_default() += 1;
        }
    }

    pub(crate) fn event(&self, event: &str, flag: &str, variant: &str) {
        if let Ok(mut map) = self.events.lock() {
            *map.entry((event.to_owned(), flag.to_owned(), variant.to_owned()))
                .or_default() += 1;
        }
    }
}

/// Sends what is held.
pub(crate) async fn flush(inner: &Inner) {
    let exposures: Vec<_> = inner
        .metrics
        .exposures
        .lock()
        .map(|mut m| m.drain().collect())
        .unwrap_or_default();
    let events: Vec<_> = inner
        .metrics
        .events
        .lock()
        .map(|mut m| m.drain().collect())
        .unwrap_or_default();
    if exposures.is_empty() && events.is_empty() {
        return;
    }
    let body = json!({
        "exposures": exposures.iter().map(|((flag, variant), count)| json!({"flag": flag, "variant": variant, "count": count})).collect::<Vec<_>>(),
        "events": events.iter().map(|((event, flag, variant), count)| json!({"event": event, "flag": flag, "variant": variant, "count": count})).collect::<Vec<_>>(),
    });
    let _ = inner
        .http
        .post(format!("{}/v1/sdk/metrics", inner.url))
        .bearer_auth(&inner.token)
        .json(&body)
        .send()
        .await;
}

/// Flushes on the configured interval until shutdown.
pub(crate) fn spawn_flusher(inner: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            let Some(interval) = inner.upgrade().map(|i| i.config.metrics_flush_interval) else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            let Some(strong) = inner.upgrade() else {
                return;
            };
            flush(&strong).await;
        }
    });
}
