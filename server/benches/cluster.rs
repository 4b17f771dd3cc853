//! Prints what scaling out through Redis costs: push-to-delivery latency on one
//! in-memory node against two nodes sharing a real `redis-server` (started here on a
//! free loopback port), and deliveries per second of broadcasts to subscribers spread
//! over two nodes. The nodes are two hubs in this process, each with its own Redis
//! connections, so every message really crosses Redis. A benchmark that prints
//! figures, never an assertion: `cargo bench -p server --bench cluster`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald::Hub;
use herald::hub::types::{Payload, Target};
use herald::hub::{BrokerOptions, HubOptions, Next, RedisOptions, Subscription};

/// A `redis-server` for the run, stopped on drop.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) on PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, url: format!("redis://127.0.0.1:{port}") }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn node(redis: Option<&Redis>, name: &str, queue_capacity: usize) -> Hub {
    let broker = match redis {
        None => BrokerOptions::Memory,
        Some(redis) => BrokerOptions::Redis(RedisOptions {
            url: redis.url.clone(),
            ca: None,
            sentinel: None,
            min_replicas: 0,
            prefix: "bench".to_owned(),
            node_id: name.to_owned(),
            presence_ttl: Duration::from_secs(15),
        }),
    };
    let hub =
        Hub::new(HubOptions { queue_capacity, broker, ..HubOptions::default() }).expect("a hub");
    while hub.health().await.status != herald::hub::HealthStatus::Ok {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub
}

/// The next frame that is not the position marker.
async fn next_message(subscription: &mut Subscription) {
    loop {
        match subscription.next().await {
            Next::Frame(frame) if frame.ends_with(b"event: herald.position\ndata: \n\n") => {}
            Next::Frame(_) => return,
            Next::Closed(reason) => panic!("stream closed: {reason:?}"),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

/// One push at a time from `from` to a client connected to `to`; the time until
/// the subscriber holds it.
async fn latency(label: &str, from: &Hub, to: &Hub, pushes: usize) {
    let mut subscription = to.subscribe("lat".parse().unwrap(), Vec::new(), None).await.unwrap();
    let target = Target::Client("lat".parse().unwrap());
    let payload = Payload::from("ping".to_owned());
    let mut samples = Vec::with_capacity(pushes);
    for _ in 0..pushes {
        let started = Instant::now();
        from.publish(&target, None, &payload).await.expect("publish");
        next_message(&mut subscription).await;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    println!(
        "{label:<38} {pushes} pushes: p50 {:>7.0} µs  p99 {:>7.0} µs  max {:>7.0} µs",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
}

/// `broadcasts` broadcasts from `nodes[0]` to `per_node` subscribers on each node,
/// published concurrently from 16 tasks; deliveries per second until every
/// subscriber has every message.
async fn broadcast(label: &str, nodes: &[Hub], per_node: usize, broadcasts: usize) {
    let mut readers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for c in 0..per_node {
            let client = format!("n{n}c{c}").parse().unwrap();
            let mut subscription = node.subscribe(client, Vec::new(), None).await.unwrap();
            readers.push(tokio::spawn(async move {
                for _ in 0..broadcasts {
                    next_message(&mut subscription).await;
                }
            }));
        }
    }
    let payload = Payload::from(r#"{"kind":"progress","percent":40}"#.to_owned());
    let started = Instant::now();
    let publishers: Vec<_> = (0..16)
        .map(|p| {
            let hub = nodes[0].clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                for _ in (p..broadcasts).step_by(16) {
                    hub.publish(&Target::Broadcast, None, &payload).await.expect("publish");
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    for reader in readers {
        reader.await.expect("reader");
    }
    let elapsed = started.elapsed();
    let deliveries = nodes.len() * per_node * broadcasts;
    println!(
        "{label:<38} {deliveries} deliveries in {:.2} s = {:>8.0} deliveries/s ({:.0} broadcasts/s)",
        elapsed.as_secs_f64(),
        deliveries as f64 / elapsed.as_secs_f64(),
        broadcasts as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let pushes = 2_000;
    let broadcasts = 2_000;
    let per_node = 1_000;
    let single = node(None, "single", broadcasts + 8).await;
    latency("one node, in memory", &single, &single, pushes).await;
    broadcast("one node, in memory, 2×1000 subs", &[single.clone(), single], per_node, broadcasts)
        .await;

    let redis = Redis::start();
    let a = node(Some(&redis), "a", broadcasts + 8).await;
    let b = node(Some(&redis), "b", broadcasts + 8).await;
    latency("Redis, push and client on one node", &a, &a, pushes).await;
    latency("Redis, push on A, client on B", &a, &b, pushes).await;
    broadcast("Redis, two nodes × 1000 subs", &[a.clone(), b.clone()], per_node, broadcasts).await;
    a.shutdown();
    b.shutdown();
}
