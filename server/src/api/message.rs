//! A push's `message` field: a string is sent as it is; any other JSON value is sent
//! as its compact JSON text (docs/contract.md §3.2).
//!
//! The compact text is written while the request is parsed, value by value
//! (`serde-transcode` feeds the parser's events to `serde_json`'s writer), instead of
//! building a `serde_json::Value` tree and serializing it again: a push is mostly
//! parsing, and the tree cost an allocation per object, per key and per string. The
//! text is the same as `Value::to_string` gives, in the order the fields came (a key
//! repeated in one object is kept twice, where a tree would keep the last).

use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

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
        write: impl FnOnce(&mut serde_json::Serializer<&mut Vec<u8>>) -> Result<(), serde_json::Error>,
    ) -> Result<Message, E> {
        let mut text = Vec::new();
        write(&mut serde_json::Serializer::new(&mut text)).map_err(E::custom)?;
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
        Self::compact(|json| serde::Serialize::serialize(&value, json))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Message, E> {
        Self::compact(|json| serde::Serialize::serialize(&value, json))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Message, E> {
        Self::compact(|json| serde::Serialize::serialize(&value, json))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Message, E> {
        // serde_json writes a non-finite float as null, as `Value` would hold it.
        Self::compact(|json| serde::Serialize::serialize(&value, json))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Message, E> {
        Self::compact(|json| serde::Serialize::serialize(&(), json))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Message, A::Error> {
        Self::compact(|json| serde_transcode::transcode(SeqAccessDeserializer::new(seq), json))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Message, A::Error> {
        Self::compact(|json| serde_transcode::transcode(MapAccessDeserializer::new(map), json))
    }
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
