//! An incremental `text/event-stream` parser (Server-Sent Events), shared by the SDK
//! and the relay, which both follow a server's `/v1/sdk/stream`.

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (`message` when absent).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, when the event had one.
    pub id: Option<String>,
}

/// An incremental `text/event-stream` parser (the WHATWG rules: lines end with
/// CRLF, LF or CR; `:` starts a comment; a blank line dispatches; an event without
/// data is not dispatched).
#[derive(Debug)]
pub struct SseParser {
    /// The most bytes one event (and its unfinished line) may take.
    limit: usize,
    line: Vec<u8>,
    /// The previous chunk ended with CR: a leading LF belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    /// A parser refusing events larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SseParser {
            limit,
            line: Vec::new(),
            after_cr: false,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
        }
    }

    /// Parses `bytes`, appending complete events to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), &'static str> {
        if self.after_cr {
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
            self.after_cr = false;
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&bytes[..end]);
            let line = std::mem::take(&mut self.line);
            self.line(&line, out);
            let terminator = bytes[end];
            bytes = &bytes[end + 1..];
            if terminator == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() + self.data.len() > self.limit {
            return Err("an event exceeds the size limit");
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            let event = self.event.take();
            let id = self.id.take();
            let data = std::mem::take(&mut self.data);
            if std::mem::take(&mut self.has_data) {
                out.push(SseEvent {
                    event: event.unwrap_or_else(|| "message".to_owned()),
                    data,
                    id,
                });
            }
            return;
        }
        if line.first() == Some(&b':') {
            return; // a comment (heartbeat)
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out).expect("parses");
        }
        out
    }

    fn event(name: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: name.to_owned(),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    #[test]
    fn parses_events_comments_and_multiline_data() {
        let text = b":heartbeat\n\nevent: snapshot\nid: 3\ndata: {\"a\":\ndata: 1}\n\n:heartbeat\n\ndata:plain\n\n";
        assert_eq!(
            parse_chunks(&[text]),
            vec![
                event("snapshot", "{\"a\":\n1}", Some("3")),
                event("message", "plain", None)
            ]
        );
    }

    #[test]
    fn any_chunking_and_line_ending_gives_the_same_events() {
        let lf = "event: change\nid: 7\ndata: {\"revision\":7, \"é\": \"ü\"}\n\nevent: snapshot\ndata: x\n\n";
        let expected = parse_chunks(&[lf.as_bytes()]);
        assert_eq!(expected.len(), 2);
        for ending in ["\n", "\r\n", "\r"] {
            let text = lf.replace('\n', ending);
            let bytes = text.as_bytes();
            // Every split point, including inside CRLF and inside a UTF-8 character.
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                assert_eq!(
                    parse_chunks(&[a, b]),
                    expected,
                    "ending {ending:?} split at {split}"
                );
            }
            // One byte at a time.
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(
                parse_chunks(&singles),
                expected,
                "ending {ending:?} bytewise"
            );
        }
    }

    #[test]
    fn events_without_data_are_not_dispatched_and_fields_reset() {
        assert_eq!(
            parse_chunks(&[b"event: change\nid: 1\n\ndata: d\n\n"]),
            vec![event("message", "d", None)]
        );
        assert_eq!(
            parse_chunks(&[b"data\n\n"]),
            vec![event("message", "", None)]
        );
        // An incomplete event is held back.
        assert!(parse_chunks(&[b"event: change\ndata: x\n"]).is_empty());
    }
}
