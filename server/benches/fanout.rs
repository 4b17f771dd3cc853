//! Prints how fast the hub fans a message out, without HTTP: publish throughput to one
//! client, and broadcasts to 10 000 in-process subscribers whose queues are drained by
//! reader tasks. A benchmark that prints figures, never an assertion: run with
//! `cargo bench -p server --bench fanout`.

use std::time::{Duration, Instant};

use herald::Hub;
use herald::hub::types::{Payload, Target};
use herald::hub::{HubOptions, Next};

fn payload() -> Payload {
    Payload::from(r#"{"kind":"progress","percent":40,"note":"exporting rows"}"#.to_owned())
}

/// Messages per second published to a single client with one connection.
async fn unicast(messages: usize) {
    let hub = Hub::new(HubOptions { queue_capacity: messages + 1, ..HubOptions::default() })
        .expect("an in-memory hub");
    let client = "one".parse().expect("valid id");
    let mut subscription = hub.subscribe(client, Vec::new(), None).await.expect("subscribe");
    let target = Target::Client("one".parse().expect("valid id"));
    let payload = payload();
    let started = Instant::now();
    for _ in 0..messages {
        hub.publish(&target, None, &payload).await.expect("publish");
    }
    let elapsed = started.elapsed();
    // The marker, then every message.
    for _ in 0..=messages {
        assert!(matches!(subscription.next().await, Next::Frame(_)));
    }
    println!(
        "unicast publish: {messages} messages in {:.3} s = {:.0} messages/s ({:.2} µs each)",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / messages as f64
    );
}

/// Broadcasts to `subscribers` connections, each drained by its own task.
async fn broadcast(subscribers: usize, broadcasts: usize) {
    let hub = Hub::new(HubOptions { queue_capacity: broadcasts + 1, ..HubOptions::default() })
        .expect("an in-memory hub");
    let mut readers = Vec::with_capacity(subscribers);
    for n in 0..subscribers {
        let client = format!("c{n}").parse().expect("valid id");
        let mut subscription = hub.subscribe(client, Vec::new(), None).await.expect("subscribe");
        readers.push(tokio::spawn(async move {
            let mut received = 0;
            while received <= broadcasts {
                match subscription.next().await {
                    Next::Frame(_) => received += 1,
                    Next::Closed(_) => break,
                }
            }
            received - 1
        }));
    }
    let payload = payload();
    let started = Instant::now();
    let mut publish_time = Duration::ZERO;
    for _ in 0..broadcasts {
        let one = Instant::now();
        let published = hub.publish(&Target::Broadcast, None, &payload).await.expect("publish");
        publish_time += one.elapsed();
        assert_eq!(published.delivered, subscribers);
        tokio::task::yield_now().await;
    }
    let mut delivered = 0;
    for reader in readers {
        delivered += reader.await.expect("reader");
    }
    let elapsed = started.elapsed();
    println!(
        "broadcast to {subscribers}: {broadcasts} broadcasts, {delivered} deliveries in {:.3} s = {:.0} deliveries/s; \
         publish (store + queue on every connection) {:.2} ms each",
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64(),
        publish_time.as_secs_f64() * 1e3 / broadcasts as f64
    );
}

#[tokio::main]
async fn main() {
    unicast(200_000).await;
    broadcast(10_000, 100).await;
}
