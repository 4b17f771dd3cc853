//! A connection's guards, kept in its I/O so that hyper and the direct stream path
//! both obey them: the request headers must arrive within a time limit (slowloris),
//! and a write the peer does not take within a time limit ends the connection (a
//! dead or stalled peer).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::Guards;
use crate::metrics::{Limit, Metrics};

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
    pub(super) fn new(stream: TcpStream, guards: Guards, metrics: Arc<Metrics>) -> Self {
        Self {
            stream,
            guards,
            metrics,
            header_deadline: Some(Box::pin(tokio::time::sleep(guards.header_timeout))),
            head_end: HeadEnd::default(),
            write_deadline: None,
        }
    }

    /// How long a request's head may take; a body read whole gets as long again.
    pub(super) fn header_timeout(&self) -> std::time::Duration {
        self.guards.header_timeout
    }

    /// Counts a request whose body did not arrive within [`Self::header_timeout`].
    pub(super) fn count_body_timeout(&self) {
        self.metrics.limited(Limit::BodyTimeout);
    }

    /// Waits until the peer sends something or hangs up, without reading it (so
    /// without a buffer); fails as a read would once the header deadline has passed.
    pub(super) async fn readable(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            self.check_header_deadline(cx)?;
            self.stream.poll_read_ready(cx)
        })
        .await
    }

    /// An error once the first request's headers are overdue.
    fn check_header_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(deadline) = &mut self.header_deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.header_deadline = None;
            self.metrics.limited(Limit::HeaderTimeout);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers were not received within the header timeout",
            ));
        }
        Ok(())
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
        this.check_header_deadline(cx)?;
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
