//! One accepted connection: HTTP/1.1 requests, one after another, each read within
//! its time limits, checked ([`head`]), answered by the router ([`response`]).
//!
//! Every phase of every request has a bound, so no connection can be held open by a
//! client that says nothing or says it slowly (slowloris), whether it is its first
//! request or its hundredth:
//!
//! | phase | bound | on expiry |
//! |---|---|---|
//! | a fresh connection, until its first request head is complete | `--header-timeout` | closed (`408` first if the head had begun) |
//! | a kept-alive connection, idle between requests | `--keepalive-timeout` | closed |
//! | a request head, from its first byte | `--header-timeout` | `408`, closed |
//! | a request body, from the end of its head | `--body-timeout` | `408`, closed |
//! | each write of the response | `--write-timeout` | closed |
//!
//! Each expiry is counted in `herald_limited_total`. A refusal closes the connection
//! by lingering (see [`linger`]).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::PeerAddr;
use super::body::{self, BodyError};
use super::guard::GuardedStream;
use super::head::{self, BodyFraming, Head, Refusal};
use super::response::{self, Reuse};
use crate::metrics::Limit;

/// How much of a request head is read at a time while looking for its end.
const HEAD_READ: usize = 1024;

/// Serves `io` until the peer leaves, a limit closes it, or `stop` is cancelled and
/// the response under way (if any) has ended. The first request's head is due by
/// `first_due` (the header timeout from accept).
pub(super) async fn serve(
    mut io: GuardedStream,
    peer: PeerAddr,
    app: Router,
    stop: CancellationToken,
    first_due: Instant,
) {
    let mut unread = Vec::new();
    let mut idle_until = first_due;
    let mut first = true;
    loop {
        let next = tokio::select! {
            next = read_request(&mut io, &mut unread, peer, idle_until, first) => next,
            () = stop.cancelled() => return,
        };
        let request = match next {
            Next::Request(request) => request,
            Next::RefuseRequest(mut request, refusal) => {
                // Answered by the router like any API error, then the connection closes.
                request.extensions_mut().insert(refusal);
                request.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                response::respond(&mut io, request, app, &mut unread).await;
                linger(&mut io).await;
                return;
            }
            Next::Refuse(refusal) => {
                // Best effort: the connection is closed either way.
                let _ = io.write_all(&response::refusal(&refusal)).await;
                linger(&mut io).await;
                return;
            }
            Next::Gone => return,
        };
        let reuse = response::respond(&mut io, request, app.clone(), &mut unread).await;
        if reuse == Reuse::Close || stop.is_cancelled() {
            return;
        }
        idle_until = Instant::now() + io.guards().keepalive_timeout;
        first = false;
    }
}

/// How long, and for how many bytes, a refused client's data is read and dropped.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 8 * 1024 * 1024;

/// Closes a connection after a refusal the way nginx's `lingering_close` does: stop
/// writing, then read and drop what the client still sends, for a little while.
/// Closing a socket with unread data resets it, and a reset throws away what the
/// client has not read yet: the answer (a 413 for a body still on its way) would be
/// lost, and the client would see a network error instead.
pub(super) async fn linger(io: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    if io.shutdown().await.is_err() {
        return;
    }
    let until = Instant::now() + LINGER_TIME;
    // On the heap: this future is part of every connection's task.
    let mut sink = vec![0; 16 * 1024];
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        match timeout_at(until, io.read(&mut sink)).await {
            Ok(Ok(read)) if read > 0 => dropped += read,
            _ => return,
        }
    }
}

/// What the next request on a connection turned out to be.
enum Next {
    /// A request to answer, its body read.
    Request(Box<Request>),
    /// A request whose head could not be trusted, refused here; the connection then
    /// closes.
    Refuse(Refusal),
    /// A request refused for its body or expectations: the router answers it (see
    /// [`Refusal`]); the connection then closes.
    RefuseRequest(Box<Request>, Refusal),
    /// The peer closed, failed, or stayed silent too long: close without a word.
    Gone,
}

/// Reads the next request: waits (until `idle_until`) for its first byte, reads its
/// head (within the header timeout of that byte, or of `idle_until`'s start for a
/// fresh connection) and its body (within the body timeout).
async fn read_request(
    io: &mut GuardedStream,
    unread: &mut Vec<u8>,
    peer: PeerAddr,
    idle_until: Instant,
    first: bool,
) -> Next {
    if unread.is_empty() {
        match timeout_at(idle_until, io.has_data(unread)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false) | Err(_)) => return Next::Gone,
            Err(_) => {
                io.count(if first { Limit::HeaderTimeout } else { Limit::KeepaliveTimeout });
                return Next::Gone;
            }
        }
    }
    let head_due = if first { idle_until } else { Instant::now() + io.guards().header_timeout };
    let (mut request, framing) = match timeout_at(head_due, read_head(io, unread, peer)).await {
        Ok(Some(Ok(found))) => found,
        Ok(Some(Err(refusal))) => return Next::Refuse(refusal),
        Ok(None) => return Next::Gone,
        Err(_) => {
            io.count(Limit::HeaderTimeout);
            return Next::Refuse(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request head did not arrive within the time limit",
            ));
        }
    };
    if framing == BodyFraming::None {
        return Next::Request(request);
    }
    let expectation = expectation(&request);
    if expectation == Expectation::Unmet {
        let refusal = Refusal::new(
            StatusCode::EXPECTATION_FAILED,
            "the only expectation served is 100-continue",
        );
        return Next::RefuseRequest(request, refusal);
    }
    let limit = io.guards().max_body_bytes;
    if matches!(framing, BodyFraming::Length(length) if length > limit as u64) {
        return too_large(io, request);
    }
    if expectation == Expectation::Continue && io.write_all(response::CONTINUE).await.is_err() {
        return Next::Gone;
    }
    let body_due = Instant::now() + io.guards().body_timeout;
    match timeout_at(body_due, body::read(io, unread, framing, limit)).await {
        Ok(Ok(body)) => {
            *request.body_mut() = Body::from(body);
            Next::Request(request)
        }
        Ok(Err(BodyError::TooLarge)) => too_large(io, request),
        Ok(Err(BodyError::Malformed)) => Next::RefuseRequest(
            request,
            Refusal::new(StatusCode::BAD_REQUEST, "the chunked request body is malformed"),
        ),
        Ok(Err(BodyError::Io(error))) => {
            tracing::debug!("request body from {} ended early: {error}", peer.0);
            Next::Gone
        }
        Err(_) => {
            io.count(Limit::BodyTimeout);
            Next::RefuseRequest(
                request,
                Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive within the time limit",
                ),
            )
        }
    }
}

/// Reads into `unread` until a whole head is there; takes the head out of `unread`.
/// `None` when the peer closes or fails first.
async fn read_head(
    io: &mut GuardedStream,
    unread: &mut Vec<u8>,
    peer: PeerAddr,
) -> Option<Result<(Box<Request>, BodyFraming), Refusal>> {
    loop {
        match head::parse(unread, peer) {
            Head::Complete { request, length, body } => {
                // A fresh vector: the head's buffer is not kept for a stream's life.
                *unread = unread[length..].to_vec();
                return Some(Ok((request, body)));
            }
            Head::Refused(refusal) => return Some(Err(refusal)),
            Head::Partial => {}
        }
        unread.reserve(HEAD_READ);
        let mut limited = (&mut *io).take(HEAD_READ as u64);
        match limited.read_buf(unread).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// A body over `--max-body-bytes`: refused before it is read (RFC 9110 §15.5.14).
fn too_large(io: &GuardedStream, request: Box<Request>) -> Next {
    io.count(Limit::Size);
    let refusal = Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large");
    Next::RefuseRequest(request, refusal)
}

/// What a request's `Expect` header asks for (RFC 9110 §10.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expectation {
    /// Nothing, or nothing an HTTP/1.0 request may ask (its expectations are ignored).
    None,
    /// `100-continue`: the client waits for `100 Continue` before sending its body.
    Continue,
    /// Anything else, which is refused with 417.
    Unmet,
}

fn expectation(request: &Request) -> Expectation {
    match request.headers().get(header::EXPECT) {
        _ if request.version() != Version::HTTP_11 => Expectation::None,
        None => Expectation::None,
        Some(value) if value.as_bytes().eq_ignore_ascii_case(b"100-continue") => {
            Expectation::Continue
        }
        Some(_) => Expectation::Unmet,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::net::Guards;
    use crate::net::guard::Transport;

    /// Every open stream is one of these futures: what it holds, every idle
    /// connection pays for (a buffer or a parser's array held across an `await`
    /// would show here first).
    #[tokio::test]
    async fn a_connections_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, (server, peer)) =
            tokio::join!(client, async { listener.accept().await.unwrap() });
        let guards = Guards {
            header_timeout: std::time::Duration::from_secs(1),
            body_timeout: std::time::Duration::from_secs(1),
            keepalive_timeout: std::time::Duration::from_secs(1),
            write_timeout: std::time::Duration::from_secs(1),
            max_body_bytes: 1024,
        };
        let io = GuardedStream::new(Transport::Plain(server), guards, Arc::new(Metrics::default()));
        let due = Instant::now();
        let task = serve(io, PeerAddr(peer), Router::new(), CancellationToken::new(), due);
        let size = std::mem::size_of_val(&task);
        println!("a connection's task: {size} bytes");
        assert!(size <= 1536, "a connection's task takes {size} bytes");
        drop(client);
    }
}
