//! The encoder's output, read back by `eventsource-stream` (an independent parser that
//! follows the WHATWG rules), must be exactly one event carrying the original payload
//! with its line endings normalised to LF — whatever the payload.

use eventsource_stream::Eventsource;
use futures::StreamExt;
use proptest::prelude::*;

use herald::sse;

fn parse(frame: bytes::Bytes) -> Vec<eventsource_stream::Event> {
    let chunks = futures::stream::iter([Ok::<_, std::convert::Infallible>(frame)]);
    futures::executor::block_on(
        chunks.eventsource().map(|event| event.expect("parsable")).collect(),
    )
}

fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Payloads rich in the characters that matter: CR, LF, colons, spaces, `data:` and
/// `id:` look-alikes, unicode.
fn payload() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\r".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just(" ".to_owned()),
        Just(":".to_owned()),
        Just("data: x".to_owned()),
        Just("event: evil".to_owned()),
        Just("id: 9".to_owned()),
        Just("retry: 1".to_owned()),
        "\\PC{0,8}",
        any::<String>(),
    ];
    prop::collection::vec(pieces, 0..12).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_payload_is_one_event_with_the_same_text(data in payload()) {
        let events = parse(sse::encode_event(Some("e1-1-b"), Some("note"), &data));
        prop_assert_eq!(events.len(), 1);
        prop_assert_eq!(&events[0].data, &normalise(&data));
        prop_assert_eq!(&events[0].event, "note");
        prop_assert_eq!(&events[0].id, "e1-1-b");
    }

    #[test]
    fn many_frames_in_one_chunk_stay_separate(first in payload(), second in payload()) {
        let mut joined = sse::encode_event(Some("1"), None, &first).to_vec();
        joined.extend_from_slice(&sse::comment("heartbeat"));
        joined.extend_from_slice(&sse::encode_event(Some("2"), None, &second));
        let events = parse(joined.into());
        prop_assert_eq!(events.len(), 2);
        prop_assert_eq!(&events[0].data, &normalise(&first));
        prop_assert_eq!(&events[1].data, &normalise(&second));
        prop_assert_eq!(&events[1].event, "message");
    }
}
