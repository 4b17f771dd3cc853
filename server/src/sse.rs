//! Server-Sent Events wire encoding, and nothing else.
//!
//! Every byte Herald writes to an event stream is produced here, so the framing rules
//! of the WHATWG HTML "event stream interpretation" live in one place:
//!
//! * one `data:` line per line of the payload, where CR, LF and CRLF all end a line
//!   (the parser treats all three as line terminators, so anything else would let a
//!   payload inject fields or whole events);
//! * `id:` and `event:` values can never contain a line break or NUL — callers pass
//!   validated values, and the encoder drops such characters anyway rather than panic;
//! * the `event:` field is omitted for the default type `message`;
//! * a frame ends with a blank line, which dispatches the event.
//!
//! The result is a [`Bytes`] that is built once per message and shared by every
//! connection that receives it.

use bytes::{BufMut, Bytes, BytesMut};

/// The event type a browser uses when a frame has no `event:` field.
pub const DEFAULT_EVENT: &str = "message";

/// Encodes one event frame.
///
/// `id` and `event` must not contain CR, LF or NUL (the hub's types guarantee it);
/// should one slip through, those characters are dropped instead of corrupting the
/// stream. An `event` equal to [`DEFAULT_EVENT`] is omitted, as the browser would
/// assume it anyway.
pub fn encode_event(id: Option<&str>, event: Option<&str>, data: &str) -> Bytes {
    let mut frame = BytesMut::with_capacity(data.len() + 32);
    if let Some(id) = id {
        put_field(&mut frame, "id", id);
    }
    if let Some(event) = event.filter(|event| *event != DEFAULT_EVENT) {
        put_field(&mut frame, "event", event);
    }
    for line in lines(data) {
        frame.put_slice(b"data: ");
        frame.put_slice(line.as_bytes());
        frame.put_u8(b'\n');
    }
    frame.put_u8(b'\n');
    frame.freeze()
}

/// Puts an `id:` line in front of a frame encoded without one. The same bytes as
/// encoding with the id in the first place: it lets a broker assign the id (inside
/// Redis, say) after the rest was encoded once by the node that accepted the message.
pub fn with_id(id: &str, frame_without_id: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(id.len() + 5 + frame_without_id.len());
    put_field(&mut frame, "id", id);
    frame.put_slice(frame_without_id);
    frame.freeze()
}

/// A comment line (`: text`), which EventSource ignores but which keeps proxies and
/// NAT tables from closing an idle connection.
pub fn comment(text: &str) -> Bytes {
    let mut frame = BytesMut::with_capacity(text.len() + 4);
    put_field(&mut frame, "", text);
    frame.put_u8(b'\n');
    frame.freeze()
}

/// The bytes that open every stream: the reconnection delay the browser should use,
/// then a comment, so that proxies and EventSource see bytes at once (EventSource only
/// fires `open` when the first bytes arrive).
pub fn preamble(retry_millis: u64) -> Bytes {
    let mut frame = BytesMut::with_capacity(32);
    frame.put_slice(format!("retry: {retry_millis}\n").as_bytes());
    put_field(&mut frame, "", "herald");
    frame.put_u8(b'\n');
    frame.freeze()
}

/// A frame that only sets the reconnection delay (WHATWG HTML §9.2.6: a `retry`
/// field and a blank line dispatch no event). Sent before a stream the server ends,
/// so that its client waits `retry_millis` before reconnecting.
pub fn retry(retry_millis: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_millis}\n\n"))
}

/// The event type of a [`position_marker`].
pub const POSITION_EVENT: &str = "herald.position";

/// Tells the client where its stream went live: an empty event of type
/// [`POSITION_EVENT`] whose id is that position. The browser adopts the id as its last
/// event id, so even a tab that has received no message yet resumes from the right
/// place when EventSource reconnects; a page that listens for the event can also keep
/// the id (say, across a reload). Listeners for `message` never see it.
pub fn position_marker(id: &str) -> Bytes {
    encode_event(Some(id), Some(POSITION_EVENT), "")
}

/// The event that announces messages a resuming client can no longer be sent.
pub const GAP_EVENT: &str = "gap";

/// The first frame of a replay that cannot cover everything after `last_event_id`:
/// a [`GAP_EVENT`] whose data names the id and why (`evicted` or `unknown`), so the
/// page can reload what it shows.
pub fn gap(last_event_id: &str, reason: &str) -> Bytes {
    let data = serde_json::json!({"last_event_id": last_event_id, "reason": reason});
    encode_event(None, Some(GAP_EVENT), &data.to_string())
}

/// The event type that tells a page its subscriber token expired.
pub const TOKEN_EXPIRED_EVENT: &str = "herald.token-expired";

/// The last frame of a stream whose subscriber token expired: the page should get a
/// fresh token and reconnect.
pub fn token_expired() -> Bytes {
    encode_event(None, Some(TOKEN_EXPIRED_EVENT), r#"{"reason":"token expired"}"#)
}

/// Writes `name: value\n`, dropping any character that would end the line early.
fn put_field(frame: &mut BytesMut, name: &str, value: &str) {
    frame.put_slice(name.as_bytes());
    frame.put_slice(b": ");
    if value.contains(['\r', '\n', '\0']) {
        let clean: String = value.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')).collect();
        frame.put_slice(clean.as_bytes());
    } else {
        frame.put_slice(value.as_bytes());
    }
    frame.put_u8(b'\n');
}

/// Splits a payload at every CRLF, CR or LF, exactly as an SSE parser will.
///
/// Unlike [`str::lines`], a lone CR also ends a line and a trailing line break yields a
/// final empty line (so `"a\n"` round-trips as `"a\n"`).
fn lines(data: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: Option<&str>, event: Option<&str>, data: &str) -> String {
        String::from_utf8(encode_event(id, event, data).to_vec()).unwrap()
    }

    #[test]
    fn single_line_with_id_and_event() {
        assert_eq!(
            frame(Some("e1-7-c"), Some("note"), "hello"),
            "id: e1-7-c\nevent: note\ndata: hello\n\n"
        );
    }

    #[test]
    fn an_id_added_later_gives_the_same_bytes() {
        let later = with_id("e1-7-c", &encode_event(None, Some("note"), "a\nb"));
        assert_eq!(later, encode_event(Some("e1-7-c"), Some("note"), "a\nb"));
    }

    #[test]
    fn default_event_name_is_omitted() {
        assert_eq!(frame(Some("1"), Some("message"), "x"), "id: 1\ndata: x\n\n");
        assert_eq!(frame(None, None, "x"), "data: x\n\n");
    }

    #[test]
    fn lf_starts_a_new_data_line() {
        assert_eq!(frame(None, None, "a\nb"), "data: a\ndata: b\n\n");
    }

    #[test]
    fn cr_starts_a_new_data_line() {
        assert_eq!(frame(None, None, "a\rb"), "data: a\ndata: b\n\n");
    }

    #[test]
    fn crlf_starts_one_new_data_line() {
        assert_eq!(frame(None, None, "a\r\nb"), "data: a\ndata: b\n\n");
    }

    #[test]
    fn lf_cr_is_two_line_breaks() {
        assert_eq!(frame(None, None, "a\n\rb"), "data: a\ndata: \ndata: b\n\n");
    }

    #[test]
    fn trailing_line_break_keeps_an_empty_last_line() {
        assert_eq!(frame(None, None, "a\n"), "data: a\ndata: \n\n");
    }

    #[test]
    fn blank_lines_cannot_end_the_event_early() {
        assert_eq!(
            frame(None, None, "a\n\nevent: x\n\nid: 9"),
            "data: a\ndata: \ndata: event: x\ndata: \ndata: id: 9\n\n"
        );
    }

    #[test]
    fn empty_payload_is_one_empty_data_line() {
        assert_eq!(frame(Some("1"), None, ""), "id: 1\ndata: \n\n");
    }

    #[test]
    fn leading_space_is_kept() {
        // The parser strips exactly one space after the colon, so the payload's own
        // leading space survives.
        assert_eq!(frame(None, None, " x"), "data:  x\n\n");
    }

    #[test]
    fn unicode_passes_through_unchanged() {
        assert_eq!(
            frame(None, Some("ünï"), "héllo — 世界 🎉"),
            "event: ünï\ndata: héllo — 世界 🎉\n\n"
        );
    }

    #[test]
    fn json_payload_is_one_line() {
        let json = serde_json::to_string(&serde_json::json!({"a": [1, 2], "b": "x\ny"})).unwrap();
        assert_eq!(frame(Some("1"), None, &json), "id: 1\ndata: {\"a\":[1,2],\"b\":\"x\\ny\"}\n\n");
    }

    #[test]
    fn line_breaks_in_id_and_event_are_dropped() {
        assert_eq!(frame(Some("1\n2"), Some("a\r\nb"), "x"), "id: 12\nevent: ab\ndata: x\n\n");
    }

    #[test]
    fn comment_and_preamble() {
        assert_eq!(&comment("heartbeat")[..], b": heartbeat\n\n");
        assert_eq!(&comment("a\nb")[..], b": ab\n\n");
        assert_eq!(&preamble(3000)[..], b"retry: 3000\n: herald\n\n");
        assert_eq!(&position_marker("e-7-p")[..], b"id: e-7-p\nevent: herald.position\ndata: \n\n");
    }
}
