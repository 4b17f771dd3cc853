//! From the listening socket to served requests, over HTTP/1.1 and HTTP/2, in plain
//! text or TLS.
//!
//! Every accepted connection gets TCP keepalive and a write timeout ([`guard`]). With
//! TLS configured it first completes a handshake ([`tls`]), whose ALPN picks the
//! protocol; in plain text, a connection that opens with the HTTP/2 preface is served
//! as h2c. HTTP/2 connections are hyper's ([`http2`]). HTTP/1.1 connections serve
//! requests one after another ([`connection`]), each within time limits
//! on every phase: its head is read and held to RFC 9112 ([`head`]), its body read
//! whole ([`body`]), and the router's answer written ([`response`]) by a lean writer
//! that holds only what a quiet stream needs (hyper keeps about 24 KiB of buffers
//! for every open connection, and an idle stream is almost all a push hub holds).
//! The router is the only thing this module knows of the application.

mod body;
mod connection;
mod guard;
mod head;
mod http2;
mod response;
mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use guard::{GuardedStream, Transport};
pub use head::Refusal;
pub use http2::MAX_CONCURRENT_STREAMS;
pub use tls::{RELOAD_CHECK, Tls, TlsError, TlsFiles, ignore_hangups};

use crate::metrics::Metrics;

/// How long the kernel waits on a silent connection before probing it, and how
/// often it probes (dead peers are found in about a minute and a half).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`).
/// The default 128 overflows when a few hundred clients reconnect at once (a node
/// restarting, say): each dropped SYN then costs its client a second's retransmit.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`].
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // On Linux accepted connections inherit these: no system calls per connection.
    configure_connection(&socket2::SockRef::from(&socket))?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// TCP keepalive on and Nagle off (events are small and must leave at once).
fn configure_connection(socket: &socket2::SockRef<'_>) -> io::Result<()> {
    let keepalive =
        socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE).with_interval(KEEPALIVE_INTERVAL);
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_nodelay(true)
}

/// Limits on every accepted connection.
#[derive(Debug, Clone, Copy)]
pub struct Guards {
    /// How long a request head may take: from accept for a connection's first, from
    /// its first byte for later ones.
    pub header_timeout: Duration,
    /// How long a request body may take, from the end of its head.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may stay idle between requests.
    pub keepalive_timeout: Duration,
    /// How long one write may wait for the peer to take data.
    pub write_timeout: Duration,
    /// The largest request body read, in bytes; larger ones are refused with 413.
    pub max_body_bytes: usize,
}

/// The address a connection came from, as handlers see it through `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What every connection is served with.
#[derive(Debug, Clone)]
pub struct Service {
    /// The limits on every connection.
    pub guards: Guards,
    /// Where limits are counted.
    pub metrics: Arc<Metrics>,
    /// TLS on the port, if configured; plain text otherwise.
    pub tls: Option<Tls>,
    /// The application.
    pub app: Router,
}

/// Serves `service` on every connection `listener` accepts until `stop` is
/// cancelled; then accepts no more, lets each connection finish its current
/// response (streams end when the hub shuts down) and returns once every connection
/// has closed (the shape of mini-redis' `Listener`).
pub async fn serve(listener: TcpListener, service: Service, stop: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = stop.cancelled() => break,
        };
        let peer = PeerAddr(peer);
        connections.spawn(open_then_serve(
            stream,
            peer,
            service.clone(),
            stop.clone(),
            connections.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// A connection whose protocol is known (after its TLS handshake or its first bytes),
/// ready to be served in a task of its own.
struct Opened {
    io: GuardedStream,
    protocol: Protocol,
    peer: PeerAddr,
    app: Router,
    stop: CancellationToken,
    due: Instant,
}

/// Opens one accepted connection: TLS handshake or h2c preface first, both within the
/// header timeout of accept. `None` when it fails or takes too long.
async fn open_connection(
    stream: TcpStream,
    peer: PeerAddr,
    service: Service,
    stop: CancellationToken,
) -> Option<Opened> {
    let Service { guards, metrics, tls, app } = service;
    let due = Instant::now() + guards.header_timeout;
    let opened = match tls {
        Some(tls) => timeout_at(due, handshake(&tls, stream)).await,
        None => timeout_at(due, sniff(stream)).await,
    };
    let (transport, protocol) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => {
            tracing::debug!("connection from {} failed before its first request: {error}", peer.0);
            return None;
        }
        Err(_) => {
            metrics.limited(crate::metrics::Limit::HeaderTimeout);
            return None;
        }
    };
    let io = GuardedStream::new(transport, guards, metrics);
    Some(Opened { io, protocol, peer, app, stop, due })
}

/// Opens a connection, then serves it in a task of its own: a task is as large as its
/// future's largest state, so the opening's (a handshake, a timer, the service) would
/// otherwise take room for as long as the connection lives.
async fn open_then_serve(
    stream: TcpStream,
    peer: PeerAddr,
    service: Service,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    let opened = open_connection(stream, peer, service, stop).await;
    let Some(Opened { io, protocol, peer, app, stop, due }) = opened else { return };
    match protocol {
        Protocol::Http1 => {
            connections.spawn(connection::serve(io, peer, app, stop, due));
        }
        // Boxed: hyper's connection state is large.
        Protocol::Http2 => {
            connections.spawn(Box::pin(http2::serve(io, peer, app, stop)));
        }
    }
}

/// A TLS connection and the protocol its ALPN chose (HTTP/1.1 without ALPN).
async fn handshake(tls: &Tls, mut stream: TcpStream) -> io::Result<(Transport, Protocol)> {
    if speaks_plain_http(&stream).await? {
        // As nginx does: a readable answer, rather than TLS alert bytes a client would
        // show as garbage ("Received HTTP/0.9").
        refuse_plain_http(&mut stream).await;
        return Err(io::Error::new(io::ErrorKind::InvalidData, "plain HTTP on the TLS port"));
    }
    let stream = tls.accept(stream).await?;
    let protocol = if stream.get_ref().1.alpn_protocol() == Some(tls::ALPN_H2) {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    Ok((Transport::Tls(Box::new(stream)), protocol))
}

/// Answers plain HTTP on the TLS port with a refusal that says what to do, then
/// lingers as any refusal does (see [`connection::linger`]).
async fn refuse_plain_http(stream: &mut TcpStream) {
    let refusal = Refusal::new(
        axum::http::StatusCode::BAD_REQUEST,
        "this port speaks HTTPS: use https:// to reach this server",
    );
    if tokio::io::AsyncWriteExt::write_all(stream, &response::refusal(&refusal)).await.is_ok() {
        connection::linger(stream).await;
    }
}

/// Whether a connection to the TLS port opens with plain text (an upper-case letter,
/// as a request method does) instead of a TLS record (RFC 8446 §5.1: content type 22).
async fn speaks_plain_http(stream: &TcpStream) -> io::Result<bool> {
    let mut first = [0; 1];
    let read = stream.peek(&mut first).await?;
    Ok(read == 1 && first[0].is_ascii_uppercase())
}

/// A plain-text connection, served as h2c if it opens with HTTP/2's preface.
async fn sniff(stream: TcpStream) -> io::Result<(Transport, Protocol)> {
    let protocol =
        if http2::opens_with_preface(&stream).await? { Protocol::Http2 } else { Protocol::Http1 };
    Ok((Transport::Plain(stream), protocol))
}

/// The next connection, with TCP keepalive on and Nagle off.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Linux copies the listener's settings (see `bind`); elsewhere, set them.
                if !cfg!(target_os = "linux")
                    && let Err(error) = configure_connection(&socket2::SockRef::from(&stream))
                {
                    tracing::debug!("cannot set TCP options for {peer}: {error}");
                }
                return (stream, peer);
            }
            // Out of file descriptors, say: wait a moment rather than spin.
            Err(error) => {
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opening a connection (TLS, the h2c preface) is a task of its own: an HTTP/1.1
    /// stream's lasting task is the HTTP/1.1 path alone (see `connection`'s own test).
    #[tokio::test]
    async fn an_opened_connection_is_served_by_the_http_1_1_path_alone() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (mut client, (server, peer)) =
            tokio::join!(client, async { listener.accept().await.unwrap() });
        // An HTTP/1.1 request's first bytes tell it from h2c.
        tokio::io::AsyncWriteExt::write_all(&mut client.as_mut().unwrap(), b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let guards = Guards {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            max_body_bytes: 1024,
        };
        let service = Service {
            guards,
            metrics: Arc::new(Metrics::default()),
            tls: None,
            app: Router::new(),
        };
        let opening = open_connection(server, PeerAddr(peer), service, CancellationToken::new());
        let opened = opening.await.expect("opened");
        assert_eq!(opened.protocol, Protocol::Http1);
        let task = connection::serve(opened.io, opened.peer, opened.app, opened.stop, opened.due);
        let size = std::mem::size_of_val(&task);
        println!("a served connection's task: {size} bytes");
        assert!(size <= 1536, "a served connection's task takes {size} bytes");
        drop(client);
    }
}
