//! A lean reader of `text/event-stream` bodies, after the WHATWG parsing rules.
//!
//! The generator shares the machine with the hub it measures and reads hundreds of
//! thousands of events a second; a general parser that builds strings for every field
//! of every event made the generator, not the hub, the busiest process of a broadcast
//! run. This one copies nothing but an event's data (only when it spans chunks or
//! lines) and its id, and hands them out as bytes.
//!
//! The delivery checker needs the rest of the framing too: the event type (`gap`,
//! `herald.position`), the id each event carries and the *last event ID* an
//! EventSource would send when it reconnects, and the `retry:` delay. They follow the
//! specification's dispatch step: the last event ID is taken at every blank line, even
//! one that ends a block without data, and it survives events that carry no id.

/// One dispatched event, borrowed from the reader until the callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `event` field; empty for the default type, `message`.
    pub event_type: &'a [u8],
    /// The `data` lines, joined by `\n`.
    pub data: &'a [u8],
    /// The `id` field of this event's own block, if it had one.
    pub id: Option<&'a [u8]>,
    /// What an EventSource would now send as `Last-Event-ID` (its `lastEventId`).
    pub last_event_id: &'a [u8],
}

/// Splits a stream's bytes into events and hands each event to the caller.
#[derive(Debug, Default)]
pub struct EventReader {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The data of the event being read, its lines joined by `\n`.
    data: Vec<u8>,
    /// Whether the event being read has a `data` field (an empty one counts).
    has_data: bool,
    /// The event type buffer; empty for `message`.
    event_type: Vec<u8>,
    /// The last event ID buffer: the latest `id` field's value. It is not reset
    /// between events.
    id_buffer: Vec<u8>,
    /// The block being read has an `id` field of its own.
    has_id: bool,
    /// The last event ID string: the buffer as of the last blank line.
    last_event_id: Vec<u8>,
    /// The latest valid `retry` field, in milliseconds.
    retry: Option<u64>,
    /// The last chunk ended in `\r`: a `\n` starting the next one ends no line.
    after_cr: bool,
    /// A line has been read (a byte order mark is skipped at the start only).
    started: bool,
}

impl EventReader {
    /// A reader for a stream that resumes from `last_event_id`: an event without an
    /// id of its own (Herald's `gap`) leaves that id in place, as browsers keep
    /// `lastEventId` across reconnections.
    pub fn resuming(last_event_id: &[u8]) -> Self {
        Self {
            id_buffer: last_event_id.to_vec(),
            last_event_id: last_event_id.to_vec(),
            ..Self::default()
        }
    }

    /// The id an EventSource would send as `Last-Event-ID` if the stream ended now.
    pub fn last_event_id(&self) -> &[u8] {
        &self.last_event_id
    }

    /// The reconnection delay the stream asked for (`retry:`), in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Reads `chunk`, calling `on_event` with the data of each event it completes.
    pub fn feed(&mut self, chunk: &[u8], on_event: &mut impl FnMut(&[u8])) {
        self.feed_events(chunk, &mut |event: Event<'_>| on_event(event.data));
    }

    /// Reads `chunk`, calling `on_event` with each event it completes.
    pub fn feed_events(&mut self, mut chunk: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        if std::mem::take(&mut self.after_cr) {
            chunk = chunk.strip_prefix(b"\n").unwrap_or(chunk);
        }
        while let Some(end) = chunk.iter().position(|&byte| byte == b'\n' || byte == b'\r') {
            let (line, rest) = chunk.split_at(end);
            let ending = match rest {
                [b'\r', b'\n', ..] => 2,
                [b'\r'] => {
                    self.after_cr = true;
                    1
                }
                _ => 1,
            };
            if self.partial.is_empty() {
                self.line(line, on_event);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole, on_event);
                whole.clear();
                self.partial = whole;
            }
            chunk = &rest[ending..];
        }
        self.partial.extend_from_slice(chunk);
    }

    fn line(&mut self, mut line: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        let (field, value) = match line.iter().position(|&byte| byte == b':') {
            Some(0) => return, // a comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.extend_from_slice(value);
                self.has_id = true;
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Digits only, so the text parses unless it overflows.
                self.retry = std::str::from_utf8(value).ok().and_then(|text| text.parse().ok());
            }
            _ => {}
        }
    }

    /// A blank line: the last event ID is taken, and the event is handed out if it
    /// has data.
    fn dispatch(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        let has_id = std::mem::take(&mut self.has_id);
        if has_id {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        if std::mem::take(&mut self.has_data) {
            on_event(Event {
                event_type: &self.event_type,
                data: &self.data,
                id: has_id.then_some(&self.id_buffer[..]),
                last_event_id: &self.last_event_id,
            });
        }
        self.data.clear();
        self.event_type.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data of every event in `stream`, fed in chunks of `size` bytes.
    fn events(stream: &[u8], size: usize) -> Vec<String> {
        let mut reader = EventReader::default();
        let mut seen = Vec::new();
        for chunk in stream.chunks(size) {
            reader.feed(chunk, &mut |data| seen.push(String::from_utf8_lossy(data).into_owned()));
        }
        seen
    }

    /// The same events however the stream is cut into chunks.
    fn events_in_any_chunks(stream: &[u8]) -> Vec<String> {
        let whole = events(stream, stream.len().max(1));
        for size in 1..stream.len() {
            assert_eq!(events(stream, size), whole, "in chunks of {size} bytes");
        }
        whole
    }

    #[test]
    fn events_end_at_a_blank_line() {
        let stream =
            b"id: 1\nevent: message\ndata: {\"t\":1}\n\ndata: second\n\ndata: unfinished\n";
        assert_eq!(events_in_any_chunks(stream), ["{\"t\":1}", "second"]);
    }

    #[test]
    fn lines_may_end_in_crlf_cr_or_lf() {
        let stream = b"data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n";
        assert_eq!(events_in_any_chunks(stream), ["a", "b", "c", "d"]);
    }

    #[test]
    fn data_lines_are_joined_and_comments_skipped() {
        let stream = b": keepalive\n\ndata:one\n: between\ndata:  two\ndata\n\nretry: 10\n\n";
        assert_eq!(events_in_any_chunks(stream), ["one\n two\n"]);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_at_the_start_only() {
        let stream = "\u{feff}data: x\n\ndata: \u{feff}y\n\n".as_bytes();
        assert_eq!(events_in_any_chunks(stream), ["x", "\u{feff}y"]);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        assert_eq!(events_in_any_chunks(b"event: ping\nid: 3\n\n\n"), Vec::<String>::new());
        assert_eq!(events_in_any_chunks(b"data\n\n"), [""]);
    }

    /// Every event in `stream` as (type, data, own id, last event id), fed in chunks of
    /// every size.
    fn full_events(reader: impl Fn() -> EventReader, stream: &[u8]) -> Vec<[String; 4]> {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let read = |size: usize| {
            let mut reader = reader();
            let mut seen = Vec::new();
            for chunk in stream.chunks(size) {
                reader.feed_events(chunk, &mut |event: Event<'_>| {
                    seen.push([
                        text(event.event_type),
                        text(event.data),
                        event.id.map_or_else(|| "-".to_owned(), text),
                        text(event.last_event_id),
                    ]);
                });
            }
            seen
        };
        let whole = read(stream.len().max(1));
        for size in 1..stream.len() {
            assert_eq!(read(size), whole, "in chunks of {size} bytes");
        }
        whole
    }

    #[test]
    fn events_carry_their_type_their_id_and_the_last_event_id() {
        let stream = b"retry: 2000\n: herald\n\nid: e-0-p\nevent: herald.position\ndata: \n\n\
            event: gap\ndata: {}\n\nid: e-1-c\ndata: one\n\ndata: two\n\n";
        let events = full_events(EventReader::default, stream);
        assert_eq!(
            events,
            [
                ["herald.position", "", "e-0-p", "e-0-p"],
                ["gap", "{}", "-", "e-0-p"],
                ["", "one", "e-1-c", "e-1-c"],
                ["", "two", "-", "e-1-c"],
            ]
        );
    }

    #[test]
    fn the_last_event_id_is_taken_at_a_blank_line_even_without_data() {
        let mut reader = EventReader::default();
        reader.feed_events(b"id: 7\n", &mut |_| panic!("no event yet"));
        assert_eq!(reader.last_event_id(), b"", "an unfinished block does not count");
        reader.feed_events(b"\nid: 8\ndata: x", &mut |_| panic!("no data dispatched"));
        assert_eq!(reader.last_event_id(), b"7");
        reader.feed_events(b"\nid\n\n", &mut |_| {});
        assert_eq!(reader.last_event_id(), b"", "an empty id clears it");
        reader.feed_events(b"id: a\0b\n\n", &mut |_| {});
        assert_eq!(reader.last_event_id(), b"", "an id with NUL is ignored");
    }

    #[test]
    fn a_resumed_stream_keeps_the_id_it_resumed_from() {
        let events = full_events(
            || EventReader::resuming(b"e-4-b"),
            b"event: gap\ndata: {}\n\nid: e-6-t\ndata: y\n\n",
        );
        assert_eq!(events, [["gap", "{}", "-", "e-4-b"], ["", "y", "e-6-t", "e-6-t"]]);
    }

    #[test]
    fn retry_takes_digits_only() {
        let mut reader = EventReader::default();
        reader.feed_events(b"retry: 1500\n\nretry: 2s\n\nretry:\n\n", &mut |_| {});
        assert_eq!(reader.retry(), Some(1500));
        reader.feed_events(b"retry: 30\n\n", &mut |_| {});
        assert_eq!(reader.retry(), Some(30));
    }
}
