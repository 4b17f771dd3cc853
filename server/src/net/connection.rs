//! One accepted connection. Its requests decide who serves it: event streams and
//! small requests (pushes) go the [`direct`](super::direct) way; at the first request
//! of any other kind the connection is handed to hyper for the rest of its life.

use std::io;
use std::pin::pin;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tower::ServiceExt;

use super::PeerAddr;
use super::direct::{self, Head, Reuse};
use super::guard::GuardedStream;
use super::rewind::Rewind;

/// How much of a request head is read at a time while looking for its end.
const HEAD_READ: usize = 1024;

/// A head longer than this is left to hyper, whose limits answer it.
const MAX_DIRECT_HEAD: usize = 16 * 1024;

/// Serves `io` until the peer leaves, or until `stopping` closes and the response
/// under way (if any) has ended.
pub(super) async fn serve(
    mut io: GuardedStream,
    peer: PeerAddr,
    app: Router,
    stopping: watch::Sender<()>,
) {
    let mut unread = Vec::new();
    // Direct for as long as the client asks for streams and pushes: an EventSource
    // reconnecting after its stream ended reuses the connection, and a publisher sends
    // push after push on one.
    loop {
        let next = tokio::select! {
            next = read_request(&mut io, &mut unread, peer) => next,
            () = stopping.closed() => return,
        };
        match next {
            NextRequest::Gone => return,
            NextRequest::Direct(request) => {
                let reuse = direct::respond(&mut io, request, app.clone(), &mut unread).await;
                if reuse == Reuse::Close || stopping.is_closed() {
                    return;
                }
            }
            NextRequest::Other => break,
        }
    }
    // Boxed, so that a direct stream's task is not the size of hyper's connection.
    Box::pin(serve_with_hyper(Rewind::new(unread, io), peer, app, stopping)).await;
}

/// What the next request on a connection turned out to be.
enum NextRequest {
    /// A request the direct path serves, its body read.
    Direct(Box<axum::extract::Request>),
    /// Anything else, or a head the direct path does not take: hyper reads it again.
    Other,
    /// The peer closed, failed or timed out before its request was complete.
    Gone,
}

/// Reads into `unread` until the next request is complete (leaving in `unread` only
/// the bytes after it) or is known to be hyper's.
async fn read_request(io: &mut GuardedStream, unread: &mut Vec<u8>, peer: PeerAddr) -> NextRequest {
    let (mut request, head, body) = loop {
        match direct::parse_head(unread, peer) {
            Head::Direct { request, length, body } => break (request, length, body),
            Head::Other => return NextRequest::Other,
            Head::Partial if unread.len() >= MAX_DIRECT_HEAD => return NextRequest::Other,
            Head::Partial => {}
        }
        if read_more(io, unread, HEAD_READ).await.is_err() {
            return NextRequest::Gone;
        }
    };
    let end = head + body;
    // The head's own deadline has passed once it is complete; the body gets as long.
    let allowed = io.header_timeout();
    let body_read = async {
        while unread.len() < end {
            read_more(io, unread, end - unread.len()).await?;
        }
        Ok::<_, io::Error>(())
    };
    match tokio::time::timeout(allowed, body_read).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return NextRequest::Gone,
        Err(_) => {
            io.count_body_timeout();
            // Best effort: the client is being dropped either way.
            let _ = io.write_all(&body_timed_out()).await;
            return NextRequest::Gone;
        }
    }
    if body > 0 {
        *request.body_mut() = Body::from(Bytes::copy_from_slice(&unread[head..end]));
    }
    // A fresh vector: the request's buffer is not kept for a stream's life.
    *unread = unread[end..].to_vec();
    NextRequest::Direct(request)
}

/// The answer to a request whose body did not arrive within the header timeout.
fn body_timed_out() -> Vec<u8> {
    let body = r#"{"error":"the request body did not arrive within the time limit"}"#;
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads at most `up_to` more bytes into `unread`; fails when the peer has closed.
async fn read_more(io: &mut GuardedStream, unread: &mut Vec<u8>, up_to: usize) -> io::Result<()> {
    // An idle kept-alive connection holds no buffer until its client speaks.
    if unread.is_empty() {
        io.readable().await?;
    }
    unread.reserve(up_to);
    let mut limited = (&mut *io).take(up_to as u64);
    match limited.read_buf(unread).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

/// Serves the rest of the connection with hyper, winding down when `stopping` closes:
/// an idle connection closes at once, a busy one after its response.
async fn serve_with_hyper(
    io: Rewind<GuardedStream>,
    peer: PeerAddr,
    app: Router,
    stopping: watch::Sender<()>,
) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopping.closed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!("connection from {}: {error}", peer.0);
    }
}
