//! Sending the counts to `POST /v1/sdk/metrics`, on an interval and on `close`.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;

use super::Delivery;
use crate::state::{Inner, Transport};

/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends what is held (and what earlier flushes could not deliver).
pub(crate) async fn flush(inner: &Inner) {
    if inner.config.transport == Transport::Offline {
        // An offline client contacts no server.
        return;
    }
    let url = format!("{}/v1/sdk/metrics", inner.servers.url());
    inner
        .metrics
        .flush_with(|body| {
            let request = inner
                .http
                .post(&url)
                .bearer_auth(&inner.token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(REQUEST_TIMEOUT)
                .body(body);
            async move { delivery(request.send().await).await }
        })
        .await;
}

async fn delivery(result: Result<reqwest::Response, reqwest::Error>) -> Delivery {
    let response = match result {
        Ok(response) => response,
        Err(error) => return Delivery::Retry(error.to_string()),
    };
    let status = response.status();
    if status.is_success() {
        return Delivery::Accepted;
    }
    let text = response.text().await.unwrap_or_default();
    let why = format!("{status}: {text}");
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Delivery::Retry(why)
    } else {
        Delivery::Rejected(why)
    }
}

/// Flushes on the configured interval until shutdown (`close` sends the rest).
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
