//! This node's side of delivery: its live connections — client streams and task
//! streams — and handing each message or task event the broker brings to exactly the
//! connections it targets.
//!
//! Whichever broker is in use, every message reaches every node through
//! [`Fanout::deliver`], in id order, and every task event through
//! [`Fanout::deliver_task_event`]; both offer it the same way (a full queue cuts the
//! connection off as slow). The fan-out remembers the last message it
//! delivered, which is where a new stream starts (its position marker), and which
//! clients changed since presence was last reported, for brokers that share presence.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::registry::{ClientPresence, ConnId, Feed, Reach, Registry};
use super::subscriber::{CONTROL, Handoff, Offer, Subscriber, Subscription};
use super::types::{ClientId, DisconnectReason, JobId, Position, Target, Topic};
use super::{DrainOptions, lock};
use crate::metrics::Metrics;
use crate::sse;

/// One message as every node receives it from the broker.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// Its place in the history.
    pub position: Position,
    /// Who it is for.
    pub target: Target,
    /// The encoded frame, id included, shared by every connection.
    pub frame: Bytes,
}

#[derive(Debug)]
pub(crate) struct Fanout {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    drain: DrainOptions,
    /// Woken when a client or topic's connections change.
    presence_changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    registry: Registry,
    /// The last message delivered (or the broker's head when it connected).
    head: Option<Position>,
    /// What changed since [`Fanout::take_changes`]; `None` when no broker shares
    /// presence (in memory), so that nothing accumulates that nobody takes.
    changed: Option<Changed>,
}

/// Clients and topics whose connections changed.
#[derive(Debug, Default)]
struct Changed {
    clients: HashSet<ClientId>,
    topics: HashSet<Topic>,
}

/// How many groups a spread drain ends the streams in, evenly over its window.
const DRAIN_STEPS: u32 = 50;

/// Ends `streams` (in the random order they come in) in [`DRAIN_STEPS`] groups, one
/// every `spread / DRAIN_STEPS`, the first at once.
async fn end_over(streams: Vec<Arc<Subscriber>>, spread: Duration, reason: DisconnectReason) {
    let step = spread / DRAIN_STEPS;
    let per_step = streams.len().div_ceil(DRAIN_STEPS as usize).max(1);
    let mut ticks = tokio::time::interval(step);
    for group in streams.chunks(per_step) {
        ticks.tick().await;
        for subscriber in group {
            subscriber.close(reason);
        }
    }
}

impl State {
    /// Notes a client stream that opened or closed (task streams are not presence);
    /// returns whether presence changed.
    fn note_change(&mut self, feed: &Feed) -> bool {
        let Feed::Client { client, topics } = feed else { return false };
        if let Some(changed) = &mut self.changed {
            changed.clients.insert(client.clone());
            changed.topics.extend(topics.iter().cloned());
        }
        true
    }
}

/// What changed in this node's connections since presence was last reported.
#[derive(Debug, Default)]
pub(crate) struct PresenceChanges {
    /// Each changed client with its presence now (`None`: no connection left).
    pub clients: Vec<(ClientId, Option<ClientPresence>)>,
    /// Each changed topic with how many connections joined it now.
    pub topics: Vec<(Topic, usize)>,
    /// All connections on this node.
    pub connections: usize,
}

impl Fanout {
    /// A fan-out starting after `head`; with `shares_presence`, it keeps track of
    /// what changed for [`Fanout::take_changes`].
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        head: Option<Position>,
        shares_presence: bool,
        drain: DrainOptions,
    ) -> Self {
        let changed = shares_presence.then(Changed::default);
        Self {
            state: Mutex::new(State { head, changed, ..State::default() }),
            metrics,
            drain,
            presence_changed: Notify::new(),
        }
    }

    /// Offers `message` to every connection it targets; returns how many took it.
    /// Connections whose queue overflowed are cut off as slow here, not when their
    /// stream is next polled: a stalled socket may not be polled for a long time.
    /// With a `handoff`, its publisher can wait for the writers to take it.
    pub(crate) fn deliver(&self, message: &Message, handoff: Option<&Arc<Handoff>>) -> usize {
        let mut state = lock(&self.state);
        if state.head.as_ref().is_none_or(|head| {
            head.epoch != message.position.epoch || head.seq < message.position.seq
        }) {
            state.head = Some(message.position.clone());
        }
        let reach = Reach::Target(&message.target);
        let delivered =
            self.offer_locked(&mut state, reach, message.position.seq, &message.frame, handoff);
        drop(state);
        self.metrics.delivered(delivered);
        delivered
    }

    /// Offers event `n` of task `job` to the streams watching it; the `last` event
    /// ends them once written. Returns how many took it.
    pub(crate) fn deliver_task_event(
        &self,
        job: &JobId,
        n: u64,
        frame: &Bytes,
        last: bool,
    ) -> usize {
        let mut state = lock(&self.state);
        let delivered = self.offer_locked(&mut state, Reach::Task(job), n, frame, None);
        if last {
            state.registry.for_each(Reach::Task(job), |_, subscriber| {
                subscriber.close(DisconnectReason::Finished);
            });
        }
        delivered
    }

    /// Offers one frame to every connection `reach` names, and cuts off the ones whose
    /// queue overflowed; returns how many took it.
    fn offer_locked(
        &self,
        state: &mut State,
        reach: Reach<'_>,
        seq: u64,
        frame: &Bytes,
        handoff: Option<&Arc<Handoff>>,
    ) -> usize {
        let mut delivered = 0;
        let mut overflowed = Vec::new();
        state.registry.for_each(reach, |conn, subscriber| {
            match subscriber.offer(seq, frame, handoff) {
                Offer::Queued => delivered += 1,
                Offer::Overflowed => overflowed.push(conn),
                Offer::Closed => {}
            }
        });
        for conn in overflowed {
            self.unregister_locked(state, conn, DisconnectReason::Slow);
        }
        delivered
    }

    /// Adds a client stream; returns its id and the last position delivered before it
    /// (everything after reaches it live). `topics` must hold no duplicates.
    pub(crate) fn register(
        &self,
        client: ClientId,
        topics: Vec<Topic>,
        subscriber: Arc<Subscriber>,
    ) -> (ConnId, Option<Position>) {
        let mut state = lock(&self.state);
        let feed = Feed::Client { client, topics: topics.into() };
        state.note_change(&feed);
        let conn = state.registry.register(feed, subscriber);
        let head = state.head.clone();
        drop(state);
        self.metrics.connection_opened();
        self.presence_changed.notify_one();
        (conn, head)
    }

    /// Adds a stream watching task `job`; returns its id.
    pub(crate) fn watch_task(&self, job: JobId, subscriber: Arc<Subscriber>) -> ConnId {
        let conn = lock(&self.state).registry.register(Feed::Task(job), subscriber);
        self.metrics.connection_opened();
        conn
    }

    /// The handle a stream reads connection `conn` from; dropping it (the stream ended,
    /// or an error before it began) unregisters the connection.
    pub(crate) fn subscription(
        self: &Arc<Self>,
        conn: ConnId,
        subscriber: Arc<Subscriber>,
    ) -> Subscription {
        let fanout = Arc::downgrade(self);
        let unregister = Box::new(move |reason| {
            if let Some(fanout) = fanout.upgrade() {
                fanout.unregister(conn, reason);
            }
        });
        Subscription::new(VecDeque::new(), None, subscriber, unregister)
    }

    /// Removes a connection that ended for `reason` (a no-op if it already left).
    pub(crate) fn unregister(&self, conn: ConnId, reason: DisconnectReason) {
        let mut state = lock(&self.state);
        self.unregister_locked(&mut state, conn, reason);
    }

    fn unregister_locked(&self, state: &mut State, conn: ConnId, reason: DisconnectReason) {
        if let Some(feed) = state.registry.unregister(conn) {
            if state.note_change(&feed) {
                self.presence_changed.notify_one();
            }
            self.metrics.connection_closed(reason);
        }
    }

    /// Closes every connection `target` reaches on this node; returns how many.
    pub(crate) fn close_target(&self, target: &Target, reason: DisconnectReason) -> usize {
        let mut state = lock(&self.state);
        let mut closed = Vec::new();
        state.registry.for_each(Reach::Target(target), |conn, subscriber| {
            if subscriber.close(reason) {
                closed.push(conn);
            }
        });
        for conn in &closed {
            self.unregister_locked(&mut state, *conn, reason);
        }
        closed.len()
    }

    /// The last position delivered on this node.
    pub(crate) fn head(&self) -> Option<Position> {
        lock(&self.state).head.clone()
    }

    /// Moves the head to where the broker is after a reconnection (messages in between
    /// were missed; their streams must have been closed by the caller).
    pub(crate) fn reset_head(&self, head: Option<Position>) {
        lock(&self.state).head = head;
    }

    /// The clients connected to this node.
    pub(crate) fn presence(&self) -> Vec<ClientPresence> {
        lock(&self.state).registry.presence()
    }

    /// How many distinct clients are connected to this node.
    pub(crate) fn client_count(&self) -> usize {
        lock(&self.state).registry.client_count()
    }

    /// Waits until a connection opens or closes.
    pub(crate) async fn presence_changed(&self) {
        self.presence_changed.notified().await;
    }

    /// What changed since the last call (everything, when `all`).
    pub(crate) fn take_changes(&self, all: bool) -> PresenceChanges {
        let mut state = lock(&self.state);
        let changed = state.changed.replace(Changed::default()).unwrap_or_default();
        let (clients, topics) = if all {
            (state.registry.client_ids(), state.registry.topic_names())
        } else {
            (changed.clients.into_iter().collect(), changed.topics.into_iter().collect())
        };
        let registry = &state.registry;
        PresenceChanges {
            clients: clients
                .into_iter()
                .map(|client| {
                    let presence = registry.client_presence(&client);
                    (client, presence)
                })
                .collect(),
            topics: topics
                .into_iter()
                .map(|topic| {
                    let count = registry.topic_connections(&topic);
                    (topic, count)
                })
                .collect(),
            connections: registry.connection_count(),
        }
    }

    /// Ends every stream on this node, task streams included, for `reason` (queued
    /// frames are still written when the reason drains the queue), spread as the
    /// [`DrainOptions`] say: each is told a random `retry:` first, and, on a shutdown,
    /// they end at random moments over the window (after a resync, at once). Returns
    /// how many were open.
    pub(crate) fn drain(&self, reason: DisconnectReason) -> usize {
        let mut open: Vec<Arc<Subscriber>> = lock(&self.state)
            .registry
            .subscribers()
            .filter(|subscriber| subscriber.closed().is_none())
            .cloned()
            .collect();
        let DrainOptions { spread, retry } = self.drain;
        let count = open.len();
        if spread.is_zero() || count <= 1 {
            open.iter().for_each(|subscriber| {
                subscriber.close(reason);
            });
            return count;
        }
        fastrand::shuffle(&mut open);
        let spread_millis = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
        let retry_millis = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
        for subscriber in &open {
            let jitter = fastrand::u64(0..=spread_millis);
            let retry = sse::retry(retry_millis.saturating_add(jitter));
            if reason.drains_queue() {
                subscriber.offer(CONTROL, &retry, None);
            } else {
                // Cut off (a resync: these streams missed messages, and one kept open
                // would take newer ones and move its client's last event id past what
                // it missed): it ends now, and the random `retry:` alone spreads the
                // returns.
                subscriber.close_with(retry, reason);
            }
        }
        if reason.drains_queue() {
            tokio::spawn(end_over(open, spread, reason));
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fanout_with(spread: Duration) -> Fanout {
        let drain = DrainOptions { spread, retry: Duration::from_secs(2) };
        Fanout::new(Arc::new(Metrics::default()), None, false, drain)
    }

    fn streams(fanout: &Fanout, count: usize) -> Vec<Arc<Subscriber>> {
        (0..count)
            .map(|n| {
                let subscriber = Arc::new(Subscriber::new(8));
                let client = format!("c{n}").parse().unwrap();
                fanout.register(client, Vec::new(), subscriber.clone());
                subscriber
            })
            .collect()
    }

    fn closed(streams: &[Arc<Subscriber>]) -> usize {
        streams.iter().filter(|stream| stream.closed().is_some()).count()
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_ends_streams_over_its_window_each_told_a_random_retry_first() {
        let fanout = fanout_with(Duration::from_secs(1));
        let streams = streams(&fanout, 500);
        assert_eq!(fanout.drain(DisconnectReason::Shutdown), 500);
        let mut retries = std::collections::HashSet::new();
        for stream in &streams {
            let Some(Ok((_, frame))) = stream.try_next() else { panic!("a retry frame first") };
            let text = std::str::from_utf8(&frame).unwrap();
            let millis: u64 = text.strip_prefix("retry: ").unwrap().trim_end().parse().unwrap();
            assert!((2000..=3000).contains(&millis), "{text:?}");
            retries.insert(millis);
        }
        assert!(retries.len() > 100, "spread out, not one value: {}", retries.len());

        tokio::time::sleep(Duration::from_millis(1)).await;
        let at_start = closed(&streams);
        assert!(at_start > 0 && at_start < 50, "{at_start} ended at once");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let halfway = closed(&streams);
        assert!((200..=300).contains(&halfway), "{halfway} ended by half the window");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(closed(&streams), 500, "all ended within the window");
    }

    #[tokio::test]
    async fn streams_that_missed_messages_end_at_once_told_a_random_retry() {
        let fanout = fanout_with(Duration::from_secs(1));
        let streams = streams(&fanout, 50);
        fanout.drain(DisconnectReason::Resync);
        assert_eq!(closed(&streams), 50, "none stays to take newer messages");
        for stream in &streams {
            let Some(Ok((_, frame))) = stream.try_next() else { panic!("a retry frame first") };
            assert!(frame.starts_with(b"retry: "), "{frame:?}");
        }
    }

    #[tokio::test]
    async fn without_a_window_a_drain_ends_every_stream_at_once() {
        let fanout = fanout_with(Duration::ZERO);
        let streams = streams(&fanout, 20);
        fanout.drain(DisconnectReason::Shutdown);
        assert_eq!(closed(&streams), 20);
        assert!(streams[0].try_next().is_some_and(|next| next.is_err()), "no retry frame");
    }
}
