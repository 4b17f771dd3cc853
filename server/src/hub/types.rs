//! Checked value types: once a client id, topic, event name or event id exists, it is
//! valid, so nothing past the API layer re-checks and the encoder never meets a line
//! break in a field.

use std::fmt;
use std::str::FromStr;

/// Longest client id, topic or event name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Why a value was refused. Each message is written for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidValue {
    /// A client id outside 1–128 chars of `A-Z a-z 0-9 . _ ~ -`.
    ClientId,
    /// A topic outside 1–128 chars of `A-Z a-z 0-9 . _ ~ - / :`.
    Topic,
    /// An event name that is empty, too long or holds a control character.
    EventName,
    /// An event name Herald uses for its own events.
    ReservedEventName,
    /// A string that is not an event id Herald issued.
    EventId,
    /// A task id outside 1–128 ASCII letters and digits.
    JobId,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClientId => "client_id must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -",
            Self::Topic => "topic must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ - / :",
            Self::EventName => {
                "event must be 1 to 128 characters with no line break or other control character"
            }
            Self::ReservedEventName => {
                "event names gap and herald.* are reserved for Herald's own events"
            }
            Self::EventId => "not an event id issued by this hub",
            Self::JobId => "a task id is 1 to 128 characters of A-Z a-z 0-9",
        })
    }
}

impl std::error::Error for InvalidValue {}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')
}

fn checked(value: &str, allowed: impl Fn(char) -> bool) -> bool {
    !value.is_empty() && value.len() <= MAX_NAME_LEN && value.chars().all(allowed)
}

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $error:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Box<str>);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;

            fn from_str(value: &str) -> Result<Self, InvalidValue> {
                if checked(value, $allowed) { Ok(Self(value.into())) } else { Err($error) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        /// Checked like [`FromStr`]: a value read back from a broker is no more
        /// trusted than one from a request.
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

checked_string!(
    /// Identifies one browser tab (or any subscriber); several connections may share it.
    ClientId,
    InvalidValue::ClientId,
    is_unreserved
);

checked_string!(
    /// A named channel that connections join with `?topic=`.
    Topic,
    InvalidValue::Topic,
    |c| is_unreserved(c) || matches!(c, '/' | ':')
);

checked_string!(
    /// The SSE `event:` field: never empty, never a control character, so it can
    /// neither break a line nor smuggle a NUL. Parse it with [`EventName::for_push`],
    /// which also keeps Herald's own event names out of applications' messages.
    EventName,
    InvalidValue::EventName,
    |c: char| !c.is_control()
);

checked_string!(
    /// A task's id. Herald makes 16 hex digits ([`JobId::random`]); any id of ASCII
    /// letters and digits is accepted, so that it is safe in Redis key names and paths.
    JobId,
    InvalidValue::JobId,
    |c: char| c.is_ascii_alphanumeric()
);

impl JobId {
    /// A fresh id: 16 hex digits (64 random bits).
    pub fn random() -> Self {
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        Self(uuid[..16].into())
    }
}

/// The event names Herald sends itself: [`GAP_EVENT`](crate::sse::GAP_EVENT), and
/// everything under `herald.`.
pub fn is_reserved_event_name(name: &str) -> bool {
    name == crate::sse::GAP_EVENT || name.starts_with("herald.")
}

/// Why a resuming client cannot be sent everything after its last event id; the
/// `reason` of its `gap` event (docs/contract.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GapReason {
    /// Some messages after the id fell out of the history's bounds (count or age).
    Evicted,
    /// The id is from a history this hub no longer has (another epoch), so what came
    /// after it cannot be told.
    Unknown,
}

impl GapReason {
    /// The reason as the `gap` event names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::Unknown => "unknown",
        }
    }
}

impl EventName {
    /// An event name an application may push: valid, and not one of Herald's own
    /// (a pushed `gap` would make pages believe they missed messages).
    ///
    /// # Errors
    /// [`InvalidValue::EventName`] or [`InvalidValue::ReservedEventName`].
    pub fn for_push(name: &str) -> Result<Self, InvalidValue> {
        if is_reserved_event_name(name) {
            return Err(InvalidValue::ReservedEventName);
        }
        name.parse()
    }
}

/// Who a message is for: exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Every connection of one client id.
    Client(ClientId),
    /// Every connection that joined the topic.
    Topic(Topic),
    /// Every connection.
    Broadcast,
}

impl Target {
    /// The kind of target, without its name.
    pub fn kind(&self) -> TargetKind {
        match self {
            Self::Client(_) => TargetKind::Client,
            Self::Topic(_) => TargetKind::Topic,
            Self::Broadcast => TargetKind::Broadcast,
        }
    }

    /// A compact, unambiguous text form (`c:ID`, `t:NAME`, `b`) used to name the
    /// target between nodes and in a broker's keys. Names never contain spaces or
    /// line breaks, so the key can sit in a space-separated header.
    pub fn key(&self) -> String {
        match self {
            Self::Client(client) => format!("c:{}", client.as_str()),
            Self::Topic(topic) => format!("t:{}", topic.as_str()),
            Self::Broadcast => "b".to_owned(),
        }
    }

    /// Reads a [`Target::key`] back; `None` if `key` could not have come from it.
    pub fn from_key(key: &str) -> Option<Self> {
        match key.split_once(':') {
            Some(("c", client)) => client.parse().ok().map(Self::Client),
            Some(("t", topic)) => topic.parse().ok().map(Self::Topic),
            _ => (key == "b").then_some(Self::Broadcast),
        }
    }
}

/// The kind of a [`Target`]. It travels in every event id, so a page can tell a
/// message sent to it from a topic's or everyone's without any extra field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// Sent to one client id.
    Client,
    /// Sent to a topic.
    Topic,
    /// Sent to everyone.
    Broadcast,
}

impl TargetKind {
    /// Every kind, for metrics.
    pub const ALL: [TargetKind; 3] = [Self::Client, Self::Topic, Self::Broadcast];

    /// The one-letter tag used in event ids.
    pub fn tag(self) -> char {
        match self {
            Self::Client => 'c',
            Self::Topic => 't',
            Self::Broadcast => 'b',
        }
    }

    /// The lower-case name used in metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Topic => "topic",
            Self::Broadcast => "broadcast",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "c" => Some(Self::Client),
            "t" => Some(Self::Topic),
            "b" => Some(Self::Broadcast),
            _ => None,
        }
    }
}

/// Which history an id belongs to. A new in-memory hub starts a new epoch, so an id
/// from before a restart is recognised as foreign instead of being mistaken for a
/// position in the new sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Epoch(Box<str>);

impl Epoch {
    /// A fresh random epoch: eight lower-case hex digits.
    pub fn random() -> Self {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        Self(hex[..8].into())
    }

    /// An epoch read back from a broker: 1–32 ASCII letters and digits.
    pub fn from_text(text: &str) -> Option<Self> {
        let valid =
            !text.is_empty() && text.len() <= 32 && text.chars().all(|c| c.is_ascii_alphanumeric());
        valid.then(|| Self(text.into()))
    }

    /// The epoch as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message's position: `{epoch}-{seq}-{kind tag}`, e.g. `3f9a0c1e-42-b`.
///
/// Ids are short ASCII with no `:` and no control characters. Within an epoch they
/// are ordered by `seq`, which increases by one per message the hub accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId {
    /// The history this id belongs to.
    pub epoch: Epoch,
    /// The position in that history, starting at 1.
    pub seq: u64,
    /// What the message was sent to.
    pub kind: TargetKind,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.epoch.as_str(), self.seq, self.kind.tag())
    }
}

impl EventId {
    /// Where this message sits in its history.
    pub fn position(&self) -> Position {
        Position { epoch: self.epoch.clone(), seq: self.seq }
    }
}

/// A point in a history, which is what a client resumes from. Parsed from any event id
/// Herald issued; written as `{epoch}-{seq}-p` in the marker that tells a browser
/// where its stream went live (see [`crate::sse::position_marker`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    /// The history this position belongs to.
    pub epoch: Epoch,
    /// The last message seen; 0 when none.
    pub seq: u64,
}

/// The tag of a position marker's id.
const POSITION_TAG: &str = "p";

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{POSITION_TAG}", self.epoch.as_str(), self.seq)
    }
}

impl FromStr for Position {
    type Err = InvalidValue;

    /// Parses a message's event id or a position marker.
    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        let mut parts = value.split('-');
        let (Some(epoch), Some(seq), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidValue::EventId);
        };
        let epoch_ok = !epoch.is_empty()
            && epoch.len() <= 32
            && epoch.chars().all(|c| c.is_ascii_alphanumeric());
        let seq_ok = !seq.is_empty() && seq.chars().all(|c| c.is_ascii_digit());
        let tag_ok = tag == POSITION_TAG || TargetKind::from_tag(tag).is_some();
        match seq.parse::<u64>() {
            Ok(seq) if epoch_ok && seq_ok && tag_ok => Ok(Self { epoch: Epoch(epoch.into()), seq }),
            _ => Err(InvalidValue::EventId),
        }
    }
}

/// Why an event stream ended. Every ending has a name, so operators can tell a
/// client that left from one Herald cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client went away (closed the tab, lost the network).
    ClientClosed,
    /// The client read too slowly and its bounded queue filled up; it reconnects and
    /// resumes from its last event id.
    Slow,
    /// An operator closed the client's connections.
    Kicked,
    /// The node is shutting down.
    Shutdown,
    /// A task stream delivered its final event.
    Finished,
    /// The node lost its link to the broker and may have missed messages; the client
    /// reconnects and resumes from its last event id, getting them from history.
    Resync,
}

impl DisconnectReason {
    /// Every reason, for metrics.
    pub const ALL: [DisconnectReason; 6] = [
        Self::ClientClosed,
        Self::Slow,
        Self::Kicked,
        Self::Shutdown,
        Self::Finished,
        Self::Resync,
    ];

    /// The snake-case name used in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::Slow => "slow",
            Self::Kicked => "kicked",
            Self::Shutdown => "shutdown",
            Self::Finished => "finished",
            Self::Resync => "resync",
        }
    }

    /// Whether frames still queued are delivered before the stream ends: yes when the
    /// stream ends in good order, no when it is cut off.
    pub fn drains_queue(self) -> bool {
        matches!(self, Self::Shutdown | Self::Finished)
    }
}

/// A message body as it goes on the wire: text is sent as-is, any other JSON value is
/// serialised compactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    /// The text that becomes the event's `data`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its size in bytes, which is what the message size limit counts.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the payload is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::String(text) => Self(text),
            other => Self(other.to_string()),
        }
    }
}

impl From<String> for Payload {
    fn from(text: String) -> Self {
        Self(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_alphabet() {
        assert!("tab-1.a_b~C".parse::<ClientId>().is_ok());
        assert_eq!("".parse::<ClientId>(), Err(InvalidValue::ClientId));
        assert_eq!("a b".parse::<ClientId>(), Err(InvalidValue::ClientId));
        assert_eq!("a/b".parse::<ClientId>(), Err(InvalidValue::ClientId));
        assert_eq!("é".parse::<ClientId>(), Err(InvalidValue::ClientId));
        assert!("x".repeat(128).parse::<ClientId>().is_ok());
        assert!("x".repeat(129).parse::<ClientId>().is_err());
    }

    #[test]
    fn topic_allows_slash_and_colon() {
        assert!("news/sport:live".parse::<Topic>().is_ok());
        assert!("news sport".parse::<Topic>().is_err());
    }

    #[test]
    fn event_name_refuses_control_characters() {
        assert!("order.shipped".parse::<EventName>().is_ok());
        assert!("a\nb".parse::<EventName>().is_err());
        assert!("a\rb".parse::<EventName>().is_err());
        assert!("a\0b".parse::<EventName>().is_err());
        assert!("".parse::<EventName>().is_err());
    }

    #[test]
    fn event_ids_parse_back_to_their_position() {
        let id = EventId { epoch: Epoch::random(), seq: 42, kind: TargetKind::Topic };
        let text = id.to_string();
        assert!(text.len() <= 64 && !text.contains(':') && text.ends_with("-42-t"));
        assert_eq!(text.parse::<Position>(), Ok(id.position()));
        let marker = id.position().to_string();
        assert!(marker.ends_with("-42-p"));
        assert_eq!(marker.parse::<Position>(), Ok(id.position()));
    }

    #[test]
    fn malformed_event_ids_are_refused() {
        let bad =
            ["", "abc", "a-1", "a-x-c", "a-1-z", "a-1-c-d", "-1-c", "a!-1-c", "a-+1-c", "a--c"];
        for bad in bad {
            assert_eq!(bad.parse::<Position>(), Err(InvalidValue::EventId), "{bad}");
        }
    }

    #[test]
    fn payload_sends_strings_raw_and_json_compact() {
        assert_eq!(Payload::from(serde_json::json!("a\nb")).as_str(), "a\nb");
        assert_eq!(
            Payload::from(serde_json::json!({"k": [1, true]})).as_str(),
            r#"{"k":[1,true]}"#
        );
    }
}
