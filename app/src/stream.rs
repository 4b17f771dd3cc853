//! This tab's client stream: one `EventSource` on `/sse`, kept in step with the client id,
//! the subscribed topics and the event names the page listens for.
//!
//! The state lives in [`ClientStream`], a bundle of signals that the panels share. In the
//! browser, [`ClientStream::new`] also starts the effects that own the `EventSource`:
//! - the client id is read from (or created in) `sessionStorage` after hydration, so the
//!   server's HTML and the first hydrated render agree on the "…" placeholder;
//! - the stream is (re)opened whenever the id or the topics change, resuming from the last
//!   event id this tab saw (kept in `sessionStorage`, so a reload resumes too);
//! - `connection state` follows the real `EventSource`: `open` on `open`; on `error`,
//!   `reconnecting` while the browser retries. Once it gives up, the page asks the server
//!   why: a refused token shows as `not authorised`; a proxy's 502/503/504 (a deploy) or
//!   a network failure is retried by the page itself with capped, jittered backoff,
//!   resuming; any other refusal shows `closed` until "Subscribe".

use leptos::prelude::*;

use crate::api::TargetKind;

/// How many received messages the page keeps; older ones scroll away.
pub const MAX_MESSAGES: usize = 500;

/// The event name of a message pushed without `event`.
pub const DEFAULT_EVENT: &str = "message";

/// The event the server sends when history no longer holds everything since `Last-Event-ID`.
pub const GAP_EVENT: &str = "gap";

/// The empty event that opens every stream; its id is where the stream went live, so a
/// tab that has received nothing yet still resumes from there after a reload.
pub const POSITION_EVENT: &str = "herald.position";

/// The last event of a stream whose subscriber token expired.
pub const TOKEN_EXPIRED_EVENT: &str = "herald.token-expired";

/// A stream that has not opened after this long gets a hint ([`ClientStream::slow`]).
pub const SLOW_OPEN_MS: u32 = 5_000;

/// The hint for a stream that does not open over plain HTTP/1.1, where a browser opens
/// at most 6 connections to one site and each open tab's stream holds one for good.
pub const CONNECTION_LIMIT_HINT: &str = "This tab's stream has not opened yet. Over plain HTTP \
     a browser opens at most 6 connections to one site, and every open Herald tab holds one: \
     close another Herald tab, or serve Herald over HTTPS (HTTP/2 carries every tab's \
     stream on one connection; see the README).";

/// The hint for a stream that does not open over HTTPS.
pub const NOT_OPEN_HINT: &str =
    "This tab's stream has not opened yet: the server may be unreachable; it keeps trying.";

/// The state of the client stream, as shown on the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opened, waiting for the first bytes (also what the server renders).
    #[default]
    Connecting,
    /// The `open` event fired: messages flow.
    Open,
    /// An error; the browser retries by itself.
    Reconnecting,
    /// The browser gave up (e.g. the server answered 400); "Subscribe" opens a new stream.
    Closed,
    /// The server refused the stream (401/403): a token is missing, wrong or expired.
    /// The browser does not retry; new credentials reopen it.
    Unauthorized,
}

impl ConnectionState {
    /// The word shown on the page (and matched by the e2e tests).
    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Open => "open",
            Self::Reconnecting => "reconnecting",
            Self::Closed => "closed",
            Self::Unauthorized => "not authorised",
        }
    }
}

/// One message as received on the client stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Position in this page's list (the list's key).
    pub seq: u64,
    /// The SSE event id.
    pub id: String,
    /// Local arrival time, `HH:MM:SS`.
    pub time: String,
    /// The event name (`message` by default).
    pub event: String,
    /// Whom it was sent to, from the event id.
    pub kind: TargetKind,
    /// The data, lines joined with `\n` as EventSource does.
    pub data: String,
}

/// The signals of this tab's client stream, shared by the panels (`Copy`).
#[derive(Clone, Copy, Debug)]
pub struct ClientStream {
    /// The tab's client id; `None` until the browser has read or made it.
    pub client_id: RwSignal<Option<String>>,
    /// Topics the stream subscribes to; setting it reconnects.
    pub topics: RwSignal<Vec<String>>,
    /// Event names listened for besides `message`; adding one adds a listener, no reconnect.
    pub listen: RwSignal<Vec<String>>,
    /// The connection state.
    pub state: RwSignal<ConnectionState>,
    /// Received messages, oldest first, at most [`MAX_MESSAGES`].
    pub messages: RwSignal<Vec<Received>>,
    /// Whether the server reported a gap (messages lost while away).
    pub gap: RwSignal<bool>,
    /// Why the server refused the stream, when it did.
    pub refusal: RwSignal<Option<String>>,
    /// What may be keeping a stream from opening, once it has not opened for
    /// [`SLOW_OPEN_MS`].
    pub slow: RwSignal<Option<&'static str>>,
    /// Bumped to reopen the stream (new credentials, say).
    pub reopen: RwSignal<u32>,
}

impl ClientStream {
    /// Creates the signals and, in the browser, the effects that drive the `EventSource`.
    /// Call it inside the component that owns the stream: its cleanup closes the stream.
    pub fn new() -> Self {
        let stream = Self {
            client_id: RwSignal::new(None),
            topics: RwSignal::new(Vec::new()),
            listen: RwSignal::new(Vec::new()),
            state: RwSignal::new(ConnectionState::Connecting),
            messages: RwSignal::new(Vec::new()),
            gap: RwSignal::new(false),
            refusal: RwSignal::new(None),
            slow: RwSignal::new(None),
            reopen: RwSignal::new(0),
        };
        #[cfg(any(feature = "hydrate", feature = "csr"))]
        stream.connect();
        stream
    }

    /// Also shows events named `name` (EventSource hands a named event only to listeners
    /// for that name). Blank names, `message` and names already listened for are ignored.
    pub fn listen_for(self, name: &str) {
        let name = name.trim();
        let known = name.is_empty()
            || name == DEFAULT_EVENT
            || name == GAP_EVENT
            || name == POSITION_EVENT
            || self.listen.with_untracked(|l| l.iter().any(|n| n == name));
        if !known {
            self.listen.update(|l| l.push(name.to_owned()));
        }
    }

    #[cfg(any(feature = "hydrate", feature = "csr"))]
    fn connect(self) {
        use send_wrapper::SendWrapper;

        use crate::api;
        use crate::browser::{self, AfterError, Source};

        // The live stream. Replaced on reconnect; dropping a `Source` closes it.
        let current: StoredValue<Option<SendWrapper<Source>>> = StoredValue::new(None);
        // Reconnects since the stream was last open, and the timer of the next one.
        let attempts = StoredValue::new(0_u32);
        let retry_timer: RetryTimer = StoredValue::new(None);

        Effect::new(move || self.client_id.set(Some(browser::client_id())));

        Effect::new(move || {
            let Some(client_id) = self.client_id.get() else {
                return;
            };
            let topics = self.topics.get();
            self.reopen.track();
            let last_event_id = browser::last_event_id();
            let url = api::client_stream_url(
                &client_id,
                &topics,
                last_event_id.as_deref(),
                browser::encode,
            );
            self.state.set(ConnectionState::Connecting);
            self.refusal.set(None);
            self.slow.set(None);
            let Ok(mut source) = Source::open(&url) else {
                self.state.set(ConnectionState::Closed);
                return;
            };
            // Still not open after a while: say what may be holding it, rather than
            // showing "connecting" forever.
            let hint = if browser::is_plain_http() { CONNECTION_LIMIT_HINT } else { NOT_OPEN_HINT };
            let slow_timer = gloo_timers::callback::Timeout::new(SLOW_OPEN_MS, move || {
                if self.state.get_untracked() != ConnectionState::Open {
                    self.slow.set(Some(hint));
                }
            });
            let slow_timer = StoredValue::new(Some(SendWrapper::new(slow_timer)));
            source.on_open(move || {
                self.state.set(ConnectionState::Open);
                self.slow.set(None);
                attempts.set_value(0);
            });
            let probe_url = url.clone();
            source.on_error(move |after| match after {
                AfterError::Retrying => self.state.set(ConnectionState::Reconnecting),
                // EventSource gives up on any non-200 answer without saying which: ask
                // the server once. A refused token shows as such; a proxy's 502/503/504
                // during a deploy, or a network change, is retried after a backoff
                // (resuming from the last id); anything else waits for "Subscribe".
                AfterError::Closed => {
                    let url = probe_url.clone();
                    leptos::task::spawn_local(async move {
                        let (status, why) = browser::probe(&url).await;
                        match api::AfterGiveUp::for_status(status) {
                            api::AfterGiveUp::Retry => self.retry_later(attempts, retry_timer),
                            api::AfterGiveUp::Refused => {
                                self.refusal.set(why);
                                self.state.set(ConnectionState::Unauthorized);
                            }
                            api::AfterGiveUp::Stop => self.state.set(ConnectionState::Closed),
                        }
                    });
                }
            });
            source.on(TOKEN_EXPIRED_EVENT, move |_| {
                self.refusal.set(Some("your subscriber token expired".to_owned()));
            });
            source.on(POSITION_EVENT, move |event| {
                browser::set_last_event_id(&event.last_event_id());
            });
            source.on(GAP_EVENT, move |event| {
                browser::set_last_event_id(&event.last_event_id());
                self.gap.set(true);
            });
            source.on(DEFAULT_EVENT, self.receiver());
            for name in self.listen.get_untracked() {
                source.on(&name, self.receiver());
            }
            current.set_value(Some(SendWrapper::new(source)));
            // Runs before the next reconnect and when the page goes away.
            on_cleanup(move || {
                drop(current.try_update_value(Option::take));
                drop(slow_timer.try_update_value(Option::take));
                drop(retry_timer.try_update_value(Option::take));
            });
        });

        Effect::new(move || {
            let names = self.listen.get();
            current.update_value(|source| {
                if let Some(source) = source {
                    for name in &names {
                        if !source.listens_to(name) {
                            source.on(name, self.receiver());
                        }
                    }
                }
            });
        });
    }

    /// Shows `reconnecting` and reopens the stream after the next backoff delay
    /// ([`api::backoff_ms`]): the effect that owns the stream runs again and resumes
    /// from the last event id.
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    fn retry_later(self, attempts: StoredValue<u32>, retry_timer: RetryTimer) {
        use crate::{api, browser};

        self.state.set(ConnectionState::Reconnecting);
        let attempt = attempts.get_value();
        attempts.set_value(attempt.saturating_add(1));
        let delay = api::backoff_ms(attempt, browser::random());
        let reopen = self.reopen;
        let timer = gloo_timers::callback::Timeout::new(delay, move || {
            reopen.update(|n| *n = n.wrapping_add(1));
        });
        retry_timer.set_value(Some(send_wrapper::SendWrapper::new(timer)));
    }

    /// A handler that appends an event to [`messages`](Self::messages) and remembers its id.
    #[cfg(any(feature = "hydrate", feature = "csr"))]
    fn receiver(self) -> impl FnMut(web_sys::MessageEvent) + 'static {
        use crate::browser;

        move |event| {
            let id = event.last_event_id();
            browser::set_last_event_id(&id);
            let mut received = Received {
                seq: 0,
                kind: TargetKind::from_event_id(&id),
                id,
                time: browser::now_hms(),
                event: event.type_(),
                data: browser::event_data(&event),
            };
            self.messages.update(|list| {
                received.seq = list.last().map_or(0, |m| m.seq + 1);
                list.push(received);
                if list.len() > MAX_MESSAGES {
                    list.drain(..list.len() - MAX_MESSAGES);
                }
            });
        }
    }
}

/// The timer of the next reconnect, if one is due (dropping it cancels it).
#[cfg(any(feature = "hydrate", feature = "csr"))]
type RetryTimer = StoredValue<Option<send_wrapper::SendWrapper<gloo_timers::callback::Timeout>>>;

impl Default for ClientStream {
    fn default() -> Self {
        Self::new()
    }
}
