//! An incremental parser of `text/event-stream` (the WHATWG server-sent events format): bytes
//! in, whole events out, with a bound on the size of a line and of an event so that a broken
//! or hostile server cannot make the SDK buffer without limit.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id in force when this event was dispatched (ids persist across events).
    pub id: Option<String>,
}

/// The stream broke the size bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server-sent event larger than {0} bytes")]
pub(crate) struct TooLarge(pub usize);

#[derive(Debug)]
pub(crate) struct SseParser {
    max: usize,
    /// The current, incomplete line.
    line: Vec<u8>,
    /// A `\r` ended the previous chunk: a `\n` starting the next one belongs to it.
    after_cr: bool,
    /// Nothing has been parsed yet (a leading byte-order mark is skipped).
    at_start: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
}

impl SseParser {
    /// A parser refusing lines or events larger than `max` bytes.
    pub(crate) fn new(max: usize) -> SseParser {
        SseParser {
            max,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            event: String::new(),
            data: String::new(),
            has_data: false,
            last_id: None,
        }
    }

    /// Feeds a chunk of the stream, calling `on_event` for each completed event.
    pub(crate) fn feed(
        &mut self,
        mut chunk: &[u8],
        on_event: &mut dyn FnMut(SseEvent),
    ) -> Result<(), TooLarge> {
        if self.at_start && !chunk.is_empty() {
            // A stream may begin with a UTF-8 byte-order mark (possibly split across chunks;
            // a BOM split is rare enough that only a whole one in the first chunk is skipped).
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
            self.at_start = false;
        }
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            chunk = chunk.strip_prefix(b"\n").unwrap_or(chunk);
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.push_line_part(&chunk[..end])?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, on_event)?;
            self.line = line;
            self.line.clear();
            if chunk[end] == b'\r' {
                match chunk.get(end + 1) {
                    Some(b'\n') => chunk = &chunk[end + 2..],
                    Some(_) => chunk = &chunk[end + 1..],
                    None => {
                        self.after_cr = true;
                        chunk = &[];
                    }
                }
            } else {
                chunk = &chunk[end + 1..];
            }
        }
        self.push_line_part(chunk)
    }

    /// Whether an event has been started but not completed (a cut here loses it).
    pub(crate) fn in_event(&self) -> bool {
        !self.line.is_empty() || self.has_data || !self.event.is_empty()
    }

    fn push_line_part(&mut self, part: &[u8]) -> Result<(), TooLarge> {
        if self.line.len() + part.len() > self.max {
            return Err(TooLarge(self.max));
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    fn process_line(
        &mut self,
        line: &[u8],
        on_event: &mut dyn FnMut(SseEvent),
    ) -> Result<(), TooLarge> {
        if line.is_empty() {
            self.dispatch(on_event);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // A comment (the server's heartbeat).
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => {
                self.event.clear();
                self.event.push_str(&value);
            }
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max {
                    return Err(TooLarge(self.max));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            // An id with a NUL is ignored, as the specification says.
            b"id" if !value.contains('\0') => self.last_id = Some(value.into_owned()),
            // `retry` (a reconnection delay) is ignored: the SDK has its own backoff policy.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, on_event: &mut dyn FnMut(SseEvent)) {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return;
        }
        self.has_data = false;
        on_event(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]], max: usize) -> Result<Vec<SseEvent>, TooLarge> {
        let mut parser = SseParser::new(max);
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut |e| events.push(e))?;
        }
        Ok(events)
    }

    fn event(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    #[test]
    fn parses_named_events_with_ids_and_skips_comments() {
        let text = b": heartbeat\n\nevent: put\nid: 7\ndata: {\"version\":7}\n\n:heartbeat\n\nevent: patch\nid: 8\ndata: {}\n\n";
        let events = parse_chunks(&[text], 1024).unwrap();
        assert_eq!(
            events,
            vec![
                event("put", "{\"version\":7}", Some("7")),
                event("patch", "{}", Some("8"))
            ]
        );
    }

    #[test]
    fn every_line_ending_and_any_split_give_the_same_events() {
        let lf = "event: patch\nid: 3\ndata: a\ndata: b\n\ndata:c\n\n";
        let expected = vec![
            event("patch", "a\nb", Some("3")),
            event("message", "c", Some("3")),
        ];
        for ending in ["\n", "\r\n", "\r"] {
            let text = lf.replace('\n', ending);
            let bytes = text.as_bytes();
            // Every split point, including between `\r` and `\n`.
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                assert_eq!(
                    parse_chunks(&[a, b], 1024).unwrap(),
                    expected,
                    "{ending:?} split at {split}"
                );
            }
            // Byte by byte.
            let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(parse_chunks(&chunks, 1024).unwrap(), expected);
        }
    }

    #[test]
    fn an_event_cut_before_its_blank_line_is_not_dispatched() {
        let mut parser = SseParser::new(1024);
        let mut events = Vec::new();
        parser
            .feed(b"event: patch\nid: 9\ndata: {\"key\":", &mut |e| {
                events.push(e)
            })
            .unwrap();
        assert!(events.is_empty());
        assert!(parser.in_event());
        parser.feed(b"\"x\"}\n", &mut |e| events.push(e)).unwrap();
        assert!(events.is_empty(), "no blank line yet");
        parser.feed(b"\n", &mut |e| events.push(e)).unwrap();
        assert_eq!(events, vec![event("patch", "{\"key\":\"x\"}", Some("9"))]);
        assert!(!parser.in_event());
    }

    #[test]
    fn field_details_follow_the_specification() {
        // No space after the colon, a field without a colon, an empty data line, a BOM,
        // an id with NUL (ignored), unknown fields and `retry` (ignored), an event with no
        // data (not dispatched, and its name does not leak into the next event).
        let text =
            "\u{feff}data\nid: 1\n\nevent: lonely\n\nid: 2\0\nretry: 10\nfoo: bar\ndata:x\n\n";
        let events = parse_chunks(&[text.as_bytes()], 1024).unwrap();
        assert_eq!(
            events,
            vec![
                event("message", "", Some("1")),
                event("message", "x", Some("1"))
            ]
        );
    }

    #[test]
    fn oversized_lines_and_events_are_refused() {
        // One long line without an end, fed in pieces: refused once it passes the bound.
        let mut parser = SseParser::new(64);
        let mut sink = |_| {};
        assert!(parser.feed(&[b'a'; 40], &mut sink).is_ok());
        assert_eq!(parser.feed(&[b'a'; 40], &mut sink), Err(TooLarge(64)));
        // Many short data lines adding up past the bound.
        let lines = "data: 0123456789\n".repeat(10);
        assert_eq!(parse_chunks(&[lines.as_bytes()], 64), Err(TooLarge(64)));
        // Exactly at the bound is fine.
        let ok = format!("data: {}\n\n", "x".repeat(58));
        assert_eq!(parse_chunks(&[ok.as_bytes()], 64).unwrap().len(), 1);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let events = parse_chunks(&[b"data: a\xffb\n\n"], 64).unwrap();
        assert_eq!(events[0].data, "a\u{fffd}b");
    }
}
