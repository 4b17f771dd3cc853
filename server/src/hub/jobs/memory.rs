//! Tasks held in this process (the in-memory broker's).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    JobError, JobOptions, JobSnapshot, JobState, MAX_EVENTS_PER_JOB, Outcome, SWEEP_INTERVAL, Watch,
};
use crate::hub::fanout::Fanout;
use crate::hub::lock;
use crate::hub::subscriber::Subscriber;
use crate::hub::types::{DisconnectReason, JobId};
use crate::metrics::Metrics;
use crate::sse;

/// Tasks in this process. Clones share the same state.
#[derive(Debug, Clone)]
pub(crate) struct MemoryJobs {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// A `std` mutex: every operation is a short map update that never awaits.
    /// Locked before the fan-out's lock when both are held.
    jobs: Mutex<HashMap<JobId, Job>>,
    options: JobOptions,
    queue_capacity: usize,
    /// Where the streams watching a task are.
    fanout: Arc<Fanout>,
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
}

impl Job {
    fn last_event_id(&self) -> u64 {
        self.first_event_id + self.events.len() as u64 - 1
    }

    /// Appends an event to the log and hands it to the task's watchers (`last`: it
    /// ends their streams).
    fn record(&mut self, job: &JobId, fanout: &Fanout, name: &str, data: &Value, last: bool) {
        let id = self.last_event_id() + 1;
        let frame = sse::encode_event(Some(&id.to_string()), Some(name), &data.to_string());
        fanout.deliver_task_event(job, id, &frame, last);
        self.events.push_back(frame);
        if self.events.len() > MAX_EVENTS_PER_JOB {
            self.events.pop_front();
            self.first_event_id += 1;
        }
        self.updated = Instant::now();
    }

    fn record_progress(&mut self, job: &JobId, fanout: &Fanout) {
        let mut data = json!({"step": self.step, "total": self.total});
        if let Some(message) = &self.message {
            data["message"] = json!(message);
        }
        self.record(job, fanout, "progress", &data, false);
    }

    fn end(&mut self, job: &JobId, fanout: &Fanout, outcome: Outcome) {
        self.record(job, fanout, "done", &super::done_data(&outcome), true);
        self.outcome = Some(outcome);
    }
}

impl MemoryJobs {
    pub(crate) fn new(
        options: JobOptions,
        queue_capacity: usize,
        fanout: Arc<Fanout>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let jobs = Self {
            shared: Arc::new(Shared {
                jobs: Mutex::default(),
                options,
                queue_capacity,
                fanout,
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
    pub(crate) fn create(&self, title: String, total: u64) -> Result<JobId, JobError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let mut jobs = lock(&self.shared.jobs);
        if jobs.len() >= self.shared.options.max_jobs {
            return Err(JobError::TooMany);
        }
        let id = JobId::random();
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
        };
        job.record_progress(&id, &self.shared.fanout);
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
    pub(crate) fn progress(
        &self,
        id: &JobId,
        step: u64,
        message: Option<String>,
    ) -> Result<(), JobError> {
        self.update(id, |job, fanout| {
            if step > job.total {
                return Err(JobError::StepOutOfRange { step, total: job.total });
            }
            job.step = step;
            job.message = message;
            job.record_progress(id, fanout);
            Ok(())
        })
    }

    /// Ends the task; its watchers get the final `done` event and their streams end.
    ///
    /// # Errors
    /// [`JobError::NotFound`] or [`JobError::AlreadyFinished`].
    pub(crate) fn finish(&self, id: &JobId, outcome: Outcome) -> Result<(), JobError> {
        self.update(id, |job, fanout| {
            job.end(id, fanout, outcome);
            Ok(())
        })?;
        self.shared.metrics.job_finished();
        Ok(())
    }

    fn update(
        &self,
        id: &JobId,
        change: impl FnOnce(&mut Job, &Fanout) -> Result<(), JobError>,
    ) -> Result<(), JobError> {
        let mut jobs = lock(&self.shared.jobs);
        let job = jobs.get_mut(id).ok_or(JobError::NotFound)?;
        if job.outcome.is_some() {
            return Err(JobError::AlreadyFinished);
        }
        change(job, &self.shared.fanout)
    }

    /// The task's current state.
    ///
    /// # Errors
    /// [`JobError::NotFound`].
    pub(crate) fn snapshot(&self, id: &JobId) -> Result<JobSnapshot, JobError> {
        let jobs = lock(&self.shared.jobs);
        let job = jobs.get(id).ok_or(JobError::NotFound)?;
        let (state, result, error) = match &job.outcome {
            None => (JobState::Running, None, None),
            Some(Outcome::Result(result)) => (JobState::Done, Some(result.clone()), None),
            Some(Outcome::Error(error)) => (JobState::Failed, None, Some(error.clone())),
        };
        Ok(JobSnapshot {
            id: id.clone(),
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
    pub(crate) fn watch(&self, id: &JobId, last_event_id: Option<&str>) -> Result<Watch, JobError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        // The log is read and the watcher registered under the tasks' lock, which
        // every new event takes: none falls in between, none comes twice.
        let jobs = lock(&self.shared.jobs);
        let job = jobs.get(id).ok_or(JobError::NotFound)?;
        let last_seen =
            last_event_id.and_then(super::event_number).filter(|&seen| seen <= job.last_event_id());
        if job.outcome.is_some() && last_seen == Some(job.last_event_id()) {
            return Ok(Watch::AlreadyFinished);
        }
        let skip =
            last_seen.map_or(0, |seen| (seen + 1).saturating_sub(job.first_event_id) as usize);
        let replay: VecDeque<Bytes> = job.events.iter().skip(skip).cloned().collect();
        let subscriber = Arc::new(Subscriber::new(self.shared.queue_capacity));
        let fanout = &self.shared.fanout;
        let conn = fanout.watch_task(id.clone(), subscriber.clone());
        if job.outcome.is_some() {
            subscriber.close(DisconnectReason::Finished);
        }
        drop(jobs);
        Ok(Watch::Stream(fanout.subscription(conn, subscriber).with_replay(replay, None)))
    }

    /// How many tasks the node holds.
    pub(crate) fn len(&self) -> usize {
        lock(&self.shared.jobs).len()
    }

    /// Resolves when the node starts shutting down.
    pub(crate) async fn stopped(&self) {
        self.shared.shutdown.cancelled().await;
    }

    /// Removes finished tasks older than the TTL and fails abandoned ones.
    fn sweep_once(&self) {
        let options = &self.shared.options;
        let mut jobs = lock(&self.shared.jobs);
        let mut abandoned = 0;
        jobs.retain(|id, job| {
            let idle = job.updated.elapsed();
            match job.outcome {
                Some(_) => idle < options.ttl,
                None if idle >= options.idle_timeout => {
                    let error = super::abandoned_error(options.idle_timeout);
                    job.end(id, &self.shared.fanout, Outcome::Error(error));
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
        MemoryJobs { shared }.sweep_once();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn jobs(options: JobOptions) -> MemoryJobs {
        let metrics = Arc::new(Metrics::default());
        let fanout = Arc::new(Fanout::new(metrics.clone(), None, false, Default::default()));
        MemoryJobs::new(options, 16, fanout, metrics, CancellationToken::new())
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
        assert_eq!(jobs.snapshot(&id).unwrap().state, JobState::Done);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(jobs.snapshot(&id), Err(JobError::NotFound));
        assert_eq!(jobs.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn running_tasks_do_not_expire_while_updated_but_fail_when_abandoned() {
        let jobs = jobs(OPTIONS);
        let id = jobs.create("t".to_owned(), 100).unwrap();
        for step in 1..=5 {
            tokio::time::sleep(Duration::from_secs(500)).await;
            jobs.progress(&id, step, None).unwrap();
        }
        assert_eq!(jobs.snapshot(&id).unwrap().state, JobState::Running);
        tokio::time::sleep(Duration::from_secs(601)).await;
        let snapshot = jobs.snapshot(&id).unwrap();
        assert_eq!(snapshot.state, JobState::Failed);
        assert_eq!(snapshot.error.as_deref(), Some("abandoned: no update for 10m"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_demo_task_takes_its_steps_on_time() {
        let jobs = crate::hub::Jobs::from(jobs(OPTIONS));
        let id = jobs.start_demo(3, Duration::from_secs(1)).await.unwrap();
        let Watch::Stream(mut watch) = jobs.watch(&id, None).await.unwrap() else {
            panic!("running")
        };
        let started = Instant::now();
        let mut frames = Vec::new();
        while let crate::hub::Next::Frame(frame) = watch.next().await {
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
