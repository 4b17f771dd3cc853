//! One connection's bounded queue of encoded frames, and the [`Subscription`] handle an
//! event stream reads from.
//!
//! Fan-out never waits: [`Subscriber::offer`] takes a short lock, appends a cheap
//! `Bytes` clone and returns. A queue that is full means the reader is not keeping up;
//! rather than grow without bound or stall every other subscriber, the connection is
//! closed with [`DisconnectReason::Slow`] and the client resumes by Last-Event-ID.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::task::AtomicWaker;

use super::lock;
use super::types::DisconnectReason;

/// A connection's queue. A `std` mutex: every critical section is a push or a pop,
/// never held across an `.await`.
#[derive(Debug)]
pub(crate) struct Subscriber {
    queue: Mutex<Queue>,
    /// The one reader's waker (a connection has exactly one writer), polled rather
    /// than awaited so the response body needs no future of its own per frame.
    ready: AtomicWaker,
}

#[derive(Debug)]
struct Queue {
    frames: VecDeque<Queued>,
    capacity: usize,
    closed: Option<DisconnectReason>,
    /// The reader found the queue empty and waits on it: woken, it takes the next frame
    /// at once. False while it is busy elsewhere (writing to a socket that is full, say).
    reader_waiting: bool,
}

/// A frame in a queue.
#[derive(Debug)]
struct Queued {
    /// The sequence number of its message ([`CONTROL`] for a frame of the server's
    /// own, which a replay never covers).
    seq: u64,
    frame: Bytes,
    /// Held when the frame's publisher waits for it to be taken.
    ticket: Option<Ticket>,
}

/// A message's hand-over to the writers that were waiting for it: its publisher can
/// wait until every one of them took the frame from its queue ([`Handoff::taken`]),
/// so that a push to a few connections is on the wire before it is answered, and so
/// that a large fan-out counts as in flight until its writers took it (the memory
/// broker's window).
///
/// A count rather than a list of connections: each frame handed over holds a
/// [`Ticket`], which tells the count when the frame leaves its queue however it leaves.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    /// Frames queued for a waiting writer and not taken yet.
    untaken: AtomicUsize,
    publisher: AtomicWaker,
}

impl Handoff {
    fn ticket(self: &Arc<Self>) -> Ticket {
        self.untaken.fetch_add(1, Ordering::Relaxed);
        Ticket(self.clone())
    }

    /// Frames queued for a waiting writer and not taken yet.
    pub(crate) fn untaken(&self) -> usize {
        self.untaken.load(Ordering::Acquire)
    }

    /// Resolves once every writer that was waiting when the message was offered took
    /// its frame, or its stream closed.
    pub(crate) async fn taken(&self) {
        std::future::poll_fn(|cx| {
            if self.untaken() == 0 {
                return Poll::Ready(());
            }
            self.publisher.register(cx.waker());
            // Checked again after registering, so that a take in between is seen.
            if self.untaken() == 0 { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
    }
}

/// A frame's part in its [`Handoff`]: dropped when the frame leaves its queue (taken
/// by the writer, or dropped with the stream), which may release the publisher.
#[derive(Debug)]
struct Ticket(Arc<Handoff>);

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.0.untaken.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Woken by the writer that took the frame: a task woken by the running
            // task goes first in this worker's queue, with no other worker disturbed.
            self.0.publisher.wake();
        }
    }
}

/// The seq of a frame that is no message (a `retry:` before a drain): above every
/// seq a replay can cover, so it is never skipped as already replayed.
pub(crate) const CONTROL: u64 = u64::MAX;

/// What became of a frame offered to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued for the connection.
    Queued,
    /// The queue was full: the connection is now closed as [`DisconnectReason::Slow`].
    Overflowed,
    /// The connection had already been closed.
    Closed,
}

/// What a stream gets next from its subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A frame to write.
    Frame(Bytes),
    /// The stream is over.
    Closed(DisconnectReason),
}

impl Subscriber {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                capacity: capacity.max(1),
                closed: None,
                reader_waiting: false,
            }),
            ready: AtomicWaker::new(),
        }
    }

    /// Queues the frame of message `seq` without waiting. With a `handoff`, the frame
    /// counts in it when the reader is waiting on the queue (a reader busy elsewhere,
    /// on a socket its client does not read say, may take nothing for a long time).
    pub(crate) fn offer(&self, seq: u64, frame: &Bytes, handoff: Option<&Arc<Handoff>>) -> Offer {
        let mut queue = lock(&self.queue);
        if queue.closed.is_some() {
            return Offer::Closed;
        }
        let offer = if queue.frames.len() >= queue.capacity {
            queue.frames = VecDeque::new();
            queue.closed = Some(DisconnectReason::Slow);
            Offer::Overflowed
        } else {
            let ticket = handoff.filter(|_| queue.reader_waiting).map(Handoff::ticket);
            queue.frames.push_back(Queued { seq, frame: frame.clone(), ticket });
            Offer::Queued
        };
        drop(queue);
        self.ready.wake();
        offer
    }

    /// Ends the stream for `reason`. Queued frames are still delivered when the reason
    /// [drains the queue](DisconnectReason::drains_queue). Returns false if it was
    /// already closed.
    pub(crate) fn close(&self, reason: DisconnectReason) -> bool {
        self.end(reason, None)
    }

    /// Ends the stream for `reason` as [`close`](Self::close) does, with `last` as its
    /// final frame even when the reason drops what is queued (a stream cut off can
    /// still be told when to come back).
    pub(crate) fn close_with(&self, last: Bytes, reason: DisconnectReason) -> bool {
        self.end(reason, Some(last))
    }

    fn end(&self, reason: DisconnectReason, last: Option<Bytes>) -> bool {
        let mut queue = lock(&self.queue);
        if queue.closed.is_some() {
            return false;
        }
        if !reason.drains_queue() {
            queue.frames = VecDeque::new();
        }
        if let Some(frame) = last {
            queue.frames.push_back(Queued { seq: CONTROL, frame, ticket: None });
        }
        queue.closed = Some(reason);
        drop(queue);
        self.ready.wake();
        true
    }

    /// The reason the stream was closed, if it was.
    pub(crate) fn closed(&self) -> Option<DisconnectReason> {
        lock(&self.queue).closed
    }

    /// The next frame and its seq, or the end of the stream; `Pending` (with the
    /// reader woken on the next offer or close) while the queue is empty.
    pub(crate) fn poll_next(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(u64, Bytes), DisconnectReason>> {
        if let Some(next) = self.try_next() {
            return Poll::Ready(next);
        }
        self.ready.register(cx.waker());
        // Checked again after registering, so that an offer made in between is seen.
        let mut queue = lock(&self.queue);
        let next = Self::take(&mut queue);
        queue.reader_waiting = next.is_none();
        next.map_or(Poll::Pending, Poll::Ready)
    }

    pub(crate) fn try_next(&self) -> Option<Result<(u64, Bytes), DisconnectReason>> {
        Self::take(&mut lock(&self.queue))
    }

    fn take(queue: &mut Queue) -> Option<Result<(u64, Bytes), DisconnectReason>> {
        match queue.frames.pop_front() {
            Some(Queued { seq, frame, ticket }) => {
                queue.reader_waiting = false;
                drop(ticket);
                Some(Ok((seq, frame)))
            }
            None => queue.closed.map(Err),
        }
    }

    #[cfg(test)]
    async fn next(&self) -> Result<(u64, Bytes), DisconnectReason> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

/// Runs when a subscription ends, to take the connection out of whatever registry
/// holds it.
pub(crate) type Unregister = Box<dyn FnOnce(DisconnectReason) + Send + Sync>;

/// An open event stream's view of the hub: frames to replay first, then live frames.
///
/// A resuming connection is registered before its history is read, so live messages
/// already covered by the replay may also reach its queue; `replayed_through` is the
/// last seq the replay covers, and live frames up to it are skipped. That is what
/// makes the switch from replay to live free of gaps and duplicates without holding
/// any lock across the (possibly remote) history read.
///
/// Dropping it unregisters the connection; the reason recorded is the one it was
/// closed with, or [`DisconnectReason::ClientClosed`] when the HTTP layer dropped it
/// because the client went away.
pub struct Subscription {
    replay: VecDeque<Bytes>,
    replayed_through: Option<u64>,
    subscriber: Arc<Subscriber>,
    unregister: Option<Unregister>,
}

impl Subscription {
    pub(crate) fn new(
        replay: VecDeque<Bytes>,
        replayed_through: Option<u64>,
        subscriber: Arc<Subscriber>,
        unregister: Unregister,
    ) -> Self {
        Self { replay, replayed_through, subscriber, unregister: Some(unregister) }
    }

    /// Sets what is written before live frames, and the last seq it covers.
    pub(crate) fn with_replay(
        mut self,
        replay: VecDeque<Bytes>,
        replayed_through: Option<u64>,
    ) -> Self {
        self.replay = replay;
        self.replayed_through = replayed_through;
        self
    }

    /// The next frame to write, replayed history first; or the end of the stream.
    pub async fn next(&mut self) -> Next {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// [`Subscription::next`] for hand-written streams: `Pending` until there is a
    /// frame or the end, with the task woken then.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        if let Some(frame) = self.replay.pop_front() {
            return Poll::Ready(Next::Frame(frame));
        }
        loop {
            match std::task::ready!(self.subscriber.poll_next(cx)) {
                Ok((seq, _)) if self.replayed_through.is_some_and(|through| seq <= through) => {}
                Ok((_, frame)) => return Poll::Ready(Next::Frame(frame)),
                Err(reason) => return Poll::Ready(Next::Closed(reason)),
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let reason = self.subscriber.closed().unwrap_or(DisconnectReason::ClientClosed);
        self.subscriber.close(reason);
        if let Some(unregister) = self.unregister.take() {
            unregister(reason);
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("replay", &self.replay.len()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn frame(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[tokio::test]
    async fn frames_come_out_in_order() {
        let subscriber = Subscriber::new(4);
        assert_eq!(subscriber.offer(1, &frame("a"), None), Offer::Queued);
        assert_eq!(subscriber.offer(2, &frame("b"), None), Offer::Queued);
        assert_eq!(subscriber.next().await, Ok((1, frame("a"))));
        assert_eq!(subscriber.next().await, Ok((2, frame("b"))));
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_connection_as_slow() {
        let subscriber = Subscriber::new(2);
        subscriber.offer(1, &frame("a"), None);
        subscriber.offer(2, &frame("b"), None);
        assert_eq!(subscriber.offer(3, &frame("c"), None), Offer::Overflowed);
        assert_eq!(subscriber.offer(4, &frame("d"), None), Offer::Closed);
        assert_eq!(subscriber.next().await, Err(DisconnectReason::Slow));
    }

    #[tokio::test]
    async fn a_finished_stream_delivers_what_is_queued_first() {
        let subscriber = Subscriber::new(2);
        subscriber.offer(1, &frame("done"), None);
        subscriber.close(DisconnectReason::Finished);
        assert_eq!(subscriber.next().await, Ok((1, frame("done"))));
        assert_eq!(subscriber.next().await, Err(DisconnectReason::Finished));
    }

    #[tokio::test]
    async fn a_kicked_stream_ends_at_once() {
        let subscriber = Subscriber::new(2);
        subscriber.offer(1, &frame("a"), None);
        subscriber.close(DisconnectReason::Kicked);
        assert_eq!(subscriber.next().await, Err(DisconnectReason::Kicked));
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_offer() {
        let subscriber = Arc::new(Subscriber::new(2));
        let reader = tokio::spawn({
            let subscriber = subscriber.clone();
            async move { subscriber.next().await }
        });
        tokio::task::yield_now().await;
        subscriber.offer(1, &frame("x"), None);
        assert_eq!(reader.await.unwrap(), Ok((1, frame("x"))));
    }

    #[tokio::test]
    async fn a_reader_that_only_looked_in_passing_is_still_woken_when_it_waits() {
        use futures::FutureExt;
        let subscriber = Arc::new(Subscriber::new(2));
        // As the connection writer (net/response.rs) does when it gathers a batch: a
        // poll that will not wait.
        assert_eq!(subscriber.next().now_or_never(), None);
        let reader = tokio::spawn({
            let subscriber = subscriber.clone();
            async move { subscriber.next().await }
        });
        tokio::task::yield_now().await;
        subscriber.offer(1, &frame("x"), None);
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
        assert_eq!(woken.expect("the reader was woken").unwrap(), Ok((1, frame("x"))));
    }

    #[tokio::test]
    async fn live_frames_covered_by_the_replay_are_skipped() {
        let subscriber = Arc::new(Subscriber::new(8));
        subscriber.offer(4, &frame("live 4"), None);
        subscriber.offer(5, &frame("live 5"), None);
        let replay = VecDeque::from([frame("replayed 4")]);
        let mut subscription = Subscription::new(replay, Some(4), subscriber, Box::new(|_| {}));
        assert_eq!(subscription.next().await, Next::Frame(frame("replayed 4")));
        assert_eq!(subscription.next().await, Next::Frame(frame("live 5")));
    }

    /// The reader looks at its empty queue and waits on it.
    fn reader_waits(subscriber: &Subscriber) {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(subscriber.poll_next(&mut cx).is_pending());
    }

    /// A publisher waiting, on this test's runtime, for its frame to be taken.
    fn publisher_waits(handoff: &Arc<Handoff>) -> tokio::task::JoinHandle<()> {
        let handoff = handoff.clone();
        tokio::spawn(async move { handoff.taken().await })
    }

    async fn finishes(waiting: tokio::task::JoinHandle<()>) {
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        done.expect("the publisher was released").expect("it did not panic");
    }

    #[tokio::test]
    async fn a_publisher_waits_until_every_waiting_writer_took_its_frame() {
        let (first, second) = (Arc::new(Subscriber::new(8)), Arc::new(Subscriber::new(8)));
        reader_waits(&first);
        reader_waits(&second);
        let handoff = Arc::new(Handoff::default());
        first.offer(7, &frame("mine"), Some(&handoff));
        second.offer(7, &frame("mine"), Some(&handoff));
        assert_eq!(handoff.untaken(), 2);
        let waiting = publisher_waits(&handoff);
        first.try_next();
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the second writer has not taken it");
        second.try_next();
        finishes(waiting).await;
    }

    #[tokio::test]
    async fn a_writer_busy_elsewhere_is_not_waited_for() {
        // It took a frame and is writing it (to a socket its client does not read,
        // perhaps): it takes nothing more until that write ends.
        let subscriber = Arc::new(Subscriber::new(8));
        reader_waits(&subscriber);
        subscriber.offer(6, &frame("being written"), None);
        subscriber.try_next();
        let handoff = Arc::new(Handoff::default());
        subscriber.offer(7, &frame("mine"), Some(&handoff));
        assert_eq!(handoff.untaken(), 0);
        finishes(publisher_waits(&handoff)).await;
    }

    #[tokio::test]
    async fn a_closed_stream_releases_its_publishers() {
        let subscriber = Arc::new(Subscriber::new(8));
        reader_waits(&subscriber);
        let (one, other) = (Arc::new(Handoff::default()), Arc::new(Handoff::default()));
        subscriber.offer(1, &frame("never written"), Some(&one));
        subscriber.offer(2, &frame("nor this"), Some(&other));
        let (first, second) = (publisher_waits(&one), publisher_waits(&other));
        tokio::task::yield_now().await;
        assert!(!first.is_finished() && !second.is_finished());
        subscriber.close(DisconnectReason::Kicked);
        finishes(first).await;
        finishes(second).await;
    }

    #[tokio::test]
    async fn an_overflowing_queue_releases_its_publishers() {
        let subscriber = Arc::new(Subscriber::new(1));
        reader_waits(&subscriber);
        let handoff = Arc::new(Handoff::default());
        subscriber.offer(1, &frame("queued"), Some(&handoff));
        assert_eq!(subscriber.offer(2, &frame("one too many"), None), Offer::Overflowed);
        assert_eq!(handoff.untaken(), 0);
    }
}
