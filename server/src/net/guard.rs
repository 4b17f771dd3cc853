//! The guard kept in a connection's I/O: a write the peer does not take within the
//! write timeout ends the connection (a dead or stalled peer). (The time limits on
//! reading a request are the request loop's, in [`super::connection`].)

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
    /// Running while a write waits for the peer.
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl GuardedStream {
    pub(super) fn new(stream: TcpStream, guards: Guards, metrics: Arc<Metrics>) -> Self {
        Self { stream, guards, metrics, write_deadline: None }
    }

    /// The connection's time limits.
    pub(super) fn guards(&self) -> &Guards {
        &self.guards
    }

    /// Counts a refusal or a closed connection under `limit`.
    pub(super) fn count(&self, limit: Limit) {
        self.metrics.limited(limit);
    }

    /// Waits until the peer sends something (`true`) or hangs up (`false`), without
    /// taking it (so without a buffer). A peek, not `readable()`: readiness can be
    /// left over from the previous read, which would end the wait at once.
    pub(super) async fn has_data(&mut self) -> io::Result<bool> {
        let mut first = [0; 1];
        Ok(self.stream.peek(&mut first).await? > 0)
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
        Pin::new(&mut self.stream).poll_read(cx, buf)
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
