//! The hub: who is connected, and getting each message to exactly its targets.
//!
//! [`Hub`] is a cheap, cloneable handle over shared state (the mini-redis `Db`
//! pattern). Publishing assigns the next event id, encodes the frame once and offers
//! the same `Bytes` to every matching connection without waiting on any of them. The
//! hub knows nothing of HTTP: the API layer turns requests into calls on it, and a
//! [`Subscription`] into a response body.

mod history;
pub mod jobs;
mod registry;
mod subscriber;
pub mod types;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::sse;
use history::History;
pub use history::HistoryOptions;
pub use jobs::Jobs;
pub use registry::ClientPresence;
use registry::{ConnId, Registry};
pub use subscriber::{Next, Subscription};
use subscriber::{Offer, Subscriber};
use types::{
    ClientId, DisconnectReason, Epoch, EventId, EventName, GAP_EVENT, Payload, Position, Target,
    Topic,
};

/// Tunables the hub needs; the server fills them from its configuration.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Frames a connection may have queued before it is cut off as slow.
    pub queue_capacity: usize,
    /// How much history is kept for resuming clients.
    pub history: HistoryOptions,
    /// Options for task streams.
    pub jobs: jobs::JobOptions,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            history: HistoryOptions::default(),
            jobs: jobs::JobOptions::default(),
        }
    }
}

/// The hub refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubError {
    /// The node is shutting down and takes no new streams or messages.
    ShuttingDown,
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ShuttingDown => f.write_str("this node is shutting down; retry on another node"),
        }
    }
}

impl std::error::Error for HubError {}

/// What became of a published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The id the message was given.
    pub id: EventId,
    /// How many live connections it was queued on.
    pub delivered: usize,
}

/// A handle to the hub. Clones share the same state.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// A `std` mutex: publish and (un)register are short and never await, and keeping
    /// id assignment and fan-out under one lock is what makes every connection see
    /// ids in increasing order.
    state: Mutex<State>,
    epoch: Epoch,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
    jobs: Jobs,
    shutdown: CancellationToken,
}

#[derive(Debug)]
struct State {
    last_seq: u64,
    registry: Registry,
    history: History,
}

/// How often idle history is swept for expired messages (publishing and resuming
/// expire it too, so this only bounds how long memory is held when nothing happens).
const HISTORY_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Hub {
    /// Creates an empty hub with a fresh epoch. Must be called inside a Tokio runtime
    /// (it starts the task-expiry sweeper).
    pub fn new(options: HubOptions) -> Self {
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let jobs =
            Jobs::new(options.jobs, options.queue_capacity, metrics.clone(), shutdown.clone());
        let shared = Shared {
            state: Mutex::new(State {
                last_seq: 0,
                registry: Registry::default(),
                history: History::new(options.history),
            }),
            epoch: Epoch::random(),
            queue_capacity: options.queue_capacity,
            metrics,
            jobs,
            shutdown,
        };
        let hub = Self { shared: Arc::new(shared) };
        tokio::spawn(sweep_history(Arc::downgrade(&hub.shared)));
        hub
    }

    /// Sends a message to its target's live connections.
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once [`Hub::shutdown`] has been called.
    pub fn publish(
        &self,
        target: &Target,
        event: Option<&EventName>,
        payload: &Payload,
    ) -> Result<Published, HubError> {
        if self.is_shutting_down() {
            return Err(HubError::ShuttingDown);
        }
        let started = std::time::Instant::now();
        let mut state = lock(&self.shared.state);
        state.last_seq += 1;
        let id =
            EventId { epoch: self.shared.epoch.clone(), seq: state.last_seq, kind: target.kind() };
        let frame = sse::encode_event(
            Some(&id.to_string()),
            event.map(EventName::as_str),
            payload.as_str(),
        );
        state.history.append(id.seq, target, frame.clone());
        let mut delivered = 0;
        let mut overflowed = Vec::new();
        state.registry.for_each_target(target, |conn, subscriber| match subscriber.offer(&frame) {
            Offer::Queued => delivered += 1,
            Offer::Overflowed => overflowed.push(conn),
            Offer::Closed => {}
        });
        // A connection cut off as slow leaves the registry now, not when its stream
        // is next polled: a stalled socket may not be polled for a long time.
        for conn in overflowed {
            if state.registry.unregister(conn) {
                self.shared.metrics.connection_closed(DisconnectReason::Slow);
            }
        }
        drop(state);
        self.shared.metrics.published(target.kind(), delivered);
        self.shared.metrics.publish_took(started.elapsed());
        Ok(Published { id, delivered })
    }

    /// Opens a stream for `client`, joined to `topics` (duplicates are ignored).
    ///
    /// With `last_event_id` (any id this hub issued, or one from an older history),
    /// the stream first replays what the client missed: every held message for its
    /// id, its topics and broadcasts newer than that id, in order, preceded by a
    /// `gap` event when some are no longer held. Registration and the history
    /// snapshot happen under the same lock as publishing, so nothing falls between
    /// replay and live delivery and nothing is sent twice. Every stream then gets a
    /// position marker, so even a client that has seen no message yet resumes from
    /// the right place.
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once [`Hub::shutdown`] has been called.
    pub fn subscribe(
        &self,
        client: ClientId,
        topics: Vec<Topic>,
        last_event_id: Option<&str>,
    ) -> Result<Subscription, HubError> {
        let mut seen = HashSet::new();
        let topics: Vec<Topic> =
            topics.into_iter().filter(|topic| seen.insert(topic.clone())).collect();
        let mut targets = Vec::with_capacity(topics.len() + 2);
        targets.push(Target::Client(client.clone()));
        targets.extend(topics.iter().cloned().map(Target::Topic));
        targets.push(Target::Broadcast);
        let subscriber = Arc::new(Subscriber::new(self.shared.queue_capacity));
        let (conn, replay, head) = {
            let mut state = lock(&self.shared.state);
            // Checked under the lock so that shutdown, which closes every registered
            // connection under the same lock, cannot miss this one.
            if self.is_shutting_down() {
                return Err(HubError::ShuttingDown);
            }
            let replay = last_event_id.map(|id| self.missed(&mut state, id, &targets));
            let head = Position { epoch: self.shared.epoch.clone(), seq: state.last_seq };
            let conn = state.registry.register(client, topics, subscriber.clone());
            (conn, replay, head)
        };
        self.shared.metrics.connection_opened();
        let mut frames = VecDeque::new();
        if let Some(replay) = replay {
            self.shared.metrics.replayed(replay.frames.len(), replay.gap.is_some());
            frames.extend(replay.gap);
            frames.extend(replay.frames);
        }
        frames.push_back(sse::position_marker(&head.to_string()));
        Ok(Subscription::new(frames, subscriber, self.unregister_on_drop(conn)))
    }

    /// What `targets` missed since the client's `last_event_id`, with the `gap` frame
    /// to send first if some of it is gone.
    fn missed(&self, state: &mut State, last_event_id: &str, targets: &[Target]) -> Replay {
        let known = last_event_id
            .parse::<Position>()
            .ok()
            .filter(|seen| seen.epoch == self.shared.epoch && seen.seq <= state.last_seq);
        let (missed, reason) = match known {
            Some(seen) => {
                let missed = state.history.missed_since(seen.seq, targets);
                let reason = missed.gap.then_some("evicted");
                (missed, reason)
            }
            // An id from another history (this node restarted, say): everything held
            // is newer than it, and whatever came before is unknowable.
            None => (state.history.missed_since(0, targets), Some("unknown")),
        };
        let gap = reason.map(|reason| {
            let data = serde_json::json!({"last_event_id": last_event_id, "reason": reason});
            sse::encode_event(None, Some(GAP_EVENT), &data.to_string())
        });
        Replay { frames: missed.frames, gap }
    }

    /// Closes every connection of `client` on this node (they reconnect and resume).
    /// Returns how many were closed.
    pub fn disconnect_client(&self, client: &ClientId) -> usize {
        let mut state = lock(&self.shared.state);
        let mut kicked = Vec::new();
        state.registry.for_each_target(&Target::Client(client.clone()), |conn, subscriber| {
            if subscriber.close(DisconnectReason::Kicked) {
                kicked.push(conn);
            }
        });
        for conn in &kicked {
            if state.registry.unregister(*conn) {
                self.shared.metrics.connection_closed(DisconnectReason::Kicked);
            }
        }
        kicked.len()
    }

    fn unregister_on_drop(&self, conn: ConnId) -> subscriber::Unregister {
        let hub = Arc::downgrade(&self.shared);
        Box::new(move |reason| {
            let Some(shared) = hub.upgrade() else { return };
            let removed = lock(&shared.state).registry.unregister(conn);
            if removed {
                shared.metrics.connection_closed(reason);
            }
        })
    }

    /// The clients connected to this node.
    pub fn clients(&self) -> Vec<ClientPresence> {
        lock(&self.shared.state).registry.presence()
    }

    /// Task streams.
    pub fn jobs(&self) -> &Jobs {
        &self.shared.jobs
    }

    /// The hub's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// All metrics in the Prometheus text format, including the gauges read from the
    /// hub's state (clients, history size, tasks).
    pub fn render_metrics(&self) -> String {
        let (clients, (messages, bytes)) = {
            let state = lock(&self.shared.state);
            (state.registry.client_count(), state.history.size())
        };
        self.shared.metrics.render(&crate::metrics::Gauges {
            clients,
            history_messages: messages,
            history_bytes: bytes,
            jobs: self.shared.jobs.len(),
        })
    }

    /// Stops taking streams and messages and ends every open stream (queued frames are
    /// still written), so that clients reconnect elsewhere and servers can drain.
    pub fn shutdown(&self) {
        let state = lock(&self.shared.state);
        self.shared.shutdown.cancel();
        for subscriber in state.registry.subscribers() {
            subscriber.close(DisconnectReason::Shutdown);
        }
        drop(state);
        self.shared.jobs.shutdown();
    }

    /// Whether [`Hub::shutdown`] has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Resolves when [`Hub::shutdown`] is called.
    pub async fn shutting_down(&self) {
        self.shared.shutdown.cancelled().await;
    }
}

/// What a resuming client is sent before live messages.
struct Replay {
    frames: Vec<bytes::Bytes>,
    gap: Option<bytes::Bytes>,
}

/// Expires history until the hub is gone or shutting down.
async fn sweep_history(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(HISTORY_SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        if shared.shutdown.is_cancelled() {
            return;
        }
        lock(&shared.state).history.expire(tokio::time::Instant::now());
    }
}

/// Locks a mutex, ignoring poisoning: every critical section in the hub leaves its
/// data consistent at each step, so a panic elsewhere must not take the hub down.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(HubOptions::default())
    }

    fn text(payload: &str) -> Payload {
        Payload::from(payload.to_owned())
    }

    /// The next frame that is not a position marker.
    async fn next_frame(subscription: &mut Subscription) -> String {
        loop {
            match subscription.next().await {
                Next::Frame(frame) if frame.ends_with(b"event: herald.position\ndata: \n\n") => {
                    continue;
                }
                Next::Frame(frame) => return String::from_utf8(frame.to_vec()).unwrap(),
                Next::Closed(reason) => panic!("closed: {reason:?}"),
            }
        }
    }

    #[tokio::test]
    async fn ids_increase_and_carry_the_target_kind() {
        let hub = hub();
        let first = hub.publish(&Target::Broadcast, None, &text("a")).unwrap();
        let second = hub.publish(&Target::Topic("t".parse().unwrap()), None, &text("b")).unwrap();
        assert_eq!(second.id.seq, first.id.seq + 1);
        assert_eq!(second.id.epoch, first.id.epoch);
        assert!(second.id.to_string().ends_with("-t"));
    }

    #[tokio::test]
    async fn a_unicast_reaches_every_tab_of_its_client_only() {
        let hub = hub();
        let mut tab1 = hub.subscribe("a".parse().unwrap(), vec![], None).unwrap();
        let mut tab2 = hub.subscribe("a".parse().unwrap(), vec![], None).unwrap();
        let mut other = hub.subscribe("b".parse().unwrap(), vec![], None).unwrap();
        let published =
            hub.publish(&Target::Client("a".parse().unwrap()), None, &text("hi")).unwrap();
        assert_eq!(published.delivered, 2);
        let expected = format!("id: {}\ndata: hi\n\n", published.id);
        assert_eq!(next_frame(&mut tab1).await, expected);
        assert_eq!(next_frame(&mut tab2).await, expected);
        hub.publish(&Target::Client("b".parse().unwrap()), None, &text("b only")).unwrap();
        assert!(next_frame(&mut other).await.contains("data: b only"));
    }

    #[tokio::test]
    async fn dropping_a_subscription_unregisters_it() {
        let hub = hub();
        let subscription =
            hub.subscribe("a".parse().unwrap(), vec!["t".parse().unwrap()], None).unwrap();
        assert_eq!(hub.clients().len(), 1);
        drop(subscription);
        assert!(hub.clients().is_empty());
        assert_eq!(hub.metrics().disconnects(DisconnectReason::ClientClosed), 1);
        assert_eq!(hub.publish(&Target::Broadcast, None, &text("x")).unwrap().delivered, 0);
    }

    #[tokio::test]
    async fn shutdown_ends_streams_and_refuses_new_work() {
        let hub = hub();
        let mut subscription = hub.subscribe("a".parse().unwrap(), vec![], None).unwrap();
        hub.publish(&Target::Broadcast, None, &text("last")).unwrap();
        hub.shutdown();
        assert!(next_frame(&mut subscription).await.contains("data: last"));
        assert_eq!(subscription.next().await, Next::Closed(DisconnectReason::Shutdown));
        assert_eq!(
            hub.subscribe("b".parse().unwrap(), vec![], None).unwrap_err(),
            HubError::ShuttingDown
        );
        assert_eq!(
            hub.publish(&Target::Broadcast, None, &text("x")).unwrap_err(),
            HubError::ShuttingDown
        );
    }
}
