//! The three scenarios. Each opens its connections, does its work, waits (boundedly)
//! for the last deliveries, and returns its figures as a JSON object.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use crate::client::{self, Error, Publisher};
use crate::measure::{self, millis, now_micros, percentile, stamp};
use crate::target::{Audience, Target};
use crate::transport::Transport;

/// A scenario's figures.
pub type Report = Map<String, Value>;

/// Where and how to run.
#[derive(Debug)]
pub struct Setup {
    /// The hub's nodes subscribers connect to, in turn (one for a single hub): a
    /// cluster's figures are those of messages that cross from node to node.
    pub nodes: Vec<Target>,
    /// The node every push goes through.
    pub publish: Target,
    pub sources: u8,
    pub source_net: u8,
    /// The hub's processes (a cluster's nodes, and its Redis): memory and CPU are their
    /// sums; none measured when empty.
    pub pids: Vec<u32>,
    pub deadline: Duration,
    /// TCP or TLS; HTTP/1.1 or HTTP/2.
    pub transport: Transport,
}

impl Setup {
    /// The node subscriber `n` connects to: round-robin, so that `broadcast` splits
    /// its subscribers evenly over the nodes.
    fn node(&self, n: usize) -> Target {
        self.nodes.get(n % self.nodes.len().max(1)).copied().unwrap_or(self.publish)
    }
}

/// Connections opened at once while connecting.
const CONNECTING_AT_ONCE: usize = 256;
/// How long to wait for deliveries after the last send.
const DRAIN: Duration = Duration::from_secs(5);

/// What a stream does with each event's data.
type OnEvent = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// `n` open streams, each read by its own task.
struct Streams {
    readers: JoinSet<()>,
    connect_time: Duration,
}

impl Streams {
    /// Closes every stream (its reader owns the connection).
    fn close(mut self) {
        self.readers.abort_all();
    }
}

async fn open(setup: &Setup, n: usize, on_event: &OnEvent) -> Result<Streams, Error> {
    let started = Instant::now();
    let mut readers = JoinSet::new();
    let mut spawn = |stream: client::Subscribed| {
        let on_event = on_event.clone();
        readers.spawn(stream.read(move |data| on_event(data)));
    };
    match setup.transport.http2_streams {
        None => {
            let mut opened = futures::stream::iter(0..n)
                .map(|i| subscribe_alone(setup, i))
                .buffer_unordered(CONNECTING_AT_ONCE);
            while let Some(stream) = opened.next().await {
                spawn(stream?);
            }
        }
        Some(per_connection) => {
            let per_connection = per_connection.max(1);
            let mut opened = futures::stream::iter(0..n.div_ceil(per_connection))
                .map(|c| subscribe_sharing(setup, c, per_connection, n))
                .buffer_unordered((CONNECTING_AT_ONCE / per_connection).max(1));
            while let Some(streams) = opened.next().await {
                streams?.into_iter().for_each(&mut spawn);
            }
        }
    }
    Ok(Streams { readers, connect_time: started.elapsed() })
}

/// Stream `i` on a connection of its own (HTTP/1.1).
async fn subscribe_alone(setup: &Setup, i: usize) -> Result<client::Subscribed, Error> {
    let from = client::source(i, setup.sources, setup.source_net);
    client::subscribe(&setup.node(i), &setup.transport, i, from).await
}

/// The streams of HTTP/2 connection `c`: `per_connection` of them (fewer for the last).
async fn subscribe_sharing(
    setup: &Setup,
    c: usize,
    per_connection: usize,
    n: usize,
) -> Result<Vec<client::Subscribed>, Error> {
    let target = setup.node(c);
    let from = client::source(c, setup.sources, setup.source_net);
    let sender = client::connect_http2(&target, &setup.transport, from).await?;
    let streams = (c * per_connection..n.min((c + 1) * per_connection)).map(|i| {
        let mut sender = sender.clone();
        async move { client::subscribe_http2(&mut sender, &target, &setup.transport, i).await }
    });
    futures::future::try_join_all(streams).await
}

/// The least server CPU time a per-unit figure is given for: ten of the kernel's ticks.
const MIN_CPU_MEASURED: Duration = Duration::from_millis(100);

/// The server's CPU time from [`ServerCpu::start`] on, when its pids are known: a
/// figure the shared machine's scheduling moves far less than a latency.
struct ServerCpu {
    pids: Vec<u32>,
    at_start: Option<Duration>,
}

impl ServerCpu {
    fn start(pids: &[u32]) -> Self {
        Self { pids: pids.to_vec(), at_start: measure::total_cpu_time(pids) }
    }

    /// Microseconds of server CPU per `unit` (connection, push, delivery) since the
    /// start, to a tenth; none when the server used less than [`MIN_CPU_MEASURED`]
    /// (the kernel counts in 10 ms ticks: a run of a few ticks says nothing).
    fn micros_per(&self, units: usize) -> Option<f64> {
        let used = measure::total_cpu_time(&self.pids)?.checked_sub(self.at_start?)?;
        if used < MIN_CPU_MEASURED {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let per_unit = used.as_secs_f64() * 1e6 / units.max(1) as f64;
        Some((per_unit * 10.0).round() / 10.0)
    }
}

/// How a [`ServerCpu`] figure reads in a summary.
fn cpu_summary(micros: Option<f64>, unit: &str) -> String {
    micros.map_or_else(String::new, |micros| format!("; server CPU {micros} µs per {unit}"))
}

/// Waits until `done` holds, the drain time after `since` passes, or the deadline.
async fn drain(done: impl Fn() -> bool, deadline: Instant) {
    let until = deadline.min(Instant::now() + DRAIN);
    while !done() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn per_second(count: usize, time: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let count = count as f64;
    count / time.as_secs_f64().max(1e-9)
}

/// `hold N`: memory per idle connection and connects per second.
pub async fn hold(setup: &Setup, n: usize) -> Result<Report, Error> {
    let rss_before = measure::total_rss_bytes(&setup.pids);
    let kernel_before = measure::tcp_kernel_bytes();
    let ignore: OnEvent = Arc::new(|_| {});
    let cpu = ServerCpu::start(&setup.pids);
    let streams = open(setup, n, &ignore).await?;
    let cpu_per_connect = cpu.micros_per(n);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = measure::total_rss_bytes(&setup.pids);
    let kernel_after = measure::tcp_kernel_bytes();
    let per_connection = |before: Option<u64>, after: Option<u64>| {
        before.zip(after).map(|(before, after)| after.saturating_sub(before) / n.max(1) as u64)
    };
    let rss_each = per_connection(rss_before, rss_after);
    let kernel_each = per_connection(kernel_before, kernel_after);
    let connects = per_second(n, streams.connect_time);
    eprintln!(
        "hold {n}: {connects:.0} connects/s; server RSS {} per connection ({} -> {}); \
         kernel TCP memory {} per connection (both ends){}",
        rss_each.map_or("?".into(), |b| format!("{b} B")),
        rss_before.map_or("?".into(), |b| format!("{} MiB", b >> 20)),
        rss_after.map_or("?".into(), |b| format!("{} MiB", b >> 20)),
        kernel_each.map_or("?".into(), |b| format!("{b} B")),
        cpu_summary(cpu_per_connect, "connect"),
    );
    streams.close();
    let mut report = Report::new();
    report.insert("scenario".into(), "hold".into());
    report.insert("connections".into(), n.into());
    report.insert("connects_per_second".into(), json!(connects.round()));
    report.insert("rss_before_bytes".into(), json!(rss_before));
    report.insert("rss_after_bytes".into(), json!(rss_after));
    report.insert("rss_bytes_per_connection".into(), json!(rss_each));
    report.insert("kernel_tcp_bytes_per_connection".into(), json!(kernel_each));
    report.insert("server_cpu_us_per_connect".into(), json!(cpu_per_connect));
    Ok(report)
}

/// A small, fast pseudo-random sequence (xorshift64): which client each push is for.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % bound.max(1) as u64).unwrap_or(0)
    }
}

/// `unicast N M RATE`: delivery latency of pushes to random single clients.
pub async fn unicast(setup: &Setup, n: usize, pushes: usize, rate: u32) -> Result<Report, Error> {
    let deadline = Instant::now() + setup.deadline;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(pushes)));
    let on_event: OnEvent = Arc::new({
        let latencies = latencies.clone();
        move |data| {
            if let Some((sent, _)) = stamp(data) {
                let latency = now_micros().saturating_sub(sent);
                latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(latency);
            }
        }
    });
    let streams = open(setup, n, &on_event).await?;
    let mut publisher = Publisher::connect_over(setup.publish, setup.transport.clone()).await?;
    let cpu = ServerCpu::start(&setup.pids);
    let mut pick = Xorshift(0x9E37_79B9_7F4A_7C15);
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0;
    for number in 0..pushes {
        if Instant::now() >= deadline {
            break;
        }
        pace.tick().await;
        let payload = format!(r#"{{"t":{},"n":{number}}}"#, now_micros());
        let (path, body) = setup.publish.publish(Audience::Client(pick.below(n)), &payload);
        publisher.post(&path, body).await?;
        sent += 1;
    }
    let received = || latencies.lock().map_or(0, |l| l.len());
    drain(|| received() >= sent, deadline).await;
    let cpu_per_push = cpu.micros_per(sent);
    let connect_time = streams.connect_time;
    streams.close();
    let mut samples =
        std::mem::take(&mut *latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    samples.sort_unstable();
    let (p50, p99, max) =
        (percentile(&samples, 0.5), percentile(&samples, 0.99), percentile(&samples, 1.0));
    let lost = sent.saturating_sub(samples.len());
    eprintln!(
        "unicast {n} conns, {sent} pushes at {rate}/s: latency p50 {} ms, p99 {} ms, max {} ms; \
         lost {lost}{}",
        millis(p50),
        millis(p99),
        millis(max),
        cpu_summary(cpu_per_push, "push"),
    );
    let mut report = Report::new();
    report.insert("scenario".into(), "unicast".into());
    report.insert("connections".into(), n.into());
    report.insert("pushes".into(), sent.into());
    report.insert("rate".into(), rate.into());
    report.insert("latency_p50_us".into(), p50.into());
    report.insert("latency_p99_us".into(), p99.into());
    report.insert("latency_max_us".into(), max.into());
    report.insert("lost".into(), lost.into());
    report.insert("server_cpu_us_per_push".into(), json!(cpu_per_push));
    report.insert("connects_per_second".into(), json!(per_second(n, connect_time).round()));
    Ok(report)
}

/// `broadcast N B [RATE]`: deliveries per second and time to reach every subscriber.
/// Back to back, a hub that accepts faster queues more and each message waits behind
/// the ones before it; paced at a rate both hubs sustain, the fan-out time is the
/// hub's own.
pub async fn broadcast(
    setup: &Setup,
    n: usize,
    broadcasts: usize,
    rate: Option<u32>,
) -> Result<Report, Error> {
    let deadline = Instant::now() + setup.deadline;
    let counts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..broadcasts).map(|_| AtomicUsize::new(0)).collect());
    let last_arrival: Arc<Vec<AtomicU64>> =
        Arc::new((0..broadcasts).map(|_| AtomicU64::new(0)).collect());
    let delivered = Arc::new(AtomicUsize::new(0));
    let on_event: OnEvent = Arc::new({
        let (counts, last_arrival, delivered) =
            (counts.clone(), last_arrival.clone(), delivered.clone());
        move |data| {
            if let Some((_, number)) = stamp(data)
                && number < counts.len()
            {
                counts[number].fetch_add(1, Relaxed);
                last_arrival[number].fetch_max(now_micros(), Relaxed);
                delivered.fetch_add(1, Relaxed);
            }
        }
    });
    let streams = open(setup, n, &on_event).await?;
    let mut publisher = Publisher::connect_over(setup.publish, setup.transport.clone()).await?;
    let cpu = ServerCpu::start(&setup.pids);
    let mut sent_at = Vec::with_capacity(broadcasts);
    let mut pace = rate.map(|rate| {
        let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pace
    });
    let started = Instant::now();
    for number in 0..broadcasts {
        if Instant::now() >= deadline {
            break;
        }
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }
        let sent = now_micros();
        let payload = format!(r#"{{"t":{sent},"n":{number}}}"#);
        let (path, body) = setup.publish.publish(Audience::Everyone, &payload);
        publisher.post(&path, body).await?;
        sent_at.push(sent);
    }
    let expected = sent_at.len() * n;
    drain(|| delivered.load(Relaxed) >= expected, deadline).await;
    let elapsed = started.elapsed();
    let got = delivered.load(Relaxed);
    let cpu_per_delivery = cpu.micros_per(got);
    streams.close();
    let mut fan_out: Vec<u64> = sent_at
        .iter()
        .enumerate()
        .filter(|(number, _)| counts[*number].load(Relaxed) >= n)
        .map(|(number, sent)| last_arrival[number].load(Relaxed).saturating_sub(*sent))
        .collect();
    fan_out.sort_unstable();
    let last = last_arrival.iter().map(|t| t.load(Relaxed)).max().unwrap_or(0);
    let first = sent_at.first().copied().unwrap_or(0);
    let busy = Duration::from_micros(last.saturating_sub(first)).max(Duration::from_micros(1));
    let rate = per_second(got, busy);
    let (p50, p99) = (percentile(&fan_out, 0.5), percentile(&fan_out, 0.99));
    let lost = expected.saturating_sub(got);
    let duplicates = got.saturating_sub(expected);
    eprintln!(
        "broadcast {n} conns, {} broadcasts: {rate:.0} deliveries/s; every subscriber reached \
         in p50 {} ms, p99 {} ms; lost {lost} ({:.1} s){}",
        sent_at.len(),
        millis(p50),
        millis(p99),
        elapsed.as_secs_f64(),
        cpu_summary(cpu_per_delivery, "delivery"),
    );
    let mut report = Report::new();
    report.insert("scenario".into(), "broadcast".into());
    report.insert("connections".into(), n.into());
    report.insert("broadcasts".into(), sent_at.len().into());
    report.insert("rate".into(), json!(rate));
    report.insert("deliveries_per_second".into(), json!(rate.round()));
    report.insert("fan_out_p50_us".into(), p50.into());
    report.insert("fan_out_p99_us".into(), p99.into());
    report.insert("lost".into(), lost.into());
    report.insert("duplicates".into(), duplicates.into());
    report.insert("server_cpu_us_per_delivery".into(), json!(cpu_per_delivery));
    Ok(report)
}
