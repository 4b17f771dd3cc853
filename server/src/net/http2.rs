//! HTTP/2 connections (RFC 9113): over TLS when the client chose `h2` by ALPN, and in
//! clear text when it opens with the connection preface (h2c "with prior knowledge",
//! RFC 9113 §3.3), as proxies that speak HTTP/2 upstream do (Envoy, Caddy's `h2c://`).
//!
//! hyper speaks the protocol; this module gives each request what the HTTP/1.1 path
//! gives it — the peer's address, a body read whole within `--max-body-bytes` and
//! `--body-timeout` (refused like over HTTP/1.1 otherwise) — and ends the connection
//! the way HTTP/1.1 ends one: after `--keepalive-timeout` with no request under way
//! (`--header-timeout` for a connection that never sent one), and on shutdown, with a
//! GOAWAY, once its streams have ended.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::guard::GuardedStream;
use super::head::Refusal;
use super::{Guards, PeerAddr};
use crate::metrics::{Limit, Metrics};

/// Streams one connection may have open at once (nginx allows 128, hyper 200): a
/// browser's every tab on one origin shares a connection, and a proxy in front
/// multiplexes many clients on each.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Bytes of a stream's response hyper may hold for a peer that is not reading (it
/// takes no more from the body until they leave). hyper's default, 400 KiB, would let
/// every stalled tab of a browser that opens wide flow-control windows hold that much.
const MAX_SEND_BUFFER: usize = 64 * 1024;

/// Serves HTTP/2 on `io` until the peer leaves, it is idle too long, or `stop` is
/// cancelled (then GOAWAY, and the open streams end as the hub ends them).
pub(super) async fn serve(io: GuardedStream, peer: PeerAddr, app: Router, stop: CancellationToken) {
    let guards = *io.guards();
    let metrics = io.metrics().clone();
    let (activity, mut idle) = watch::channel(Activity::default());
    let service = hyper::service::service_fn(move |request| {
        let context = RequestContext {
            peer,
            guards,
            metrics: metrics.clone(),
            active: Active::begin(&activity),
        };
        // Boxed: hyper spawns a task per stream, sized for this future, and a stream
        // outlives it by far (docs/benchmarks.md, the idle HTTP/2 stream).
        Box::pin(answer(request, app.clone(), context))
    });
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_send_buf_size(MAX_SEND_BUFFER)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let closed = tokio::select! {
        result = connection.as_mut() => Some(result),
        () = stop.cancelled() => None,
        () = idle_too_long(&mut idle, guards) => None,
    };
    let result = match closed {
        Some(result) => result,
        None => {
            // GOAWAY; hyper then closes once every stream has ended and the peer has
            // answered its PING. A peer that never answers must not keep the
            // connection: once no request is under way, it has GOAWAY_WAIT more.
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => result,
                () = requests_done_then(&mut idle, GOAWAY_WAIT) => {
                    tracing::debug!("HTTP/2 peer {} did not close after GOAWAY", peer.0);
                    Ok(())
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!("HTTP/2 connection from {} ended: {error}", peer.0);
    }
}

/// How long a connection told GOAWAY, its streams over, waits for the peer to answer
/// the PING that follows it before it is dropped.
const GOAWAY_WAIT: Duration = Duration::from_secs(1);

/// Resolves `wait` after no request is under way any more.
async fn requests_done_then(idle: &mut watch::Receiver<Activity>, wait: Duration) {
    // The sender lives as long as the connection's service: an error means it is gone.
    let _ = idle.wait_for(|activity| activity.under_way == 0).await;
    tokio::time::sleep(wait).await;
}

/// What a connection knows of its requests.
#[derive(Debug, Default, Clone, Copy)]
struct Activity {
    /// Requests whose response has not ended yet (streams included).
    under_way: usize,
    /// Whether any request came at all.
    seen: bool,
}

/// Resolves once no request has been under way for the idle limit:
/// `--header-timeout` before the first request, `--keepalive-timeout` after.
async fn idle_too_long(idle: &mut watch::Receiver<Activity>, guards: Guards) {
    loop {
        let Ok(activity) = idle.wait_for(|activity| activity.under_way == 0).await.map(|a| *a)
        else {
            return std::future::pending().await;
        };
        let limit = if activity.seen { guards.keepalive_timeout } else { guards.header_timeout };
        tokio::select! {
            () = tokio::time::sleep(limit) => return,
            changed = idle.changed() => if changed.is_err() {
                return std::future::pending().await;
            },
        }
    }
}

/// A request under way; counted until its response body is dropped.
struct Active(watch::Sender<Activity>);

impl Active {
    fn begin(activity: &watch::Sender<Activity>) -> Self {
        activity.send_modify(|activity| {
            activity.under_way += 1;
            activity.seen = true;
        });
        Self(activity.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.send_modify(|activity| activity.under_way -= 1);
    }
}

/// What one request is served with.
struct RequestContext {
    peer: PeerAddr,
    guards: Guards,
    metrics: Arc<Metrics>,
    active: Active,
}

/// Answers one request with the router, as the HTTP/1.1 path would.
async fn answer(
    request: hyper::Request<Incoming>,
    app: Router,
    context: RequestContext,
) -> Result<Response, Infallible> {
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(context.peer));
    // HTTP/2 carries the host in `:authority` (RFC 9113 §8.3.1); handlers and the
    // page read `Host`, as HTTP/1.1 sends it.
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, host);
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let body = match read_body(body, declared, &context).await {
        Ok(body) => Body::from(body),
        Err(refusal) => {
            parts.extensions.insert(refusal);
            Body::empty()
        }
    };
    let response = match app.oneshot(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    Ok(response.map(|body| Body::new(Tracked { body, _active: context.active })))
}

/// The whole request body, within the size and time limits.
async fn read_body(
    body: Incoming,
    declared: Option<u64>,
    context: &RequestContext,
) -> Result<Bytes, Refusal> {
    use http_body::Body as _;
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let limit = context.guards.max_body_bytes;
    let too_large = || {
        context.metrics.limited(Limit::Size);
        Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large")
    };
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let read = Limited::new(body, limit).collect();
    match tokio::time::timeout(context.guards.body_timeout, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(error)) => {
            tracing::debug!("request body from {} ended early: {error}", context.peer.0);
            Err(Refusal::new(StatusCode::BAD_REQUEST, "the request body ended early"))
        }
        Err(_) => {
            context.metrics.limited(Limit::BodyTimeout);
            Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive within the time limit",
            ))
        }
    }
}

/// A response body that keeps its request counted as under way until it is dropped
/// (a stream's lasts as long as the stream).
struct Tracked {
    body: Body,
    _active: Active,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The connection preface an HTTP/2 client opens with (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How often, and how many times, a connection whose first bytes are only the start
/// of the preface is looked at again for the rest. A client sends the 24 bytes in one
/// write; a peer that stops partway (or closes: a peek cannot see the end of a
/// stream behind bytes not yet read) is served as HTTP/1.1, which reads what it sent.
const PARTIAL_PREFACE_POLL: Duration = Duration::from_millis(10);
const PARTIAL_PREFACE_POLLS: u32 = 10;

/// Whether a plain-text connection opens with the HTTP/2 preface. Looks without
/// taking: the bytes stay in the socket for whichever protocol serves it. `false`
/// as soon as the bytes differ (an HTTP/1.1 request), the peer closes, or the rest of
/// a partial preface does not come within [`PARTIAL_PREFACE_POLLS`] looks.
///
/// # Errors
/// When the socket fails.
pub(super) async fn opens_with_preface(stream: &TcpStream) -> io::Result<bool> {
    let mut seen = [0; PREFACE.len()];
    for _ in 0..=PARTIAL_PREFACE_POLLS {
        let read = stream.peek(&mut seen).await?;
        if read == 0 || !PREFACE.starts_with(&seen[..read]) {
            return Ok(false);
        }
        if read == PREFACE.len() {
            return Ok(true);
        }
        // Readiness stays set while those bytes wait: peeking again at once would spin.
        tokio::time::sleep(PARTIAL_PREFACE_POLL).await;
    }
    Ok(false)
}
