//! Whatever the payload, event name and id, an encoded frame is exactly one event:
//! only `id:`, `event:` and `data:` lines, one blank line at its very end, and its data
//! lines give back the payload with CR, LF and CRLF turned into LF. Checked here with
//! a reading of the WHATWG rules independent of the encoder.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, &str)| {
    let (id, event, data) = input;
    let frame = herald::sse::encode_event(Some(id), Some(event), data);
    let text = std::str::from_utf8(&frame).expect("frames are UTF-8");
    let body = text.strip_suffix("\n\n").expect("a frame ends with a blank line");
    assert!(!body.contains('\r'), "no CR survives: it would end a line");
    let mut data_lines = Vec::new();
    for line in body.split('\n') {
        if let Some(value) = line.strip_prefix("data: ") {
            data_lines.push(value);
        } else {
            assert!(
                line.starts_with("id: ") || line.starts_with("event: "),
                "unexpected line {line:?}"
            );
            assert!(data_lines.is_empty(), "id and event come before data");
        }
    }
    let expected = data.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(data_lines.join("\n"), expected);
});
