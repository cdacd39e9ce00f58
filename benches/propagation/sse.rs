//! The clients' minimal HTTP/1.1 + chunked + server-sent events decoder: it keeps only
//! the start of each line, so a multi-megabyte snapshot `data:` line is skipped, not
//! parsed.

use anyhow::{Context as _, Result};

use crate::EventKind;

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP/1.1 response body, chunked or not, decoded into SSE events as it arrives.
pub(crate) struct Body {
    chunk: Option<Chunk>,
    sse: Sse,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Reading a chunk-size line (hex digits, then anything up to `\n`).
    Size { size: usize, digits: bool },
    /// Inside a chunk's data, this many bytes to go.
    Data(usize),
    /// After a chunk's data, up to its `\n`.
    DataEnd,
    /// The last (empty) chunk was read.
    Done,
}

impl Body {
    pub(crate) fn new(chunked: bool) -> Body {
        Body {
            chunk: chunked.then_some(Chunk::Size {
                size: 0,
                digits: true,
            }),
            sse: Sse::default(),
        }
    }

    pub(crate) fn done(&self) -> bool {
        matches!(self.chunk, Some(Chunk::Done))
    }

    /// Decodes `input`, adding every event it completes to `events`.
    pub(crate) fn feed(
        &mut self,
        mut input: &[u8],
        events: &mut Vec<(EventKind, Option<u64>)>,
    ) -> Result<()> {
        let Some(mut chunk) = self.chunk else {
            self.sse.feed(input, events);
            return Ok(());
        };
        while !input.is_empty() {
            match chunk {
                Chunk::Size { size, digits } => {
                    let byte = input[0];
                    input = &input[1..];
                    chunk = match byte {
                        b'\n' if size == 0 => Chunk::Done,
                        b'\n' => Chunk::Data(size),
                        _ if digits && byte.is_ascii_hexdigit() => {
                            let digit = (byte as char).to_digit(16).unwrap_or(0) as usize;
                            let size = size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(digit))
                                .context("a chunk size overflows")?;
                            Chunk::Size { size, digits }
                        }
                        // Extensions and the `\r`: ignored up to the `\n`.
                        _ => Chunk::Size {
                            size,
                            digits: false,
                        },
                    };
                }
                Chunk::Data(left) => {
                    let take = left.min(input.len());
                    self.sse.feed(&input[..take], events);
                    input = &input[take..];
                    chunk = if take == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take)
                    };
                }
                Chunk::DataEnd => {
                    let byte = input[0];
                    input = &input[1..];
                    if byte == b'\n' {
                        chunk = Chunk::Size {
                            size: 0,
                            digits: true,
                        };
                    }
                }
                Chunk::Done => break,
            }
        }
        self.chunk = Some(chunk);
        Ok(())
    }
}

/// How much of each SSE line is kept: enough for `event: snapshot` and `id: <u64>`.
const LINE_HEAD: usize = 48;

/// A server-sent events parser that keeps only the start of each line, so a
/// multi-megabyte `data:` line costs a `memchr` over it and nothing else.
struct Sse {
    head: [u8; LINE_HEAD],
    head_len: usize,
    line_len: usize,
    kind: EventKind,
    id: Option<u64>,
    any: bool,
}

impl Default for Sse {
    fn default() -> Self {
        Sse {
            head: [0; LINE_HEAD],
            head_len: 0,
            line_len: 0,
            kind: EventKind::Other,
            id: None,
            any: false,
        }
    }
}

impl Sse {
    fn feed(&mut self, mut input: &[u8], events: &mut Vec<(EventKind, Option<u64>)>) {
        while !input.is_empty() {
            let (part, rest, ends) = match memchr::memchr(b'\n', input) {
                Some(end) => (&input[..end], &input[end + 1..], true),
                None => (input, &input[input.len()..], false),
            };
            let keep = part.len().min(LINE_HEAD - self.head_len);
            self.head[self.head_len..self.head_len + keep].copy_from_slice(&part[..keep]);
            self.head_len += keep;
            self.line_len += part.len();
            if ends {
                self.line(events);
            }
            input = rest;
        }
    }

    /// A line ended: a field, a comment, or (blank) the end of an event.
    fn line(&mut self, events: &mut Vec<(EventKind, Option<u64>)>) {
        let complete = self.head_len == self.line_len;
        let head = &self.head[..self.head_len];
        let head = if complete {
            head.strip_suffix(b"\r").unwrap_or(head)
        } else {
            head
        };
        if head.is_empty() && complete {
            if self.any {
                events.push((self.kind, self.id));
            }
            (self.kind, self.id, self.any) = (EventKind::Other, None, false);
        } else if !head.starts_with(b":") {
            let (field, value) = match head.iter().position(|&b| b == b':') {
                Some(colon) => (&head[..colon], &head[colon + 1..]),
                None => (head, &head[head.len()..]),
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            match field {
                b"event" => {
                    self.kind = match value {
                        b"snapshot" => EventKind::Snapshot,
                        b"change" => EventKind::Change,
                        _ => EventKind::Other,
                    };
                    self.any = true;
                }
                b"id" => {
                    self.id = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .filter(|_| complete);
                    self.any = true;
                }
                b"data" => self.any = true,
                _ => {}
            }
        }
        (self.head_len, self.line_len) = (0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and returns the events.
    fn events(chunked: bool, input: &[u8], step: usize) -> Vec<(EventKind, Option<u64>)> {
        let mut body = Body::new(chunked);
        let mut events = Vec::new();
        for piece in input.chunks(step) {
            body.feed(piece, &mut events).expect("decodes");
        }
        events
    }

    #[test]
    fn parses_events_whatever_the_read_boundaries() {
        let long = "x".repeat(100_000);
        let stream = format!(
            ":heartbeat\n\nevent: snapshot\nid: 7\ndata: {{\"flags\":\"{long}\"}}\n\n\
             event: change\r\nid: 8\r\ndata: {{}}\r\n\r\nid: 9\ndata: x\n\n"
        );
        let expected = vec![
            (EventKind::Snapshot, Some(7)),
            (EventKind::Change, Some(8)),
            (EventKind::Other, Some(9)),
        ];
        // The same bytes as HTTP chunks of 1000 bytes (hex size, CRLF, data, CRLF).
        let mut chunked = Vec::new();
        for piece in stream.as_bytes().chunks(1000) {
            chunked.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        for step in [1, 7, 4096, usize::MAX] {
            assert_eq!(
                events(false, stream.as_bytes(), step),
                expected,
                "raw, {step}"
            );
            assert_eq!(events(true, &chunked, step), expected, "chunked, {step}");
        }
        let mut body = Body::new(true);
        body.feed(&chunked, &mut Vec::new()).expect("decodes");
        assert!(body.done());
    }
}
