//! Browser-only plumbing: an owned `EventSource`, the tab's session storage, the clock,
//! and where the Herald server is.
//!
//! Compiled only with `hydrate` or `csr`; the SSR build never sees `web_sys`.
//!
//! Every URL the page uses is a path of the Herald API, resolved here against the
//! server: the page's own origin when Herald serves it, or the `server` of the static
//! build's `config.json` when the page is hosted elsewhere. Across origins, requests and
//! streams carry credentials (cookies), which Herald's `--cors-origin` allows.

use std::cell::RefCell;

use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use web_sys::{Event, EventSource, MessageEvent};

use crate::api::{
    self, CLIENT_ID_KEY, LAST_EVENT_ID_KEY, PUBLISH_KEY_KEY, TOKEN_COOKIE, TOKEN_KEY,
};

/// Where an `EventSource` stands, as `readyState` says after an `error` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterError {
    /// `CONNECTING`: the browser retries by itself (sending `Last-Event-ID`).
    Retrying,
    /// `CLOSED`: the browser gave up (a non-200 answer, a wrong content type, or `close()`).
    Closed,
}

/// A handler for one event name.
type Listener = Closure<dyn FnMut(MessageEvent)>;

/// An `EventSource` that owns its handlers.
///
/// `web_sys` rather than `gloo_net::eventsource`: the page must show the *real* connection
/// state, which needs `onopen` and `readyState`, and gloo's wrapper exposes neither. Handlers
/// are kept here (not `forget`-ed) so that dropping a `Source` frees them; `Drop` closes the
/// stream first and detaches every handler, so no event can reach a freed closure.
pub struct Source {
    es: EventSource,
    listeners: Vec<(String, Listener)>,
    on_open: Option<Closure<dyn FnMut(Event)>>,
    on_error: Option<Closure<dyn FnMut(Event)>>,
}

thread_local! {
    /// The Herald server's origin (`https://push.example.com`), or empty for the page's own.
    static SERVER: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Talks to the Herald at `origin` from now on (empty: the page's own origin).
#[cfg(feature = "csr")]
fn set_server(origin: &str) {
    SERVER.with(|server| *server.borrow_mut() = origin.trim_end_matches('/').to_owned());
}

/// The full URL of API path `path` (which starts with `/`).
pub fn server_url(path: &str) -> String {
    SERVER.with(|server| format!("{}{path}", server.borrow()))
}

/// Whether the Herald server is on another origin than the page.
pub fn cross_origin() -> bool {
    SERVER.with(|server| !server.borrow().is_empty())
}

/// Reads the static build's `config.json` (beside `index.html`): `{"server": "https://…"}`
/// names the Herald to talk to. No file, or no `server`, means the page's own origin.
#[cfg(feature = "csr")]
pub async fn configure(config_url: &str) {
    #[derive(serde::Deserialize)]
    struct Config {
        server: Option<String>,
    }
    let Ok(response) = gloo_net::http::Request::get(config_url).send().await else { return };
    if !response.ok() {
        return;
    }
    match response.json::<Config>().await {
        Ok(Config { server: Some(server) }) => set_server(&server),
        Ok(Config { server: None }) => {}
        Err(error) => {
            web_sys::console::warn_1(&format!("Herald: ignoring {config_url}: {error}").into())
        }
    }
}

/// The URL of the event stream at API path `path`. Across origins the pasted subscriber
/// token rides along as `token=` (the `herald_token` cookie is the page's origin's,
/// which Herald never sees; Herald needs `--allow-query-token` for this).
fn stream_url(path: &str) -> String {
    let url = server_url(path);
    match credentials().0 {
        token if cross_origin() && !token.is_empty() => {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}token={}", encode(&token))
        }
        _ => url,
    }
}

/// `request`, with credentials when the server is on another origin.
fn with_credentials(request: gloo_net::http::RequestBuilder) -> gloo_net::http::RequestBuilder {
    if cross_origin() { request.credentials(web_sys::RequestCredentials::Include) } else { request }
}

impl Source {
    /// Opens the event stream at API path `path`, with credentials across origins. Fails
    /// only for a URL the browser cannot parse.
    pub fn open(path: &str) -> Result<Self, JsValue> {
        let url = stream_url(path);
        let es = if cross_origin() {
            let init = web_sys::EventSourceInit::new();
            init.set_with_credentials(true);
            EventSource::new_with_event_source_init_dict(&url, &init)?
        } else {
            EventSource::new(&url)?
        };
        Ok(Self { es, listeners: Vec::new(), on_open: None, on_error: None })
    }

    /// A second handle on the same `EventSource`, for closing it from inside a handler
    /// (the `Source` itself must outlive the handler that is running).
    pub fn handle(&self) -> EventSource {
        self.es.clone()
    }

    /// Runs `f` on every `open` (the first one and each successful reconnect).
    pub fn on_open(&mut self, mut f: impl FnMut() + 'static) {
        let closure = Closure::<dyn FnMut(Event)>::new(move |_: Event| f());
        self.es.set_onopen(Some(closure.as_ref().unchecked_ref()));
        self.on_open = Some(closure);
    }

    /// Runs `f` on every `error`, telling whether the browser will retry.
    pub fn on_error(&mut self, mut f: impl FnMut(AfterError) + 'static) {
        let es = self.es.clone();
        let closure = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            f(if es.ready_state() == EventSource::CLOSED {
                AfterError::Closed
            } else {
                AfterError::Retrying
            });
        });
        self.es.set_onerror(Some(closure.as_ref().unchecked_ref()));
        self.on_error = Some(closure);
    }

    /// Whether a handler for the event name `name` is attached.
    pub fn listens_to(&self, name: &str) -> bool {
        self.listeners.iter().any(|(n, _)| n == name)
    }

    /// Runs `f` for every event named `name` (`message` for the default).
    ///
    /// EventSource only dispatches a named event to listeners for exactly that name, so a
    /// page that wants an event must ask for it by name.
    pub fn on(&mut self, name: &str, f: impl FnMut(MessageEvent) + 'static) {
        let closure = Listener::new(f);
        // Cannot fail: the target is a live EventSource and the callback a function.
        let _ = self.es.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        self.listeners.push((name.to_owned(), closure));
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.es.close();
        self.es.set_onopen(None);
        self.es.set_onerror(None);
        for (name, closure) in &self.listeners {
            let _ =
                self.es.remove_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        }
    }
}

/// The text of an event's `data`.
pub fn event_data(event: &MessageEvent) -> String {
    event.data().as_string().unwrap_or_default()
}

/// `encodeURIComponent`.
pub fn encode(value: &str) -> String {
    js_sys::encode_uri_component(value).into()
}

/// The local wall-clock time as `HH:MM:SS`.
/// Whether this page came over plain `http:`: there browsers speak HTTP/1.1 and open at
/// most 6 connections to one site (HTTPS usually brings HTTP/2, one connection for all).
pub fn is_plain_http() -> bool {
    if cross_origin() {
        return server_url("").starts_with("http:");
    }
    web_sys::window().and_then(|window| window.location().protocol().ok()).as_deref()
        == Some("http:")
}

pub fn now_hms() -> String {
    hms(&js_sys::Date::new_0())
}

/// An RFC 3339 time as local `HH:MM:SS`, or the text itself if the browser cannot parse it.
pub fn local_hms(rfc3339: &str) -> String {
    let date = js_sys::Date::new(&JsValue::from_str(rfc3339));
    if date.get_time().is_nan() { rfc3339.to_owned() } else { hms(&date) }
}

fn hms(date: &js_sys::Date) -> String {
    format!("{:02}:{:02}:{:02}", date.get_hours(), date.get_minutes(), date.get_seconds())
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// This tab's client id: the one kept in `sessionStorage`, or a new one stored there.
///
/// Storage can be unavailable (privacy modes, sandboxed frames); the page then still works
/// with an id that lasts until the next reload.
pub fn client_id() -> String {
    let storage = session_storage();
    if let Some(id) = storage
        .as_ref()
        .and_then(|s| s.get_item(CLIENT_ID_KEY).ok().flatten())
        .filter(|id| api::is_valid_client_id(id))
    {
        return id;
    }
    let id = new_client_id();
    if let Some(storage) = storage {
        let _ = storage.set_item(CLIENT_ID_KEY, &id);
    }
    id
}

/// `tab-` and 16 hex digits (64 random bits).
///
/// `crypto.getRandomValues` rather than `crypto.randomUUID`: the latter exists only in secure
/// contexts, and Herald is often tried over plain HTTP on a LAN address.
fn new_client_id() -> String {
    let mut bytes = [0u8; 8];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for b in &mut bytes {
            // Truncation intended: one random byte.
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("tab-{hex}")
}

/// The id of the last client-stream event this tab saw, if any.
pub fn last_event_id() -> Option<String> {
    session_storage()?.get_item(LAST_EVENT_ID_KEY).ok().flatten().filter(|id| !id.is_empty())
}

/// Remembers `id` as the last client-stream event seen (ignored when empty).
pub fn set_last_event_id(id: &str) {
    if let (false, Some(storage)) = (id.is_empty(), session_storage()) {
        let _ = storage.set_item(LAST_EVENT_ID_KEY, id);
    }
}

/// The subscriber token and publish key pasted on this tab, if any.
pub fn credentials() -> (String, String) {
    let read = |key| session_storage().and_then(|s| s.get_item(key).ok().flatten());
    (read(TOKEN_KEY).unwrap_or_default(), read(PUBLISH_KEY_KEY).unwrap_or_default())
}

/// Keeps the credentials for this tab, and hands the token to the server the way a
/// backend would: as the `herald_token` cookie, which EventSource sends (the page sets
/// it itself, so it cannot be HttpOnly; a real backend sets it HttpOnly).
pub fn set_credentials(token: &str, publish_key: &str) {
    if let Some(storage) = session_storage() {
        let _ = storage.set_item(TOKEN_KEY, token);
        let _ = storage.set_item(PUBLISH_KEY_KEY, publish_key);
    }
    let cookie = if token.is_empty() {
        format!("{TOKEN_COOKIE}=; path=/; max-age=0; SameSite=Strict")
    } else {
        format!("{TOKEN_COOKIE}={}; path=/; SameSite=Strict", encode(token))
    };
    let document = web_sys::window().and_then(|w| w.document());
    if let Some(document) = document.and_then(|d| d.dyn_into::<web_sys::HtmlDocument>().ok()) {
        let _ = document.set_cookie(&cookie);
    }
}

/// What a plain request to a stream's API path gets: its status (`None` when the network
/// failed) and, for a 401 or 403, the server's reason. The request is aborted as soon
/// as the status is known, so an accepted stream is not held open.
pub async fn probe(path: &str) -> (Option<u16>, Option<String>) {
    let Ok(controller) = web_sys::AbortController::new() else { return (None, None) };
    let response = with_credentials(gloo_net::http::Request::get(&stream_url(path)))
        .abort_signal(Some(&controller.signal()))
        .send()
        .await;
    let answer = match response {
        Ok(response) if matches!(response.status(), 401 | 403) => {
            let why = response
                .json::<api::ApiError>()
                .await
                .map_or_else(|_| "not authorised".to_owned(), |body| body.error);
            (Some(response.status()), Some(why))
        }
        Ok(response) => (Some(response.status()), None),
        Err(_) => (None, None),
    };
    controller.abort();
    answer
}

/// A random number in `[0, 1)`, for jitter.
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// Adds the pasted publish key, if any, as `Authorization: Bearer`.
fn with_publish_key(request: gloo_net::http::RequestBuilder) -> gloo_net::http::RequestBuilder {
    match credentials().1 {
        key if key.is_empty() => request,
        key => request.header("Authorization", &format!("Bearer {key}")),
    }
}

/// `GET` API path `path` and read a JSON answer.
///
/// # Errors
/// A sentence for the page: the server's `{"error": …}` text, the status line, or why the
/// request or its answer failed.
pub async fn get_json<R: serde::de::DeserializeOwned>(path: &str) -> Result<R, String> {
    read_json(
        with_publish_key(with_credentials(gloo_net::http::Request::get(&server_url(path))))
            .send()
            .await,
    )
    .await
}

/// `POST` to API path `path` a JSON body and read a JSON answer.
///
/// # Errors
/// As for [`get_json`].
pub async fn post_json<B, R>(path: &str, body: &B) -> Result<R, String>
where
    B: serde::Serialize,
    R: serde::de::DeserializeOwned,
{
    let request =
        with_publish_key(with_credentials(gloo_net::http::Request::post(&server_url(path))))
            .json(body)
            .map_err(|e| format!("Could not build the request: {e}"))?;
    read_json(request.send().await).await
}

async fn read_json<R: serde::de::DeserializeOwned>(
    sent: Result<gloo_net::http::Response, gloo_net::Error>,
) -> Result<R, String> {
    let response = sent.map_err(|e| format!("Could not reach the server: {e}"))?;
    if response.ok() {
        return response
            .json::<R>()
            .await
            .map_err(|e| format!("Unexpected answer from the server: {e}"));
    }
    Err(match response.json::<api::ApiError>().await {
        Ok(api::ApiError { error }) => error,
        Err(_) => format!("{} {}", response.status(), response.status_text()),
    })
}
