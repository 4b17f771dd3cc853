//! Prints what history and idle connections cost in memory, measured as the growth of
//! this process's resident set (Linux `/proc/self/statm`). A benchmark that prints
//! figures, never an assertion: run with `cargo bench -p server --bench memory`.

use std::time::Instant;

use herald::Hub;
use herald::hub::types::{Payload, Target};
use herald::hub::{HistoryOptions, HubOptions};

/// Resident memory of this process, in bytes.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn hub(per_target: usize) -> Hub {
    Hub::new(HubOptions {
        history: HistoryOptions { per_target, max_bytes: usize::MAX, ..HistoryOptions::default() },
        ..HubOptions::default()
    })
    .expect("an in-memory hub")
}

fn report(what: &str, count: usize, before: usize, started: Instant) {
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "{what:<52} {count:>8} items  {:>8.0} bytes each  ({:.1} MiB, {:.2} s)",
        grown as f64 / count as f64,
        grown as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let payload = Payload::from("x".repeat(100));
    let count = 200_000;

    let one_target = hub(count);
    let (before, started) = (rss_bytes(), Instant::now());
    for _ in 0..count {
        one_target.publish(&Target::Broadcast, None, &payload).await.ok();
    }
    report("history: message of 100 bytes, one target", count, before, started);

    let many_targets = hub(100);
    let (before, started) = (rss_bytes(), Instant::now());
    for n in 0..count {
        let client = Target::Client(format!("client-{n:08}").parse().expect("valid id"));
        many_targets.publish(&client, None, &payload).await.ok();
    }
    report("history: target with one 100-byte message", count, before, started);

    let connections = hub(100);
    let (before, started) = (rss_bytes(), Instant::now());
    let mut held = Vec::with_capacity(count);
    for n in 0..count {
        let client = format!("tab-{n:08}").parse().expect("valid id");
        held.push(connections.subscribe(client, Vec::new(), None).await.ok());
    }
    report("hub: idle subscription (no socket, no HTTP)", count, before, started);
    drop(held);
}
