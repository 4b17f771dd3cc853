//! One connection's bounded queue of encoded frames, and the [`Subscription`] handle an
//! event stream reads from.
//!
//! Fan-out never waits: [`Subscriber::offer`] takes a short lock, appends a cheap
//! `Bytes` clone and returns. A queue that is full means the reader is not keeping up;
//! rather than grow without bound or stall every other subscriber, the connection is
//! closed with [`DisconnectReason::Slow`] and the client resumes by Last-Event-ID.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

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
    /// Frames with the sequence number of their message (0 where there is none).
    frames: VecDeque<(u64, Bytes)>,
    capacity: usize,
    closed: Option<DisconnectReason>,
    /// Publishers waiting for their frame to leave the queue ([`Subscriber::poll_taken`]).
    takers: Takers,
    /// The reader found the queue empty and waits on it: woken, it takes the next frame
    /// at once. False while it is busy elsewhere (writing to a socket that is full, say).
    reader_waiting: bool,
}

/// Wakers of publishers waiting on a queue: almost always one, held inline so that a
/// quiet connection keeps no allocation for them.
#[derive(Debug, Default)]
struct Takers {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl Takers {
    fn add(&mut self, waker: &Waker) {
        let known = |held: &Waker| held.will_wake(waker);
        if self.first.as_ref().is_some_and(known) || self.more.iter().any(known) {
            return;
        }
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(_) => self.more.push(waker.clone()),
        }
    }

    fn wake_all(&mut self) {
        if let Some(first) = self.first.take() {
            first.wake();
        }
        if !self.more.is_empty() {
            std::mem::take(&mut self.more).into_iter().for_each(Waker::wake);
        }
    }
}

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
                takers: Takers::default(),
                reader_waiting: false,
            }),
            ready: AtomicWaker::new(),
        }
    }

    /// Queues the frame of message `seq` without waiting.
    pub(crate) fn offer(&self, seq: u64, frame: &Bytes) -> Offer {
        let mut queue = lock(&self.queue);
        if queue.closed.is_some() {
            return Offer::Closed;
        }
        let offer = if queue.frames.len() >= queue.capacity {
            queue.frames = VecDeque::new();
            queue.closed = Some(DisconnectReason::Slow);
            Offer::Overflowed
        } else {
            queue.frames.push_back((seq, frame.clone()));
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
        let mut queue = lock(&self.queue);
        if queue.closed.is_some() {
            return false;
        }
        if !reason.drains_queue() {
            queue.frames = VecDeque::new();
        }
        queue.closed = Some(reason);
        queue.takers.wake_all();
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
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Result<(u64, Bytes), DisconnectReason>> {
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

    fn try_next(&self) -> Option<Result<(u64, Bytes), DisconnectReason>> {
        Self::take(&mut lock(&self.queue))
    }

    fn take(queue: &mut Queue) -> Option<Result<(u64, Bytes), DisconnectReason>> {
        match queue.frames.pop_front() {
            Some(frame) => {
                queue.reader_waiting = false;
                // Woken here, by the writer: a task woken by the task running goes
                // first in this worker's queue, with no other worker disturbed.
                queue.takers.wake_all();
                Some(Ok(frame))
            }
            None => queue.closed.map(Err),
        }
    }

    /// Whether the frame of message `seq` has left the queue (taken by the writer, or
    /// dropped with the stream), or is not worth waiting for: the reader was not
    /// waiting on the queue, so it may not take anything soon (a writer stuck on a full
    /// socket takes nothing until the client reads). If not, `cx` is woken when a frame
    /// is taken or the stream closes.
    pub(crate) fn poll_taken(&self, seq: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut queue = lock(&self.queue);
        if !queue.reader_waiting || !queue.frames.iter().any(|(queued, _)| *queued == seq) {
            return Poll::Ready(());
        }
        queue.takers.add(cx.waker());
        Poll::Pending
    }

    #[cfg(test)]
    async fn next(&self) -> Result<(u64, Bytes), DisconnectReason> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

/// The first few connections a message was queued for, so that its publisher can wait
/// for their writers to take it ([`Reached::taken`]). Holds no more than
/// [`WRITE_BEFORE_ANSWER`](super::WRITE_BEFORE_ANSWER), on the stack.
#[derive(Debug, Default)]
pub(crate) struct Reached {
    subscribers: [Option<Arc<Subscriber>>; super::WRITE_BEFORE_ANSWER],
}

impl Reached {
    /// Notes the `index`-th connection the message was queued for (from 0); those past
    /// the first few are not held.
    pub(crate) fn note(&mut self, index: usize, subscriber: &Arc<Subscriber>) {
        if let Some(slot) = self.subscribers.get_mut(index) {
            *slot = Some(subscriber.clone());
        }
    }

    /// Resolves once the writers of the connections noted took the frame of message
    /// `seq` from their queues, or their streams closed. Only writers that were
    /// waiting on their queue are waited for: woken, they take the frame at once.
    pub(crate) async fn taken(&self, seq: u64) {
        std::future::poll_fn(|cx| {
            let mut all = Poll::Ready(());
            for subscriber in self.subscribers.iter().flatten() {
                if subscriber.poll_taken(seq, cx).is_pending() {
                    all = Poll::Pending;
                }
            }
            all
        })
        .await;
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

    fn frame(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[tokio::test]
    async fn frames_come_out_in_order() {
        let subscriber = Subscriber::new(4);
        assert_eq!(subscriber.offer(1, &frame("a")), Offer::Queued);
        assert_eq!(subscriber.offer(2, &frame("b")), Offer::Queued);
        assert_eq!(subscriber.next().await, Ok((1, frame("a"))));
        assert_eq!(subscriber.next().await, Ok((2, frame("b"))));
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_connection_as_slow() {
        let subscriber = Subscriber::new(2);
        subscriber.offer(1, &frame("a"));
        subscriber.offer(2, &frame("b"));
        assert_eq!(subscriber.offer(3, &frame("c")), Offer::Overflowed);
        assert_eq!(subscriber.offer(4, &frame("d")), Offer::Closed);
        assert_eq!(subscriber.next().await, Err(DisconnectReason::Slow));
    }

    #[tokio::test]
    async fn a_finished_stream_delivers_what_is_queued_first() {
        let subscriber = Subscriber::new(2);
        subscriber.offer(1, &frame("done"));
        subscriber.close(DisconnectReason::Finished);
        assert_eq!(subscriber.next().await, Ok((1, frame("done"))));
        assert_eq!(subscriber.next().await, Err(DisconnectReason::Finished));
    }

    #[tokio::test]
    async fn a_kicked_stream_ends_at_once() {
        let subscriber = Subscriber::new(2);
        subscriber.offer(1, &frame("a"));
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
        subscriber.offer(1, &frame("x"));
        assert_eq!(reader.await.unwrap(), Ok((1, frame("x"))));
    }

    #[tokio::test]
    async fn a_reader_that_only_looked_in_passing_is_still_woken_when_it_waits() {
        use futures::FutureExt;
        let subscriber = Arc::new(Subscriber::new(2));
        // As the direct writer does when it gathers a batch: a poll that will not wait.
        assert_eq!(subscriber.next().now_or_never(), None);
        let reader = tokio::spawn({
            let subscriber = subscriber.clone();
            async move { subscriber.next().await }
        });
        tokio::task::yield_now().await;
        subscriber.offer(1, &frame("x"));
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
        assert_eq!(woken.expect("the reader was woken").unwrap(), Ok((1, frame("x"))));
    }

    #[tokio::test]
    async fn live_frames_covered_by_the_replay_are_skipped() {
        let subscriber = Arc::new(Subscriber::new(8));
        subscriber.offer(4, &frame("live 4"));
        subscriber.offer(5, &frame("live 5"));
        let replay = VecDeque::from([frame("replayed 4")]);
        let mut subscription = Subscription::new(replay, Some(4), subscriber, Box::new(|_| {}));
        assert_eq!(subscription.next().await, Next::Frame(frame("replayed 4")));
        assert_eq!(subscription.next().await, Next::Frame(frame("live 5")));
    }

    /// A publisher waiting on `subscriber` for message `seq`, on this test's runtime.
    fn wait_for_taken(subscriber: &Arc<Subscriber>, seq: u64) -> tokio::task::JoinHandle<()> {
        let mut reached = Reached::default();
        reached.note(0, subscriber);
        tokio::spawn(async move { reached.taken(seq).await })
    }

    /// The reader looks at its empty queue and waits on it.
    fn reader_waits(subscriber: &Subscriber) {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(subscriber.poll_next(&mut cx).is_pending());
    }

    async fn finishes(waiting: tokio::task::JoinHandle<()>) {
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        done.expect("the publisher was released").expect("it did not panic");
    }

    #[tokio::test]
    async fn a_publisher_waits_until_the_waiting_writer_took_its_frame() {
        let subscriber = Arc::new(Subscriber::new(8));
        reader_waits(&subscriber);
        subscriber.offer(7, &frame("mine"));
        let waiting = wait_for_taken(&subscriber, 7);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the frame is still queued");
        subscriber.try_next();
        finishes(waiting).await;
    }

    #[tokio::test]
    async fn a_writer_busy_elsewhere_is_not_waited_for() {
        // It took a frame and is writing it (to a socket its client does not read,
        // perhaps): it takes nothing more until that write ends.
        let subscriber = Arc::new(Subscriber::new(8));
        reader_waits(&subscriber);
        subscriber.offer(6, &frame("being written"));
        subscriber.try_next();
        subscriber.offer(7, &frame("mine"));
        finishes(wait_for_taken(&subscriber, 7)).await;
    }

    #[tokio::test]
    async fn a_closed_stream_releases_waiting_publishers() {
        let subscriber = Arc::new(Subscriber::new(8));
        reader_waits(&subscriber);
        subscriber.offer(1, &frame("never written"));
        let (first, second) = (wait_for_taken(&subscriber, 1), wait_for_taken(&subscriber, 1));
        tokio::task::yield_now().await;
        assert!(!first.is_finished() && !second.is_finished());
        subscriber.close(DisconnectReason::Kicked);
        finishes(first).await;
        finishes(second).await;
    }
}
