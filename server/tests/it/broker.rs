//! One conformance suite for the broker contract, run against both brokers: the
//! in-memory one and the Redis one (a real `redis-server` per test, with its own key
//! prefix). Each test drives the hub's own API, the way the HTTP layer does.

use std::collections::VecDeque;
use std::time::Duration;

use herald::hub::jobs::{JobState, Outcome, Watch};
use herald::hub::types::{DisconnectReason, Payload, Target};
use herald::hub::{
    BrokerOptions, HealthStatus, HistoryOptions, Hub, HubOptions, Next, RedisOptions, Subscription,
};
use serde_json::json;

use crate::support::redis::{RedisServer, unique_prefix};
use crate::support::{PATIENCE, eventually};

/// Where a test's hubs keep their state: in memory, or on one Redis.
pub struct Backend {
    redis: Option<(RedisServer, String)>,
}

impl Backend {
    pub fn memory() -> Self {
        Self { redis: None }
    }

    pub async fn redis(test: &str) -> Self {
        Self { redis: Some((RedisServer::start().await, unique_prefix(test))) }
    }

    /// A hub (a node) on this backend, ready to publish.
    pub async fn hub(&self, tweak: impl FnOnce(&mut HubOptions)) -> Hub {
        let mut options = HubOptions::default();
        if let Some((redis, prefix)) = &self.redis {
            options.broker = BrokerOptions::Redis(RedisOptions {
                url: redis.url(),
                ca: None,
                sentinel: None,
                min_replicas: 0,
                prefix: prefix.clone(),
                node_id: uuid_like(),
                presence_ttl: Duration::from_secs(2),
            });
        }
        tweak(&mut options);
        let hub = Hub::new(options).expect("a hub");
        eventually(|| async { hub.health().await.status == HealthStatus::Ok }).await;
        hub
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("node-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn text(payload: &str) -> Payload {
    Payload::from(payload.to_owned())
}

fn client(id: &str) -> Target {
    Target::Client(id.parse().unwrap())
}

/// The next frame that is not a position marker, as text.
async fn next_frame(subscription: &mut Subscription) -> String {
    loop {
        match tokio::time::timeout(PATIENCE, subscription.next()).await.expect("a frame in time") {
            Next::Frame(frame) if frame.ends_with(b"event: herald.position\ndata: \n\n") => {}
            Next::Frame(frame) => return String::from_utf8(frame.to_vec()).unwrap(),
            Next::Closed(reason) => panic!("closed: {reason:?}"),
        }
    }
}

/// The data lines of the next `count` frames.
async fn next_data(subscription: &mut Subscription, count: usize) -> Vec<String> {
    let mut data = Vec::with_capacity(count);
    for _ in 0..count {
        let frame = next_frame(subscription).await;
        let line = frame.lines().find_map(|line| line.strip_prefix("data: ")).unwrap_or_default();
        data.push(line.to_owned());
    }
    data
}

/// Waits until presence (cluster-wide with Redis) shows `clients` clients.
async fn settle(hub: &Hub, clients: usize) {
    eventually(|| async { hub.clients().await.map(|all| all.len()).unwrap_or(0) == clients }).await;
}

async fn ids_increase_and_carry_the_target_kind(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    let first = hub.publish(&Target::Broadcast, None, &text("a")).await.unwrap();
    let second = hub.publish(&Target::Topic("t".parse().unwrap()), None, &text("b")).await.unwrap();
    assert!(second.id.seq > first.id.seq);
    assert_eq!(second.id.epoch, first.id.epoch);
    assert!(first.id.to_string().ends_with("-b"));
    assert!(second.id.to_string().ends_with("-t"));
}

async fn a_unicast_reaches_every_tab_of_its_client_only(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    let mut tab1 = hub.subscribe("a".parse().unwrap(), vec![], None).await.unwrap();
    let mut tab2 = hub.subscribe("a".parse().unwrap(), vec![], None).await.unwrap();
    let mut other = hub.subscribe("b".parse().unwrap(), vec![], None).await.unwrap();
    settle(&hub, 2).await;
    let published = hub.publish(&client("a"), None, &text("hi")).await.unwrap();
    assert_eq!(published.delivered, 2);
    let expected = format!("id: {}\ndata: hi\n\n", published.id);
    assert_eq!(next_frame(&mut tab1).await, expected);
    assert_eq!(next_frame(&mut tab2).await, expected);
    hub.publish(&client("b"), None, &text("b only")).await.unwrap();
    assert_eq!(next_data(&mut other, 1).await, ["b only"]);
}

async fn topics_and_broadcasts_reach_their_subscribers(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    let mut news =
        hub.subscribe("a".parse().unwrap(), vec!["news".parse().unwrap()], None).await.unwrap();
    let mut plain = hub.subscribe("b".parse().unwrap(), vec![], None).await.unwrap();
    settle(&hub, 2).await;
    let topic = Target::Topic("news".parse().unwrap());
    assert_eq!(hub.publish(&topic, None, &text("t")).await.unwrap().delivered, 1);
    assert_eq!(hub.publish(&Target::Broadcast, None, &text("all")).await.unwrap().delivered, 2);
    assert_eq!(next_data(&mut news, 2).await, ["t", "all"]);
    assert_eq!(next_data(&mut plain, 1).await, ["all"]);
}

async fn resume_replays_what_was_missed_once_in_order(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    let seen = hub.publish(&client("r"), None, &text("seen")).await.unwrap().id.to_string();
    for n in 0..3 {
        hub.publish(&client("r"), None, &text(&format!("missed {n}"))).await.unwrap();
    }
    hub.publish(&client("other"), None, &text("not for r")).await.unwrap();
    let mut back = hub.subscribe("r".parse().unwrap(), vec![], Some(&seen)).await.unwrap();
    assert_eq!(next_data(&mut back, 3).await, ["missed 0", "missed 1", "missed 2"]);
    hub.publish(&client("r"), None, &text("live")).await.unwrap();
    assert_eq!(next_data(&mut back, 1).await, ["live"]);
}

/// Pushes keep arriving while the history is read: the switch from replay to live
/// must lose nothing and repeat nothing. Run many times to shake out races.
async fn resume_while_publishing_loses_and_repeats_nothing(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    for round in 0..20 {
        let name = format!("race{round}");
        let target = client(&name);
        let seen = hub.publish(&target, None, &text("0")).await.unwrap().id.to_string();
        let publisher = tokio::spawn({
            let hub = hub.clone();
            let target = target.clone();
            async move {
                for n in 1..=30 {
                    hub.publish(&target, None, &text(&n.to_string())).await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        tokio::task::yield_now().await;
        let mut back = hub.subscribe(name.parse().unwrap(), vec![], Some(&seen)).await.unwrap();
        publisher.await.unwrap();
        let got = next_data(&mut back, 30).await;
        let expected: Vec<String> = (1..=30).map(|n| n.to_string()).collect();
        assert_eq!(got, expected, "round {round}");
    }
}

async fn evicted_history_is_announced_as_a_gap(backend: Backend) {
    let hub = backend
        .hub(|options| {
            options.history = HistoryOptions { per_target: 2, ..HistoryOptions::default() }
        })
        .await;
    let seen = hub.publish(&client("g"), None, &text("seen")).await.unwrap().id.to_string();
    for n in 0..4 {
        hub.publish(&client("g"), None, &text(&n.to_string())).await.unwrap();
    }
    let mut back = hub.subscribe("g".parse().unwrap(), vec![], Some(&seen)).await.unwrap();
    let gap = next_frame(&mut back).await;
    assert!(gap.starts_with("event: gap\n"), "{gap}");
    assert!(gap.contains(r#""reason":"evicted""#), "{gap}");
    assert_eq!(next_data(&mut back, 2).await, ["2", "3"]);
}

async fn an_unknown_id_gets_a_gap_then_everything_held(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    hub.publish(&client("u"), None, &text("held")).await.unwrap();
    let mut back = hub.subscribe("u".parse().unwrap(), vec![], Some("0000beef-7-c")).await.unwrap();
    let gap = next_frame(&mut back).await;
    assert!(gap.contains(r#""reason":"unknown""#), "{gap}");
    assert_eq!(next_data(&mut back, 1).await, ["held"]);
}

async fn a_client_is_disconnected_on_demand(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    let mut kicked = hub.subscribe("k".parse().unwrap(), vec![], None).await.unwrap();
    let _stays = hub.subscribe("s".parse().unwrap(), vec![], None).await.unwrap();
    settle(&hub, 2).await;
    assert_eq!(hub.disconnect_client(&"k".parse().unwrap()).await.unwrap(), 1);
    loop {
        match tokio::time::timeout(PATIENCE, kicked.next()).await.expect("closed in time") {
            Next::Frame(_) => {}
            Next::Closed(reason) => break assert_eq!(reason, DisconnectReason::Kicked),
        }
    }
    drop(kicked);
    settle(&hub, 1).await;
}

async fn presence_lists_clients_with_their_tabs_and_topics(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    let _tab1 =
        hub.subscribe("p".parse().unwrap(), vec!["x".parse().unwrap()], None).await.unwrap();
    let tab2 = hub.subscribe("p".parse().unwrap(), vec!["y".parse().unwrap()], None).await.unwrap();
    eventually(|| async {
        let clients = hub.clients().await.unwrap();
        clients.len() == 1 && clients[0].connections == 2
    })
    .await;
    let clients = hub.clients().await.unwrap();
    assert_eq!(clients[0].client_id.as_str(), "p");
    let topics: Vec<&str> = clients[0].topics.iter().map(|topic| topic.as_str()).collect();
    assert_eq!(topics, ["x", "y"]);
    drop(tab2);
    eventually(|| async { hub.clients().await.unwrap()[0].connections == 1 }).await;
}

async fn a_task_streams_to_its_end_and_then_says_no_more(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    let jobs = hub.jobs();
    let id = jobs.create("export".to_owned(), 2).await.unwrap();
    let Watch::Stream(mut watch) = jobs.watch(&id, None).await.unwrap() else {
        panic!("a running task is watched")
    };
    jobs.progress(&id, 1, Some("half".to_owned())).await.unwrap();
    jobs.finish(&id, Outcome::Result(json!({"rows": 2}))).await.unwrap();
    let mut frames = VecDeque::new();
    while let Next::Frame(frame) = tokio::time::timeout(PATIENCE, watch.next()).await.unwrap() {
        frames.push_back(String::from_utf8(frame.to_vec()).unwrap());
    }
    assert_eq!(
        Vec::from(frames),
        [
            "id: 1\nevent: progress\ndata: {\"step\":0,\"total\":2}\n\n",
            "id: 2\nevent: progress\ndata: {\"step\":1,\"total\":2,\"message\":\"half\"}\n\n",
            "id: 3\nevent: done\ndata: {\"result\":{\"rows\":2}}\n\n",
        ]
    );
    assert!(matches!(jobs.watch(&id, Some("3")).await.unwrap(), Watch::AlreadyFinished));
    let snapshot = jobs.snapshot(&id).await.unwrap();
    assert_eq!(
        (snapshot.state, snapshot.step, snapshot.last_event_id.as_str()),
        (JobState::Done, 1, "3")
    );
}

async fn shutdown_ends_streams_and_refuses_new_work(backend: Backend) {
    let hub = backend.hub(|_| {}).await;
    let mut subscription = hub.subscribe("a".parse().unwrap(), vec![], None).await.unwrap();
    hub.publish(&Target::Broadcast, None, &text("last")).await.unwrap();
    assert_eq!(next_data(&mut subscription, 1).await, ["last"]);
    hub.shutdown();
    assert_eq!(subscription.next().await, Next::Closed(DisconnectReason::Shutdown));
    assert!(hub.subscribe("b".parse().unwrap(), vec![], None).await.is_err());
    assert!(hub.publish(&Target::Broadcast, None, &text("x")).await.is_err());
}

/// Two nodes on one Redis: what one accepts, the other delivers, and presence and
/// tasks are shared. (Only the Redis broker shares state between nodes.)
#[tokio::test]
async fn two_redis_nodes_share_delivery_presence_and_tasks() {
    let backend = Backend::redis("two_nodes").await;
    let a = backend.hub(|_| {}).await;
    let b = backend.hub(|_| {}).await;
    let mut on_b = b.subscribe("far".parse().unwrap(), vec![], None).await.unwrap();
    settle(&a, 1).await;
    let published = a.publish(&client("far"), None, &text("across")).await.unwrap();
    assert_eq!(published.delivered, 1, "counted cluster-wide");
    assert_eq!(next_data(&mut on_b, 1).await, ["across"]);
    let id = a.jobs().create("shared".to_owned(), 1).await.unwrap();
    b.jobs().finish(&id, Outcome::Error("nope".to_owned())).await.unwrap();
    assert_eq!(a.jobs().snapshot(&id).await.unwrap().state, JobState::Failed);
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Backend::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Backend::redis(stringify!($test)).await).await;
                }
            )*
        }
    };
}

conformance!(
    ids_increase_and_carry_the_target_kind,
    a_unicast_reaches_every_tab_of_its_client_only,
    topics_and_broadcasts_reach_their_subscribers,
    resume_replays_what_was_missed_once_in_order,
    resume_while_publishing_loses_and_repeats_nothing,
    evicted_history_is_announced_as_a_gap,
    an_unknown_id_gets_a_gap_then_everything_held,
    a_client_is_disconnected_on_demand,
    presence_lists_clients_with_their_tabs_and_topics,
    a_task_streams_to_its_end_and_then_says_no_more,
    shutdown_ends_streams_and_refuses_new_work,
);
