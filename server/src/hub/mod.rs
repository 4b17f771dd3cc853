//! The hub: who is connected, and getting each message to exactly its targets.
//!
//! [`Hub`] is a cheap, cloneable handle over shared state (the mini-redis `Db`
//! pattern). Publishing assigns the next event id, encodes the frame once and offers
//! the same `Bytes` to every matching connection without waiting on any of them. The
//! hub knows nothing of HTTP: the API layer turns requests into calls on it, and a
//! [`Subscription`] into a response body.

pub(crate) mod broker;
mod fanout;
mod history;
pub mod jobs;
mod registry;
mod subscriber;
pub mod types;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::sse;
pub use broker::Unavailable;
use broker::{Broker, Health};
use fanout::Fanout;
pub use history::HistoryOptions;
pub use jobs::Jobs;
pub use registry::ClientPresence;
use subscriber::Subscriber;
pub use subscriber::{Next, Subscription};
use types::{
    ClientId, DisconnectReason, Epoch, EventId, EventName, Payload, Position, Target, Topic,
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
    /// Which broker the hub runs on.
    pub broker: BrokerOptions,
    /// How streams the node ends itself (a drain, a resync) are spread out.
    pub drain: DrainOptions,
}

/// How the node ends many streams at once — on SIGTERM, or when a Redis resync makes
/// every stream resume — without every client coming back at the same moment (a
/// thundering herd on the nodes that remain): each stream is first told a random
/// `retry:` between [`retry`](Self::retry) and `retry` + [`spread`](Self::spread), and
/// on a shutdown the streams end at random moments over `spread` (after a resync they
/// end at once: they missed messages, and must not take newer ones before resuming). So the reconnects arrive over about
/// twice the spread instead of within one `retry:`. (Centrifugo's reconnect jitter and
/// Mercure's connection rotation are the same idea.)
#[derive(Debug, Clone, Copy)]
pub struct DrainOptions {
    /// The window the streams end over; zero ends them all at once.
    pub spread: Duration,
    /// The shortest reconnection delay told (the stream's usual `retry:`).
    pub retry: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self { spread: Duration::ZERO, retry: Duration::from_secs(2) }
    }
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            history: HistoryOptions::default(),
            jobs: jobs::JobOptions::default(),
            broker: BrokerOptions::Memory,
            drain: DrainOptions::default(),
        }
    }
}

/// Which broker to run on, chosen at start.
#[derive(Debug, Clone)]
pub enum BrokerOptions {
    /// One node, everything in memory.
    Memory,
    /// Several nodes sharing one Redis.
    Redis(RedisOptions),
}

/// Where the shared Redis is and how this node appears in it.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS. With
    /// [`sentinel`](Self::sentinel), only its scheme, user, password and database are
    /// used: Sentinel says where the primary is.
    pub url: String,
    /// PEM certificates of the CA(s) that signed the server's certificate, trusted
    /// instead of the system's roots (`rediss://` only).
    pub ca: Option<Vec<u8>>,
    /// Find the primary through Sentinel, and follow it when it fails over.
    pub sentinel: Option<SentinelOptions>,
    /// Replicas that must confirm a message (`WAIT`) before a push is acknowledged;
    /// 0 acknowledges as soon as the primary has it.
    pub min_replicas: usize,
    /// Prepended to every key and channel, so several clusters can share a Redis.
    pub prefix: String,
    /// This node's name in presence.
    pub node_id: String,
    /// A node that stops refreshing its presence (it died) disappears after this.
    pub presence_ttl: Duration,
}

/// Where the sentinels are and which primary to ask them for.
#[derive(Debug, Clone)]
pub struct SentinelOptions {
    /// `host:port` of each sentinel; asked in order until one answers.
    pub addresses: Vec<String>,
    /// The name the sentinels monitor the primary under (`sentinel monitor NAME …`).
    pub master: String,
    /// The sentinels' own password (`requirepass` in sentinel.conf), if any.
    pub password: Option<String>,
}

/// The hub refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// The node is shutting down and takes no new streams or messages.
    ShuttingDown,
    /// The broker cannot be reached, so the message could not be sent cluster-wide.
    Unavailable(Unavailable),
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ShuttingDown => f.write_str("this node is shutting down; retry on another node"),
            Self::Unavailable(unavailable) => unavailable.fmt(f),
        }
    }
}

impl std::error::Error for HubError {}

impl From<Unavailable> for HubError {
    fn from(unavailable: Unavailable) -> Self {
        Self::Unavailable(unavailable)
    }
}

/// The hub could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// What became of a published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The id the message was given.
    pub id: EventId,
    /// How many live connections it was queued on (cluster-wide with Redis: those
    /// registered in presence when the message was accepted).
    pub delivered: usize,
}

/// Whether the node can do its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// It can: its broker is reachable.
    Ok,
    /// Its broker cannot be reached: it takes no pushes and replays nothing.
    Degraded,
}

/// How the node is doing, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthReport {
    /// Ok, or degraded when the broker cannot be reached.
    pub status: HealthStatus,
    /// `memory` or `redis`.
    pub broker: &'static str,
    /// What is wrong, when degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Streams open on this node.
    pub connections: i64,
}

/// A message the memory broker delivered to at most this many connections waits for
/// their writers to take it before [`Hub::publish`] returns, so before its publisher
/// is answered.
pub const WRITE_BEFORE_ANSWER: usize = 16;

/// A handle to the hub. Clones share the same state.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    fanout: Arc<Fanout>,
    broker: Broker,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
    jobs: Jobs,
    shutdown: CancellationToken,
}

impl Hub {
    /// Creates a hub on the broker `options` names. Must be called inside a Tokio
    /// runtime (it starts background tasks). A Redis broker connects in the
    /// background: the node starts even while Redis is down, and reports degraded.
    ///
    /// # Errors
    /// [`StartError`] when the broker's settings are unusable (a malformed Redis URL).
    pub fn new(options: HubOptions) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let epoch = Epoch::random();
        let (fanout, broker, jobs) = match options.broker {
            BrokerOptions::Memory => {
                let head = types::Position { epoch: epoch.clone(), seq: 0 };
                let fanout =
                    Arc::new(Fanout::new(metrics.clone(), Some(head), false, options.drain));
                let broker =
                    broker::memory::MemoryBroker::new(options.history, epoch, fanout.clone());
                let jobs = jobs::MemoryJobs::new(
                    options.jobs,
                    options.queue_capacity,
                    fanout.clone(),
                    metrics.clone(),
                    shutdown.clone(),
                );
                (fanout, Broker::Memory(broker), Jobs::from(jobs))
            }
            BrokerOptions::Redis(redis) => {
                let fanout = Arc::new(Fanout::new(metrics.clone(), None, true, options.drain));
                let broker = broker::redis::RedisBroker::start(
                    &redis,
                    &options.history,
                    fanout.clone(),
                    metrics.clone(),
                    shutdown.clone(),
                )
                .map_err(|error| StartError(format!("cannot use these Redis settings: {error}")))?;
                let jobs = jobs::redis::RedisJobs::start(
                    broker.link(),
                    &redis,
                    options.jobs,
                    options.queue_capacity,
                    fanout.clone(),
                    metrics.clone(),
                    shutdown.clone(),
                );
                (fanout, Broker::Redis(broker), Jobs::from(jobs))
            }
        };
        let shared = Shared {
            fanout,
            broker,
            queue_capacity: options.queue_capacity,
            metrics,
            jobs,
            shutdown,
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Sends a message to its target's live connections, on every node.
    ///
    /// With the memory broker, when it reached at most [`WRITE_BEFORE_ANSWER`]
    /// connections, this returns once their writers took it (they run first, woken on
    /// this worker), so the message is on the wire before its publisher is answered
    /// (as in nchan, whose publish writes to subscribers itself), or after 2 ms. A
    /// larger fan-out returns as soon as it is queued for every connection, unless 8
    /// earlier large fan-outs are still being taken: then once the oldest of them is
    /// (or after a second), so that a publisher cannot pile up messages faster than
    /// the writers take them. Only writers that were waiting on their queue are waited
    /// for (one busy on a socket its peer is not reading would take nothing until the
    /// peer reads). (With Redis, this node's connections get the message from the
    /// subscription, after the publish.)
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once [`Hub::shutdown`] has been called;
    /// [`HubError::Unavailable`] when the broker cannot take it.
    pub async fn publish(
        &self,
        target: &Target,
        event: Option<&EventName>,
        payload: &Payload,
    ) -> Result<Published, HubError> {
        if self.is_shutting_down() {
            return Err(HubError::ShuttingDown);
        }
        let started = std::time::Instant::now();
        let frame_without_id =
            sse::encode_event(None, event.map(EventName::as_str), payload.as_str());
        let accepted = self.shared.broker.publish(target, frame_without_id).await?;
        self.shared.metrics.published(target.kind());
        self.shared.metrics.publish_took(started.elapsed());
        Ok(Published { id: accepted.id, delivered: accepted.delivered })
    }

    /// Opens a stream for `client`, joined to `topics` (duplicates are ignored).
    ///
    /// With `last_event_id` (any id this hub's history issued, or one from an older
    /// history), the stream first replays what the client missed: every held message
    /// for its id, its topics and broadcasts newer than that id, in order, preceded
    /// by a `gap` event when some are no longer held. The connection is registered
    /// before the history is read and live frames the replay already covers are
    /// skipped, so nothing falls between replay and live delivery and nothing is sent
    /// twice. Every stream then gets a position marker, so even a client that has
    /// seen no message yet resumes from the right place.
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once [`Hub::shutdown`] has been called;
    /// [`HubError::Unavailable`] when a replay was asked for and the broker cannot
    /// be read (better a retry than a silent hole).
    pub async fn subscribe(
        &self,
        client: ClientId,
        topics: Vec<Topic>,
        last_event_id: Option<&str>,
    ) -> Result<Subscription, HubError> {
        if self.is_shutting_down() {
            return Err(HubError::ShuttingDown);
        }
        let topics = without_duplicates(topics);
        let targets = targets_of(&client, &topics);
        let (subscription, head) = self.register(client, topics);
        let (frames, position, replayed_through) = match last_event_id {
            None => (VecDeque::new(), head, None),
            Some(last_event_id) => {
                let (frames, head) = self.replay(last_event_id, &targets).await?;
                let through = head.seq;
                (frames, Some(head), Some(through))
            }
        };
        Ok(subscription.with_replay(with_position_marker(frames, position), replayed_through))
    }

    /// Registers a new stream before anything is read for it, so that nothing sent in
    /// between is lost; returns its subscription (dropping it unregisters the stream)
    /// and the last position delivered before it.
    fn register(&self, client: ClientId, topics: Vec<Topic>) -> (Subscription, Option<Position>) {
        let subscriber = Arc::new(Subscriber::new(self.shared.queue_capacity));
        let (conn, head) = self.shared.fanout.register(client, topics, subscriber.clone());
        // Shutdown closes every registered connection after setting its flag; one
        // registered just after that is closed here.
        if self.is_shutting_down() {
            subscriber.close(DisconnectReason::Shutdown);
        }
        (self.shared.fanout.subscription(conn, subscriber), head)
    }

    /// What `targets` missed after `last_event_id`, as frames (a `gap` first when not
    /// everything is held), and the position the replay reaches.
    async fn replay(
        &self,
        last_event_id: &str,
        targets: &[Target],
    ) -> Result<(VecDeque<bytes::Bytes>, Position), HubError> {
        let replay = self.shared.broker.missed(last_event_id, targets).await?;
        self.shared.metrics.replayed(replay.frames.len(), replay.gap.is_some());
        let gap = replay.gap.map(|reason| sse::gap(last_event_id, reason.as_str()));
        Ok((gap.into_iter().chain(replay.frames).collect(), replay.head))
    }

    /// Closes every connection of `client` on every node (they reconnect and resume).
    /// Returns how many were open.
    ///
    /// # Errors
    /// [`HubError::Unavailable`] when the broker cannot be reached.
    pub async fn disconnect_client(&self, client: &ClientId) -> Result<usize, HubError> {
        Ok(self.shared.broker.disconnect(client).await?)
    }

    /// The clients connected to any node.
    ///
    /// # Errors
    /// [`HubError::Unavailable`] when the broker cannot be reached.
    pub async fn clients(&self) -> Result<Vec<ClientPresence>, HubError> {
        Ok(self.shared.broker.clients().await?)
    }

    /// Whether the node can do its work: its broker is reachable.
    pub async fn health(&self) -> HealthReport {
        let (status, error) = match self.shared.broker.health().await {
            Health::Ok => (HealthStatus::Ok, None),
            Health::Degraded(unavailable) => {
                tracing::debug!("health: degraded: {}", unavailable.cause());
                (HealthStatus::Degraded, Some(unavailable.to_string()))
            }
        };
        HealthReport {
            status,
            broker: self.shared.broker.name(),
            error,
            connections: self.shared.metrics.open_connections(),
        }
    }

    /// Task streams.
    pub fn jobs(&self) -> &Jobs {
        &self.shared.jobs
    }

    /// The hub's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// A shared handle to the hub's metrics, for parts of the server that outlive a
    /// borrow (the listener).
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// All metrics in the Prometheus text format, including the gauges read from the
    /// hub's state (clients, history size, tasks).
    pub fn render_metrics(&self) -> String {
        let clients = self.shared.fanout.client_count();
        let (messages, bytes) = self.shared.broker.local_history_size();
        self.shared.metrics.render(&crate::metrics::Gauges {
            clients,
            history_messages: messages,
            history_bytes: bytes,
            jobs: self.shared.jobs.len(),
        })
    }

    /// Stops taking streams and messages and ends every open stream (queued frames are
    /// still written), spread over the drain window ([`DrainOptions`]), so that
    /// clients reconnect elsewhere, not all at once, and servers can drain.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.fanout.drain(DisconnectReason::Shutdown);
    }

    /// Leaves the cluster once streams have ended: withdraws this node's presence at
    /// once rather than letting it expire.
    pub async fn leave(&self) {
        self.shared.broker.leave().await;
    }

    /// Whether [`Hub::shutdown`] has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Resolves when [`Hub::shutdown`] is called.
    pub async fn shutting_down(&self) {
        self.shared.shutdown.cancelled().await;
    }

    /// The token [`Hub::shutdown`] cancels: everything that must stop with the hub
    /// (the listener, each connection, the broker's tasks) waits on this one token.
    pub fn stop_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }
}

/// `topics` in their order, each once.
fn without_duplicates(topics: Vec<Topic>) -> Vec<Topic> {
    let mut seen = HashSet::new();
    topics.into_iter().filter(|topic| seen.insert(topic.clone())).collect()
}

/// Every target a client stream receives: its client id, its topics, broadcasts.
fn targets_of(client: &ClientId, topics: &[Topic]) -> Vec<Target> {
    let mut targets = Vec::with_capacity(topics.len() + 2);
    targets.push(Target::Client(client.clone()));
    targets.extend(topics.iter().cloned().map(Target::Topic));
    targets.push(Target::Broadcast);
    targets
}

/// `frames`, then the position marker that tells the client where its stream went
/// live (none when the position is not known yet: Redis not reached).
fn with_position_marker(
    mut frames: VecDeque<bytes::Bytes>,
    position: Option<Position>,
) -> VecDeque<bytes::Bytes> {
    if let Some(position) = position {
        frames.push_back(sse::position_marker(&position.to_string()));
    }
    frames
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
        Hub::new(HubOptions::default()).unwrap()
    }

    fn text(payload: &str) -> Payload {
        Payload::from(payload.to_owned())
    }

    #[tokio::test]
    async fn dropping_a_subscription_unregisters_it() {
        let hub = hub();
        let subscription =
            hub.subscribe("a".parse().unwrap(), vec!["t".parse().unwrap()], None).await.unwrap();
        assert_eq!(hub.clients().await.unwrap().len(), 1);
        drop(subscription);
        assert!(hub.clients().await.unwrap().is_empty());
        assert_eq!(hub.metrics().disconnects(DisconnectReason::ClientClosed), 1);
        assert_eq!(hub.publish(&Target::Broadcast, None, &text("x")).await.unwrap().delivered, 0);
    }
}
