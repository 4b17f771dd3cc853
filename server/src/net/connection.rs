//! One accepted connection. Its first request decides who serves it: an event stream
//! on a fresh connection goes the [`direct`](super::direct) way; anything else, and
//! whatever follows on a connection kept alive, is hyper's.

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
    let first = tokio::select! {
        first = read_first_head(&mut io, &mut unread, peer) => first,
        () = stopping.closed() => return,
    };
    match first {
        First::Gone => return,
        First::Stream(request) => {
            let reuse = direct::respond(&mut io, request, app.clone(), &mut unread).await;
            if reuse == Reuse::Close || stopping.is_closed() {
                return;
            }
        }
        First::Other => {}
    }
    // Boxed, so that a direct stream's task is not the size of hyper's connection.
    Box::pin(serve_with_hyper(Rewind::new(unread, io), peer, app, stopping)).await;
}

/// What the first request on a connection turned out to be.
enum First {
    /// An event stream the direct path serves.
    Stream(Box<axum::extract::Request>),
    /// Anything else, or a head the direct path does not take: hyper reads it again.
    Other,
    /// The peer closed, failed or timed out before its request was complete.
    Gone,
}

/// Reads into `unread` until the first request head is complete (leaving in `unread`
/// only the bytes after it) or is known to be hyper's.
async fn read_first_head(io: &mut GuardedStream, unread: &mut Vec<u8>, peer: PeerAddr) -> First {
    loop {
        match direct::parse_head(unread, peer) {
            Head::Stream { request, length } => {
                // A fresh vector: the head's buffer is not kept for the stream's life.
                *unread = unread[length..].to_vec();
                return First::Stream(request);
            }
            Head::Other => return First::Other,
            Head::Partial if unread.len() >= MAX_DIRECT_HEAD => return First::Other,
            Head::Partial => {}
        }
        unread.reserve(HEAD_READ);
        match io.read_buf(unread).await {
            Ok(0) | Err(_) => return First::Gone,
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
