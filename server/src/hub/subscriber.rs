//! One connection's bounded queue of encoded frames, and the [`Subscription`] handle an
//! event stream reads from.
//!
//! Fan-out never waits: [`Subscriber::offer`] takes a short lock, appends a cheap
//! `Bytes` clone and returns. A queue that is full means the reader is not keeping up;
//! rather than grow without bound or stall every other subscriber, the connection is
//! closed with [`DisconnectReason::Slow`] and the client resumes by Last-Event-ID.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

use super::lock;
use super::types::DisconnectReason;

/// A connection's queue. A `std` mutex: every critical section is a push or a pop,
/// never held across an `.await`.
#[derive(Debug)]
pub(crate) struct Subscriber {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Debug)]
struct Queue {
    frames: VecDeque<Bytes>,
    capacity: usize,
    closed: Option<DisconnectReason>,
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
            }),
            ready: Notify::new(),
        }
    }

    /// Queues a frame without waiting.
    pub(crate) fn offer(&self, frame: &Bytes) -> Offer {
        let mut queue = lock(&self.queue);
        if queue.closed.is_some() {
            return Offer::Closed;
        }
        let offer = if queue.frames.len() >= queue.capacity {
            queue.frames = VecDeque::new();
            queue.closed = Some(DisconnectReason::Slow);
            Offer::Overflowed
        } else {
            queue.frames.push_back(frame.clone());
            Offer::Queued
        };
        drop(queue);
        self.ready.notify_one();
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
        drop(queue);
        self.ready.notify_one();
        true
    }

    /// The reason the stream was closed, if it was.
    pub(crate) fn closed(&self) -> Option<DisconnectReason> {
        lock(&self.queue).closed
    }

    /// Waits for the next frame, or for the end of the stream.
    async fn next(&self) -> Next {
        loop {
            {
                let mut queue = lock(&self.queue);
                if let Some(frame) = queue.frames.pop_front() {
                    return Next::Frame(frame);
                }
                if let Some(reason) = queue.closed {
                    return Next::Closed(reason);
                }
            }
            // `notify_one` stores a permit when nobody waits, so a frame offered
            // between the check above and this await is not missed.
            self.ready.notified().await;
        }
    }
}

/// Runs when a subscription ends, to take the connection out of whatever registry
/// holds it.
pub(crate) type Unregister = Box<dyn FnOnce(DisconnectReason) + Send + Sync>;

/// An open event stream's view of the hub: frames to replay first, then live frames.
///
/// Dropping it unregisters the connection; the reason recorded is the one it was
/// closed with, or [`DisconnectReason::ClientClosed`] when the HTTP layer dropped it
/// because the client went away.
pub struct Subscription {
    replay: VecDeque<Bytes>,
    subscriber: Arc<Subscriber>,
    unregister: Option<Unregister>,
}

impl Subscription {
    pub(crate) fn new(
        replay: VecDeque<Bytes>,
        subscriber: Arc<Subscriber>,
        unregister: Unregister,
    ) -> Self {
        Self { replay, subscriber, unregister: Some(unregister) }
    }

    /// The next frame to write, replayed history first; or the end of the stream.
    pub async fn next(&mut self) -> Next {
        match self.replay.pop_front() {
            Some(frame) => Next::Frame(frame),
            None => self.subscriber.next().await,
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
        assert_eq!(subscriber.offer(&frame("a")), Offer::Queued);
        assert_eq!(subscriber.offer(&frame("b")), Offer::Queued);
        assert_eq!(subscriber.next().await, Next::Frame(frame("a")));
        assert_eq!(subscriber.next().await, Next::Frame(frame("b")));
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_connection_as_slow() {
        let subscriber = Subscriber::new(2);
        subscriber.offer(&frame("a"));
        subscriber.offer(&frame("b"));
        assert_eq!(subscriber.offer(&frame("c")), Offer::Overflowed);
        assert_eq!(subscriber.offer(&frame("d")), Offer::Closed);
        assert_eq!(subscriber.next().await, Next::Closed(DisconnectReason::Slow));
    }

    #[tokio::test]
    async fn a_finished_stream_delivers_what_is_queued_first() {
        let subscriber = Subscriber::new(2);
        subscriber.offer(&frame("done"));
        subscriber.close(DisconnectReason::Finished);
        assert_eq!(subscriber.next().await, Next::Frame(frame("done")));
        assert_eq!(subscriber.next().await, Next::Closed(DisconnectReason::Finished));
    }

    #[tokio::test]
    async fn a_kicked_stream_ends_at_once() {
        let subscriber = Subscriber::new(2);
        subscriber.offer(&frame("a"));
        subscriber.close(DisconnectReason::Kicked);
        assert_eq!(subscriber.next().await, Next::Closed(DisconnectReason::Kicked));
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_offer() {
        let subscriber = Arc::new(Subscriber::new(2));
        let reader = tokio::spawn({
            let subscriber = subscriber.clone();
            async move { subscriber.next().await }
        });
        tokio::task::yield_now().await;
        subscriber.offer(&frame("x"));
        assert_eq!(reader.await.unwrap(), Next::Frame(frame("x")));
    }
}
