//! Criterion benchmarks of the hub alone, without HTTP: encoding a frame, fanning a
//! broadcast out to 10 000 in-process subscribers, and replaying history to a resuming
//! client. `cargo bench -p server --bench hub`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use herald::Hub;
use herald::hub::types::{Payload, Target};
use herald::hub::{HubOptions, Next, Subscription};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

/// A kilobyte of text over several lines, as a progress report might be.
fn payload() -> String {
    "exporting rows 40% done\r\n".repeat(40)
}

fn encode(c: &mut Criterion) {
    let data = payload();
    c.bench_function("encode a 1 KB, 40-line event", |b| {
        b.iter(|| {
            herald::sse::encode_event(Some("3f9a0c1e-42-c"), Some("progress"), black_box(&data))
        });
    });
}

/// Drains what is queued on `subscription` without waiting.
async fn drain(subscription: &mut Subscription, frames: usize) {
    for _ in 0..frames {
        assert!(matches!(subscription.next().await, Next::Frame(_)));
    }
}

fn fan_out(c: &mut Criterion) {
    let runtime = runtime();
    let _guard = runtime.enter();
    let hub = Hub::new(HubOptions::default()).expect("a hub");
    let mut subscriptions: Vec<Subscription> = runtime.block_on(async {
        let mut all = Vec::new();
        for n in 0..10_000 {
            let client = format!("c{n}").parse().expect("a client id");
            let mut subscription = hub.subscribe(client, Vec::new(), None).await.expect("open");
            drain(&mut subscription, 1).await; // the position marker
            all.push(subscription);
        }
        all
    });
    let message = Payload::from(r#"{"kind":"progress","percent":40}"#.to_owned());
    c.bench_function("broadcast to 10 000 subscribers (publish + every queue drained)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                hub.publish(&Target::Broadcast, None, &message).await.expect("publish");
                for subscription in &mut subscriptions {
                    drain(subscription, 1).await;
                }
            });
        });
    });
}

fn replay(c: &mut Criterion) {
    let runtime = runtime();
    let _guard = runtime.enter();
    let hub = Hub::new(HubOptions::default()).expect("a hub");
    let target = Target::Client("resuming".parse().expect("a client id"));
    let message = Payload::from(payload());
    let first = runtime.block_on(async {
        let first = hub.publish(&target, None, &message).await.expect("publish").id.to_string();
        for _ in 0..99 {
            hub.publish(&target, None, &message).await.expect("publish");
        }
        first
    });
    c.bench_function("resume: replay 99 held 1 KB messages", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let client = "resuming".parse().expect("a client id");
                let mut subscription =
                    hub.subscribe(client, Vec::new(), Some(&first)).await.expect("resume");
                drain(&mut subscription, 100).await; // 99 messages and the marker
            });
        });
    });
}

criterion_group!(benches, encode, fan_out, replay);
criterion_main!(benches);
