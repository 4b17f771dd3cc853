//! Test support: a real server on `127.0.0.1:0` (in this process, or the real binary
//! as a [`node::Node`]), an HTTP client for its API, and an SSE reader built on the
//! `eventsource-stream` parser (not our code).

pub mod certs;
pub mod node;
pub mod proxy;
pub mod redis;
pub mod sentinel;

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use clap::Parser;
use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use herald::{AppState, Config};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The state of a node started with these extra command-line arguments.
fn state_with(args: &[&str]) -> AppState {
    let argv = ["herald", "--listen", "127.0.0.1:0"].iter().chain(args);
    let config = Config::try_parse_from(argv).expect("valid test arguments");
    AppState::new(config).expect("a hub for the test")
}

/// A Herald server running in this process on a loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    api: Api,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// A server with default settings.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A server with these extra command-line arguments.
    pub async fn start_with(args: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let state = state_with(args);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(herald::server::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        let api = Api::new(format!("http://{addr}"));
        Self { addr, state, api, stop: Some(stop), task: Some(task) }
    }

    /// Stops the server as SIGTERM would and waits for it to return.
    pub async fn stop(mut self) {
        self.stop.take().map(|stop| stop.send(()));
        self.task.take().expect("running").await.expect("server task")
    }
}

impl std::ops::Deref for TestServer {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The server's router alone, called in this process with no socket
/// (`tower::ServiceExt::oneshot`): for answers a request gets whatever connection it
/// came on, such as the 4xx of a bad one. (The client address is then unspecified.)
pub struct InProcess {
    pub state: AppState,
    router: axum::Router,
}

impl InProcess {
    /// A router with these extra command-line arguments.
    pub fn with(args: &[&str]) -> Self {
        let state = state_with(args);
        Self { router: herald::server::router(state.clone()), state }
    }

    /// Sends a request with this body (and `Content-Type`, if any); returns the
    /// status, the headers and the body: JSON, a string when not JSON, `Null` if none.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<axum::body::Body>,
    ) -> (StatusCode, HeaderMap, Value) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(body.into()).expect("a valid request");
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("the whole body").to_bytes();
        // A JSON body as JSON; anything else (the app's HTML) as a string.
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (parts.status, parts.headers, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.send(reqwest::Method::GET, path, None, "").await;
        (status, body)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let body = body.to_string();
        let (status, _, body) =
            self.send(reqwest::Method::POST, path, Some("application/json"), body).await;
        (status, body)
    }
}

/// A client for one server's HTTP API.
pub struct Api {
    base: String,
    pub http: reqwest::Client,
}

impl Api {
    /// A client for the server at `base` (`http://host:port`).
    pub fn new(base: String) -> Self {
        Self { base, http: client().build().expect("an HTTP client") }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a JSON request and returns the status and JSON body (`Null` if none).
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response =
            self.http.request(method, self.url(path)).json(body).send().await.expect("request");
        json_response(response).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::POST, path, &body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        json_response(self.http.get(self.url(path)).send().await.expect("request")).await
    }

    /// A text answer, such as `/metrics`.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.http.get(self.url(path)).send().await.expect("request");
        response.text().await.expect("a text body")
    }

    /// The value of one unlabelled series of `/metrics` (`name value`), if present.
    pub async fn metric(&self, name: &str) -> Option<u64> {
        let metrics = self.get_text("/metrics").await;
        metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// Pushes and expects success; returns `(id, delivered)`.
    pub async fn push(&self, body: Value) -> (String, u64) {
        let (status, reply) = self.post("/push", body).await;
        assert_eq!(status, StatusCode::OK, "push failed: {reply}");
        (
            reply["id"].as_str().expect("id").to_owned(),
            reply["delivered"].as_u64().expect("delivered"),
        )
    }

    /// `herald_limited_total{limit="…"}` as the node reports it.
    pub async fn limited(&self, limit: &str) -> u64 {
        let text = self.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let prefix = format!("herald_limited_total{{limit=\"{limit}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.parse().ok())
            .expect("the limit is reported")
    }

    /// Opens `GET /sse?{query}` and expects a stream.
    pub async fn subscribe(&self, query: &str) -> SseClient {
        self.open_stream(&format!("/sse?{query}"), None).await
    }

    /// Opens an event stream at `path`, optionally with a `Last-Event-ID`.
    pub async fn open_stream(&self, path: &str, last_event_id: Option<&str>) -> SseClient {
        let mut request = self.http.get(self.url(path));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("connect");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        SseClient::new(response)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// An HTTP client builder. Its rustls (for the HTTPS tests) uses ring, as Herald does.
pub fn client() -> reqwest::ClientBuilder {
    // Already installed by an earlier test: fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub async fn json_response(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("a JSON body")
    };
    (status, value)
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// One open event stream, parsed by `eventsource-stream`.
pub struct SseClient {
    pub headers: HeaderMap,
    events: EventStream,
}

impl SseClient {
    pub fn new(response: reqwest::Response) -> Self {
        let headers = response.headers().clone();
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|item| item.map_err(|error| error.to_string()));
        Self { headers, events: Box::pin(events) }
    }

    /// The next event, failing the test if none arrives in time or the stream ends.
    pub async fn next(&mut self) -> Event {
        self.next_or_end().await.expect("the stream ended")
    }

    /// The next event, or `None` when the stream ends; fails after [`PATIENCE`]. The
    /// position marker every stream starts with is skipped, as a page's `message`
    /// listener would never see it.
    pub async fn next_or_end(&mut self) -> Option<Event> {
        loop {
            match tokio::time::timeout(PATIENCE, self.events.next()).await {
                Ok(Some(Ok(event))) if event.event == herald::sse::POSITION_EVENT => {}
                Ok(Some(Ok(event))) => return Some(event),
                Ok(Some(Err(error))) => panic!("stream error: {error}"),
                Ok(None) => return None,
                Err(_) => panic!("no event within {PATIENCE:?}"),
            }
        }
    }

    /// The next event's data.
    pub async fn next_data(&mut self) -> String {
        self.next().await.data
    }

    /// Waits for the stream to end, failing on any further event.
    pub async fn expect_end(&mut self) {
        if let Some(event) = self.next_or_end().await {
            panic!("expected the end, got {event:?}");
        }
    }
}

/// Polls `check` until it holds, failing the test after [`PATIENCE`]. For effects that
/// happen asynchronously by design (a closed socket noticed by the server).
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
