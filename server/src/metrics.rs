//! Counters and gauges that describe what the hub is doing, rendered in the
//! Prometheus text format for `GET /metrics`.
//!
//! Plain atomics, updated with `Relaxed` ordering: each number is independent and a
//! scrape only needs every value to be recent, not a consistent snapshot across them.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::hub::types::{DisconnectReason, TargetKind};

/// All of Herald's metrics. One instance per hub, shared by reference.
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicI64,
    connections_opened: AtomicU64,
    published: [AtomicU64; TargetKind::ALL.len()],
    deliveries: AtomicU64,
    disconnects: [AtomicU64; DisconnectReason::ALL.len()],
    jobs_created: AtomicU64,
    jobs_finished: AtomicU64,
    replays: AtomicU64,
    replayed_messages: AtomicU64,
    gaps: AtomicU64,
    publish_seconds: Histogram,
    limited: [AtomicU64; Limit::ALL.len()],
    redis_primary_changes: AtomicU64,
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

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; PUBLISH_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = PUBLISH_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in PUBLISH_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            sample(out, &format!("{name}_bucket"), &format!("le=\"{bound}\""), cumulative);
        }
        let count = self.count.load(Relaxed);
        sample(out, &format!("{name}_bucket"), "le=\"+Inf\"", count);
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        sample(out, &format!("{name}_sum"), "", sum);
        sample(out, &format!("{name}_count"), "", count);
    }
}

impl Metrics {
    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
        self.connections_opened.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(&self, reason: DisconnectReason) {
        self.connections.fetch_sub(1, Relaxed);
        self.disconnects[reason as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn published(&self, kind: TargetKind) {
        self.published[kind as usize].fetch_add(1, Relaxed);
    }

    /// Frames queued on this node's connections (whichever node accepted the push).
    pub(crate) fn delivered(&self, connections: usize) {
        self.deliveries.fetch_add(connections as u64, Relaxed);
    }

    pub(crate) fn publish_took(&self, elapsed: Duration) {
        self.publish_seconds.observe(elapsed);
    }

    pub(crate) fn replayed(&self, messages: usize, gap: bool) {
        self.replays.fetch_add(1, Relaxed);
        self.replayed_messages.fetch_add(messages as u64, Relaxed);
        if gap {
            self.gaps.fetch_add(1, Relaxed);
        }
    }

    /// A request refused by `limit`.
    pub fn limited(&self, limit: Limit) {
        self.limited[limit as usize].fetch_add(1, Relaxed);
    }

    /// Requests refused by `limit` since start.
    pub fn times_limited(&self, limit: Limit) -> u64 {
        self.limited[limit as usize].load(Relaxed)
    }

    /// Sentinel named a new Redis primary and this node followed it.
    pub(crate) fn redis_primary_changed(&self) {
        self.redis_primary_changes.fetch_add(1, Relaxed);
    }

    pub(crate) fn job_created(&self) {
        self.jobs_created.fetch_add(1, Relaxed);
    }

    pub(crate) fn job_finished(&self) {
        self.jobs_finished.fetch_add(1, Relaxed);
    }

    /// Open streams right now (client and task streams).
    pub fn open_connections(&self) -> i64 {
        self.connections.load(Relaxed)
    }

    /// How many streams have ended for `reason` since start.
    pub fn disconnects(&self, reason: DisconnectReason) -> u64 {
        self.disconnects[reason as usize].load(Relaxed)
    }

    /// Gap events sent since start.
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Relaxed)
    }

    /// The metrics, with `gauges`, in the Prometheus text exposition format (0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        header(&mut out, "herald_connections", "gauge", "Open event streams.");
        sample(&mut out, "herald_connections", "", self.connections.load(Relaxed));
        header(&mut out, "herald_clients", "gauge", "Distinct client ids connected.");
        sample(&mut out, "herald_clients", "", gauges.clients);
        let held = "herald_history_messages";
        header(&mut out, held, "gauge", "Messages held in history for resuming clients.");
        sample(&mut out, held, "", gauges.history_messages);
        let bytes = "herald_history_bytes";
        header(&mut out, bytes, "gauge", "Bytes of encoded messages held in history.");
        sample(&mut out, bytes, "", gauges.history_bytes);
        header(&mut out, "herald_jobs", "gauge", "Tasks held, running and finished.");
        sample(&mut out, "herald_jobs", "", gauges.jobs);
        let replays = "herald_replays_total";
        header(&mut out, replays, "counter", "Streams opened with a Last-Event-ID.");
        sample(&mut out, replays, "", self.replays.load(Relaxed));
        let replayed = "herald_replayed_messages_total";
        header(&mut out, replayed, "counter", "Messages sent from history to resuming streams.");
        sample(&mut out, replayed, "", self.replayed_messages.load(Relaxed));
        let gaps = "herald_gaps_total";
        header(&mut out, gaps, "counter", "Resumes that could not replay everything missed.");
        sample(&mut out, gaps, "", self.gaps.load(Relaxed));
        let publish = "herald_publish_duration_seconds";
        header(&mut out, publish, "histogram", "Time to store and fan out one message.");
        self.publish_seconds.render(&mut out, publish);
        let opened = "herald_connections_opened_total";
        header(&mut out, opened, "counter", "Event streams opened since start.");
        sample(&mut out, opened, "", self.connections_opened.load(Relaxed));
        let published = "herald_messages_published_total";
        header(&mut out, published, "counter", "Messages accepted, by target kind.");
        for kind in TargetKind::ALL {
            let label = format!("target=\"{}\"", kind.name());
            sample(&mut out, published, &label, self.published[kind as usize].load(Relaxed));
        }
        let deliveries = "herald_deliveries_total";
        header(&mut out, deliveries, "counter", "Messages queued on a connection.");
        sample(&mut out, deliveries, "", self.deliveries.load(Relaxed));
        let disconnects = "herald_disconnects_total";
        header(&mut out, disconnects, "counter", "Event streams ended, by reason.");
        for reason in DisconnectReason::ALL {
            let label = format!("reason=\"{}\"", reason.name());
            sample(&mut out, disconnects, &label, self.disconnects(reason));
        }
        let created = "herald_jobs_created_total";
        header(&mut out, created, "counter", "Tasks created.");
        sample(&mut out, created, "", self.jobs_created.load(Relaxed));
        let finished = "herald_jobs_finished_total";
        header(&mut out, finished, "counter", "Tasks that ended with a result or an error.");
        sample(&mut out, finished, "", self.jobs_finished.load(Relaxed));
        let limited = "herald_limited_total";
        header(&mut out, limited, "counter", "Requests refused by a limit, by limit.");
        for limit in Limit::ALL {
            let label = format!("limit=\"{}\"", limit.name());
            sample(&mut out, limited, &label, self.times_limited(limit));
        }
        let moved = "herald_redis_primary_changes_total";
        header(&mut out, moved, "counter", "Redis failovers this node followed (Sentinel).");
        sample(&mut out, moved, "", self.redis_primary_changes.load(Relaxed));
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}
