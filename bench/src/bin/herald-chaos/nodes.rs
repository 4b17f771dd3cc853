//! The Herald nodes, and the board that tells clients and publishers which are up.
//!
//! A load balancer would stop sending traffic to a node it saw go down; the board
//! plays that part, so that clients reconnect to a live node and publishers push
//! through one, as they would in production. A stalled node (SIGSTOP) stays on the
//! board: a balancer would not notice in time either.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rand::Rng;
use rustix::process::Signal;

use crate::procs::{Proc, WorkDir};
use crate::redis::{self, Redis};

/// How a node finds Redis.
#[derive(Debug, Clone)]
pub enum BrokerArgs {
    /// `--redis-sentinel` for each sentinel, and `--redis-master`.
    Sentinel(Vec<u16>),
    /// `--redis-url` (no Sentinel).
    Url(u16),
}

impl BrokerArgs {
    pub fn of(redis: &Redis) -> Self {
        if redis.uses_sentinel() {
            Self::Sentinel(redis.sentinel_ports())
        } else {
            Self::Url(redis.first_port())
        }
    }

    fn args(&self) -> Vec<String> {
        match self {
            Self::Sentinel(ports) => {
                let mut args = Vec::new();
                for port in ports {
                    args.extend(["--redis-sentinel".to_owned(), format!("127.0.0.1:{port}")]);
                }
                args.extend(["--redis-master".to_owned(), redis::MASTER_NAME.to_owned()]);
                args
            }
            Self::Url(port) => vec!["--redis-url".to_owned(), format!("redis://127.0.0.1:{port}")],
        }
    }
}

/// The settings every node runs with: limits raised so that the run is not
/// throttled, a small queue so that slow readers are cut off, frequent heartbeats
/// so that a dead connection is noticed.
const NODE_SETTINGS: [&str; 18] = [
    "--redis-prefix",
    "chaos",
    "--log",
    "warn",
    "--push-rate",
    "1000000",
    "--push-burst",
    "1000000",
    "--max-connections-per-ip",
    "0",
    "--queue-capacity",
    "64",
    "--heartbeat",
    "5s",
    "--retry",
    "1s",
    "--shutdown-grace",
    "5s",
];

/// Which nodes are up, and where they listen.
#[derive(Debug)]
pub struct Board {
    addrs: Vec<SocketAddr>,
    up: Vec<AtomicBool>,
}

impl Board {
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn addr(&self, node: usize) -> SocketAddr {
        self.addrs[node]
    }

    pub fn set_up(&self, node: usize, up: bool) {
        self.up[node].store(up, Ordering::Release);
    }

    /// A random node that is up (any node when none is).
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        let up: Vec<usize> =
            (0..self.len()).filter(|&node| self.up[node].load(Ordering::Acquire)).collect();
        if up.is_empty() {
            rng.random_range(0..self.len())
        } else {
            up[rng.random_range(0..up.len())]
        }
    }
}

/// One Herald node: its port and log survive restarts.
#[derive(Debug)]
pub struct Node {
    pub index: usize,
    port: u16,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().map_or(0, Proc::pid)
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// SIGKILL; waits until the process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill().await;
        }
    }

    /// SIGTERM; waits up to `within` for the node to exit. False when it did not (it
    /// is then killed).
    pub async fn terminate(&mut self, within: Duration) -> Result<bool> {
        let Some(mut proc) = self.proc.take() else { return Ok(true) };
        proc.signal(Signal::TERM)?;
        if proc.exited(within).await.is_some() {
            return Ok(true);
        }
        proc.kill().await;
        Ok(false)
    }

    /// SIGSTOP or SIGCONT.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.proc.as_ref().context("the node is not running")?.signal(signal)
    }
}

/// Starts nodes and restarts them.
#[derive(Debug)]
pub struct Launcher {
    herald: PathBuf,
    work: PathBuf,
    broker: BrokerArgs,
}

impl Launcher {
    pub fn new(herald: &Path, work: &WorkDir, broker: BrokerArgs) -> Self {
        Self { herald: herald.to_owned(), work: work.path().to_owned(), broker }
    }

    /// `count` nodes on free ports, started and ready, and their board.
    pub async fn start_all(&self, count: usize) -> Result<(Vec<Node>, Board)> {
        let mut nodes = Vec::with_capacity(count);
        for index in 0..count {
            let log = self.work.join(format!("herald-{index}.log"));
            nodes.push(Node { index, port: redis::free_port()?, log, proc: None });
        }
        for node in &mut nodes {
            self.start(node).await?;
        }
        let board = Board {
            addrs: nodes.iter().map(|node| SocketAddr::from(([127, 0, 0, 1], node.port))).collect(),
            up: nodes.iter().map(|_| AtomicBool::new(true)).collect(),
        };
        Ok((nodes, board))
    }

    /// Starts `node` on its port and waits until it serves.
    pub async fn start(&self, node: &mut Node) -> Result<()> {
        let mut args = vec!["--listen".to_owned(), format!("127.0.0.1:{}", node.port)];
        args.extend(self.broker.args());
        args.extend(NODE_SETTINGS.map(str::to_owned));
        args.extend(["--node-id".to_owned(), format!("chaos-node-{}", node.index)]);
        let name = format!("herald node {}", node.index);
        node.proc = Some(Proc::spawn(&name, &self.herald, &args, &self.work, &node.log)?);
        let addr = SocketAddr::from(([127, 0, 0, 1], node.port));
        let proc = node.proc.as_mut().context("just started")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            // Any answer will do: a node that cannot reach Redis yet serves (and says
            // it is degraded); the drain waits for every node to be healthy.
            if herald_bench::client::get(addr, "/healthz").await.is_ok() {
                return Ok(());
            }
            if proc.has_exited() {
                bail!("{name} exited at start; see {}", node.log.display());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{name} did not answer /healthz within 20 s; see {}", node.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether the node at `addr` says it is healthy (`GET /healthz` is 200).
pub async fn healthy(addr: SocketAddr) -> bool {
    let check = herald_bench::client::get(addr, "/healthz");
    matches!(tokio::time::timeout(Duration::from_secs(2), check).await, Ok(Ok((status, _))) if status.is_success())
}

/// `herald_disconnects_total` by reason, summed over the nodes that answer (each
/// counts since its last start).
pub async fn disconnects(board: &Board) -> BTreeMap<String, u64> {
    let mut total = BTreeMap::new();
    for node in 0..board.len() {
        let metrics = herald_bench::client::get(board.addr(node), "/metrics");
        let Ok(Ok((_, body))) = tokio::time::timeout(Duration::from_secs(2), metrics).await else {
            continue;
        };
        for line in String::from_utf8_lossy(&body).lines() {
            let Some(rest) = line.strip_prefix("herald_disconnects_total{reason=\"") else {
                continue;
            };
            let Some((reason, value)) = rest.split_once("\"}") else { continue };
            // Counters are whole numbers, written as such or as floats.
            let count = value.trim().split('.').next().and_then(|whole| whole.parse::<u64>().ok());
            if let Some(count) = count {
                *total.entry(reason.to_owned()).or_default() += count;
            }
        }
    }
    total
}
