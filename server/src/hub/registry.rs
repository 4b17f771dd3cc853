//! This node's live connections, indexed four ways: all of them (for broadcasts), by
//! client id (for unicasts and presence), by topic, and by task for task streams.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use super::subscriber::Subscriber;
use super::types::{ClientId, JobId, Target, Topic};

/// Identifies one connection for as long as the node runs.
pub(crate) type ConnId = u64;

#[derive(Debug, Default)]
pub(crate) struct Registry {
    next_conn: ConnId,
    conns: HashMap<ConnId, Conn>,
    clients: HashMap<ClientId, ClientEntry>,
    topics: HashMap<Topic, HashSet<ConnId>>,
    tasks: HashMap<JobId, Vec<ConnId>>,
    /// How many of `conns` watch a task.
    watching_tasks: usize,
}

#[derive(Debug)]
struct Conn {
    feed: Feed,
    subscriber: Arc<Subscriber>,
}

/// What one connection receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Feed {
    /// A client stream: messages for the client, for each topic (no duplicates), and
    /// broadcasts.
    Client { client: ClientId, topics: Box<[Topic]> },
    /// A task stream: the task's events.
    Task(JobId),
}

/// Whose connections a delivery reaches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reach<'a> {
    /// The client streams a message's target reaches.
    Target(&'a Target),
    /// The streams watching one task.
    Task(&'a JobId),
}

#[derive(Debug)]
struct ClientEntry {
    conns: Vec<ConnId>,
    since: SystemTime,
}

/// One connected client as presence reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientPresence {
    /// The client's id.
    pub client_id: ClientId,
    /// How many streams it holds open (tabs).
    pub connections: usize,
    /// The union of the topics its connections joined, sorted.
    pub topics: Vec<Topic>,
    /// When its oldest open connection opened (RFC 3339, UTC).
    pub connected_since: String,
}

impl Registry {
    /// Adds a connection.
    pub(crate) fn register(&mut self, feed: Feed, subscriber: Arc<Subscriber>) -> ConnId {
        self.next_conn += 1;
        let id = self.next_conn;
        match &feed {
            Feed::Client { client, topics } => {
                for topic in topics {
                    self.topics.entry(topic.clone()).or_default().insert(id);
                }
                self.clients
                    .entry(client.clone())
                    .or_insert_with(|| ClientEntry { conns: Vec::new(), since: SystemTime::now() })
                    .conns
                    .push(id);
            }
            Feed::Task(job) => {
                self.tasks.entry(job.clone()).or_default().push(id);
                self.watching_tasks += 1;
            }
        }
        self.conns.insert(id, Conn { feed, subscriber });
        id
    }

    /// Removes a connection; returns what it received, or `None` if it was not
    /// registered (any more).
    pub(crate) fn unregister(&mut self, id: ConnId) -> Option<Feed> {
        let conn = self.conns.remove(&id)?;
        match &conn.feed {
            Feed::Client { client, topics } => {
                for topic in topics {
                    if let Some(members) = self.topics.get_mut(topic) {
                        members.remove(&id);
                        if members.is_empty() {
                            self.topics.remove(topic);
                        }
                    }
                }
                if let Some(entry) = self.clients.get_mut(client) {
                    entry.conns.retain(|&other| other != id);
                    if entry.conns.is_empty() {
                        self.clients.remove(client);
                    }
                }
            }
            Feed::Task(job) => {
                if let Some(watchers) = self.tasks.get_mut(job) {
                    watchers.retain(|&other| other != id);
                    if watchers.is_empty() {
                        self.tasks.remove(job);
                    }
                }
                self.watching_tasks -= 1;
            }
        }
        Some(conn.feed)
    }

    /// Calls `deliver` with every connection `reach` names.
    pub(crate) fn for_each(
        &self,
        reach: Reach<'_>,
        mut deliver: impl FnMut(ConnId, &Arc<Subscriber>),
    ) {
        let by_id = |id: &ConnId| self.conns.get(id).map(|conn| (*id, &conn.subscriber));
        let mut deliver = |(id, subscriber): (ConnId, &Arc<Subscriber>)| deliver(id, subscriber);
        match reach {
            Reach::Target(Target::Broadcast) => self
                .conns
                .iter()
                .filter(|(_, conn)| matches!(conn.feed, Feed::Client { .. }))
                .for_each(|(id, conn)| deliver((*id, &conn.subscriber))),
            Reach::Target(Target::Client(client)) => {
                if let Some(entry) = self.clients.get(client) {
                    entry.conns.iter().filter_map(by_id).for_each(deliver);
                }
            }
            Reach::Target(Target::Topic(topic)) => {
                if let Some(members) = self.topics.get(topic) {
                    members.iter().filter_map(by_id).for_each(deliver);
                }
            }
            Reach::Task(job) => {
                if let Some(watchers) = self.tasks.get(job) {
                    watchers.iter().filter_map(by_id).for_each(deliver);
                }
            }
        }
    }

    /// How many distinct clients are connected.
    pub(crate) fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Every connection, task streams included, for shutdown.
    pub(crate) fn subscribers(&self) -> impl Iterator<Item = &Arc<Subscriber>> {
        self.conns.values().map(|conn| &conn.subscriber)
    }

    /// How many client streams are open (task streams are not presence).
    pub(crate) fn connection_count(&self) -> usize {
        self.conns.len() - self.watching_tasks
    }

    /// Every connected client's id.
    pub(crate) fn client_ids(&self) -> Vec<ClientId> {
        self.clients.keys().cloned().collect()
    }

    /// Every topic some connection joined.
    pub(crate) fn topic_names(&self) -> Vec<Topic> {
        self.topics.keys().cloned().collect()
    }

    /// How many connections joined `topic`.
    pub(crate) fn topic_connections(&self, topic: &Topic) -> usize {
        self.topics.get(topic).map_or(0, HashSet::len)
    }

    /// One client's presence, if it is connected.
    pub(crate) fn client_presence(&self, client: &ClientId) -> Option<ClientPresence> {
        let entry = self.clients.get(client)?;
        let topics: BTreeSet<&Topic> = entry
            .conns
            .iter()
            .filter_map(|id| self.conns.get(id))
            .flat_map(|conn| match &conn.feed {
                Feed::Client { topics, .. } => &topics[..],
                Feed::Task(_) => &[],
            })
            .collect();
        Some(ClientPresence {
            client_id: client.clone(),
            connections: entry.conns.len(),
            topics: topics.into_iter().cloned().collect(),
            connected_since: humantime::format_rfc3339_seconds(entry.since).to_string(),
        })
    }

    /// The connected clients, sorted by id.
    pub(crate) fn presence(&self) -> Vec<ClientPresence> {
        let mut clients: Vec<ClientPresence> =
            self.clients.keys().filter_map(|client| self.client_presence(client)).collect();
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        clients
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> ClientId {
        id.parse().unwrap()
    }

    fn topic(name: &str) -> Topic {
        name.parse().unwrap()
    }

    fn reached(registry: &Registry, target: &Target) -> usize {
        let mut count = 0;
        registry.for_each(Reach::Target(target), |_, _| count += 1);
        count
    }

    fn client_feed(id: &str, topics: &[&str]) -> Feed {
        Feed::Client { client: client(id), topics: topics.iter().map(|name| topic(name)).collect() }
    }

    #[test]
    fn targets_reach_only_their_connections() {
        let mut registry = Registry::default();
        let sub = || Arc::new(Subscriber::new(4));
        registry.register(client_feed("a", &["news"]), sub());
        registry.register(client_feed("a", &[]), sub());
        registry.register(client_feed("b", &["news", "sport"]), sub());
        registry.register(Feed::Task("j1".parse().unwrap()), sub());
        assert_eq!(reached(&registry, &Target::Client(client("a"))), 2);
        assert_eq!(reached(&registry, &Target::Client(client("b"))), 1);
        assert_eq!(reached(&registry, &Target::Client(client("zz"))), 0);
        assert_eq!(reached(&registry, &Target::Topic(topic("news"))), 2);
        assert_eq!(reached(&registry, &Target::Topic(topic("sport"))), 1);
        assert_eq!(reached(&registry, &Target::Broadcast), 3, "task streams take no broadcast");
        let mut watchers = 0;
        registry.for_each(Reach::Task(&"j1".parse().unwrap()), |_, _| watchers += 1);
        assert_eq!(watchers, 1);
        assert_eq!(registry.connection_count(), 3);
    }

    #[test]
    fn unregister_cleans_every_index() {
        let mut registry = Registry::default();
        let id = registry.register(client_feed("a", &["news"]), Arc::new(Subscriber::new(4)));
        let task =
            registry.register(Feed::Task("j1".parse().unwrap()), Arc::new(Subscriber::new(4)));
        assert!(registry.unregister(id).is_some());
        assert!(registry.unregister(id).is_none());
        assert!(registry.unregister(task).is_some());
        assert!(
            registry.conns.is_empty()
                && registry.clients.is_empty()
                && registry.topics.is_empty()
                && registry.tasks.is_empty()
        );
        assert_eq!(registry.watching_tasks, 0);
    }

    #[test]
    fn presence_merges_tabs() {
        let mut registry = Registry::default();
        registry.register(client_feed("b", &["x"]), Arc::new(Subscriber::new(4)));
        registry.register(client_feed("a", &["y"]), Arc::new(Subscriber::new(4)));
        registry.register(client_feed("a", &["x", "y"]), Arc::new(Subscriber::new(4)));
        let presence = registry.presence();
        assert_eq!(presence.len(), 2);
        assert_eq!(presence[0].client_id, client("a"));
        assert_eq!(presence[0].connections, 2);
        assert_eq!(presence[0].topics, vec![topic("x"), topic("y")]);
    }
}
