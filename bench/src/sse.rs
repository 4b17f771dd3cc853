//! A lean reader of `text/event-stream` bodies, after the WHATWG parsing rules.
//!
//! The generator shares the machine with the hub it measures and reads hundreds of
//! thousands of events a second; a general parser that builds strings for every field
//! of every event made the generator, not the hub, the busiest process of a broadcast
//! run. This one copies nothing but an event's data, and only when it spans chunks or
//! lines, and hands it out as bytes.

/// Splits a stream's bytes into events and hands each event's data to the caller.
#[derive(Debug, Default)]
pub struct EventReader {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The data of the event being read, its lines joined by `\n`.
    data: Vec<u8>,
    /// Whether the event being read has a `data` field (an empty one counts).
    has_data: bool,
    /// The last chunk ended in `\r`: a `\n` starting the next one ends no line.
    after_cr: bool,
    /// A line has been read (a byte order mark is skipped at the start only).
    started: bool,
}

impl EventReader {
    /// Reads `chunk`, calling `on_event` with the data of each event it completes.
    pub fn feed(&mut self, mut chunk: &[u8], on_event: &mut impl FnMut(&[u8])) {
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

    fn line(&mut self, mut line: &[u8], on_event: &mut impl FnMut(&[u8])) {
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            if std::mem::take(&mut self.has_data) {
                on_event(&self.data);
            }
            self.data.clear();
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
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
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
}
