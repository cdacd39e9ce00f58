//! A minimal Server-Sent Events reader over a response body, for the tests of the
//! server's streams (`/v1/sdk/stream`, `/ofrep/v1/events`): frames split on blank
//! lines, `event`/`id`/`data` fields, comments (heartbeats) kept apart.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::Value;

/// How long to wait for a frame that should come at once.
const WAIT: Duration = Duration::from_secs(10);

/// One SSE frame: an event, or a comment (a heartbeat).
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// An event.
    Event(SseEvent),
    /// A comment line's text.
    Comment(String),
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `event:` (`message` when absent).
    pub event: String,
    /// `id:`, if any.
    pub id: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }

    /// The id as a number; panics if there is none or it is not one.
    pub fn id(&self) -> u64 {
        self.id
            .as_deref()
            .expect("event has an id")
            .parse()
            .expect("numeric id")
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open event stream.
pub struct SseStream {
    body: ByteStream,
    buffer: String,
}

/// Sends `request` (built without a client timeout, which would cut the endless body)
/// and opens its answer as an event stream; panics unless it is a 200
/// `text/event-stream`.
pub async fn open(request: reqwest::RequestBuilder) -> SseStream {
    let response = tokio::time::timeout(WAIT, request.header("accept", "text/event-stream").send())
        .await
        .expect("stream response in time")
        .expect("stream request sent");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(status, 200, "the stream answered {status} ({content_type})");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    SseStream {
        body: Box::pin(response.bytes_stream()),
        buffer: String::new(),
    }
}

fn parse_frame(block: &str) -> Option<Frame> {
    let mut event = String::from("message");
    let mut id = None;
    let mut data: Vec<&str> = Vec::new();
    let mut comments = Vec::new();
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            comments.push(comment.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_owned(),
            "id" => id = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() && id.is_none() {
        return comments.pop().map(Frame::Comment);
    }
    Some(Frame::Event(SseEvent {
        event,
        id,
        data: data.join("\n"),
    }))
}

impl SseStream {
    /// The next frame; `None` when the server ended the stream. Panics when none
    /// comes within 10 s.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(frame) = parse_frame(&block) {
                    return Some(frame);
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an SSE frame in time")?
                .expect("stream body readable");
            let text = std::str::from_utf8(&chunk).expect("UTF-8 stream");
            self.buffer.push_str(&text.replace("\r\n", "\n"));
        }
    }

    /// The next event, skipping heartbeats.
    pub async fn next_event(&mut self) -> SseEvent {
        loop {
            match self.next_frame().await.expect("the stream is still open") {
                Frame::Event(event) => return event,
                Frame::Comment(_) => {}
            }
        }
    }
}
