//! The JSON and URLs the page exchanges with the Herald server (docs/contract.md §3), as
//! the page sees them.
//!
//! These are the app's own types: the server has its own and the two are deliberately not
//! shared, so that each side is checked against the contract rather than against the other's
//! code. Everything here is pure (no browser APIs), so it compiles for SSR and is unit-tested
//! on the host.

use serde::{Deserialize, Serialize};

/// Longest client id or topic the server accepts (docs/contract.md §3.1).
pub const MAX_ID_LEN: usize = 128;

/// The `sessionStorage` key that keeps this tab's client id across reloads.
pub const CLIENT_ID_KEY: &str = "herald.client_id";

/// The `sessionStorage` key that keeps the id of the last client-stream event this tab saw,
/// so a reload resumes where it left off (docs/contract.md §4).
pub const LAST_EVENT_ID_KEY: &str = "herald.last_event_id";

/// `sessionStorage` key of the subscriber token pasted on the page (secured servers).
pub const TOKEN_KEY: &str = "herald.token";

/// `sessionStorage` key of the publish key pasted on the page (secured servers).
pub const PUBLISH_KEY_KEY: &str = "herald.publish_key";

/// The cookie the server reads a browser's subscriber token from.
pub const TOKEN_COOKIE: &str = "herald_token";

/// Whether `id` is a valid client id: 1–128 chars of `A-Z a-z 0-9 . _ ~ -`.
pub fn is_valid_client_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

/// Whether `topic` is a valid topic: the client-id alphabet plus `/` and `:`.
pub fn is_valid_topic(topic: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&topic.len())
        && topic.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-' | b'/' | b':')
        })
}

/// Parses the "Topics" field: comma separated, blanks ignored, duplicates dropped.
///
/// # Errors
/// Names the first topic that the server would reject, so the page can say so instead of
/// opening a stream that fails with 400.
pub fn parse_topics(input: &str) -> Result<Vec<String>, String> {
    let mut topics: Vec<String> = Vec::new();
    for topic in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !is_valid_topic(topic) {
            return Err(format!(
                "“{topic}” is not a valid topic: use 1–{MAX_ID_LEN} of A–Z a–z 0–9 . _ ~ - / :"
            ));
        }
        if !topics.iter().any(|t| t == topic) {
            topics.push(topic.to_owned());
        }
    }
    Ok(topics)
}

/// The URL of this tab's client stream: `/sse?client_id=ID&topic=a&topic=b[&last_event_id=X]`.
///
/// `encode` percent-encodes one query value (the browser passes `encodeURIComponent`; the
/// tests pass a simple stand-in), so that `/`, `:` and anything in a stored id stay intact.
pub fn client_stream_url(
    client_id: &str,
    topics: &[String],
    last_event_id: Option<&str>,
    encode: impl Fn(&str) -> String,
) -> String {
    let mut url = format!("/sse?client_id={}", encode(client_id));
    for topic in topics {
        url.push_str("&topic=");
        url.push_str(&encode(topic));
    }
    if let Some(id) = last_event_id.filter(|id| !id.is_empty()) {
        url.push_str("&last_event_id=");
        url.push_str(&encode(id));
    }
    url
}

/// Whom a message was addressed to, read from the last part of its SSE event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// Sent to this tab's client id (`c`).
    Client,
    /// Sent to a topic this tab subscribed to (`t`).
    Topic,
    /// Sent to everyone (`b`).
    Everyone,
    /// An id this page does not understand.
    Unknown,
}

impl TargetKind {
    /// Reads the kind from an event id of the form `{epoch}-{seq}-{kind}`.
    ///
    /// Only the part after the last `-` matters, so an epoch that itself contains `-` is fine.
    pub fn from_event_id(id: &str) -> Self {
        match id.rsplit_once('-').map(|(_, kind)| kind) {
            Some("c") => Self::Client,
            Some("t") => Self::Topic,
            Some("b") => Self::Everyone,
            _ => Self::Unknown,
        }
    }

    /// The word shown on the page.
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Topic => "topic",
            Self::Everyone => "everyone",
            Self::Unknown => "unknown",
        }
    }
}

/// The target chosen in the push form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PushTargetKind {
    /// One client id (every tab holding it).
    #[default]
    Client,
    /// Every client subscribed to a topic.
    Topic,
    /// Every connected client.
    Everyone,
}

impl PushTargetKind {
    /// All kinds, in the order the form lists them.
    pub const ALL: [Self; 3] = [Self::Client, Self::Topic, Self::Everyone];

    /// The `<option>` value.
    pub fn value(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Topic => "topic",
            Self::Everyone => "everyone",
        }
    }

    /// The `<option>` text.
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "Client",
            Self::Topic => "Topic",
            Self::Everyone => "Everyone",
        }
    }

    /// The inverse of [`value`](Self::value); unknown values fall back to `Client`.
    pub fn from_value(value: &str) -> Self {
        Self::ALL.into_iter().find(|k| k.value() == value).unwrap_or_default()
    }
}

/// Body of `POST /push`: exactly one of `client_id`, `topic`, `broadcast`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PushRequest {
    /// Target: one client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Target: one topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Target: everyone (only ever `Some(true)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<bool>,
    /// The text typed in the form, sent as a JSON string.
    pub message: String,
    /// The SSE event name; omitted when empty so the server uses the default `message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl PushRequest {
    /// Builds the body for the form's values. `target_id` is ignored for `Everyone`.
    pub fn new(kind: PushTargetKind, target_id: &str, message: String, event: &str) -> Self {
        let target_id = target_id.trim().to_owned();
        let event = event.trim();
        Self {
            client_id: (kind == PushTargetKind::Client).then(|| target_id.clone()),
            topic: (kind == PushTargetKind::Topic).then_some(target_id),
            broadcast: (kind == PushTargetKind::Everyone).then_some(true),
            message,
            event: (!event.is_empty()).then(|| event.to_owned()),
        }
    }
}

/// `200` answer of `POST /push`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PushResponse {
    /// The event id the message got.
    pub id: String,
    /// How many live connections it was written to.
    pub delivered: u64,
}

impl PushResponse {
    /// The sentence shown in the push form.
    pub fn summary(&self) -> String {
        format!("Delivered to {} connection(s)", self.delivered)
    }
}

/// Every error answer: `{"error": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    /// What is wrong, for a person.
    pub error: String,
}

/// Body of `POST /jobs/demo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DemoJobRequest {
    /// Number of progress steps.
    pub steps: u32,
    /// Pause between steps, in milliseconds.
    pub interval_ms: u64,
}

/// `201` answer of `POST /jobs` and `POST /jobs/demo`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct JobCreated {
    /// The task id.
    pub id: String,
    /// Path of the task stream, `/jobs/ID/events`.
    pub events: String,
}

/// Data of an `event: progress` on a task stream.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Progress {
    /// Steps done so far.
    pub step: u64,
    /// Steps in all.
    pub total: u64,
    /// What the task is doing, if it said.
    #[serde(default)]
    pub message: Option<String>,
}

/// Reads the data of the final `event: done`: `{"result": …}` or `{"error": "…"}`.
///
/// # Errors
/// `Err` carries the task's error text, or a note that the data was not understood.
pub fn task_outcome(data: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(data).map_err(|e| format!("unreadable final event ({e}): {data}"))?;
    if let Some(error) = value.get("error") {
        return Err(display_json(error));
    }
    match value.get("result") {
        Some(result) => Ok(display_json(result)),
        None => Err(format!("final event without result or error: {data}")),
    }
}

/// Strings as they are, any other JSON value compact.
pub fn display_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `GET /clients`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ClientsResponse {
    /// Connected clients, in the server's order.
    pub clients: Vec<ClientInfo>,
}

/// One connected client in `GET /clients`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ClientInfo {
    /// Its id.
    pub client_id: String,
    /// How many streams (tabs) hold it open.
    pub connections: u64,
    /// The topics its connections subscribed to.
    #[serde(default)]
    pub topics: Vec<String>,
    /// RFC 3339 time of its oldest live connection.
    #[serde(default)]
    pub connected_since: Option<String>,
}

/// What a page does once its `EventSource` has given up, by the status a plain request
/// to the stream's URL gets (`None`: no answer, the network failed). EventSource gives
/// up on any answer but 200 without saying which, so the page asks once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterGiveUp {
    /// A proxy's 502/503/504 during a deploy, a 429, a network change, or a 200 (the
    /// failure has passed): open a new stream after a backoff, resuming.
    Retry,
    /// 401 or 403: the subscriber token is missing, wrong or expired; new credentials
    /// reopen the stream.
    Refused,
    /// 204, or another 4xx (a topic the server refuses, say): retrying would get the
    /// same answer; "Subscribe" opens a new stream.
    Stop,
}

impl AfterGiveUp {
    /// The decision for `status`.
    pub fn for_status(status: Option<u16>) -> Self {
        match status {
            None | Some(200 | 408 | 429 | 500..=599) => Self::Retry,
            Some(401 | 403) => Self::Refused,
            Some(_) => Self::Stop,
        }
    }
}

/// Reconnect delays after EventSource gave up: 1 s doubling to 30 s.
pub const BACKOFF_BASE_MS: u32 = 1_000;
/// The longest wait between two reconnect attempts.
pub const BACKOFF_MAX_MS: u32 = 30_000;

/// The wait before reconnect attempt `attempt` (0 for the first), in milliseconds:
/// capped exponential backoff with "equal jitter" (`random` in `[0, 1)`): between half
/// the ceiling and the ceiling, so tabs cut off together by a deploy come back apart,
/// and none at once. The same rule as herald-client's `backoffDelay`.
pub fn backoff_ms(attempt: u32, random: f64) -> u32 {
    let ceiling = BACKOFF_BASE_MS.saturating_mul(1 << attempt.min(16)).min(BACKOFF_MAX_MS);
    let jitter = (f64::from(ceiling) / 2.0 * random.clamp(0.0, 1.0)).round();
    // `jitter` is at most half of a u32 ceiling: the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let jitter = jitter as u32;
    ceiling / 2 + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_eventsource_gives_up_a_proxy_error_is_retried_and_a_refusal_is_not() {
        for status in [None, Some(200), Some(429), Some(502), Some(503), Some(504)] {
            assert_eq!(AfterGiveUp::for_status(status), AfterGiveUp::Retry, "{status:?}");
        }
        assert_eq!(AfterGiveUp::for_status(Some(401)), AfterGiveUp::Refused);
        assert_eq!(AfterGiveUp::for_status(Some(403)), AfterGiveUp::Refused);
        assert_eq!(AfterGiveUp::for_status(Some(204)), AfterGiveUp::Stop);
        assert_eq!(AfterGiveUp::for_status(Some(400)), AfterGiveUp::Stop);
    }

    #[test]
    fn the_backoff_doubles_to_its_cap_with_jitter_above_half() {
        assert_eq!(backoff_ms(0, 0.0), 500);
        assert_eq!(backoff_ms(0, 0.999), 1_000);
        assert_eq!(backoff_ms(2, 0.0), 2_000);
        assert_eq!(backoff_ms(2, 0.5), 3_000);
        assert_eq!(backoff_ms(40, 0.0), 15_000);
        assert_eq!(backoff_ms(40, 1.0), 30_000);
    }

    fn plain(s: &str) -> String {
        s.replace('/', "%2F").replace(':', "%3A")
    }

    #[test]
    fn client_ids_follow_the_contract_alphabet() {
        assert!(is_valid_client_id("tab-1A.b_c~d"));
        assert!(is_valid_client_id(&"a".repeat(128)));
        assert!(!is_valid_client_id(""));
        assert!(!is_valid_client_id(&"a".repeat(129)));
        assert!(!is_valid_client_id("a b"));
        assert!(!is_valid_client_id("a/b"));
        assert!(!is_valid_client_id("é"));
    }

    #[test]
    fn topics_are_split_trimmed_and_checked() {
        assert_eq!(parse_topics(""), Ok(vec![]));
        assert_eq!(parse_topics(" , "), Ok(vec![]));
        assert_eq!(
            parse_topics("news, sport/football ,news,a:b"),
            Ok(vec!["news".into(), "sport/football".into(), "a:b".into()])
        );
        assert!(parse_topics("ok, not ok").unwrap_err().contains("not ok"));
    }

    #[test]
    fn stream_url_repeats_topic_and_encodes_values() {
        assert_eq!(client_stream_url("tab-1", &[], None, plain), "/sse?client_id=tab-1");
        assert_eq!(
            client_stream_url("tab-1", &["a/b".into(), "c".into()], Some("e1-7-c"), plain),
            "/sse?client_id=tab-1&topic=a%2Fb&topic=c&last_event_id=e1-7-c"
        );
        assert_eq!(client_stream_url("tab-1", &[], Some(""), plain), "/sse?client_id=tab-1");
    }

    #[test]
    fn target_kind_comes_from_the_last_part_of_the_id() {
        assert_eq!(TargetKind::from_event_id("k3x-12-c"), TargetKind::Client);
        assert_eq!(TargetKind::from_event_id("k3x-12-t"), TargetKind::Topic);
        assert_eq!(TargetKind::from_event_id("a-b-c-12-b"), TargetKind::Everyone);
        assert_eq!(TargetKind::from_event_id(""), TargetKind::Unknown);
        assert_eq!(TargetKind::from_event_id("12"), TargetKind::Unknown);
        assert_eq!(TargetKind::from_event_id("1-2-x"), TargetKind::Unknown);
        assert_eq!(TargetKind::Everyone.label(), "everyone");
    }

    #[test]
    fn push_body_has_exactly_one_target() {
        let to_client = PushRequest::new(PushTargetKind::Client, " tab-2 ", "hi".into(), "");
        assert_eq!(
            serde_json::to_string(&to_client).unwrap(),
            r#"{"client_id":"tab-2","message":"hi"}"#
        );
        let to_topic = PushRequest::new(PushTargetKind::Topic, "news", "{\"a\":1}".into(), "x");
        assert_eq!(
            serde_json::to_string(&to_topic).unwrap(),
            r#"{"topic":"news","message":"{\"a\":1}","event":"x"}"#
        );
        let to_all = PushRequest::new(PushTargetKind::Everyone, "ignored", "m".into(), " ");
        assert_eq!(serde_json::to_string(&to_all).unwrap(), r#"{"broadcast":true,"message":"m"}"#);
    }

    #[test]
    fn push_target_kind_round_trips_through_option_values() {
        for kind in PushTargetKind::ALL {
            assert_eq!(PushTargetKind::from_value(kind.value()), kind);
        }
        assert_eq!(PushTargetKind::from_value("?"), PushTargetKind::Client);
    }

    #[test]
    fn push_summary_and_error_shapes() {
        let ok: PushResponse = serde_json::from_str(r#"{"id":"e-1-b","delivered":3}"#).unwrap();
        assert_eq!(ok.summary(), "Delivered to 3 connection(s)");
        let err: ApiError = serde_json::from_str(r#"{"error":"no target"}"#).unwrap();
        assert_eq!(err.error, "no target");
    }

    #[test]
    fn task_outcome_shows_strings_as_is_and_other_json_compact() {
        assert_eq!(task_outcome(r#"{"result":"all good"}"#), Ok("all good".into()));
        assert_eq!(task_outcome(r#"{"result": {"a": [1, 2]}}"#), Ok(r#"{"a":[1,2]}"#.into()));
        assert_eq!(task_outcome(r#"{"result":null}"#), Ok("null".into()));
        assert_eq!(task_outcome(r#"{"error":"boom"}"#), Err("boom".into()));
        assert!(task_outcome("nope").is_err());
        assert!(task_outcome("{}").is_err());
    }

    #[test]
    fn progress_and_clients_parse_with_optional_fields() {
        let p: Progress = serde_json::from_str(r#"{"step":3,"total":10}"#).unwrap();
        assert_eq!((p.step, p.total, p.message), (3, 10, None));
        let c: ClientsResponse = serde_json::from_str(
            r#"{"clients":[{"client_id":"abc","connections":2,"topics":["news"],
                "connected_since":"2026-11-24T12:00:00Z"}]}"#,
        )
        .unwrap();
        assert_eq!(c.clients[0].connections, 2);
        assert_eq!(c.clients[0].topics, vec!["news".to_string()]);
    }
}
