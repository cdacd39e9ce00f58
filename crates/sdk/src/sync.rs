//! Keeping the client's flags current. (Polling version; the streaming transport
//! replaces `run`.)

use std::sync::{Arc, Weak};

use reqwest::header::{AUTHORIZATION, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use tokio::sync::watch;

use crate::client::{Inner, Loaded, Status};
use crate::error::Error;

/// Fetches the snapshot; `Ok(None)` when it is unchanged since `etag`.
pub(crate) async fn fetch_snapshot(
    inner: &Inner,
    etag: Option<&str>,
) -> Result<Option<Loaded>, Error> {
    let url = format!("{}/v1/sdk/snapshot", inner.url);
    let mut request = inner
        .http
        .get(&url)
        .header(AUTHORIZATION, format!("Bearer {}", inner.token));
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    let response = request.send().await.map_err(|e| Error::Unreachable {
        url: inner.url.clone(),
        source: Box::new(e),
    })?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let message = response.text().await.unwrap_or_default();
        return Err(Error::Unauthorized {
            status: status.as_u16(),
            message,
        });
    }
    if !status.is_success() {
        return Err(Error::Unreachable {
            url: inner.url.clone(),
            source: format!("unexpected status {status}").into(),
        });
    }
    let _etag = response.headers().get(ETAG).cloned();
    let document: serde_json::Value = response.json().await.map_err(|e| Error::Unreachable {
        url: inner.url.clone(),
        source: Box::new(e),
    })?;
    Loaded::from_document(&document).map(Some)
}

/// Starts the background sync task.
pub(crate) fn spawn(inner: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            let interval = strong.config.poll_interval;
            let etag = format!("\"{}\"", strong.state.load().revision);
            match fetch_snapshot(&strong, Some(&etag)).await {
                Ok(Some(loaded)) => {
                    let flags = loaded.snapshot.flags().map(|f| f.key.to_string()).collect();
                    strong.install(loaded, flags);
                    strong.set_status(Status::Ready);
                }
                Ok(None) => strong.set_status(Status::Ready),
                Err(_) => strong.set_status(Status::Stale {
                    since: std::time::SystemTime::now(),
                }),
            }
            drop::<Arc<Inner>>(strong);
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}
