//! `herald-chaos`: a Herald cluster under faults, checked against the contract's
//! delivery rules (`docs/contract.md` §3.1: an id is never given to two different
//! messages; a resumed stream replays what was missed, in order, once, or says
//! `gap`).
//!
//! Unit and integration tests check each rule in a scripted moment; what they cannot
//! show is that the rules survive what production does to a cluster at any moment:
//! nodes killed or drained mid-push, Redis restarted from an older snapshot,
//! Sentinel promoting a replica that missed the last writes, stalls, slow readers cut
//! off, connections dropped. So this program runs the real thing on loopback — Redis
//! with RDB persistence, a replica and three sentinels, three Herald nodes — with
//! clients that behave like EventSource and publishers that push at a steady rate,
//! injects faults from a seeded schedule, lets every client catch up, and then judges
//! everything clients and publishers saw (see `check` for the rules and for what
//! counts as covered by a `gap`).
//!
//! It prints the seed first: a run is re-done with `--seed`. The schedule (fault
//! kinds, targets, durations, push targets, client settings) follows from the seed;
//! timings on a shared machine do not, so a re-run meets the same faults in the same
//! order, not the same interleaving.
//!
//! Exit status: 0 when no rule was broken, 1 when one was, 2 when the cluster could
//! not be set up (Redis would not start, the nodes would not serve), 130 when
//! interrupted.

mod check;
mod dump;
mod faults;
mod ids;
mod nodes;
mod probe;
mod procs;
mod publisher;
mod record;
mod redis;
mod report;
mod subscribers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::faults::{Cluster, CutHandle};
use crate::nodes::{BrokerArgs, Launcher};
use crate::procs::WorkDir;
use crate::publisher::{Publishers, client_name};
use crate::record::{COMMON_TOPICS, ClientSpec, Clock, FIREHOSE};
use crate::redis::Redis;
use crate::subscribers::Shared;

/// Runs a Herald cluster (Redis with Sentinel, three nodes) under faults and checks
/// every delivery against Herald's contract.
#[derive(Debug, Parser)]
#[command(name = "herald-chaos", version, about)]
struct Cli {
    /// The herald binary to run.
    #[arg(long)]
    herald: PathBuf,
    /// How long to push and inject faults.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The seed of the schedule [default: random, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Client streams, spread over the nodes.
    #[arg(long, default_value_t = 120)]
    clients: usize,
    /// Pushes per second, in all.
    #[arg(long, default_value_t = 40)]
    rate: u32,
    /// Herald nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// One Redis, no Sentinel: nodes get --redis-url, and `primary-kill` restarts the
    /// primary from its RDB instead of failing over.
    #[arg(long)]
    no_sentinel: bool,
    /// The same load without faults: a baseline.
    #[arg(long)]
    no_faults: bool,
    /// The longest wait, after the faults, for every client to be live again.
    #[arg(long, default_value = "60s", value_parser = humantime_duration)]
    drain: Duration,
    /// Keep the work directory (logs, RDB files) instead of removing it.
    #[arg(long)]
    keep: bool,
    /// Write every push, connection, event and fault to this file, as JSON lines.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| error.to_string())
}

/// How long every client must have been live, with all nodes healthy, for the run
/// to count as caught up; the drain lasts at least this long.
const SETTLED: Duration = Duration::from_secs(3);
/// How long every client's stream must have been quiet (everything sent was read).
const QUIET: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(random_seed);
    println!("seed {seed} (re-run with --seed {seed})");
    let work = match WorkDir::create(cli.keep) {
        Ok(work) => work,
        Err(error) => {
            eprintln!("herald-chaos: {error:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("herald-chaos: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            code = run(&cli, seed, &work) => code,
            () = interrupted() => {
                eprintln!("herald-chaos: interrupted; stopping every process");
                ExitCode::from(130)
            }
        }
    });
    // Dropping the runtime drops every task, and with them every process handle
    // (each kills its process); only then is the work dir removed.
    runtime.shutdown_timeout(Duration::from_secs(5));
    if !work.is_temporary() {
        println!("work dir kept: {}", work.path().display());
    }
    code
}

fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
        % 1_000_000
}

async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

async fn run(cli: &Cli, seed: u64, work: &WorkDir) -> ExitCode {
    // Set-up, faults, recovery and drain, with a margin: the run always ends.
    let bound = Duration::from_secs(cli.seconds) + cli.drain + Duration::from_secs(240);
    match tokio::time::timeout(bound, chaos(cli, seed, work)).await {
        Ok(Ok(code)) => code,
        Ok(Err(failure)) => {
            eprintln!("herald-chaos: set-up failed: {:#}", failure.error);
            report::log_tails(&failure.logs);
            ExitCode::from(2)
        }
        Err(_) => {
            eprintln!("herald-chaos: the run did not end within {bound:?}");
            ExitCode::from(2)
        }
    }
}

/// A set-up that failed, with the logs that may say why.
struct SetupFailure {
    error: anyhow::Error,
    logs: Vec<(String, PathBuf)>,
}

impl From<anyhow::Error> for SetupFailure {
    fn from(error: anyhow::Error) -> Self {
        Self { error, logs: Vec::new() }
    }
}

trait WithLogs<T> {
    fn with_logs(self, logs: impl FnOnce() -> Vec<(String, PathBuf)>) -> Result<T, SetupFailure>;
}

impl<T> WithLogs<T> for Result<T> {
    fn with_logs(self, logs: impl FnOnce() -> Vec<(String, PathBuf)>) -> Result<T, SetupFailure> {
        self.map_err(|error| SetupFailure { error, logs: logs() })
    }
}

async fn chaos(cli: &Cli, seed: u64, work: &WorkDir) -> Result<ExitCode, SetupFailure> {
    let clock = Clock::start();
    let mut seeds = StdRng::seed_from_u64(seed);
    let mut cluster = set_up(cli, work, clock, &mut seeds).await?;
    let run = exercise(cli, &cluster, clock, &mut seeds).await;
    let ended = wind_down(cli, &mut cluster, &run, clock).await;
    let findings = judge(cli, seed, &cluster, &run, &ended);
    if findings.violations.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        report::log_tails(&ended.logs);
        Ok(ExitCode::FAILURE)
    }
}

/// A cluster with every client live.
struct SetUp {
    faults: Arc<Cluster>,
    board: Arc<nodes::Board>,
    shared: Arc<Shared>,
    clients: Vec<subscribers::Client>,
    slow: usize,
    sentinel: bool,
}

/// Starts Redis, the nodes and the clients, and waits until every client is live.
async fn set_up(
    cli: &Cli,
    work: &WorkDir,
    clock: Clock,
    seeds: &mut StdRng,
) -> Result<SetUp, SetupFailure> {
    let sentinel = !cli.no_sentinel;
    check_herald(&cli.herald, sentinel).await?;
    if cli.nodes == 0 || cli.clients == 0 || cli.rate == 0 {
        return Err(anyhow::anyhow!("--nodes, --clients and --rate must be at least 1").into());
    }
    let mut redis = Redis::start(work, sentinel).await.with_logs(|| all_logs(work))?;
    println!("{}", describe_redis(&redis));
    let launcher = Launcher::new(&cli.herald, work, BrokerArgs::of(&redis));
    let (nodes, board) = match launcher.start_all(cli.nodes).await {
        Ok(started) => started,
        Err(error) => {
            redis.stop().await;
            return Err(error).with_logs(|| all_logs(work));
        }
    };
    let board = Arc::new(board);
    let ports: Vec<String> =
        (0..board.len()).map(|node| board.addr(node).port().to_string()).collect();
    println!("herald nodes on ports {}", ports.join(", "));

    let shared = Arc::new(Shared {
        clock,
        board: board.clone(),
        stop: CancellationToken::new(),
        drain: CancellationToken::new(),
    });
    let specs = client_specs(cli.clients, seeds);
    let slow = specs.iter().filter(|spec| spec.slow).count();
    let clients: Vec<_> = specs
        .into_iter()
        .map(|spec| subscribers::spawn(spec, shared.clone(), seeds.random()))
        .collect();
    let all_live = redis::wait_for(Duration::from_secs(30), "every client to be live", || async {
        subscribers::live_count(&clients) == clients.len()
    });
    if let Err(error) = all_live.await {
        let live = subscribers::live_count(&clients);
        return Err(error.context(format!("{live} of {} clients live", clients.len())))
            .with_logs(|| all_logs(work));
    }
    let handles = clients
        .iter()
        .map(|client| CutHandle { cut: client.cut.clone(), live_since: client.live_since.clone() })
        .collect();
    let faults = Arc::new(Cluster::new(clock, redis, nodes, launcher, board.clone(), handles));
    Ok(SetUp { faults, board, shared, clients, slow, sentinel })
}

/// What the publishers did.
struct Exercised {
    publishers: Arc<Publishers>,
}

/// Pushes and injects faults for `--seconds`, then waits for the last answers and
/// for the cluster to recover from the last fault.
async fn exercise(cli: &Cli, cluster: &SetUp, clock: Clock, seeds: &mut StdRng) -> Exercised {
    println!(
        "{} clients live ({} slow readers); pushing {}/s for {} s",
        cluster.clients.len(),
        cluster.slow,
        cli.rate,
        cli.seconds
    );
    let publishers = Arc::new(Publishers::new(clock, cluster.board.clone(), cluster.clients.len()));
    let stop_pushing = CancellationToken::new();
    let pushing =
        tokio::spawn(publishers.clone().run(cli.rate, seeds.random(), stop_pushing.clone()));
    let fault_seed = seeds.random();
    let faulting = if cli.no_faults {
        tokio::spawn(async {})
    } else {
        tokio::spawn(cluster.faults.clone().run(fault_seed, Duration::from_secs(cli.seconds)))
    };
    tokio::time::sleep(Duration::from_secs(cli.seconds)).await;
    stop_pushing.cancel();
    let _ = pushing.await;
    let answered = publishers.answered();
    println!("[{}] pushing stopped; {answered} pushes answered", record::At(clock.now()));
    let _ = faulting.await;
    println!("[{}] faults over; draining", record::At(clock.now()));
    Exercised { publishers }
}

/// What the clients saw, and how the run ended.
struct Ended {
    records: Vec<(ClientSpec, record::ClientLog)>,
    /// What the history held of each ended epoch, at the end.
    probes: Vec<probe::Replay>,
    disconnects: BTreeMap<String, u64>,
    logs: Vec<(String, PathBuf)>,
}

/// Lets every client catch up, stops them and the cluster.
async fn wind_down(cli: &Cli, cluster: &mut SetUp, run: &Exercised, clock: Clock) -> Ended {
    cluster.shared.drain.cancel();
    let drained = drain(&cluster.clients, &cluster.board, clock, cli.drain).await;
    println!("[{}] {drained}", record::At(clock.now()));
    let live: Vec<bool> = cluster
        .clients
        .iter()
        .map(|client| client.live_since.load(Ordering::Acquire) != u64::MAX)
        .collect();
    let disconnects = nodes::disconnects(&cluster.board).await;
    let probes = probe::ended_epochs(&cluster.board, run.publishers.epochs()).await;
    println!("[{}] probed {} epochs' history", record::At(clock.now()), probes.len());
    cluster.shared.stop.cancel();
    let mut records = Vec::with_capacity(cluster.clients.len());
    for (client, live) in cluster.clients.drain(..).zip(live) {
        let spec = (*client.spec).clone();
        let mut log = client.task.await.unwrap_or_default();
        log.live_at_end = live;
        records.push((spec, log));
    }
    let logs = stop_cluster(&cluster.faults).await;
    Ended { records, probes, disconnects, logs }
}

/// Checks the records, prints the report (and writes `--record`).
fn judge(cli: &Cli, seed: u64, cluster: &SetUp, run: &Exercised, ended: &Ended) -> check::Findings {
    let pushes = run.publishers.take();
    let faults = cluster.faults.log();
    let mut findings = check::check(&pushes, &ended.records, &ended.probes);
    let troubles = cluster.faults.troubles();
    for trouble in troubles.iter().filter(|trouble| trouble.herald) {
        findings.violations.push(check::Violation {
            rule: check::Rule::Shutdown,
            at: trouble.at,
            client: None,
            text: trouble.text.clone(),
        });
    }
    if let Some(path) = &cli.record {
        match dump::write(
            path,
            &pushes,
            &ended.records,
            &faults,
            &findings.violations,
            &ended.probes,
        ) {
            Ok(()) => println!("records written to {}", path.display()),
            Err(error) => eprintln!("herald-chaos: {error:#}"),
        }
    }
    report::print(&report::Summary {
        seed,
        seconds: cli.seconds,
        clients: ended.records.len(),
        slow: cluster.slow,
        rate: cli.rate,
        sentinel: cluster.sentinel,
        pushes: &pushes,
        faults: &faults,
        troubles: &troubles,
        disconnects: &ended.disconnects,
        findings: &findings,
    });
    findings
}

/// Fails early, with a clear word, when the binary is missing or lacks Sentinel.
async fn check_herald(herald: &Path, sentinel: bool) -> Result<()> {
    let help = tokio::process::Command::new(herald)
        .arg("--help")
        .output()
        .await
        .with_context(|| format!("cannot run {}", herald.display()))?;
    let help = String::from_utf8_lossy(&help.stdout);
    if !help.contains("--redis-url") {
        bail!("{} does not look like herald (no --redis-url in its --help)", herald.display());
    }
    if sentinel && !help.contains("--redis-sentinel") {
        bail!("{} has no --redis-sentinel; run with --no-sentinel", herald.display());
    }
    Ok(())
}

/// The clients' settings, from the seed: 0–2 topics each; one in ten a slow reader,
/// which joins the firehose too.
fn client_specs(count: usize, rng: &mut StdRng) -> Vec<ClientSpec> {
    (0..count)
        .map(|index| {
            let mut topics: Vec<usize> = (0..COMMON_TOPICS).collect();
            topics.shuffle(rng);
            topics.truncate(rng.random_range(0..=2));
            let slow = rng.random_ratio(1, 10);
            if slow {
                topics.push(FIREHOSE);
            }
            topics.sort_unstable();
            ClientSpec { index, name: client_name(index), topics, slow }
        })
        .collect()
}

fn describe_redis(redis: &Redis) -> String {
    if redis.uses_sentinel() {
        let sentinels: Vec<String> = redis.sentinel_ports().iter().map(u16::to_string).collect();
        format!(
            "redis primary {} on port {}, replica {} on port {}, sentinels on ports {}",
            redis.name(0),
            redis.port(0),
            redis.name(1),
            redis.port(1),
            sentinels.join(", ")
        )
    } else {
        format!("redis on port {} (no Sentinel)", redis.first_port())
    }
}

/// Waits until every node is healthy and every client has been live for
/// [`SETTLED`] and has read everything (its stream quiet for [`QUIET`]), for at least
/// [`SETTLED`] (slow readers catch up at full speed) and at most `longest`. Says how
/// it went.
async fn drain(
    clients: &[subscribers::Client],
    board: &nodes::Board,
    clock: Clock,
    longest: Duration,
) -> String {
    let started = tokio::time::Instant::now();
    let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    loop {
        let mut healthy = true;
        for node in 0..board.len() {
            healthy &= nodes::healthy(board.addr(node)).await;
        }
        let now = clock.now();
        let caught_up = subscribers::all_caught_up(
            clients,
            now.saturating_sub(millis(SETTLED)),
            now.saturating_sub(millis(QUIET)),
        );
        if healthy && caught_up && started.elapsed() >= SETTLED {
            return format!(
                "drained: every node healthy, every client live for {SETTLED:?} and quiet for \
                 {QUIET:?}, after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        if started.elapsed() >= longest {
            let live = subscribers::live_count(clients);
            return format!(
                "drain gave up after {longest:?}: {live} of {} clients live, {}",
                clients.len(),
                if healthy { "every node healthy" } else { "not every node healthy" }
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Stops every node and Redis process; returns their logs.
async fn stop_cluster(cluster: &Cluster) -> Vec<(String, PathBuf)> {
    let mut logs = Vec::new();
    for node in &cluster.nodes {
        let mut node = node.lock().await;
        logs.push((format!("herald-{}", node.index), node.log().to_owned()));
        node.kill().await;
    }
    let mut redis = cluster.redis.lock().await;
    logs.extend(redis.logs());
    redis.stop().await;
    logs
}

/// Every log file in the work dir, for a set-up that failed.
fn all_logs(work: &WorkDir) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(work.path()) else { return Vec::new() };
    let mut logs: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .map(|path| (path.file_stem().unwrap_or_default().to_string_lossy().into_owned(), path))
        .collect();
    logs.sort();
    logs
}
