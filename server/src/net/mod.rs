//! From the listening socket to served requests, over HTTP/1.1.
//!
//! Every accepted connection gets TCP keepalive and a write timeout ([`guard`]),
//! then serves requests one after another ([`connection`]), each within time limits
//! on every phase: its head is read and held to RFC 9112 ([`head`]), its body read
//! whole ([`body`]), and the router's answer written ([`response`]) by a lean writer
//! that holds only what a quiet stream needs (hyper keeps about 24 KiB of buffers
//! for every open connection, and an idle stream is almost all a push hub holds).
//! The router is the only thing this module knows of the application.

mod body;
mod connection;
mod guard;
mod head;
mod response;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use guard::GuardedStream;
pub use head::Refusal;

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

/// Serves `app` on every connection `listener` accepts until `stop` is cancelled;
/// then accepts no more, lets each connection finish its current response (streams
/// end when the hub shuts down) and returns once every connection has closed (the
/// shape of mini-redis' `Listener`).
pub async fn serve(
    listener: TcpListener,
    guards: Guards,
    metrics: Arc<Metrics>,
    app: Router,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = stop.cancelled() => break,
        };
        let io = GuardedStream::new(stream, guards, metrics.clone());
        connections.spawn(connection::serve(io, PeerAddr(peer), app.clone(), stop.clone()));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
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
