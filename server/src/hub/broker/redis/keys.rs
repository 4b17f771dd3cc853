//! Every Redis key and channel name Herald uses, under the configured prefix
//! (`--redis-prefix`), in one place: the broker's and the task store's, so that no
//! two parts of the node can disagree on a name. Keys are plain (no hash tags): one
//! Redis, or a primary with replicas, never Redis Cluster.

use crate::hub::types::{JobId, Target};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }
    /// The prefix every name starts with.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
    pub(crate) fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }
    pub(crate) fn seq(&self) -> String {
        format!("{}:seq", self.prefix)
    }
    pub(crate) fn age_log(&self) -> String {
        format!("{}:age", self.prefix)
    }
    pub(crate) fn history(&self, target: &Target) -> String {
        format!("{}:h:{}", self.prefix, target.key())
    }
    pub(crate) fn evicted(&self, target: &Target) -> String {
        format!("{}:e:{}", self.prefix, target.key())
    }
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub(crate) fn node_prefix(&self) -> String {
        format!("{}:node:", self.prefix)
    }
    pub(crate) fn node_clients(&self, node: &str) -> String {
        format!("{}:node:{node}:clients", self.prefix)
    }
    pub(crate) fn node_counts(&self, node: &str) -> String {
        format!("{}:node:{node}:counts", self.prefix)
    }
    pub(crate) fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }
    /// A task's hash: title, total, step, message, state, result or error, last id.
    pub(crate) fn job(&self, id: &JobId) -> String {
        format!("{}:job:{id}", self.prefix)
    }
    /// What [`job`](Self::job) puts before the id (scripts that walk many tasks).
    pub(crate) fn job_prefix(&self) -> String {
        format!("{}:job:", self.prefix)
    }
    /// A task's encoded events, oldest first (`sweep.lua` derives it as `<job>:events`).
    pub(crate) fn job_events(&self, id: &JobId) -> String {
        format!("{}:job:{id}:events", self.prefix)
    }
    /// Running tasks by idle deadline.
    pub(crate) fn jobs_running(&self) -> String {
        format!("{}:jobs:running", self.prefix)
    }
    /// Finished tasks by expiry.
    pub(crate) fn jobs_finished(&self) -> String {
        format!("{}:jobs:finished", self.prefix)
    }
}
