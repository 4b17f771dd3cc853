//! The publishers: pushes at a steady rate through random live nodes, each to one
//! client, a topic or everyone, each carrying a unique token (`{"n":N}`).
//!
//! Pushing is open-loop (a slow answer does not slow the rate), as independent
//! applications would push, and every answer is kept: a 200 with an id is a promise
//! the checker holds Herald to; anything else (503 while Redis fails over, a refused
//! connection while a node is down, no answer from a stopped node) promises nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_bench::client::Publisher;
use herald_bench::target::{Kind, Target};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::ids::{Epochs, EventId};
use crate::nodes::Board;
use crate::record::{Audience, COMMON_TOPICS, Clock, FIREHOSE, Push, PushOutcome, TOPICS};

/// A push unanswered for this long is given up (Herald answers 503 after 2 s
/// without Redis; a stopped node answers after SIGCONT).
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Pushes in flight at most.
const IN_FLIGHT: usize = 256;
/// The padding of a firehose message, in bytes.
const FIREHOSE_PAD: usize = 48 * 1024;

/// Pushes and their answers.
pub struct Publishers {
    clock: Clock,
    board: Arc<Board>,
    clients: usize,
    /// Kept-alive connections per node, reused when idle.
    idle: Vec<Mutex<Vec<Publisher>>>,
    pushes: Mutex<Vec<Push>>,
    epochs: Mutex<Epochs>,
}

impl Publishers {
    pub fn new(clock: Clock, board: Arc<Board>, clients: usize) -> Self {
        let idle = (0..board.len()).map(|_| Mutex::new(Vec::new())).collect();
        Self {
            clock,
            board,
            clients,
            idle,
            pushes: Mutex::new(Vec::new()),
            epochs: Mutex::new(Epochs::default()),
        }
    }

    /// Pushes `rate` messages a second until `stop`, then waits for the answers.
    pub async fn run(self: Arc<Self>, rate: u32, seed: u64, stop: CancellationToken) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut pushes = tokio::task::JoinSet::new();
        for n in 1.. {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            // 30% to one client, 30% to a topic, 15% to everyone, 25% to the firehose.
            let audience = match rng.random_range(0..20) {
                0..6 => Audience::Client(rng.random_range(0..self.clients)),
                6..12 => Audience::Topic(rng.random_range(0..COMMON_TOPICS)),
                12..15 => Audience::Everyone,
                _ => Audience::Topic(FIREHOSE),
            };
            let node = self.board.pick(&mut rng);
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let publishers = self.clone();
            pushes.spawn(async move {
                publishers.push(n, audience, node).await;
                drop(slot);
            });
            while pushes.try_join_next().is_some() {}
        }
        while pushes.join_next().await.is_some() {}
    }

    /// Every push so far.
    pub fn take(&self) -> Vec<Push> {
        let mut pushes = std::mem::take(&mut *lock(&self.pushes));
        pushes.sort_by_key(|push| push.n);
        pushes
    }

    /// Every epoch an accepted push was given.
    pub fn epochs(&self) -> Vec<Arc<str>> {
        let mut epochs: Vec<Arc<str>> = Vec::new();
        for push in lock(&self.pushes).iter() {
            if let PushOutcome::Accepted { id, .. } = &push.outcome
                && !epochs.contains(&id.epoch)
            {
                epochs.push(id.epoch.clone());
            }
        }
        epochs
    }

    /// How many pushes are answered so far.
    pub fn answered(&self) -> usize {
        lock(&self.pushes).len()
    }

    async fn push(&self, n: u64, audience: Audience, node: usize) {
        let sent = self.clock.now();
        let body = push_body(n, audience, self.clients);
        let idle = lock(&self.idle[node]).pop();
        let addr = self.board.addr(node);
        let exchange = async {
            let mut publisher = match idle {
                Some(publisher) => publisher,
                None => Publisher::connect(Target::new(Kind::Herald, addr)).await?,
            };
            let answer = publisher.send("/push", body).await?;
            Ok::<_, herald_bench::client::Error>((publisher, answer))
        };
        let outcome = match tokio::time::timeout(PUSH_TIMEOUT, exchange).await {
            Err(_) => PushOutcome::TimedOut,
            Ok(Err(error)) => PushOutcome::Failed(error.to_string()),
            Ok(Ok((publisher, (status, body)))) => {
                lock(&self.idle[node]).push(publisher);
                if status.is_success() {
                    self.read_answer(&body)
                } else {
                    PushOutcome::Refused(status.as_u16())
                }
            }
        };
        let answered = self.clock.now();
        lock(&self.pushes).push(Push { n, audience, node, sent, answered, outcome });
    }

    /// A 200's body: `{"id": "…", "delivered": N}`.
    fn read_answer(&self, body: &[u8]) -> PushOutcome {
        let answer: Option<Value> = serde_json::from_slice(body).ok();
        let id = answer.as_ref().and_then(|answer| answer.get("id")).and_then(Value::as_str);
        let delivered = answer.as_ref().and_then(|answer| answer.get("delivered")?.as_u64());
        let parsed = id.and_then(|id| EventId::parse(id, &mut lock(&self.epochs)));
        match (parsed, delivered) {
            (Some(id), Some(delivered)) if id.kind != 'p' => {
                PushOutcome::Accepted { id, delivered }
            }
            _ => PushOutcome::Unreadable(String::from_utf8_lossy(body).into_owned()),
        }
    }
}

/// The JSON body of push `n`.
fn push_body(n: u64, audience: Audience, clients: usize) -> String {
    let message = if audience == Audience::Topic(FIREHOSE) {
        format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(FIREHOSE_PAD))
    } else {
        format!(r#"{{"n":{n}}}"#)
    };
    match audience {
        Audience::Client(index) if index < clients => {
            format!(r#"{{"client_id":"{}","message":{message}}}"#, client_name(index))
        }
        Audience::Topic(topic) if topic < TOPICS.len() => {
            format!(r#"{{"topic":"{}","message":{message}}}"#, TOPICS[topic])
        }
        _ => format!(r#"{{"broadcast":true,"message":{message}}}"#),
    }
}

/// The `client_id` of client `index`.
pub fn client_name(index: usize) -> String {
    format!("chaos-{index}")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
