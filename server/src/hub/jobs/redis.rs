//! Tasks in Redis: any node may create, drive or watch any task, and a finished task
//! expires in Redis by itself.
//!
//! A task is a hash (`{prefix}:job:{id}`: title, total, step, message, state,
//! result or error, the last event id) and a list of its encoded events
//! (`…:events`, at most [`MAX_EVENTS_PER_JOB`]). Every change is one Lua script
//! (`update.lua`) that checks the state, appends the event with the next id and
//! `PUBLISH`es it on the bus; each node hands it to its own watchers. Two sorted
//! sets hold deadlines: running tasks by idle timeout (the sweep fails them) and
//! finished ones by expiry (so the task limit counts only live tasks).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use bytes::Bytes;
use redis::Script;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{
    JobError, JobOptions, JobSnapshot, JobState, MAX_EVENTS_PER_JOB, Outcome, SWEEP_INTERVAL,
    Watch, abandoned_error, done_data,
};
use crate::hub::RedisOptions;
use crate::hub::broker::Unavailable;
use crate::hub::broker::redis::replicas::{NotReplicated, invoke};
use crate::hub::broker::redis::{Keys, Link, millis};
use crate::hub::fanout::Fanout;
use crate::hub::subscriber::Subscriber;
use crate::hub::types::{DisconnectReason, JobId};
use crate::metrics::Metrics;
use crate::sse;

static CREATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/create.lua")));
static UPDATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/update.lua")));
static SWEEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/sweep.lua")));

/// Tasks shared through Redis.
pub(crate) struct RedisJobs {
    link: Arc<Link>,
    /// Replicas that must confirm a change before it is acknowledged
    /// (`--redis-min-replicas`), as for pushes.
    min_replicas: usize,
    keys: Keys,
    options: JobOptions,
    queue_capacity: usize,
    /// Where the streams watching a task are; the broker hands them task events
    /// from the bus.
    fanout: Arc<Fanout>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for RedisJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisJobs").field("prefix", &self.keys.prefix()).finish_non_exhaustive()
    }
}

impl RedisJobs {
    /// Tasks on the Redis primary `link` leads to, under `redis`'s prefix, each change
    /// confirmed by its `min_replicas`; starts the sweep that fails abandoned tasks,
    /// which runs until `shutdown`.
    pub(crate) fn start(
        link: Arc<Link>,
        redis: &RedisOptions,
        options: JobOptions,
        queue_capacity: usize,
        fanout: Arc<Fanout>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let keys = Keys::new(&redis.prefix);
        let min_replicas = redis.min_replicas;
        let jobs = Arc::new(Self {
            link,
            min_replicas,
            keys,
            options,
            queue_capacity,
            fanout,
            metrics,
            shutdown,
        });
        tokio::spawn(sweep(Arc::downgrade(&jobs)));
        jobs
    }

    pub(crate) async fn create(&self, title: String, total: u64) -> Result<JobId, JobError> {
        if self.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let id = JobId::random();
        let first = sse::encode_event(
            None,
            Some("progress"),
            &json!({"step": 0, "total": total}).to_string(),
        );
        let created_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let mut invocation = CREATE.prepare_invoke();
        invocation
            .key(self.keys.job(&id))
            .key(self.keys.job_events(&id))
            .key(self.keys.jobs_running())
            .key(self.keys.jobs_finished())
            .arg(id.as_str())
            .arg(title)
            .arg(total)
            .arg(created_at)
            .arg(&first[..])
            .arg(self.options.max_jobs)
            .arg(millis(self.options.idle_timeout))
            .arg(millis(self.options.ttl));
        let created: bool = self.invoke(&invocation).await?;
        if !created {
            return Err(JobError::TooMany);
        }
        self.metrics.job_created();
        Ok(id)
    }

    pub(crate) async fn progress(
        &self,
        id: &JobId,
        step: u64,
        message: Option<String>,
    ) -> Result<(), JobError> {
        let message = message.map(|message| json!(message).to_string()).unwrap_or_default();
        self.update(id, "progress", step, message.as_bytes(), "").await
    }

    pub(crate) async fn finish(&self, id: &JobId, outcome: Outcome) -> Result<(), JobError> {
        let body = sse::encode_event(None, Some("done"), &done_data(&outcome).to_string());
        let (kind, stored) = match &outcome {
            Outcome::Result(result) => ("result", result.to_string()),
            Outcome::Error(error) => ("error", error.clone()),
        };
        self.update(id, kind, 0, &body, &stored).await?;
        self.metrics.job_finished();
        Ok(())
    }

    async fn update(
        &self,
        id: &JobId,
        kind: &str,
        step: u64,
        body_or_message: &[u8],
        stored: &str,
    ) -> Result<(), JobError> {
        let mut invocation = UPDATE.prepare_invoke();
        invocation
            .key(self.keys.job(id))
            .key(self.keys.job_events(id))
            .key(self.keys.jobs_running())
            .key(self.keys.jobs_finished())
            .key(self.keys.bus())
            .arg(id.as_str())
            .arg(kind)
            .arg(step)
            .arg(body_or_message)
            .arg(stored)
            .arg(millis(self.options.idle_timeout))
            .arg(millis(self.options.ttl))
            .arg(MAX_EVENTS_PER_JOB);
        let reply: Vec<String> = self.invoke(&invocation).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(()),
            Some("missing") => Err(JobError::NotFound),
            Some("finished") => Err(JobError::AlreadyFinished),
            Some("range") => {
                let total = reply.get(1).and_then(|total| total.parse().ok()).unwrap_or(0);
                Err(JobError::StepOutOfRange { step, total })
            }
            _ => {
                Err(JobError::Unavailable(Unavailable::unreachable("Redis sent a malformed reply")))
            }
        }
    }

    pub(crate) async fn snapshot(&self, id: &JobId) -> Result<JobSnapshot, JobError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.job(id))
            .query_async(&mut self.conn()?)
            .await
            .map_err(|error| self.unavailable(&error))?;
        snapshot_from(id, &fields).ok_or(JobError::NotFound)
    }

    pub(crate) async fn watch(
        &self,
        id: &JobId,
        last_event_id: Option<&str>,
    ) -> Result<Watch, JobError> {
        if self.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        // Registered before the log is read: events the read already holds are
        // skipped live by their id, so none is lost or doubled in between.
        let subscriber = Arc::new(Subscriber::new(self.queue_capacity));
        let conn = self.fanout.watch_task(id.clone(), subscriber.clone());
        let subscription = self.fanout.subscription(conn, subscriber.clone());
        let (state, last, events): (Option<String>, Option<u64>, Vec<Vec<u8>>) = redis::pipe()
            .atomic()
            .hget(self.keys.job(id), "state")
            .hget(self.keys.job(id), "last")
            .lrange(self.keys.job_events(id), 0, -1)
            .query_async(&mut self.conn()?)
            .await
            .map_err(|error| self.unavailable(&error))?;
        let (Some(state), Some(last)) = (state, last) else {
            return Err(JobError::NotFound);
        };
        let finished = state.parse() != Ok(JobState::Running);
        let last_seen = last_event_id.and_then(super::event_number).filter(|&seen| seen <= last);
        if finished && last_seen == Some(last) {
            return Ok(Watch::AlreadyFinished);
        }
        let first = last + 1 - events.len() as u64;
        let replay = events
            .into_iter()
            .zip(first..)
            .filter(|(_, n)| last_seen.is_none_or(|seen| *n > seen))
            .map(|(frame, _)| Bytes::from(frame))
            .collect();
        if finished {
            subscriber.close(DisconnectReason::Finished);
        }
        Ok(Watch::Stream(subscription.with_replay(replay, Some(last))))
    }

    /// Resolves when the node starts shutting down.
    pub(crate) async fn stopped(&self) {
        self.shutdown.cancelled().await;
    }

    /// The command connection to the primary.
    fn conn(&self) -> Result<ConnectionManager, JobError> {
        self.link.connection().map_err(JobError::Unavailable)
    }

    /// Runs a task script; with `--redis-min-replicas`, acknowledged once that many
    /// replicas hold the change, as a push is.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, JobError> {
        invoke(invocation, self.min_replicas, &mut self.conn()?).await.map_err(
            |error| match error {
                NotReplicated::Failed(error) => self.unavailable(&error),
                too_few @ NotReplicated::TooFew { .. } => {
                    JobError::Unavailable(Unavailable::NotNow(too_few.to_string()))
                }
            },
        )
    }

    /// A failed command as callers see it; the link looks for a moved primary.
    fn unavailable(&self, error: &redis::RedisError) -> JobError {
        self.link.failed(error);
        JobError::Unavailable(Unavailable::unreachable(error))
    }

    async fn sweep_once(&self) -> Result<(), JobError> {
        let error = abandoned_error(self.options.idle_timeout);
        let body = sse::encode_event(
            None,
            Some("done"),
            &done_data(&Outcome::Error(error.clone())).to_string(),
        );
        SWEEP
            .key(self.keys.jobs_running())
            .key(self.keys.jobs_finished())
            .key(self.keys.bus())
            .arg(self.keys.job_prefix())
            .arg(&body[..])
            .arg(error)
            .arg(millis(self.options.ttl))
            .arg(MAX_EVENTS_PER_JOB)
            .invoke_async::<u64>(&mut self.conn()?)
            .await
            .map(drop)
            .map_err(|error| self.unavailable(&error))
    }
}

/// Fails abandoned tasks until the node shuts down (Redis being down only delays it).
async fn sweep(jobs: std::sync::Weak<RedisJobs>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(jobs) = jobs.upgrade() else { return };
        if jobs.shutdown.is_cancelled() {
            return;
        }
        if let Err(error) = jobs.sweep_once().await {
            tracing::debug!("task sweep skipped: {error}");
        }
    }
}

fn snapshot_from(id: &JobId, fields: &HashMap<String, String>) -> Option<JobSnapshot> {
    let field = |name: &str| fields.get(name);
    let number = |name: &str| field(name).and_then(|value| value.parse::<u64>().ok());
    let state = field("state")?.parse().unwrap_or(JobState::Failed);
    Some(JobSnapshot {
        id: id.clone(),
        title: field("title")?.clone(),
        state,
        step: number("step")?,
        total: number("total")?,
        message: field("message").and_then(|message| serde_json::from_str(message).ok()),
        result: field("result").map(|result| serde_json::from_str(result).unwrap_or(Value::Null)),
        error: field("error").cloned(),
        created_at: field("created_at")?.clone(),
        last_event_id: number("last")?.to_string(),
    })
}
