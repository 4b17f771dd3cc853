//! What a run records: every push and its answer, every connection of every client
//! and every event it received, every fault. The checker judges these records after
//! the run, so that what it checks is exactly what clients and publishers saw.

use std::fmt;
use std::time::Instant;

use crate::ids::EventId;

/// Milliseconds since the run's clock started.
pub type Ms = u64;

/// The run's clock: every record is stamped with it, so faults, pushes and
/// deliveries line up in reports.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn now(self) -> Ms {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A time on the run's clock, printed as seconds.
#[derive(Debug, Clone, Copy)]
pub struct At(pub Ms);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:4}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// The topics clients join: a small set, so that topics have several subscribers,
/// and the firehose.
pub const TOPICS: [&str; 5] = ["news", "sport", "ops/eu", "team:7", "firehose"];
/// The topics any client may join (0–2 of them).
pub const COMMON_TOPICS: usize = 4;
/// The firehose: large messages, joined by slow readers only. Herald cuts a reader
/// off when its queue fills, which happens only once the kernel's socket buffers
/// (megabytes on loopback) are full too; small messages would take many minutes.
pub const FIREHOSE: usize = 4;

/// Who a push is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// The client with this index.
    Client(usize),
    /// The topic with this index in [`TOPICS`].
    Topic(usize),
    Everyone,
}

impl Audience {
    /// The id tag Herald gives a message sent to this audience.
    pub fn tag(self) -> char {
        match self {
            Self::Client(_) => 'c',
            Self::Topic(_) => 't',
            Self::Everyone => 'b',
        }
    }

    /// Whether `client` is one of the audience.
    pub fn includes(self, client: &ClientSpec) -> bool {
        match self {
            Self::Client(index) => index == client.index,
            Self::Topic(topic) => client.topics.contains(&topic),
            Self::Everyone => true,
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(index) => write!(f, "client chaos-{index}"),
            Self::Topic(topic) => write!(f, "topic {}", TOPICS.get(*topic).unwrap_or(&"?")),
            Self::Everyone => write!(f, "everyone"),
        }
    }
}

/// One push and its answer.
#[derive(Debug, Clone)]
pub struct Push {
    /// The token the message carries (`{"n":N}`): unique per push.
    pub n: u64,
    pub audience: Audience,
    /// The node it was sent through.
    pub node: usize,
    pub sent: Ms,
    pub answered: Ms,
    pub outcome: PushOutcome,
}

#[derive(Debug, Clone)]
pub enum PushOutcome {
    /// 200 with an id: Herald took the message and must deliver it (or say `gap`).
    Accepted { id: EventId, delivered: u64 },
    /// Any other status: the message may or may not have been taken.
    Refused(u16),
    /// No answer: the connection failed (a node down) or broke.
    Failed(String),
    /// No answer in time (a node stopped, Redis paused).
    TimedOut,
    /// 200 with a body the checker cannot read.
    Unreadable(String),
}

/// A client's settings.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub index: usize,
    /// Its `client_id`.
    pub name: String,
    /// Indexes in [`TOPICS`].
    pub topics: Vec<usize>,
    /// Reads slowly, so that Herald cuts it off when its queue fills.
    pub slow: bool,
}

/// Everything one client saw.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub connections: Vec<Connection>,
    pub events: Vec<Received>,
    /// Whether, at the end of the drain, the client had been live for a while.
    pub live_at_end: bool,
}

/// One attempt to open a stream, and how it ended.
#[derive(Debug, Clone)]
pub struct Connection {
    pub node: usize,
    pub opened: Ms,
    /// The `Last-Event-ID` it sent.
    pub resume_from: Option<String>,
    pub ended: Ms,
    pub end: End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// No answer: connection refused, reset, or no head in time.
    Unreachable(String),
    /// A status other than 200.
    Refused(u16),
    /// The server ended the stream (shutdown, slow reader, resync, node killed).
    ByServer,
    /// The stream broke with an error.
    Broken(String),
    /// The checker dropped the connection (the client-cut fault).
    Cut,
    /// Nothing, not even a heartbeat, arrived for a long time.
    Idle,
    /// The run ended.
    Stopped,
}

/// One event a client received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Index in [`ClientLog::connections`].
    pub connection: u32,
    pub at: Ms,
    pub what: What,
}

#[derive(Debug, Clone)]
pub enum What {
    /// `event: herald.position`.
    Marker(EventId),
    /// `event: gap`.
    Gap { last_event_id: String, reason: String },
    /// A message the run pushed.
    Message { id: EventId, n: u64 },
    /// Anything the checker cannot read as one of the above.
    Unreadable(String),
}

/// The kinds of fault (see `faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    NodeKill,
    NodeTerm,
    NodeStall,
    PrimaryKill,
    PrimaryRestart,
    RedisPause,
    ClientCut,
}

impl FaultKind {
    pub const ALL: [Self; 7] = [
        Self::NodeKill,
        Self::NodeTerm,
        Self::NodeStall,
        Self::PrimaryKill,
        Self::PrimaryRestart,
        Self::RedisPause,
        Self::ClientCut,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::NodeKill => "node-kill",
            Self::NodeTerm => "node-term",
            Self::NodeStall => "node-stall",
            Self::PrimaryKill => "primary-kill",
            Self::PrimaryRestart => "primary-restart",
            Self::RedisPause => "redis-pause",
            Self::ClientCut => "client-cut",
        }
    }
}

/// A line of the fault log: a fault injected, or the cluster's recovery from it.
#[derive(Debug, Clone)]
pub struct FaultEntry {
    pub at: Ms,
    pub kind: FaultKind,
    /// Whether this line starts the fault (rather than reporting its recovery).
    pub start: bool,
    pub text: String,
}
