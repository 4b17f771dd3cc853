//! One accepted connection. Its requests decide who serves it: event streams go the
//! [`direct`](super::direct) way; at the first request of any other kind the
//! connection is handed to hyper for the rest of its life.

use std::pin::pin;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
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
    // Streams for as long as the client asks for streams: an EventSource reconnecting
    // after its stream ended reuses the connection, and should find the same lean path.
    loop {
        let next = tokio::select! {
            next = read_head(&mut io, &mut unread, peer) => next,
            () = stopping.closed() => return,
        };
        match next {
            NextRequest::Gone => return,
            NextRequest::Stream(request) => {
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
    /// An event stream the direct path serves.
    Stream(Box<axum::extract::Request>),
    /// Anything else, or a head the direct path does not take: hyper reads it again.
    Other,
    /// The peer closed, failed or timed out before its request was complete.
    Gone,
}

/// Reads into `unread` until the next request head is complete (leaving in `unread`
/// only the bytes after it) or is known to be hyper's.
async fn read_head(io: &mut GuardedStream, unread: &mut Vec<u8>, peer: PeerAddr) -> NextRequest {
    loop {
        match direct::parse_head(unread, peer) {
            Head::Stream { request, length } => {
                // A fresh vector: the head's buffer is not kept for the stream's life.
                *unread = unread[length..].to_vec();
                return NextRequest::Stream(request);
            }
            Head::Other => return NextRequest::Other,
            Head::Partial if unread.len() >= MAX_DIRECT_HEAD => return NextRequest::Other,
            Head::Partial => {}
        }
        // An idle kept-alive connection holds no buffer until its client speaks.
        if unread.is_empty() && io.readable().await.is_err() {
            return NextRequest::Gone;
        }
        unread.reserve(HEAD_READ);
        match io.read_buf(unread).await {
            Ok(0) | Err(_) => return NextRequest::Gone,
            Ok(_) => {}
        }
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
