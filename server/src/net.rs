//! The listening socket, with guards no HTTP handler can provide: a connection must
//! send its request headers within a time limit (slowloris), a write the peer does not
//! take within a time limit ends the connection (a dead or stalled peer), and TCP
//! keepalive finds peers that vanished without a word.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

use crate::metrics::{Limit, Metrics};

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
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Time limits for every accepted connection.
#[derive(Debug, Clone, Copy)]
pub struct Guards {
    /// From accept until the first request's headers are complete.
    pub header_timeout: Duration,
    /// How long one write may wait for the peer to take data.
    pub write_timeout: Duration,
}

/// A TCP listener whose connections are [`GuardedStream`]s.
#[derive(Debug)]
pub struct GuardedListener {
    listener: TcpListener,
    guards: Guards,
    metrics: Arc<Metrics>,
}

impl GuardedListener {
    /// Guards every connection `listener` accepts; refusals count in `metrics`.
    pub fn new(listener: TcpListener, guards: Guards, metrics: Arc<Metrics>) -> Self {
        Self { listener, guards, metrics }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let keepalive = socket2::TcpKeepalive::new()
                        .with_time(KEEPALIVE_IDLE)
                        .with_interval(KEEPALIVE_INTERVAL);
                    if let Err(error) =
                        socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)
                    {
                        tracing::debug!("cannot set TCP keepalive for {peer}: {error}");
                    }
                    let _ = stream.set_nodelay(true);
                    return (GuardedStream::new(stream, self.guards, self.metrics.clone()), peer);
                }
                // Out of file descriptors, say: wait a moment rather than spin.
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// The address a connection came from, as handlers see it through `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// An accepted connection under [`Guards`].
#[derive(Debug)]
pub struct GuardedStream {
    stream: TcpStream,
    guards: Guards,
    metrics: Arc<Metrics>,
    /// Running until the first request's headers are complete.
    header_deadline: Option<Pin<Box<Sleep>>>,
    /// Looks for the blank line that ends the request head.
    head_end: HeadEnd,
    /// Running while a write waits for the peer.
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl GuardedStream {
    fn new(stream: TcpStream, guards: Guards, metrics: Arc<Metrics>) -> Self {
        Self {
            stream,
            guards,
            metrics,
            header_deadline: Some(Box::pin(tokio::time::sleep(guards.header_timeout))),
            head_end: HeadEnd::default(),
            write_deadline: None,
        }
    }

    /// Runs the write deadline around a write that may wait on the peer.
    fn guard_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match write(Pin::new(&mut self.stream), cx) {
            Poll::Ready(result) => {
                self.write_deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.guards.write_timeout;
                let deadline = self
                    .write_deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(deadline.as_mut().poll(cx));
                self.metrics.limited(Limit::WriteTimeout);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer took no data within the write timeout",
                )))
            }
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deadline) = &mut this.header_deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.header_deadline = None;
            this.metrics.limited(Limit::HeaderTimeout);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers were not received within the header timeout",
            )));
        }
        let already = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if this.header_deadline.is_some() && this.head_end.feed(&buf.filled()[already..]) {
            this.header_deadline = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard_write(cx, |stream, cx| stream.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Finds `\r\n\r\n`, the end of an HTTP/1 request head, in bytes read piece by piece.
#[derive(Debug, Default)]
struct HeadEnd {
    /// How much of the terminator the bytes so far end with.
    matched: usize,
}

impl HeadEnd {
    const TERMINATOR: &[u8] = b"\r\n\r\n";

    /// Feeds more bytes; true once the terminator has been seen.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            self.matched = if byte == Self::TERMINATOR[self.matched] {
                self.matched + 1
            } else {
                usize::from(byte == b'\r')
            };
            if self.matched == Self::TERMINATOR.len() {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        let mut head_end = HeadEnd::default();
        assert!(!head_end.feed(b"GET / HTTP/1.1\r\nHost: x\r"));
        assert!(head_end.feed(b"\n\r\n"));
        let mut split_everywhere = HeadEnd::default();
        let found: Vec<bool> =
            b"a\r\r\n\r\n".iter().map(|b| split_everywhere.feed(&[*b])).collect();
        assert_eq!(found.last(), Some(&true));
        assert!(!HeadEnd::default().feed(b"\r\n\n\r\r\n"));
    }
}
