//! Task streams: a task advances through steps, every change becomes an event in the
//! task's own log, watchers get the log so far and then live events, and the final
//! event ends their streams.
//!
//! Any worker drives a task through [`Jobs::progress`] and [`Jobs::finish`];
//! [`Jobs::start_demo`] is a built-in simulated worker. Finished tasks are kept for
//! [`JobOptions::ttl`] so a late page can still read the result, then removed by a
//! sweeper task; a task nobody updates for [`JobOptions::idle_timeout`] is failed, so
//! abandoned tasks cannot pile up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::lock;
use super::subscriber::{Subscriber, Subscription};
use super::types::DisconnectReason;
use crate::metrics::Metrics;
use crate::sse;

/// A task's log keeps at most this many events; older progress events are dropped
/// (the latest progress says where the task is, so nothing a page needs is lost).
const MAX_EVENTS_PER_JOB: usize = 1000;

/// How often the sweeper looks for expired and abandoned tasks.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

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
    Unavailable(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("no task with this id (finished tasks expire)"),
            Self::AlreadyFinished => f.write_str("the task has already finished"),
            Self::StepOutOfRange { step, total } => write!(f, "step {step} is outside 0..={total}"),
            Self::TooMany => f.write_str("too many tasks on this node; retry later"),
            Self::ShuttingDown => f.write_str("this node is shutting down; retry on another node"),
            Self::Unavailable(error) => write!(f, "the message broker is unavailable: {error}"),
        }
    }
}

impl std::error::Error for JobError {}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It succeeded with this result.
    Result(Value),
    /// It failed with this error.
    Error(String),
}

/// A task's state, as `GET /jobs/ID` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSnapshot {
    /// The task's id.
    pub id: String,
    /// What the task is, for people.
    pub title: String,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
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

/// A handle to this node's tasks. Clones share the same state.
#[derive(Debug, Clone)]
pub struct Jobs {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// A `std` mutex: every operation is a short map update that never awaits.
    jobs: Mutex<HashMap<String, Job>>,
    options: JobOptions,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

#[derive(Debug)]
struct Job {
    title: String,
    total: u64,
    step: u64,
    message: Option<String>,
    outcome: Option<Outcome>,
    created_at: SystemTime,
    updated: Instant,
    /// Encoded events; `events[0]` has id `first_event_id`.
    events: VecDeque<Bytes>,
    first_event_id: u64,
    watchers: HashMap<u64, Arc<Subscriber>>,
    next_watcher: u64,
}

impl Job {
    fn last_event_id(&self) -> u64 {
        self.first_event_id + self.events.len() as u64 - 1
    }

    fn record(&mut self, name: &str, data: &Value) {
        let id = self.last_event_id() + 1;
        let frame = sse::encode_event(Some(&id.to_string()), Some(name), &data.to_string());
        for watcher in self.watchers.values() {
            watcher.offer(id, &frame);
        }
        self.events.push_back(frame);
        if self.events.len() > MAX_EVENTS_PER_JOB {
            self.events.pop_front();
            self.first_event_id += 1;
        }
        self.updated = Instant::now();
    }

    fn record_progress(&mut self) {
        let mut data = json!({"step": self.step, "total": self.total});
        if let Some(message) = &self.message {
            data["message"] = json!(message);
        }
        self.record("progress", &data);
    }

    fn end(&mut self, outcome: Outcome) {
        let data = match &outcome {
            Outcome::Result(result) => json!({"result": result}),
            Outcome::Error(error) => json!({"error": error}),
        };
        self.record("done", &data);
        self.outcome = Some(outcome);
        for watcher in self.watchers.values() {
            watcher.close(DisconnectReason::Finished);
        }
    }
}

impl Jobs {
    pub(crate) fn new(
        options: JobOptions,
        queue_capacity: usize,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let jobs = Self {
            shared: Arc::new(Shared {
                jobs: Mutex::default(),
                options,
                queue_capacity,
                metrics,
                shutdown,
            }),
        };
        tokio::spawn(sweep(Arc::downgrade(&jobs.shared)));
        jobs
    }

    /// Starts a task of `total` steps; its first event is progress at step 0.
    ///
    /// # Errors
    /// [`JobError::TooMany`] when the node holds `max_jobs` tasks,
    /// [`JobError::ShuttingDown`] during shutdown.
    pub fn create(&self, title: String, total: u64) -> Result<String, JobError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let mut jobs = lock(&self.shared.jobs);
        if jobs.len() >= self.shared.options.max_jobs {
            return Err(JobError::TooMany);
        }
        let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        let mut job = Job {
            title,
            total,
            step: 0,
            message: None,
            outcome: None,
            created_at: SystemTime::now(),
            updated: Instant::now(),
            events: VecDeque::new(),
            first_event_id: 1,
            watchers: HashMap::new(),
            next_watcher: 0,
        };
        job.record_progress();
        jobs.insert(id.clone(), job);
        drop(jobs);
        self.shared.metrics.job_created();
        Ok(id)
    }

    /// Records progress and sends it to the task's watchers.
    ///
    /// # Errors
    /// [`JobError::NotFound`], [`JobError::AlreadyFinished`] or
    /// [`JobError::StepOutOfRange`].
    pub fn progress(&self, id: &str, step: u64, message: Option<String>) -> Result<(), JobError> {
        self.update(id, |job| {
            if step > job.total {
                return Err(JobError::StepOutOfRange { step, total: job.total });
            }
            job.step = step;
            job.message = message;
            job.record_progress();
            Ok(())
        })
    }

    /// Ends the task; its watchers get the final `done` event and their streams end.
    ///
    /// # Errors
    /// [`JobError::NotFound`] or [`JobError::AlreadyFinished`].
    pub fn finish(&self, id: &str, outcome: Outcome) -> Result<(), JobError> {
        self.update(id, |job| {
            job.end(outcome);
            Ok(())
        })?;
        self.shared.metrics.job_finished();
        Ok(())
    }

    fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Job) -> Result<(), JobError>,
    ) -> Result<(), JobError> {
        let mut jobs = lock(&self.shared.jobs);
        let job = jobs.get_mut(id).ok_or(JobError::NotFound)?;
        if job.outcome.is_some() {
            return Err(JobError::AlreadyFinished);
        }
        change(job)
    }

    /// The task's current state.
    ///
    /// # Errors
    /// [`JobError::NotFound`].
    pub fn snapshot(&self, id: &str) -> Result<JobSnapshot, JobError> {
        let jobs = lock(&self.shared.jobs);
        let job = jobs.get(id).ok_or(JobError::NotFound)?;
        let (state, result, error) = match &job.outcome {
            None => ("running", None, None),
            Some(Outcome::Result(result)) => ("done", Some(result.clone()), None),
            Some(Outcome::Error(error)) => ("failed", None, Some(error.clone())),
        };
        Ok(JobSnapshot {
            id: id.to_owned(),
            title: job.title.clone(),
            state,
            step: job.step,
            total: job.total,
            message: job.message.clone(),
            result,
            error,
            created_at: humantime::format_rfc3339_seconds(job.created_at).to_string(),
            last_event_id: job.last_event_id().to_string(),
        })
    }

    /// Watches a task from after `last_event_id` (from the start when `None` or not a
    /// number this task issued).
    ///
    /// # Errors
    /// [`JobError::NotFound`], or [`JobError::ShuttingDown`] during shutdown.
    pub fn watch(&self, id: &str, last_event_id: Option<&str>) -> Result<Watch, JobError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let mut jobs = lock(&self.shared.jobs);
        let job = jobs.get_mut(id).ok_or(JobError::NotFound)?;
        let last_seen = last_event_id
            .and_then(|text| text.parse::<u64>().ok())
            .filter(|&seen| seen <= job.last_event_id());
        if job.outcome.is_some() && last_seen == Some(job.last_event_id()) {
            return Ok(Watch::AlreadyFinished);
        }
        let skip =
            last_seen.map_or(0, |seen| (seen + 1).saturating_sub(job.first_event_id) as usize);
        let replay: VecDeque<Bytes> = job.events.iter().skip(skip).cloned().collect();
        let subscriber = Arc::new(Subscriber::new(self.shared.queue_capacity));
        let watcher = job.next_watcher;
        job.next_watcher += 1;
        if job.outcome.is_some() {
            subscriber.close(DisconnectReason::Finished);
        } else {
            job.watchers.insert(watcher, subscriber.clone());
        }
        drop(jobs);
        self.shared.metrics.connection_opened();
        let shared = Arc::downgrade(&self.shared);
        let id = id.to_owned();
        let unregister = Box::new(move |reason| {
            if let Some(shared) = shared.upgrade() {
                if let Some(job) = lock(&shared.jobs).get_mut(&id) {
                    job.watchers.remove(&watcher);
                }
                shared.metrics.connection_closed(reason);
            }
        });
        Ok(Watch::Stream(Subscription::new(replay, None, subscriber, unregister)))
    }

    /// Starts the built-in simulated task: `steps` steps, one every `interval`, then a
    /// result. Returns its id.
    ///
    /// # Errors
    /// As [`Jobs::create`].
    pub fn start_demo(&self, steps: u64, interval: Duration) -> Result<String, JobError> {
        let id = self.create(format!("Demo task ({steps} steps)"), steps)?;
        let jobs = self.clone();
        let job = id.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            for step in 1..=steps {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = jobs.shared.shutdown.cancelled() => return,
                }
                if jobs.progress(&job, step, Some(format!("step {step} of {steps}"))).is_err() {
                    return;
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            let result = json!(format!("finished {steps} steps in {seconds:.1} s"));
            let _ = jobs.finish(&job, Outcome::Result(result));
        });
        Ok(id)
    }

    /// Ends every watcher's stream; tasks stay as they are.
    pub(crate) fn shutdown(&self) {
        for job in lock(&self.shared.jobs).values() {
            for watcher in job.watchers.values() {
                watcher.close(DisconnectReason::Shutdown);
            }
        }
    }

    /// How many tasks the node holds.
    pub fn len(&self) -> usize {
        lock(&self.shared.jobs).len()
    }

    /// Whether the node holds no task.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes finished tasks older than the TTL and fails abandoned ones.
    fn sweep_once(&self) {
        let options = &self.shared.options;
        let mut jobs = lock(&self.shared.jobs);
        let mut abandoned = 0;
        jobs.retain(|_, job| {
            let idle = job.updated.elapsed();
            match job.outcome {
                Some(_) => idle < options.ttl,
                None if idle >= options.idle_timeout => {
                    let timeout = humantime::format_duration(options.idle_timeout);
                    job.end(Outcome::Error(format!("abandoned: no update for {timeout}")));
                    abandoned += 1;
                    true
                }
                None => true,
            }
        });
        drop(jobs);
        for _ in 0..abandoned {
            self.shared.metrics.job_finished();
        }
    }
}

/// Sweeps until the hub is gone or shutting down.
async fn sweep(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.shutdown.is_cancelled() {
            return;
        }
        Jobs { shared }.sweep_once();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(options: JobOptions) -> Jobs {
        Jobs::new(options, 16, Arc::new(Metrics::default()), CancellationToken::new())
    }

    const OPTIONS: JobOptions = JobOptions {
        ttl: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(600),
        max_jobs: 10,
    };

    #[tokio::test(start_paused = true)]
    async fn finished_tasks_expire_after_the_ttl() {
        let jobs = jobs(OPTIONS);
        let id = jobs.create("t".to_owned(), 1).unwrap();
        jobs.finish(&id, Outcome::Result(json!(1))).unwrap();
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(jobs.snapshot(&id).unwrap().state, "done");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(jobs.snapshot(&id), Err(JobError::NotFound));
        assert!(jobs.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn running_tasks_do_not_expire_while_updated_but_fail_when_abandoned() {
        let jobs = jobs(OPTIONS);
        let id = jobs.create("t".to_owned(), 100).unwrap();
        for step in 1..=5 {
            tokio::time::sleep(Duration::from_secs(500)).await;
            jobs.progress(&id, step, None).unwrap();
        }
        assert_eq!(jobs.snapshot(&id).unwrap().state, "running");
        tokio::time::sleep(Duration::from_secs(601)).await;
        let snapshot = jobs.snapshot(&id).unwrap();
        assert_eq!(snapshot.state, "failed");
        assert_eq!(snapshot.error.as_deref(), Some("abandoned: no update for 10m"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_demo_task_takes_its_steps_on_time() {
        let jobs = jobs(OPTIONS);
        let id = jobs.start_demo(3, Duration::from_secs(1)).unwrap();
        let Watch::Stream(mut watch) = jobs.watch(&id, None).unwrap() else { panic!("running") };
        let started = Instant::now();
        let mut frames = Vec::new();
        while let super::super::Next::Frame(frame) = watch.next().await {
            frames.push(String::from_utf8(frame.to_vec()).unwrap());
        }
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert_eq!(frames.len(), 5, "{frames:?}");
        assert!(frames[3].starts_with(
            "id: 4\nevent: progress\ndata: {\"step\":3,\"total\":3,\"message\":\"step 3 of 3\"}"
        ));
        assert!(
            frames[4].starts_with(
                "id: 5\nevent: done\ndata: {\"result\":\"finished 3 steps in 3.0 s\"}"
            )
        );
    }
}
