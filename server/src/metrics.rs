//! Counters, gauges and histograms that describe what the node is doing, for
//! `GET /metrics` in the OpenMetrics text format (`prometheus-client`), with the
//! process metrics operators look for first ([`process`]).
//!
//! Every labelled series is resolved once, when the metrics are made, and kept in an
//! array indexed by the label's enum: counting on the hot path is one atomic add,
//! never a lookup in a label map.

mod process;

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::hub::types::{DisconnectReason, TargetKind};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// All of Herald's metrics. One instance per hub, shared by reference.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    connections_opened: Counter,
    published: [Counter; TargetKind::ALL.len()],
    deliveries: Counter,
    disconnects: [Counter; DisconnectReason::ALL.len()],
    jobs_created: Counter,
    jobs_finished: Counter,
    replays: Counter,
    replayed_messages: Counter,
    gaps: Counter,
    publish_seconds: Histogram,
    limited: [Counter; Limit::ALL.len()],
    redis_primary_changes: Counter,
    redis_reconnects: Counter,
    redis_round_trip_seconds: Histogram,
    /// Read from the hub's state at each scrape ([`Gauges`]).
    clients: Gauge,
    history_messages: Gauge,
    history_bytes: Gauge,
    jobs: Gauge,
}

/// A limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Open streams on this node (429).
    Connections,
    /// Open streams from one source address (429).
    ConnectionsPerAddress,
    /// Pushes per second from one publisher (429).
    PushRate,
    /// Topics on one connection (400).
    Topics,
    /// A message or request body over its size limit (413).
    Size,
    /// A connection that did not send its request headers in time (closed).
    HeaderTimeout,
    /// A request body that did not arrive in time (408, closed).
    BodyTimeout,
    /// A kept-alive connection idle between requests for too long (closed).
    KeepaliveTimeout,
    /// A peer that took no data within the write timeout (closed).
    WriteTimeout,
}

impl Limit {
    /// Every limit, for metrics.
    pub const ALL: [Limit; 9] = [
        Self::Connections,
        Self::ConnectionsPerAddress,
        Self::PushRate,
        Self::Topics,
        Self::Size,
        Self::HeaderTimeout,
        Self::BodyTimeout,
        Self::KeepaliveTimeout,
        Self::WriteTimeout,
    ];

    /// The snake-case name used in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::ConnectionsPerAddress => "connections_per_address",
            Self::PushRate => "push_rate",
            Self::Topics => "topics",
            Self::Size => "size",
            Self::HeaderTimeout => "header_timeout",
            Self::BodyTimeout => "body_timeout",
            Self::KeepaliveTimeout => "keepalive_timeout",
            Self::WriteTimeout => "write_timeout",
        }
    }
}

/// Values read from the hub's state when metrics are rendered, rather than kept in
/// counters that could drift from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Distinct client ids connected.
    pub clients: usize,
    /// Messages held in history.
    pub history_messages: usize,
    /// Bytes of encoded frames held in history.
    pub history_bytes: usize,
    /// Tasks held, running and finished.
    pub jobs: usize,
}

/// Upper bounds of the publish latency buckets, in seconds: publishing is in-memory
/// work, so the interesting range is microseconds to a few milliseconds.
const PUBLISH_BUCKETS: [f64; 10] =
    [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01, 0.1];

/// Upper bounds of the Redis round-trip buckets, in seconds: a loopback script takes
/// tens of microseconds, a remote one a millisecond or more, one that waits for a
/// replica (`WAIT`) up to its second.
const REDIS_BUCKETS: [f64; 12] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0];

/// One counter per value of a label, registered as one family.
fn labelled<const N: usize, T: Copy>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: [T; N],
    value_name: impl Fn(T) -> &'static str,
) -> [Counter; N] {
    let family = Family::<[(&'static str, &'static str); 1], Counter>::default();
    registry.register(name, help, family.clone());
    values.map(|value| family.get_or_create_owned(&[(label, value_name(value))]))
}

/// A metric registered under `name`, returned for counting.
fn registered<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    /// Every metric at zero, registered under the names the README lists (counters
    /// get their `_total` suffix from the encoder).
    fn default() -> Self {
        let mut registry = Registry::default();
        let r = &mut registry;
        let gauge = Gauge::default;
        let counter = Counter::default;
        let connections = registered(r, "herald_connections", "Open event streams", gauge());
        let clients = registered(r, "herald_clients", "Distinct client ids connected", gauge());
        let history_messages = registered(
            r,
            "herald_history_messages",
            "Messages held in history for resuming clients",
            gauge(),
        );
        let history_bytes = registered(
            r,
            "herald_history_bytes",
            "Bytes of encoded messages held in history",
            gauge(),
        );
        let jobs = registered(r, "herald_jobs", "Tasks held, running and finished", gauge());
        let replays =
            registered(r, "herald_replays", "Streams opened with a Last-Event-ID", counter());
        let replayed_messages = registered(
            r,
            "herald_replayed_messages",
            "Messages sent from history to resuming streams",
            counter(),
        );
        let gaps = registered(
            r,
            "herald_gaps",
            "Resumes that could not replay everything missed",
            counter(),
        );
        let publish_seconds = registered(
            r,
            "herald_publish_duration_seconds",
            "Time to store and fan out one message",
            Histogram::new(PUBLISH_BUCKETS),
        );
        let connections_opened = registered(
            r,
            "herald_connections_opened",
            "Event streams opened since start",
            counter(),
        );
        let published = labelled(
            r,
            "herald_messages_published",
            "Messages accepted, by target kind",
            "target",
            TargetKind::ALL,
            TargetKind::name,
        );
        let deliveries =
            registered(r, "herald_deliveries", "Messages queued on a connection", counter());
        let disconnects = labelled(
            r,
            "herald_disconnects",
            "Event streams ended, by reason",
            "reason",
            DisconnectReason::ALL,
            DisconnectReason::name,
        );
        let jobs_created = registered(r, "herald_jobs_created", "Tasks created", counter());
        let jobs_finished = registered(
            r,
            "herald_jobs_finished",
            "Tasks that ended with a result or an error",
            counter(),
        );
        let limited = labelled(
            r,
            "herald_limited",
            "Requests refused by a limit, by limit",
            "limit",
            Limit::ALL,
            Limit::name,
        );
        let redis_primary_changes = registered(
            r,
            "herald_redis_primary_changes",
            "Redis failovers this node followed (Sentinel)",
            counter(),
        );
        let redis_reconnects = registered(
            r,
            "herald_redis_reconnects",
            "Times this node subscribed to the Redis bus again after losing it",
            counter(),
        );
        let redis_round_trip_seconds = registered(
            r,
            "herald_redis_round_trip_seconds",
            "Time from sending a push's or a replay's script to Redis to its answer",
            Histogram::new(REDIS_BUCKETS),
        );
        registry.register_collector(Box::new(process::ProcessCollector));
        Self {
            registry,
            connections,
            connections_opened,
            published,
            deliveries,
            disconnects,
            jobs_created,
            jobs_finished,
            replays,
            replayed_messages,
            gaps,
            publish_seconds,
            limited,
            redis_primary_changes,
            redis_reconnects,
            redis_round_trip_seconds,
            clients,
            history_messages,
            history_bytes,
            jobs,
        }
    }
}

impl Metrics {
    pub(crate) fn connection_opened(&self) {
        self.connections.inc();
        self.connections_opened.inc();
    }

    pub(crate) fn connection_closed(&self, reason: DisconnectReason) {
        self.connections.dec();
        self.disconnects[reason as usize].inc();
    }

    pub(crate) fn published(&self, kind: TargetKind) {
        self.published[kind as usize].inc();
    }

    /// Frames queued on this node's connections (whichever node accepted the push).
    pub(crate) fn delivered(&self, connections: usize) {
        self.deliveries.inc_by(connections as u64);
    }

    pub(crate) fn publish_took(&self, elapsed: Duration) {
        self.publish_seconds.observe(elapsed.as_secs_f64());
    }

    pub(crate) fn replayed(&self, messages: usize, gap: bool) {
        self.replays.inc();
        self.replayed_messages.inc_by(messages as u64);
        if gap {
            self.gaps.inc();
        }
    }

    /// A request refused by `limit`.
    pub fn limited(&self, limit: Limit) {
        self.limited[limit as usize].inc();
    }

    /// Requests refused by `limit` since start.
    pub fn times_limited(&self, limit: Limit) -> u64 {
        self.limited[limit as usize].get()
    }

    /// Sentinel named a new Redis primary and this node followed it.
    pub(crate) fn redis_primary_changed(&self) {
        self.redis_primary_changes.inc();
    }

    /// The Redis subscription was lost: this node reconnects.
    pub(crate) fn redis_reconnecting(&self) {
        self.redis_reconnects.inc();
    }

    /// One script sent to Redis was answered after `elapsed`.
    pub(crate) fn redis_round_trip(&self, elapsed: Duration) {
        self.redis_round_trip_seconds.observe(elapsed.as_secs_f64());
    }

    pub(crate) fn job_created(&self) {
        self.jobs_created.inc();
    }

    pub(crate) fn job_finished(&self) {
        self.jobs_finished.inc();
    }

    /// Open streams right now (client and task streams).
    pub fn open_connections(&self) -> i64 {
        self.connections.get()
    }

    /// How many streams have ended for `reason` since start.
    pub fn disconnects(&self, reason: DisconnectReason) -> u64 {
        self.disconnects[reason as usize].get()
    }

    /// Gap events sent since start.
    pub fn gaps(&self) -> u64 {
        self.gaps.get()
    }

    /// The metrics, with `gauges`, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self, gauges: &Gauges) -> String {
        let count = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.clients.set(count(gauges.clients));
        self.history_messages.set(count(gauges.history_messages));
        self.history_bytes.set(count(gauges.history_bytes));
        self.jobs.set(count(gauges.jobs));
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
