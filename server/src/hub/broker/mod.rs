//! Brokers: where event ids come from, where history is kept, and how a message
//! reaches every node. One contract, two implementations, chosen at start:
//!
//! * [`memory::MemoryBroker`]: one node, everything in this process;
//! * [`redis::RedisBroker`]: any number of nodes sharing one Redis.
//!
//! The hub talks to [`Broker`] only. Whatever the broker, a published message comes
//! back to every node through [`Fanout::deliver`](super::fanout::Fanout::deliver), in
//! id order, and the node hands it to its own connections.

pub(crate) mod memory;
pub(crate) mod redis;
mod window;

use bytes::Bytes;

use super::registry::ClientPresence;
use super::types::{ClientId, EventId, GapReason, Position, Target};

/// The broker could not do what was asked.
///
/// Its `Display` is what a client may be told; [`Unavailable::cause`] is what the log
/// is told, and may hold the broker client's own error text (an OS error, a script
/// error), which never leaves the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// A command to the broker failed, or its answer made no sense.
    Unreachable {
        /// What failed, for the log only.
        cause: String,
    },
    /// A command was sent but not answered in time: the broker may still carry it
    /// out (a push may still be delivered, and a retry may deliver it twice).
    NoAnswer {
        /// What timed out, for the log only.
        cause: String,
    },
    /// The broker is reachable but cannot give what was asked now, for a reason
    /// Herald states (too few replicas confirmed, not subscribed yet).
    NotNow(String),
}

impl Unavailable {
    /// A failed command, with what failed (for the log).
    pub(crate) fn unreachable(cause: impl std::fmt::Display) -> Self {
        Self::Unreachable { cause: cause.to_string() }
    }

    /// A command that went unanswered, with what timed out (for the log).
    pub(crate) fn no_answer(cause: impl std::fmt::Display) -> Self {
        Self::NoAnswer { cause: cause.to_string() }
    }

    /// Everything known about the failure, for the log.
    pub fn cause(&self) -> &str {
        match self {
            Self::Unreachable { cause } | Self::NoAnswer { cause } => cause,
            Self::NotNow(reason) => reason,
        }
    }

    /// Whether the answer to a client leaves the cause out, so it must be logged.
    pub fn hides_cause(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::NoAnswer { .. })
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable { .. } => f.write_str("the message broker is unreachable"),
            Self::NoAnswer { .. } => f.write_str(
                "the message broker did not answer in time; what was asked may still take \
                 effect (a push may still be delivered)",
            ),
            Self::NotNow(reason) => write!(f, "the message broker is unavailable: {reason}"),
        }
    }
}

impl std::error::Error for Unavailable {}

/// A message the broker accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Its id.
    pub id: EventId,
    /// The connections it is delivered to: exact for the memory broker; for Redis,
    /// those registered cluster-wide when it was accepted.
    pub delivered: usize,
}

/// What a resuming connection is replayed: what it missed that is still held, and
/// why not everything is, when not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replay {
    /// The held messages newer than the client's id, in order.
    pub frames: Vec<Bytes>,
    /// Why some messages after the id are not among them, if some are not.
    pub gap: Option<GapReason>,
    /// The newest position the history had when it was read: the replay covers
    /// everything up to it.
    pub head: Position,
}

/// Whether the broker can take messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    /// Working.
    Ok,
    /// Not reachable; with what went wrong.
    Degraded(Unavailable),
}

/// The broker a hub runs on.
#[derive(Debug)]
pub(crate) enum Broker {
    /// Everything in this process.
    Memory(std::sync::Arc<memory::MemoryBroker>),
    /// Shared by every node on one Redis.
    Redis(std::sync::Arc<redis::RedisBroker>),
}

impl Broker {
    /// `memory` or `redis`, for health reports and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// Gives the message the next id, keeps it in history and delivers it to every
    /// node. `frame_without_id` is the encoded event, id line excepted.
    pub(crate) async fn publish(
        &self,
        target: &Target,
        frame_without_id: Bytes,
    ) -> Result<Accepted, Unavailable> {
        match self {
            Self::Memory(broker) => Ok(broker.publish(target, &frame_without_id).await),
            Self::Redis(broker) => broker.publish(target, &frame_without_id).await,
        }
    }

    /// What `targets` missed after `last_event_id`.
    pub(crate) async fn missed(
        &self,
        last_event_id: &str,
        targets: &[Target],
    ) -> Result<Replay, Unavailable> {
        match self {
            Self::Memory(broker) => Ok(broker.missed(last_event_id, targets)),
            Self::Redis(broker) => broker.missed(last_event_id, targets).await,
        }
    }

    /// Closes every stream of `client` on every node; returns how many were open.
    pub(crate) async fn disconnect(&self, client: &ClientId) -> Result<usize, Unavailable> {
        match self {
            Self::Memory(broker) => Ok(broker.disconnect(client)),
            Self::Redis(broker) => broker.disconnect(client).await,
        }
    }

    /// The clients connected to any node, sorted by id.
    pub(crate) async fn clients(&self) -> Result<Vec<ClientPresence>, Unavailable> {
        match self {
            Self::Memory(broker) => Ok(broker.clients()),
            Self::Redis(broker) => broker.clients().await,
        }
    }

    /// Whether the broker is reachable now.
    pub(crate) async fn health(&self) -> Health {
        match self {
            Self::Memory(_) => Health::Ok,
            Self::Redis(broker) => broker.health().await,
        }
    }

    /// Messages and bytes of history held in this process (a Redis broker holds
    /// none here).
    pub(crate) fn local_history_size(&self) -> (usize, usize) {
        match self {
            Self::Memory(broker) => broker.history_size(),
            Self::Redis(_) => (0, 0),
        }
    }

    /// Leaves the cluster: this node's presence is withdrawn at once instead of
    /// expiring.
    pub(crate) async fn leave(&self) {
        if let Self::Redis(broker) = self {
            broker.leave().await;
        }
    }
}

/// Merges presence reports of the same clients from several nodes: connections add
/// up, topics are united, and the earliest connection time wins.
pub(crate) fn merge_presence(
    reports: impl IntoIterator<Item = ClientPresence>,
) -> Vec<ClientPresence> {
    let mut merged: std::collections::BTreeMap<ClientId, ClientPresence> = Default::default();
    for report in reports {
        match merged.entry(report.client_id.clone()) {
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(report);
            }
            std::collections::btree_map::Entry::Occupied(mut entry) => {
                let known = entry.get_mut();
                known.connections += report.connections;
                known.topics.extend(report.topics);
                known.topics.sort();
                known.topics.dedup();
                if report.connected_since < known.connected_since {
                    known.connected_since = report.connected_since;
                }
            }
        }
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(client: &str, connections: usize, topics: &[&str], since: &str) -> ClientPresence {
        ClientPresence {
            client_id: client.parse().unwrap(),
            connections,
            topics: topics.iter().map(|topic| topic.parse().unwrap()).collect(),
            connected_since: since.to_owned(),
        }
    }

    #[test]
    fn presence_from_several_nodes_adds_up() {
        let merged = merge_presence([
            report("b", 1, &["x"], "2026-01-01T00:00:05Z"),
            report("a", 2, &["y"], "2026-01-01T00:00:03Z"),
            report("b", 1, &["w", "x"], "2026-01-01T00:00:01Z"),
        ]);
        assert_eq!(
            merged,
            vec![
                report("a", 2, &["y"], "2026-01-01T00:00:03Z"),
                report("b", 2, &["w", "x"], "2026-01-01T00:00:01Z"),
            ]
        );
    }
}
