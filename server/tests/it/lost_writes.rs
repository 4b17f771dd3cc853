//! A Redis that comes back with less than it had — restarted from an RDB snapshot, as
//! Redis' default configuration persists — must never hand an id out twice, and a
//! client that resumes across the loss is told (`gap`), however late it comes back
//! (docs/contract.md §3.1). Each test runs a real `redis-server` that writes its
//! snapshot to disk, is killed, and starts again from that file.

use serde_json::json;

use crate::cluster::{next_is, sees_connections};
use crate::support::node::Node;
use crate::support::redis::{RedisServer, unique_prefix};

/// The field report, step by step: m1..m3 are pushed and snapshotted; `c1` receives m4
/// and m5 live, leaves, and Redis restarts from the snapshot; m6 and m7 are pushed.
/// Returns the ids m4 and m5 had and the ids m6 and m7 got.
async fn push_across_a_restart_from_snapshot(
    redis: &mut RedisServer,
    publisher: &Node,
    subscriber: &Node,
) -> ([String; 2], [String; 2]) {
    for n in 1..=3 {
        publisher.push(json!({"client_id": "c1", "message": format!("m{n}")})).await;
    }
    redis.snapshot().await;

    let mut c1 = subscriber.subscribe("client_id=c1").await;
    sees_connections(publisher, "c1", 1).await;
    publisher.push(json!({"client_id": "c1", "message": "m4"})).await;
    publisher.push(json!({"client_id": "c1", "message": "m5"})).await;
    let m4 = c1.next().await;
    let m5 = c1.next().await;
    assert_eq!((m4.data.as_str(), m5.data.as_str()), ("m4", "m5"));
    drop(c1);

    redis.stop().await;
    redis.start_again().await;
    publisher.wait_healthy().await;
    subscriber.wait_healthy().await;
    let (m6, _) = publisher.push(json!({"client_id": "c1", "message": "m6"})).await;
    let (m7, _) = publisher.push(json!({"client_id": "c1", "message": "m7"})).await;
    ([m4.id, m5.id], [m6, m7])
}

/// What `c1` gets when it comes back with m5's id: a gap, then m6 and m7.
async fn resumes_with_a_gap(node: &Node, last_event_id: &str) {
    let mut back = node.open_stream("/sse?client_id=c1", Some(last_event_id)).await;
    let gap = back.next().await;
    assert_eq!(gap.event, "gap", "{gap:?}");
    let data: serde_json::Value = serde_json::from_str(&gap.data).expect("JSON gap data");
    assert_eq!(data["last_event_id"], last_event_id);
    next_is(&mut back, "m6").await;
    next_is(&mut back, "m7").await;
}

#[tokio::test]
async fn ids_lost_in_a_restart_from_a_snapshot_are_never_given_again() {
    let mut redis = RedisServer::start().await;
    let node = Node::on_redis(&redis, &unique_prefix("snapshot_restart"), &[]).await;

    let (lost, after) = push_across_a_restart_from_snapshot(&mut redis, &node, &node).await;

    for id in &after {
        assert!(!lost.contains(id), "{id} was m4's or m5's id; it named another message");
    }
    resumes_with_a_gap(&node, &lost[1]).await;
    // The lost ids stay unknown however many messages follow.
    for n in 8..=12 {
        node.push(json!({"client_id": "c1", "message": format!("m{n}")})).await;
    }
    let mut late = node.open_stream("/sse?client_id=c1", Some(&lost[0])).await;
    assert_eq!(late.next().await.event, "gap");
    assert!(!node.log().contains("panicked"), "{}", node.log());
}

#[tokio::test]
async fn a_client_that_returns_through_another_node_is_told_of_the_loss() {
    let mut redis = RedisServer::start().await;
    let prefix = unique_prefix("snapshot_restart_nodes");
    let a = Node::on_redis(&redis, &prefix, &[]).await;
    let b = Node::on_redis(&redis, &prefix, &[]).await;
    let c = Node::on_redis(&redis, &prefix, &[]).await;

    // Pushed through A, received on B, resumed on C.
    let (lost, after) = push_across_a_restart_from_snapshot(&mut redis, &a, &b).await;

    for id in &after {
        assert!(!lost.contains(id), "{id} was m4's or m5's id; it named another message");
    }
    resumes_with_a_gap(&c, &lost[1]).await;
    resumes_with_a_gap(&b, &lost[1]).await;
}

#[tokio::test]
async fn a_client_that_was_live_across_the_restart_resumes_with_a_gap() {
    let mut redis = RedisServer::start().await;
    let prefix = unique_prefix("snapshot_restart_live");
    let a = Node::on_redis(&redis, &prefix, &[]).await;
    let b = Node::on_redis(&redis, &prefix, &[]).await;
    a.push(json!({"client_id": "c1", "message": "m1"})).await;
    redis.snapshot().await;
    let mut live = b.subscribe("client_id=c1").await;
    sees_connections(&a, "c1", 1).await;
    a.push(json!({"client_id": "c1", "message": "m2"})).await;
    let m2 = live.next().await;

    redis.stop().await;
    redis.start_again().await;
    // B cannot know what it missed while it was cut off: its streams end, so that
    // their clients resume from history.
    live.expect_end().await;
    a.wait_healthy().await;
    b.wait_healthy().await;
    let (m3, _) = a.push(json!({"client_id": "c1", "message": "m3"})).await;
    assert_ne!(m3, m2.id);
    let mut back = b.open_stream("/sse?client_id=c1", Some(&m2.id)).await;
    assert_eq!(back.next().await.event, "gap");
    next_is(&mut back, "m3").await;
}

#[tokio::test]
async fn messages_that_outlived_the_loss_are_still_replayed_after_the_gap() {
    let mut redis = RedisServer::start().await;
    let node = Node::on_redis(&redis, &unique_prefix("outlived"), &[]).await;
    let (m1, _) = node.push(json!({"client_id": "c1", "message": "m1"})).await;
    node.push(json!({"client_id": "c1", "message": "m2"})).await;
    node.push(json!({"client_id": "c1", "message": "m3"})).await;
    redis.snapshot().await;
    node.push(json!({"client_id": "c1", "message": "lost"})).await;
    redis.stop().await;
    redis.start_again().await;
    node.wait_healthy().await;
    node.push(json!({"client_id": "c1", "message": "m5"})).await;

    // The client saw only m1: m2 and m3 are still held under their own ids; the
    // message after them is gone, so the gap comes first.
    let mut back = node.open_stream("/sse?client_id=c1", Some(&m1)).await;
    assert_eq!(back.next().await.event, "gap");
    next_is(&mut back, "m2").await;
    next_is(&mut back, "m3").await;
    next_is(&mut back, "m5").await;
}

#[tokio::test]
async fn a_client_away_across_several_losses_gets_every_epoch_still_held_in_order() {
    let mut redis = RedisServer::start().await;
    let node = Node::on_redis(&redis, &unique_prefix("epochs"), &[]).await;
    let (m1, _) = node.push(json!({"client_id": "c1", "message": "m1"})).await;
    node.push(json!({"client_id": "c1", "message": "m2"})).await;
    // Two restarts, each from a snapshot that holds everything before it: three
    // epochs, every message still held.
    for later in ["m3", "m4"] {
        redis.snapshot().await;
        redis.stop().await;
        redis.start_again().await;
        node.wait_healthy().await;
        node.push(json!({"client_id": "c1", "message": later})).await;
    }

    let mut back = node.open_stream("/sse?client_id=c1", Some(&m1)).await;
    assert_eq!(back.next().await.event, "gap");
    for expected in ["m2", "m3", "m4"] {
        next_is(&mut back, expected).await;
    }
}

#[tokio::test]
async fn a_flush_while_nodes_stay_subscribed_is_announced_too() {
    let redis = RedisServer::start().await;
    let prefix = unique_prefix("flush_live");
    let a = Node::on_redis(&redis, &prefix, &[]).await;
    let b = Node::on_redis(&redis, &prefix, &[]).await;
    for n in 1..=3 {
        a.push(json!({"client_id": "c1", "message": format!("m{n}")})).await;
    }
    // A resumed stream: it skips live frames its replay covered, by seq.
    let mut live = b.open_stream("/sse?client_id=c1", Some("none")).await;
    assert_eq!(live.next().await.event, "gap");
    let m3 = {
        let _m1 = live.next().await;
        let _m2 = live.next().await;
        live.next().await
    };
    assert_eq!(m3.data, "m3");

    // Everything goes, the subscriptions stay: the next push starts a new epoch whose
    // seqs start over, below what the stream has seen.
    assert_eq!(redis.cli(&["FLUSHALL"]).await, "OK");
    let (m4, _) = a.push(json!({"client_id": "c1", "message": "m4"})).await;
    assert_ne!(m4, m3.id);
    live.expect_end().await;
    let mut back = b.open_stream("/sse?client_id=c1", Some(&m3.id)).await;
    assert_eq!(back.next().await.event, "gap");
    next_is(&mut back, "m4").await;
}
