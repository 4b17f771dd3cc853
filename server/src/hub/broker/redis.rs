//! The Redis broker: several nodes share ids, history, presence and delivery through
//! one Redis, the engine Centrifugo, nchan and Flask-SSE deployments already run.
//!
//! # How it uses Redis, and why
//! * **One command connection per node** ([`ConnectionManager`]: multiplexed, so
//!   concurrent pushes are pipelined on it; it reconnects by itself with backoff).
//! * **Lua scripts for every multi-step change** (`EVALSHA`), so each is one atomic,
//!   one-round-trip step. `publish.lua` does `INCR` (the cluster-wide id),
//!   `RPUSH`/`LPOP` on the target's history list (bounded by count and age),
//!   `XADD … MINID` on an age log (which seq is older than the TTL), `PEXPIRE` (idle
//!   targets' history disappears), `HGET` on live nodes' connection counts (the
//!   cluster-wide `delivered`) and `PUBLISH`. As Redis runs a script as one step,
//!   messages are published in id order, and every node receives them in that order.
//!   `missed.lua` reads a resuming client's targets (`LRANGE`, `GET`, `XRANGE`) in
//!   one consistent snapshot.
//! * **One subscription connection per node**, not per client: every message goes
//!   to one channel (`{prefix}:bus`) and each node hands it to its own connections.
//!   A node whose subscription drops (or that cannot be sure it saw every message)
//!   closes its streams when it resubscribes; their clients resume from history.
//! * **Presence as per-node hashes with a TTL** (`HSET`/`HDEL`, `PEXPIRE`, and a
//!   `ZADD` of the node's expiry in a live-node set), refreshed every third of the
//!   TTL and written within a round trip of every change. A node that dies without
//!   saying goodbye simply stops refreshing: its keys expire and readers skip it.
//!
//! Keys are plain (no hash tags): the broker targets a single Redis (or a
//! primary with replicas), not Redis Cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::{RedisError, Script};
use tokio_util::sync::CancellationToken;

mod bus;
mod keys;
mod link;
pub(crate) mod replicas;

use bus::BusMessage;
pub(crate) use keys::Keys;
use link::CONNECT_TIMEOUT;
pub(crate) use link::Link;
use replicas::{NotReplicated, invoke_confirmed};

use super::{Accepted, Health, Replay, Unavailable, merge_presence};
use crate::hub::RedisOptions;
use crate::hub::fanout::Fanout;
use crate::hub::history::HistoryOptions;
use crate::hub::registry::ClientPresence;
use crate::hub::types::{ClientId, DisconnectReason, Epoch, EventId, GapReason, Position, Target};
use crate::metrics::Metrics;

/// The epoch rule every script that gives or reads ids shares (see the file).
const EPOCH: &str = include_str!("redis/epoch.lua");
static PUBLISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[EPOCH, include_str!("redis/publish.lua")].concat()));
static MISSED: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[EPOCH, include_str!("redis/missed.lua")].concat()));
static ENSURE_EPOCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[EPOCH, include_str!("redis/ensure_epoch.lua")].concat()));
static CLIENTS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/clients.lua")));
static KICK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/kick.lua")));
const HEARTBEAT: &str = include_str!("redis/heartbeat.lua");

/// The subscription is retried after this long at first, doubling up to the max.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a health check waits for `PING`.
const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the subscription connection is checked with `PING`: a connection that
/// went half-open (no RST ever arrives) would otherwise look subscribed forever.
const SUBSCRIPTION_PING_INTERVAL: Duration = Duration::from_secs(5);
/// How long the subscription may take to answer that `PING`.
const SUBSCRIPTION_PING_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct RedisBroker {
    link: Arc<Link>,
    /// Replicas that must confirm a publish before it is acknowledged
    /// (`--redis-min-replicas`).
    min_replicas: usize,
    keys: Keys,
    node_id: String,
    history: HistoryOptions,
    presence_ttl: Duration,
    fanout: Arc<Fanout>,
    metrics: Arc<Metrics>,
    /// Whether this node is subscribed to the bus (and so sees every message).
    subscribed: AtomicBool,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("prefix", &self.keys.prefix())
            .field("node_id", &self.node_id)
            .field("subscribed", &self.subscribed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// Sets the broker up and starts its subscription and presence tasks, which run
    /// until `stop` is cancelled. Nothing waits for Redis here: a node starts (and
    /// reports degraded) while Redis is down, and connects when it comes up.
    pub(crate) fn start(
        options: &RedisOptions,
        history: &HistoryOptions,
        fanout: Arc<Fanout>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, RedisError> {
        let link = Arc::new(Link::new(options, metrics.clone())?);
        let broker = Arc::new(Self {
            link,
            min_replicas: options.min_replicas,
            keys: Keys::new(&options.prefix),
            node_id: options.node_id.clone(),
            history: history.clone(),
            presence_ttl: options.presence_ttl,
            fanout,
            metrics,
            subscribed: AtomicBool::new(false),
        });
        tokio::spawn(broker.link().keep_following(stop.clone()));
        tokio::spawn(listen(Arc::downgrade(&broker), stop.clone()));
        tokio::spawn(report_presence(Arc::downgrade(&broker), stop));
        let (node, prefix) = (&broker.node_id, broker.keys.prefix());
        match (&options.sentinel, broker.link.endpoint()) {
            (Some(sentinel), _) => tracing::info!(
                %node, %prefix,
                "using the Redis primary of {} that Sentinel at {} names",
                sentinel.master,
                sentinel.addresses.join(", ")
            ),
            (None, endpoint) => tracing::info!(
                %node, %prefix,
                "using Redis at {}",
                endpoint.map(|endpoint| endpoint.address).unwrap_or_default()
            ),
        }
        Ok(broker)
    }

    /// The link to the primary, shared with the task store.
    pub(crate) fn link(&self) -> Arc<Link> {
        Arc::clone(&self.link)
    }

    /// The command connection to the primary.
    fn conn(&self) -> Result<ConnectionManager, Unavailable> {
        self.link.connection()
    }

    /// A failed command as the hub reports it; the link looks for a moved primary.
    fn unavailable(&self, error: &RedisError) -> Unavailable {
        self.link.failed(error);
        unavailable(error)
    }

    pub(crate) async fn publish(
        &self,
        target: &Target,
        frame_without_id: &[u8],
    ) -> Result<Accepted, Unavailable> {
        if !self.subscribed.load(Ordering::Acquire) {
            return Err(Unavailable::NotNow(
                "this node is not subscribed to Redis; reconnecting".into(),
            ));
        }
        let mut conn = self.conn()?;
        let mut invocation = PUBLISH.prepare_invoke();
        invocation
            .key(self.keys.epoch())
            .key(self.keys.seq())
            .key(self.keys.age_log())
            .key(self.keys.history(target))
            .key(self.keys.evicted(target))
            .key(self.keys.nodes())
            .key(self.keys.bus())
            .arg(Epoch::random().as_str())
            .arg(target.key())
            .arg(target.kind().tag().to_string())
            .arg(frame_without_id)
            .arg(millis(self.history.ttl))
            .arg(self.history.per_target)
            .arg(self.keys.node_prefix());
        let sent = std::time::Instant::now();
        let (epoch, seq, delivered): (String, u64, usize) = if self.min_replicas == 0 {
            invocation.invoke_async(&mut conn).await.map_err(|error| self.unavailable(&error))?
        } else {
            invoke_confirmed(&invocation, self.min_replicas, &mut conn).await.map_err(|error| {
                match error {
                    NotReplicated::Failed(error) => self.unavailable(&error),
                    too_few @ NotReplicated::TooFew { .. } => {
                        Unavailable::NotNow(too_few.to_string())
                    }
                }
            })?
        };
        self.metrics.redis_round_trip(sent.elapsed());
        let epoch = parse_epoch(&epoch)?;
        Ok(Accepted { id: EventId { epoch, seq, kind: target.kind() }, delivered })
    }

    pub(crate) async fn missed(
        &self,
        last_event_id: &str,
        targets: &[Target],
    ) -> Result<Replay, Unavailable> {
        let (epoch, seq) = match last_event_id.parse::<Position>() {
            Ok(seen) => (seen.epoch.as_str().to_owned(), seen.seq),
            Err(_) => (String::new(), 0),
        };
        let mut invocation = MISSED.prepare_invoke();
        invocation.key(self.keys.epoch()).key(self.keys.seq()).key(self.keys.age_log());
        for target in targets {
            invocation.key(self.keys.history(target)).key(self.keys.evicted(target));
        }
        invocation
            .arg(epoch)
            .arg(seq)
            .arg(millis(self.history.ttl))
            .arg(self.history.per_target)
            .arg(Epoch::random().as_str());
        let sent = std::time::Instant::now();
        let reply: Vec<Vec<u8>> = invocation
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(|error| self.unavailable(&error))?;
        self.metrics.redis_round_trip(sent.elapsed());
        parse_missed(reply)
            .ok_or_else(|| Unavailable::unreachable("Redis sent a malformed history"))
    }

    pub(crate) async fn disconnect(&self, client: &ClientId) -> Result<usize, Unavailable> {
        KICK.key(self.keys.nodes())
            .key(self.keys.bus())
            .arg(self.keys.node_prefix())
            .arg(client.as_str())
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(|error| self.unavailable(&error))
    }

    pub(crate) async fn clients(&self) -> Result<Vec<ClientPresence>, Unavailable> {
        let reports: Vec<String> = CLIENTS
            .key(self.keys.nodes())
            .arg(self.keys.node_prefix())
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(|error| self.unavailable(&error))?;
        let reports = reports.iter().filter_map(|report| match serde_json::from_str(report) {
            Ok(presence) => Some(presence),
            Err(error) => {
                tracing::warn!("ignoring a malformed presence report in Redis: {error}");
                None
            }
        });
        Ok(merge_presence(reports))
    }

    pub(crate) async fn health(&self) -> Health {
        if !self.subscribed.load(Ordering::Acquire) {
            let reason = "not subscribed to Redis; reconnecting";
            return Health::Degraded(Unavailable::NotNow(reason.to_owned()));
        }
        let mut conn = match self.conn() {
            Ok(conn) => conn,
            Err(unavailable) => return Health::Degraded(unavailable),
        };
        let ping = redis::cmd("PING");
        match tokio::time::timeout(PING_TIMEOUT, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => Health::Ok,
            Ok(Err(error)) => Health::Degraded(unavailable(&error)),
            Err(_) => {
                Health::Degraded(Unavailable::unreachable("Redis did not answer PING in time"))
            }
        }
    }

    /// Withdraws this node's presence.
    pub(crate) async fn leave(&self) {
        let Ok(mut conn) = self.conn() else { return };
        let result = redis::pipe()
            .atomic()
            .del(self.keys.node_clients(&self.node_id))
            .del(self.keys.node_counts(&self.node_id))
            .zrem(self.keys.nodes(), &self.node_id)
            .query_async::<()>(&mut conn)
            .await;
        if let Err(error) = result {
            tracing::warn!("could not withdraw this node's presence (it will expire): {error}");
        }
    }

    /// After (re)subscribing: if the node may have missed messages while it was not
    /// subscribed, its streams are closed so their clients resume from history.
    async fn resync(&self) -> Result<(), Unavailable> {
        let (epoch, seq): (String, u64) = ENSURE_EPOCH
            .key(self.keys.epoch())
            .key(self.keys.seq())
            .arg(Epoch::random().as_str())
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(|error| self.unavailable(&error))?;
        let now = Position { epoch: parse_epoch(&epoch)?, seq };
        let before = self.fanout.head();
        if let Some(before) = before.as_ref().filter(|before| before.epoch != now.epoch) {
            tracing::warn!(
                "the shared history started epoch {} (was {}): Redis restarted, failed over \
                 or lost data, so ids up to {before} may be gone; clients resuming from before \
                 it get a gap",
                now.epoch.as_str(),
                before.epoch.as_str(),
            );
        }
        if before.as_ref() != Some(&now) {
            let closed = self.close_streams_to_resume();
            if closed > 0 {
                tracing::warn!(
                    "messages may have been missed while unsubscribed (Redis is at {now}); \
                     closed {closed} streams so that their clients resume"
                );
            }
        }
        self.fanout.reset_head(Some(now));
        Ok(())
    }

    /// Closes every stream on this node, task streams included, so that their
    /// clients resume from history; returns how many were open.
    fn close_streams_to_resume(&self) -> usize {
        self.fanout.drain(DisconnectReason::Resync)
    }

    /// A message from a new epoch while subscribed (Redis was flushed, or lost the
    /// sequence, without dropping the subscription): the streams open here cannot
    /// tell what the old epoch lost, and their seqs start over, so they are closed
    /// and their clients resume (with a gap).
    fn follow_epoch(&self, position: &Position) {
        let Some(head) = self.fanout.head() else { return };
        if head.epoch == position.epoch {
            return;
        }
        let closed = self.close_streams_to_resume();
        tracing::warn!(
            "the shared history started epoch {} (was {}) while subscribed: Redis lost \
             data; closed {closed} streams so that their clients resume",
            position.epoch.as_str(),
            head.epoch.as_str(),
        );
    }

    /// Hands one message from the bus to this node's connections.
    fn dispatch(&self, payload: &[u8]) {
        match BusMessage::parse(payload) {
            Some(BusMessage::Deliver(message)) => {
                self.follow_epoch(&message.position);
                self.fanout.deliver(&message, None);
            }
            Some(BusMessage::Task { job, n, last, frame }) => {
                self.fanout.deliver_task_event(&job, n, &frame, last);
            }
            Some(BusMessage::Kick(client)) => {
                self.fanout.close_target(&Target::Client(client), DisconnectReason::Kicked);
            }
            None => tracing::warn!("ignoring a malformed message on {}", self.keys.bus()),
        }
    }

    /// Writes what changed in this node's connections (everything when `all`) and
    /// refreshes the node's expiry.
    async fn write_presence(&self, all: bool) -> Result<(), Unavailable> {
        let mut conn = self.conn()?;
        let clients_key = self.keys.node_clients(&self.node_id);
        let counts_key = self.keys.node_counts(&self.node_id);
        let changes = self.fanout.take_changes(all);
        let mut pipe = redis::pipe();
        pipe.atomic();
        if all {
            pipe.del(&clients_key).ignore().del(&counts_key).ignore();
        }
        for (client, presence) in &changes.clients {
            let field = Target::Client(client.clone()).key();
            match presence {
                Some(presence) => {
                    let report = serde_json::to_string(presence).unwrap_or_default();
                    pipe.hset(&clients_key, client.as_str(), report).ignore();
                    pipe.hset(&counts_key, field, presence.connections).ignore();
                }
                None => {
                    pipe.hdel(&clients_key, client.as_str()).ignore();
                    pipe.hdel(&counts_key, field).ignore();
                }
            }
        }
        for (topic, connections) in &changes.topics {
            let field = Target::Topic(topic.clone()).key();
            match connections {
                0 => pipe.hdel(&counts_key, field).ignore(),
                _ => pipe.hset(&counts_key, field, connections).ignore(),
            };
        }
        pipe.hset(&counts_key, Target::Broadcast.key(), changes.connections).ignore();
        pipe.cmd("EVAL")
            .arg(HEARTBEAT)
            .arg(3)
            .arg(self.keys.nodes())
            .arg(&clients_key)
            .arg(&counts_key)
            .arg(&self.node_id)
            .arg(millis(self.presence_ttl))
            .ignore();
        pipe.query_async::<()>(&mut conn).await.map_err(|error| self.unavailable(&error))
    }

    /// Whether Redis still holds this node's presence (it does not after a flush or
    /// a restart without persistence).
    async fn presence_is_held(&self) -> Result<bool, Unavailable> {
        redis::cmd("EXISTS")
            .arg(self.keys.node_counts(&self.node_id))
            .query_async(&mut self.conn()?)
            .await
            .map_err(|error| self.unavailable(&error))
    }
}

/// `[epoch, head, gap, unknown, rank, seq, frame, rank, seq, frame, …]` from
/// `missed.lua`; frames are replayed by rank (their epoch's place in time), then seq.
fn parse_missed(reply: Vec<Vec<u8>>) -> Option<Replay> {
    let mut fields = reply.into_iter();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).ok();
    let epoch = Epoch::from_text(&text(fields.next()?)?)?;
    let head = text(fields.next()?)?.parse().ok()?;
    let gap = text(fields.next()?)? == "1";
    let unknown = text(fields.next()?)? == "1";
    let mut frames = Vec::new();
    while let Some(rank) = fields.next() {
        let rank: u32 = text(rank)?.parse().ok()?;
        let seq: u64 = text(fields.next()?)?.parse().ok()?;
        frames.push(((rank, seq), Bytes::from(fields.next()?)));
    }
    frames.sort_unstable_by_key(|(order, _)| *order);
    let gap = if unknown { Some(GapReason::Unknown) } else { gap.then_some(GapReason::Evicted) };
    Some(Replay {
        frames: frames.into_iter().map(|(_, frame)| frame).collect(),
        gap,
        head: Position { epoch, seq: head },
    })
}

/// Keeps this node subscribed to the bus, reconnecting with backoff, until `stop`.
async fn listen(broker: Weak<RedisBroker>, stop: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(strong) = broker.upgrade() else { return };
        let link = strong.link();
        let bus = strong.keys.bus();
        drop(strong);
        let mut moves = link.moves();
        let located = tokio::select! {
            located = link.locate() => located,
            () = stop.cancelled() => return,
        };
        let client = match (located, link.endpoint()) {
            (Ok(()), Some(endpoint)) => Some(endpoint.client),
            (Err(error), _) => {
                tracing::warn!("cannot find the Redis primary through Sentinel: {error}");
                None
            }
            (Ok(()), None) => None,
        };
        moves.mark_unchanged();
        let subscribe = async {
            let client = client.ok_or_else(|| {
                RedisError::from((redis::ErrorKind::Io, "no Redis primary is known yet"))
            })?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&bus).await?;
            Ok::<_, RedisError>(pubsub)
        };
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(CONNECT_TIMEOUT * 2, subscribe) => attempt,
            () = stop.cancelled() => return,
        };
        match attempt {
            Ok(Ok(pubsub)) => {
                let Some(strong) = broker.upgrade() else { return };
                match strong.resync().await {
                    Ok(()) => {
                        strong.subscribed.store(true, Ordering::Release);
                        tracing::info!("subscribed to {bus}");
                        backoff = MIN_BACKOFF;
                        drop(strong);
                        if !relay(&broker, pubsub, moves, &stop).await {
                            return;
                        }
                        if let Some(strong) = broker.upgrade() {
                            strong.subscribed.store(false, Ordering::Release);
                            strong.metrics.redis_reconnecting();
                        }
                        tracing::warn!("lost the Redis subscription; reconnecting");
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!("cannot read the shared history's head: {}", error.cause());
                    }
                }
            }
            Ok(Err(error)) => tracing::warn!(
                "cannot subscribe to Redis: {error}; retrying in {}",
                humantime::format_duration(backoff)
            ),
            Err(_) => tracing::warn!("Redis did not answer in time; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Relays bus messages to the node until the subscription ends, stops answering
/// `PING` or the primary moves (returns true), or the node stops (returns false).
async fn relay(
    broker: &Weak<RedisBroker>,
    pubsub: redis::aio::PubSub,
    mut moves: tokio::sync::watch::Receiver<u64>,
    stop: &CancellationToken,
) -> bool {
    let (mut sink, mut messages) = pubsub.split();
    let mut keepalive = tokio::time::interval(SUBSCRIPTION_PING_INTERVAL);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keepalive.reset();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return true };
                let Some(broker) = broker.upgrade() else { return false };
                broker.dispatch(message.get_payload_bytes());
            }
            _ = keepalive.tick() => {
                let ping = sink.ping::<redis::Value>();
                if !matches!(tokio::time::timeout(SUBSCRIPTION_PING_TIMEOUT, ping).await, Ok(Ok(_))) {
                    tracing::warn!("the Redis subscription stopped answering PING");
                    return true;
                }
            }
            _ = moves.changed() => {
                tracing::warn!("the Redis primary moved; subscribing there");
                return true;
            }
            () = stop.cancelled() => return false,
        }
    }
}

/// Keeps this node's presence in Redis current until `stop`: on every change, and
/// every third of the TTL so that it does not expire while the node lives.
async fn report_presence(broker: Weak<RedisBroker>, stop: CancellationToken) {
    let mut write_all = true;
    loop {
        let Some(strong) = broker.upgrade() else { return };
        let refresh = strong.presence_ttl / 3;
        let fanout = strong.fanout.clone();
        if !write_all && !strong.presence_is_held().await.unwrap_or(true) {
            tracing::warn!("Redis lost this node's presence; writing it again");
            write_all = true;
        }
        let wait = match strong.write_presence(write_all).await {
            Ok(()) => {
                write_all = false;
                refresh
            }
            Err(error) => {
                if !write_all {
                    tracing::warn!("cannot report presence to Redis: {}", error.cause());
                }
                write_all = true;
                refresh.min(Duration::from_secs(1))
            }
        };
        drop(strong);
        tokio::select! {
            () = fanout.presence_changed() => {}
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

fn unavailable(error: &RedisError) -> Unavailable {
    if error.is_timeout() { Unavailable::no_answer(error) } else { Unavailable::unreachable(error) }
}

fn parse_epoch(text: &str) -> Result<Epoch, Unavailable> {
    Epoch::from_text(text).ok_or_else(|| Unavailable::unreachable("Redis holds a malformed epoch"))
}

/// A duration as Redis takes it (`PEXPIRE`, script arguments).
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
