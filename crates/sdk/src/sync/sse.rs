//! Server-Sent Events (parsed by [`switchyard_core::sse`]) as stream events.

use super::incoming::{Incoming, IncomingKind};
use switchyard_core::sse::SseEvent;

impl From<SseEvent> for Incoming {
    fn from(event: SseEvent) -> Self {
        let kind = match event.event.as_str() {
            "snapshot" => IncomingKind::Snapshot,
            "change" => IncomingKind::Change,
            _ => IncomingKind::Other,
        };
        Incoming {
            kind,
            revision: event.id.as_deref().and_then(|id| id.trim().parse().ok()),
            document: event.data,
        }
    }
}
