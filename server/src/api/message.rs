//! A push's `message` field: a string is sent as it is; any other JSON value is sent
//! as its compact JSON text (docs/contract.md §3.2).
//!
//! The compact text is written while the request is parsed, value by value, instead
//! of building a `serde_json::Value` tree and serializing it again: a push is mostly
//! parsing, and the tree cost an allocation per object, per key and per string.
//! Scalars are written by `serde_json` itself, so the text is the same as
//! `Value::to_string` gives, in the order the fields came (a key repeated in one
//! object is kept twice, where a tree would keep the last).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::hub::types::Payload;

/// The message, as the text its events carry.
#[derive(Debug)]
pub(super) struct Message(pub Payload);

impl<'de> de::Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MessageVisitor)
    }
}

struct MessageVisitor;

impl MessageVisitor {
    /// A non-string message: its compact JSON, written by `write`.
    fn compact<E: de::Error>(
        write: impl FnOnce(CompactJson<'_>) -> Result<(), E>,
    ) -> Result<Message, E> {
        let mut text = Vec::new();
        write(CompactJson(&mut text))?;
        let text = String::from_utf8(text).map_err(|_| E::custom("message is not UTF-8"))?;
        Ok(Message(Payload::from(text)))
    }
}

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string or any JSON value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Message, E> {
        Ok(Message(Payload::from(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Message, E> {
        Ok(Message(Payload::from(text)))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Message, E> {
        Self::compact(|json| json.visit_bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Message, E> {
        Self::compact(|json| json.visit_i64(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Message, E> {
        Self::compact(|json| json.visit_u64(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Message, E> {
        Self::compact(|json| json.visit_f64(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Message, E> {
        Self::compact(|json| json.visit_unit())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Message, A::Error> {
        Self::compact(|json| json.visit_seq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Message, A::Error> {
        Self::compact(|json| json.visit_map(map))
    }
}

/// Writes the value it is given as compact JSON onto the end of its buffer.
struct CompactJson<'a>(&'a mut Vec<u8>);

impl CompactJson<'_> {
    /// A scalar, exactly as `serde_json` writes it (escapes, number forms).
    fn scalar<E: de::Error>(self, value: &(impl serde::Serialize + ?Sized)) -> Result<(), E> {
        serde_json::to_writer(&mut *self.0, value).map_err(E::custom)
    }
}

impl<'de> DeserializeSeed<'de> for CompactJson<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CompactJson<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.scalar(&value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.scalar(&value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.scalar(&value)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        // serde_json writes a non-finite float as null, as `Value` would hold it.
        self.scalar(&value)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.scalar(text)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        while next_item(self.0, first, |json| seq.next_element_seed(json))? {
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(b'{');
        let mut first = true;
        while next_item(self.0, first, |json| map.next_key_seed(json))? {
            self.0.push(b':');
            map.next_value_seed(CompactJson(self.0))?;
            first = false;
        }
        self.0.push(b'}');
        Ok(())
    }
}

/// Writes the next element of an array (or key of an object) onto `out`, after a comma
/// unless it is the `first`; false, with nothing written, when there are no more.
fn next_item<E>(
    out: &mut Vec<u8>,
    first: bool,
    next: impl FnOnce(CompactJson<'_>) -> Result<Option<()>, E>,
) -> Result<bool, E> {
    let mark = out.len();
    if !first {
        out.push(b',');
    }
    let more = next(CompactJson(out))?.is_some();
    if !more {
        out.truncate(mark);
    }
    Ok(more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: &str) -> String {
        let Message(payload) = serde_json::from_str(json).unwrap();
        payload.as_str().to_owned()
    }

    /// What the earlier way (a `Value` tree, serialized again) gives.
    fn through_value(json: &str) -> String {
        Payload::from(serde_json::from_str::<serde_json::Value>(json).unwrap()).as_str().to_owned()
    }

    #[test]
    fn a_string_is_sent_as_it_is() {
        assert_eq!(message(r#""line 1\nline \"2\" é""#), "line 1\nline \"2\" é");
    }

    #[test]
    fn any_other_value_is_sent_compact_as_a_value_tree_would_be() {
        for json in [
            r#"{"t": 1, "n": {"deep": [1, 2.5, -3, true, null, "x\u00e9\"\n"]}, "z": {}}"#,
            r#"[ ]"#,
            r#"[[], {}, [[1]], {"a": []}]"#,
            "-0.0",
            "1e300",
            "18446744073709551615",
            "-9223372036854775808",
            "true",
            r#"{"b": 2, "a": 1}"#,
            r#"{"</script>": "\u2028\u0000"}"#,
        ] {
            assert_eq!(message(json), through_value(json), "{json}");
        }
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        scalar.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
                proptest::collection::vec((any::<String>(), inner), 0..8)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_value_however_spaced_is_sent_as_its_compact_text(value in any_json()) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            proptest::prop_assert_eq!(message(&pretty), through_value(&pretty));
        }
    }

    #[test]
    fn null_is_no_message() {
        let parsed: Option<Message> = serde_json::from_str("null").unwrap();
        assert!(parsed.is_none());
    }

    #[test]
    fn a_form_field_is_text() {
        // Form fields reach the visitor as strings, JSON-looking or not.
        let field = de::value::StrDeserializer::<de::value::Error>::new(r#"{"a": 1}"#);
        let Message(payload) = de::Deserialize::deserialize(field).unwrap();
        assert_eq!(payload.as_str(), r#"{"a": 1}"#);
    }

    #[test]
    fn malformed_json_is_an_error() {
        for json in [r#"{"a": }"#, "[1,]", r#"{"a" 1}"#, "[1"] {
            assert!(serde_json::from_str::<Message>(json).is_err(), "{json}");
        }
    }
}
