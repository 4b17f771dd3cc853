//! The fault schedule and how each fault is done.
//!
//! From the seed, a fault every 4–8 s, cycling through every kind in a shuffled
//! order per round, so that even a short run meets each kind. Each fault's choices
//! (which node, how long) are drawn when it is scheduled, so a seed always gives the
//! same schedule. Faults run concurrently with each other as far as they touch
//! different things: two Redis faults never overlap (each waits until the previous
//! one has recovered, e.g. the killed primary is back as a replica), and a node is
//! hit by one fault at a time.
//!
//! Kinds:
//! * `node-kill`: SIGKILL a node; restart it on the same port 1–2 s later.
//! * `node-term`: SIGTERM a node (it drains and exits); restart it once it has.
//! * `node-stall`: SIGSTOP a node for 2–3 s, then SIGCONT: its Redis link and its
//!   streams stall.
//! * `primary-kill`: SIGKILL the Redis primary; Sentinel promotes the replica; 5–10 s
//!   later the killed one comes back from its RDB as a replica of the new primary.
//!   Writes not yet replicated are lost. Without Sentinel: the primary is down as
//!   long and comes back from its RDB.
//! * `primary-restart`: SIGKILL the primary and start it again at once from its RDB
//!   (within Sentinel's down-after, so there is no failover): writes since the last
//!   snapshot are lost, and the replica resyncs from the older data.
//! * `redis-pause`: `CLIENT PAUSE 2000 ALL` on the primary: every command waits,
//!   Herald's answer timeout (2 s) may pass. With Sentinel the pause outlasts its
//!   down-after (1 s), so Sentinel usually promotes the replica and demotes the
//!   paused primary when it answers again: a failover in which nothing died, and in
//!   which commands queued during the pause may still run on the old primary before
//!   it is demoted (and lose them when it resyncs).
//! * `client-cut`: drop the connections of a tenth of the live clients; they
//!   reconnect and resume.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rustix::process::Signal;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::nodes::{Board, Launcher, Node};
use crate::record::{At, Clock, FaultEntry, FaultKind, Ms};
use crate::redis::{self, Redis};

/// A node that has not exited this long after SIGTERM is stuck (`--shutdown-grace`
/// is 5 s).
const TERM_TIMEOUT: Duration = Duration::from_secs(15);
/// How long Sentinel may take to promote the replica.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long Sentinel takes to finish a failover it started during a pause.
const SETTLE: Duration = Duration::from_secs(2);

/// One fault, with every choice made.
#[derive(Debug, Clone)]
enum Plan {
    NodeKill { node: usize, down: Duration },
    NodeTerm { node: usize },
    NodeStall { node: usize, stall: Duration },
    PrimaryKill { down: Duration },
    PrimaryRestart,
    RedisPause { pause: Duration },
    ClientCut { clients: Vec<usize> },
}

impl Plan {
    fn draw(kind: FaultKind, rng: &mut StdRng, nodes: usize, clients: usize) -> Self {
        let millis = |rng: &mut StdRng, low: u64, high: u64| {
            Duration::from_millis(rng.random_range(low..=high))
        };
        match kind {
            FaultKind::NodeKill => {
                Self::NodeKill { node: rng.random_range(0..nodes), down: millis(rng, 1000, 2000) }
            }
            FaultKind::NodeTerm => Self::NodeTerm { node: rng.random_range(0..nodes) },
            FaultKind::NodeStall => {
                Self::NodeStall { node: rng.random_range(0..nodes), stall: millis(rng, 2000, 3000) }
            }
            FaultKind::PrimaryKill => Self::PrimaryKill { down: millis(rng, 5000, 10_000) },
            FaultKind::PrimaryRestart => Self::PrimaryRestart,
            FaultKind::RedisPause => Self::RedisPause { pause: Duration::from_millis(2000) },
            FaultKind::ClientCut => {
                let mut all: Vec<usize> = (0..clients).collect();
                all.shuffle(rng);
                all.truncate((clients / 10).max(1));
                Self::ClientCut { clients: all }
            }
        }
    }

    fn kind(&self) -> FaultKind {
        match self {
            Self::NodeKill { .. } => FaultKind::NodeKill,
            Self::NodeTerm { .. } => FaultKind::NodeTerm,
            Self::NodeStall { .. } => FaultKind::NodeStall,
            Self::PrimaryKill { .. } => FaultKind::PrimaryKill,
            Self::PrimaryRestart => FaultKind::PrimaryRestart,
            Self::RedisPause { .. } => FaultKind::RedisPause,
            Self::ClientCut { .. } => FaultKind::ClientCut,
        }
    }
}

/// A client, as the client-cut fault sees it.
#[derive(Debug, Clone)]
pub struct CutHandle {
    pub cut: Arc<Notify>,
    pub live_since: Arc<AtomicU64>,
}

/// Something that went wrong while doing or undoing a fault.
#[derive(Debug, Clone)]
pub struct Trouble {
    pub at: Ms,
    pub kind: FaultKind,
    pub text: String,
    /// Herald broke a promise (a node did not stop on SIGTERM), rather than the
    /// checker's own set-up (Sentinel did not fail over).
    pub herald: bool,
}

/// The cluster, as faults act on it.
#[derive(Debug)]
pub struct Cluster {
    pub clock: Clock,
    pub redis: tokio::sync::Mutex<Redis>,
    pub nodes: Vec<tokio::sync::Mutex<Node>>,
    pub launcher: Launcher,
    pub board: Arc<Board>,
    pub clients: Vec<CutHandle>,
    log: Mutex<Vec<FaultEntry>>,
    /// When faults stop: a fault that waited for another's recovery past it is
    /// skipped.
    window_end: std::sync::OnceLock<Instant>,
    troubles: Mutex<Vec<Trouble>>,
}

impl Cluster {
    pub fn new(
        clock: Clock,
        redis: Redis,
        nodes: Vec<Node>,
        launcher: Launcher,
        board: Arc<Board>,
        clients: Vec<CutHandle>,
    ) -> Self {
        Self {
            clock,
            redis: tokio::sync::Mutex::new(redis),
            nodes: nodes.into_iter().map(tokio::sync::Mutex::new).collect(),
            launcher,
            board,
            clients,
            log: Mutex::new(Vec::new()),
            window_end: std::sync::OnceLock::new(),
            troubles: Mutex::new(Vec::new()),
        }
    }

    /// Injects faults from the seed's schedule for `duration`, then waits until the
    /// cluster has recovered from the last one.
    pub async fn run(self: Arc<Self>, seed: u64, duration: Duration) {
        let mut rng = StdRng::seed_from_u64(seed);
        let end = Instant::now() + duration;
        let _ = self.window_end.set(end);
        let mut round: Vec<FaultKind> = Vec::new();
        let mut faults = tokio::task::JoinSet::new();
        let mut next = Instant::now() + Duration::from_millis(rng.random_range(2000..=4000));
        while next < end {
            tokio::time::sleep_until(next).await;
            if round.is_empty() {
                round = FaultKind::ALL.to_vec();
                round.shuffle(&mut rng);
            }
            let Some(kind) = round.pop() else { continue };
            let plan = Plan::draw(kind, &mut rng, self.nodes.len(), self.clients.len());
            faults.spawn(self.clone().inject(plan));
            next += Duration::from_millis(rng.random_range(4000..=8000));
        }
        while faults.join_next().await.is_some() {}
    }

    /// The fault log so far.
    pub fn log(&self) -> Vec<FaultEntry> {
        lock(&self.log).clone()
    }

    pub fn troubles(&self) -> Vec<Trouble> {
        lock(&self.troubles).clone()
    }

    /// Whether the fault window has ended (a fault that waited its turn past it is
    /// skipped, so that no fault starts after the pushes stopped).
    fn window_over(&self) -> bool {
        self.window_end.get().is_some_and(|end| Instant::now() >= *end)
    }

    fn note(&self, kind: FaultKind, start: bool, text: String) {
        let at = self.clock.now();
        println!("[{}] {}: {text}", At(at), kind.name());
        lock(&self.log).push(FaultEntry { at, kind, start, text });
    }

    fn trouble(&self, kind: FaultKind, herald: bool, text: String) {
        let at = self.clock.now();
        println!("[{}] {}: TROUBLE: {text}", At(at), kind.name());
        lock(&self.troubles).push(Trouble { at, kind, text, herald });
    }

    async fn inject(self: Arc<Self>, plan: Plan) {
        let kind = plan.kind();
        let result = match plan {
            Plan::NodeKill { node, down } => self.node_kill(node, down).await,
            Plan::NodeTerm { node } => self.node_term(node).await,
            Plan::NodeStall { node, stall } => self.node_stall(node, stall).await,
            Plan::PrimaryKill { down } => self.primary_kill(down).await,
            Plan::PrimaryRestart => self.primary_restart().await,
            Plan::RedisPause { pause } => self.redis_pause(pause).await,
            Plan::ClientCut { clients } => {
                self.client_cut(&clients);
                Ok(())
            }
        };
        if let Err(error) = result {
            self.trouble(kind, false, format!("{error:#}"));
        }
    }

    async fn node_kill(&self, index: usize, down: Duration) -> Result<()> {
        let kind = FaultKind::NodeKill;
        let mut node = self.nodes[index].lock().await;
        if self.window_over() {
            return Ok(());
        }
        self.board.set_up(index, false);
        let pid = node.pid();
        node.kill().await;
        self.note(kind, true, format!("node {index} (pid {pid}) killed with SIGKILL"));
        tokio::time::sleep(down).await;
        self.restart(kind, &mut node).await
    }

    async fn node_term(&self, index: usize) -> Result<()> {
        let kind = FaultKind::NodeTerm;
        let mut node = self.nodes[index].lock().await;
        if self.window_over() {
            return Ok(());
        }
        self.board.set_up(index, false);
        let pid = node.pid();
        self.note(kind, true, format!("node {index} (pid {pid}) sent SIGTERM"));
        let started = Instant::now();
        if node.terminate(TERM_TIMEOUT).await? {
            self.note(kind, false, format!("node {index} exited after {:?}", started.elapsed()));
        } else {
            let text = format!("node {index} did not exit within {TERM_TIMEOUT:?} of SIGTERM");
            self.trouble(kind, true, text);
        }
        self.restart(kind, &mut node).await
    }

    async fn restart(&self, kind: FaultKind, node: &mut Node) -> Result<()> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.launcher.start(node).await {
                Ok(()) => break,
                Err(error) if attempts < 3 => {
                    self.trouble(kind, false, format!("restart failed, retrying: {error:#}"));
                    node.kill().await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(error) => return Err(error),
            }
        }
        self.board.set_up(node.index, true);
        self.note(kind, false, format!("node {} back (pid {})", node.index, node.pid()));
        Ok(())
    }

    async fn node_stall(&self, index: usize, stall: Duration) -> Result<()> {
        let kind = FaultKind::NodeStall;
        let node = self.nodes[index].lock().await;
        if self.window_over() {
            return Ok(());
        }
        node.signal(Signal::STOP)?;
        self.note(kind, true, format!("node {index} (pid {}) stopped for {stall:?}", node.pid()));
        tokio::time::sleep(stall).await;
        node.signal(Signal::CONT)?;
        self.note(kind, false, format!("node {index} continued"));
        Ok(())
    }

    async fn primary_kill(&self, down: Duration) -> Result<()> {
        let kind = FaultKind::PrimaryKill;
        let mut redis = self.redis.lock().await;
        if self.window_over() {
            return Ok(());
        }
        let primary = redis.primary().await?;
        let (name, port, pid) =
            (redis.name(primary).to_owned(), redis.port(primary), redis.pid(primary));
        let killed = Instant::now();
        redis.kill(primary).await;
        if !redis.uses_sentinel() {
            self.note(
                kind,
                true,
                format!("{name} (pid {pid}) killed; back from its RDB in {down:?}"),
            );
            tokio::time::sleep(down).await;
            redis.launch(primary, None).await?;
            self.note(
                kind,
                false,
                format!("{name} back from its RDB (pid {})", redis.pid(primary)),
            );
            return Ok(());
        }
        self.note(
            kind,
            true,
            format!("primary {name} (pid {pid}) killed; Sentinel should promote the replica"),
        );
        let promoted = redis::wait_for(FAILOVER_TIMEOUT, "Sentinel to promote the replica", || {
            let redis = &*redis;
            async move { redis.primary_port().await.is_ok_and(|now| now != port) }
        })
        .await;
        let replica_of = match promoted {
            Ok(()) => {
                let new = redis.primary().await?;
                self.note(
                    kind,
                    false,
                    format!("Sentinel promoted {} after {:?}", redis.name(new), killed.elapsed()),
                );
                Some(redis.port(new))
            }
            Err(error) => {
                self.trouble(kind, false, format!("{error:#}; {name} comes back as the primary"));
                None
            }
        };
        tokio::time::sleep_until(killed + down).await;
        redis.launch(primary, replica_of).await?;
        if replica_of.is_some() {
            redis.wait_replicating(primary).await?;
            self.note(
                kind,
                false,
                format!("{name} back as a replica (pid {})", redis.pid(primary)),
            );
        } else {
            self.note(
                kind,
                false,
                format!("{name} back as the primary (pid {})", redis.pid(primary)),
            );
        }
        Ok(())
    }

    async fn primary_restart(&self) -> Result<()> {
        let kind = FaultKind::PrimaryRestart;
        let mut redis = self.redis.lock().await;
        if self.window_over() {
            return Ok(());
        }
        let primary = redis.primary().await?;
        let (name, pid) = (redis.name(primary).to_owned(), redis.pid(primary));
        let killed = Instant::now();
        redis.kill(primary).await;
        self.note(
            kind,
            true,
            format!("primary {name} (pid {pid}) killed; restarting it from its RDB"),
        );
        redis.launch(primary, None).await?;
        let took = killed.elapsed();
        self.note(
            kind,
            false,
            format!("{name} back from its RDB after {took:?} (pid {})", redis.pid(primary)),
        );
        if took >= redis::DOWN_AFTER {
            self.trouble(kind, false, format!("the restart took {took:?}: Sentinel may fail over"));
        }
        if redis.uses_sentinel() {
            let replica = 1 - primary;
            redis.wait_replicating(replica).await.context("the replica did not resync")?;
        }
        Ok(())
    }

    async fn redis_pause(&self, pause: Duration) -> Result<()> {
        let kind = FaultKind::RedisPause;
        let redis = self.redis.lock().await;
        if self.window_over() {
            return Ok(());
        }
        let primary = redis.primary().await?;
        let name = redis.name(primary).to_owned();
        redis.pause(primary, pause, "ALL").await?;
        self.note(
            kind,
            true,
            format!("CLIENT PAUSE {} ALL on the primary {name}", pause.as_millis()),
        );
        tokio::time::sleep(pause).await;
        if !redis.uses_sentinel() {
            self.note(kind, false, format!("{name} unpaused"));
            return Ok(());
        }
        // The pause outlasts Sentinel's down-after: Sentinel may have promoted the
        // replica, and then demotes the paused primary once it answers again.
        tokio::time::sleep(SETTLE).await;
        let now = redis.primary().await?;
        if now == primary {
            self.note(kind, false, format!("{name} unpaused, still the primary"));
            return Ok(());
        }
        self.note(
            kind,
            false,
            format!("{name} unpaused; Sentinel failed over to {}", redis.name(now)),
        );
        redis
            .wait_replicating(primary)
            .await
            .context("the paused primary did not become a replica")?;
        self.note(kind, false, format!("{name} is a replica of {}", redis.name(now)));
        Ok(())
    }

    fn client_cut(&self, clients: &[usize]) {
        let mut cut = 0;
        for &index in clients {
            let client = &self.clients[index];
            if client.live_since.load(Ordering::Acquire) != u64::MAX {
                client.cut.notify_one();
                cut += 1;
            }
        }
        self.note(FaultKind::ClientCut, true, format!("cut {cut} live clients' connections"));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
