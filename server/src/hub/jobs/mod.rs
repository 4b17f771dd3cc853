//! Task streams: a task advances through steps, every change becomes an event in the
//! task's own log, watchers get the log so far and then live events, and the final
//! event ends their streams.
//!
//! Any worker drives a task through [`Jobs::progress`] and [`Jobs::finish`];
//! [`Jobs::start_demo`] is a built-in simulated worker. Finished tasks are kept for
//! [`JobOptions::ttl`] so a late page can still read the result, then removed; a task
//! nobody updates for [`JobOptions::idle_timeout`] is failed, so abandoned tasks
//! cannot pile up. Tasks live where the hub's broker keeps things: in this process
//! ([`memory`]) or in Redis ([`redis`]), where any node may drive or watch any task.

mod memory;
pub(crate) mod redis;

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::broker::Unavailable;
use super::subscriber::Subscription;
use super::types::JobId;

pub(crate) use memory::MemoryJobs;
use redis::RedisJobs;

/// A task's log keeps at most this many events; older progress events are dropped
/// (the latest progress says where the task is, so nothing a page needs is lost).
pub(crate) const MAX_EVENTS_PER_JOB: usize = 1000;

/// How often the sweeper looks for expired and abandoned tasks.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Tunables for task streams.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// How long a finished task stays readable.
    pub ttl: Duration,
    /// A running task with no update for this long is failed as abandoned.
    pub idle_timeout: Duration,
    /// Tasks held at once (running and finished); more are refused.
    pub max_jobs: usize,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(3600),
            max_jobs: 10_000,
        }
    }
}

/// Why a task operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// No task has this id (or it expired).
    NotFound,
    /// The task already ended; it takes no more progress or results.
    AlreadyFinished,
    /// A step outside `0..=total`.
    StepOutOfRange {
        /// The step given.
        step: u64,
        /// The task's total.
        total: u64,
    },
    /// The node holds as many tasks as it is allowed to.
    TooMany,
    /// The node is shutting down.
    ShuttingDown,
    /// The broker that holds tasks cannot be reached.
    Unavailable(Unavailable),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("no task with this id (finished tasks expire)"),
            Self::AlreadyFinished => f.write_str("the task has already finished"),
            Self::StepOutOfRange { step, total } => write!(f, "step {step} is outside 0..={total}"),
            Self::TooMany => f.write_str("too many tasks on this node; retry later"),
            Self::ShuttingDown => f.write_str("this node is shutting down; retry on another node"),
            Self::Unavailable(unavailable) => unavailable.fmt(f),
        }
    }
}

impl std::error::Error for JobError {}

impl JobError {
    /// Everything known about the refusal, for the log: a broker's own error text too,
    /// which the answer to a client leaves out.
    pub fn cause(&self) -> String {
        match self {
            Self::Unavailable(unavailable) => unavailable.cause().to_owned(),
            other => other.to_string(),
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It succeeded with this result.
    Result(Value),
    /// It failed with this error.
    Error(String),
}

/// Where a task is in its life: running until it ends, done or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Still taking progress.
    Running,
    /// Ended with a result.
    Done,
    /// Ended with an error (given by its worker, or abandoned).
    Failed,
}

impl JobState {
    /// The name `GET /jobs/ID` reports and Redis stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        match name {
            "running" => Ok(Self::Running),
            "done" => Ok(Self::Done),
            "failed" => Ok(Self::Failed),
            _ => Err(()),
        }
    }
}

/// A task's state, as `GET /jobs/ID` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSnapshot {
    /// The task's id.
    pub id: JobId,
    /// What the task is, for people.
    pub title: String,
    /// Running, done or failed.
    pub state: JobState,
    /// The last step reported.
    pub step: u64,
    /// The number of steps.
    pub total: u64,
    /// The last progress message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The result, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, once failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the task was created (RFC 3339).
    pub created_at: String,
    /// The id of the task's last event so far.
    pub last_event_id: String,
}

/// What watching a task gives.
#[derive(Debug)]
pub enum Watch {
    /// The task's events after the given id, then live ones; ends after the final event.
    Stream(Subscription),
    /// The watcher already saw the final event: there is nothing more, ever.
    AlreadyFinished,
}

/// A handle to the tasks, wherever the hub's broker keeps them. Clones share state.
#[derive(Debug, Clone)]
pub struct Jobs {
    store: Store,
}

#[derive(Debug, Clone)]
enum Store {
    /// Tasks in this process.
    Memory(MemoryJobs),
    /// Tasks in Redis, shared by every node.
    Redis(std::sync::Arc<RedisJobs>),
}

impl From<MemoryJobs> for Jobs {
    fn from(jobs: MemoryJobs) -> Self {
        Self { store: Store::Memory(jobs) }
    }
}

impl From<std::sync::Arc<RedisJobs>> for Jobs {
    fn from(jobs: std::sync::Arc<RedisJobs>) -> Self {
        Self { store: Store::Redis(jobs) }
    }
}

impl Jobs {
    /// Starts a task of `total` steps; its first event is progress at step 0.
    ///
    /// # Errors
    /// [`JobError::TooMany`] when `max_jobs` tasks are held,
    /// [`JobError::ShuttingDown`] during shutdown, [`JobError::Unavailable`].
    pub async fn create(&self, title: String, total: u64) -> Result<JobId, JobError> {
        match &self.store {
            Store::Memory(jobs) => jobs.create(title, total),
            Store::Redis(jobs) => jobs.create(title, total).await,
        }
    }

    /// Records progress and sends it to the task's watchers.
    ///
    /// # Errors
    /// [`JobError::NotFound`], [`JobError::AlreadyFinished`],
    /// [`JobError::StepOutOfRange`] or [`JobError::Unavailable`].
    pub async fn progress(
        &self,
        id: &JobId,
        step: u64,
        message: Option<String>,
    ) -> Result<(), JobError> {
        match &self.store {
            Store::Memory(jobs) => jobs.progress(id, step, message),
            Store::Redis(jobs) => jobs.progress(id, step, message).await,
        }
    }

    /// Ends the task; its watchers get the final `done` event and their streams end.
    ///
    /// # Errors
    /// [`JobError::NotFound`], [`JobError::AlreadyFinished`] or
    /// [`JobError::Unavailable`].
    pub async fn finish(&self, id: &JobId, outcome: Outcome) -> Result<(), JobError> {
        match &self.store {
            Store::Memory(jobs) => jobs.finish(id, outcome),
            Store::Redis(jobs) => jobs.finish(id, outcome).await,
        }
    }

    /// The task's current state.
    ///
    /// # Errors
    /// [`JobError::NotFound`] or [`JobError::Unavailable`].
    pub async fn snapshot(&self, id: &JobId) -> Result<JobSnapshot, JobError> {
        match &self.store {
            Store::Memory(jobs) => jobs.snapshot(id),
            Store::Redis(jobs) => jobs.snapshot(id).await,
        }
    }

    /// Watches a task from after `last_event_id` (from the start when `None` or not a
    /// number this task issued).
    ///
    /// # Errors
    /// [`JobError::NotFound`], [`JobError::ShuttingDown`] or
    /// [`JobError::Unavailable`].
    pub async fn watch(&self, id: &JobId, last_event_id: Option<&str>) -> Result<Watch, JobError> {
        match &self.store {
            Store::Memory(jobs) => jobs.watch(id, last_event_id),
            Store::Redis(jobs) => jobs.watch(id, last_event_id).await,
        }
    }

    /// Starts the built-in simulated task: `steps` steps, one every `interval`, then a
    /// result. Returns its id. It runs on this node, driving the task like any worker.
    ///
    /// # Errors
    /// As [`Jobs::create`].
    pub async fn start_demo(&self, steps: u64, interval: Duration) -> Result<JobId, JobError> {
        let id = self.create(format!("Demo task ({steps} steps)"), steps).await?;
        let jobs = self.clone();
        let job = id.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            for step in 1..=steps {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = jobs.stopped() => return,
                }
                let message = Some(format!("step {step} of {steps}"));
                if let Err(error) = jobs.progress(&job, step, message).await {
                    tracing::warn!("demo task {job} stopped: {}", error.cause());
                    return;
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            let result = json!(format!("finished {steps} steps in {seconds:.1} s"));
            if let Err(error) = jobs.finish(&job, Outcome::Result(result)).await {
                tracing::warn!("demo task {job} could not finish: {}", error.cause());
            }
        });
        Ok(id)
    }

    /// Resolves when the node starts shutting down.
    async fn stopped(&self) {
        match &self.store {
            Store::Memory(jobs) => jobs.stopped().await,
            Store::Redis(jobs) => jobs.stopped().await,
        }
    }

    /// How many tasks this process holds (tasks in Redis are not counted here).
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Memory(jobs) => jobs.len(),
            Store::Redis(_) => 0,
        }
    }

    /// Whether this process holds no task.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The number a task event id stands for: decimal digits only (`+2`, ` 2` or `2.0`
/// is no id this hub gave, and is treated as unknown: everything is replayed).
pub(crate) fn event_number(id: &str) -> Option<u64> {
    if id.is_empty() || !id.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// The data of a task's final event.
pub(crate) fn done_data(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Result(result) => json!({"result": result}),
        Outcome::Error(error) => json!({"error": error}),
    }
}

/// Why a task nobody updated was failed.
pub(crate) fn abandoned_error(idle_timeout: Duration) -> String {
    format!("abandoned: no update for {}", humantime::format_duration(idle_timeout))
}
