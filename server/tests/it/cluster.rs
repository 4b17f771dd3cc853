//! Several real `herald` processes on one real Redis: a push accepted by any node
//! reaches the right connections on every node, history and tasks are shared,
//! presence is cluster-wide and forgets a node killed without warning, and a Redis
//! outage is survived.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::node::Node;
use crate::support::redis::{RedisServer, unique_prefix};
use crate::support::{Api, SseClient, eventually};

/// A Redis and `count` nodes on it, sharing a key prefix of their own. Bind every
/// field you destructure (`redis: _redis`): a dropped `RedisServer` stops Redis.
struct Cluster {
    redis: RedisServer,
    prefix: String,
    nodes: Vec<Node>,
}

async fn cluster(test: &str, count: usize, args: &[&str]) -> Cluster {
    let redis = RedisServer::start().await;
    let prefix = unique_prefix(test);
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        nodes.push(Node::on_redis(&redis, &prefix, args).await);
    }
    Cluster { redis, prefix, nodes }
}

/// Waits until `node` sees `count` connections for `client` cluster-wide.
pub(crate) async fn sees_connections(node: &Api, client: &str, count: u64) {
    eventually(|| async { connections(node, client).await == count }).await;
}

async fn connections(node: &Api, client: &str) -> u64 {
    let (_, body) = node.get("/clients").await;
    body["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["client_id"] == client)
        .map_or(0, |entry| entry["connections"].as_u64().unwrap_or(0))
}

/// Asserts that the next message on `stream` is `expected`: anything sent to it in
/// between (which it should not have got) would show up here first.
pub(crate) async fn next_is(stream: &mut SseClient, expected: &str) {
    assert_eq!(stream.next_data().await, expected);
}

#[tokio::test]
async fn three_clients_on_three_nodes_get_only_their_own_messages() {
    let Cluster { nodes, redis: _redis, .. } = cluster("three_clients", 3, &[]).await;
    let mut first = nodes[0].subscribe("client_id=first").await;
    let mut second = nodes[1].subscribe("client_id=second").await;
    let mut third = nodes[2].subscribe("client_id=third").await;
    for client in ["first", "second", "third"] {
        sees_connections(&nodes[0], client, 1).await;
    }

    let (_, delivered) =
        nodes[0].push(json!({"client_id": "second", "message": "for the second"})).await;
    assert_eq!(delivered, 1, "counted cluster-wide");
    next_is(&mut second, "for the second").await;

    let (_, delivered) = nodes[0].push(json!({"broadcast": true, "message": "for all"})).await;
    assert_eq!(delivered, 3);
    next_is(&mut first, "for all").await;
    next_is(&mut second, "for all").await;
    next_is(&mut third, "for all").await;

    // Each push's script round trip was timed on the node that sent it.
    assert_eq!(nodes[0].metric("herald_redis_round_trip_seconds_count").await, Some(2));
    assert_eq!(nodes[0].metric("herald_redis_reconnects_total").await, Some(0));
}

#[tokio::test]
async fn topics_reach_their_members_on_every_node() {
    let Cluster { nodes, redis: _redis, .. } = cluster("topics", 3, &[]).await;
    let mut reader_a = nodes[0].subscribe("client_id=ra&topic=news").await;
    let mut reader_b = nodes[1].subscribe("client_id=rb&topic=news&topic=sport").await;
    let mut outsider = nodes[2].subscribe("client_id=out&topic=sport").await;
    for client in ["ra", "rb", "out"] {
        sees_connections(&nodes[2], client, 1).await;
    }
    let (_, delivered) = nodes[2].push(json!({"topic": "news", "message": "headline"})).await;
    assert_eq!(delivered, 2);
    next_is(&mut reader_a, "headline").await;
    next_is(&mut reader_b, "headline").await;
    nodes[0].push(json!({"topic": "sport", "message": "score"})).await;
    next_is(&mut reader_b, "score").await;
    next_is(&mut outsider, "score").await;
}

#[tokio::test]
async fn a_client_resumes_on_another_node_and_after_every_node_restarted() {
    let Cluster { redis, prefix, mut nodes } = cluster("resume", 3, &[]).await;
    let mut stream = nodes[0].subscribe("client_id=roamer&topic=t").await;
    nodes[1].push(json!({"client_id": "roamer", "message": "seen"})).await;
    let seen = stream.next().await.id;
    drop(stream);
    nodes[1].push(json!({"client_id": "roamer", "message": "missed 1"})).await;
    nodes[0].push(json!({"topic": "t", "message": "missed 2"})).await;
    nodes[2].push(json!({"broadcast": true, "message": "missed 3"})).await;

    let mut back = nodes[2].open_stream("/sse?client_id=roamer&topic=t", Some(&seen)).await;
    for expected in ["missed 1", "missed 2", "missed 3"] {
        next_is(&mut back, expected).await;
    }
    nodes[0].push(json!({"client_id": "roamer", "message": "live"})).await;
    let live = back.next().await;
    assert_eq!(live.data, "live", "no duplicate at the switch from replay to live");
    drop(back);

    // Every node goes away; history lives in Redis, so a new node still has it.
    for node in &mut nodes {
        node.kill9().await;
    }
    let fresh = Node::on_redis(&redis, &prefix, &[]).await;
    let mut again = fresh.open_stream("/sse?client_id=roamer&topic=t", Some(&seen)).await;
    for expected in ["missed 1", "missed 2", "missed 3", "live"] {
        next_is(&mut again, expected).await;
    }
}

#[tokio::test]
async fn presence_is_cluster_wide_and_forgets_a_killed_node() {
    let Cluster { mut nodes, redis: _redis, .. } =
        cluster("presence", 3, &["--presence-ttl", "1s"]).await;
    let _tab_a = nodes[0].subscribe("client_id=p&topic=x").await;
    let _tab_b = nodes[1].subscribe("client_id=p&topic=y").await;
    let _only_b = nodes[1].subscribe("client_id=q").await;
    sees_connections(&nodes[2], "p", 2).await;
    sees_connections(&nodes[2], "q", 1).await;
    let (_, body) = nodes[2].get("/clients").await;
    let p = body["clients"].as_array().unwrap().iter().find(|c| c["client_id"] == "p").unwrap();
    assert_eq!(p["topics"], json!(["x", "y"]));

    // Killed: no goodbye, no cleanup. Its entries expire with its presence keys.
    nodes[1].kill9().await;
    eventually(|| async {
        connections(&nodes[2], "p").await == 1 && connections(&nodes[2], "q").await == 0
    })
    .await;
}

#[tokio::test]
async fn a_task_is_created_driven_and_watched_on_different_nodes() {
    let Cluster { nodes, redis: _redis, .. } = cluster("tasks", 3, &["--job-ttl", "2s"]).await;
    let (status, created) = nodes[0].post("/jobs", json!({"title": "export", "total": 2})).await;
    assert_eq!(status, 201, "{created}");
    let events = created["events"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let mut watch = nodes[1].open_stream(&events, None).await;
    assert_eq!(watch.next().await.event, "progress");

    let (status, _) =
        nodes[2].post(&format!("/jobs/{id}/progress"), json!({"step": 1, "message": "half"})).await;
    assert_eq!(status, 200);
    let progress: Value = serde_json::from_str(&watch.next().await.data).unwrap();
    assert_eq!(progress, json!({"step": 1, "total": 2, "message": "half"}));
    let (status, _) = nodes[2].post(&format!("/jobs/{id}/finish"), json!({"result": 42})).await;
    assert_eq!(status, 200);
    let done = watch.next().await;
    assert_eq!((done.event.as_str(), done.data.as_str()), ("done", r#"{"result":42}"#));
    watch.expect_end().await;

    let again = nodes[0].http.get(nodes[0].url(&events)).header("Last-Event-ID", done.id);
    assert_eq!(again.send().await.unwrap().status(), 204);
    let (_, snapshot) = nodes[1].get(&format!("/jobs/{id}")).await;
    assert_eq!(snapshot["state"], "done");
    // A finished task expires in Redis by itself, for every node.
    eventually(|| async { nodes[2].get(&format!("/jobs/{id}")).await.0 == 404 }).await;
}

#[tokio::test]
async fn a_redis_outage_is_survived() {
    let Cluster { mut redis, mut nodes, .. } = cluster("outage", 2, &[]).await;
    let mut stream = nodes[1].subscribe("client_id=s").await;
    sees_connections(&nodes[0], "s", 1).await;
    nodes[0].push(json!({"client_id": "s", "message": "before"})).await;
    let before = stream.next().await;

    redis.stop().await;
    eventually(|| async { nodes[0].get("/healthz").await.0 == 503 }).await;
    let (_, health) = nodes[0].get("/healthz").await;
    assert_eq!(health["status"], "degraded");
    // Not ready for new streams, but alive: nothing to restart over a Redis outage.
    let (status, ready) = nodes[0].get("/readyz").await;
    assert_eq!((status, &ready["status"]), (StatusCode::SERVICE_UNAVAILABLE, &json!("degraded")));
    assert_eq!(nodes[0].get("/livez").await.0, StatusCode::OK);
    let (status, error) =
        nodes[0].post("/push", json!({"client_id": "s", "message": "while down"})).await;
    assert_eq!(status, 503, "{error}");
    assert!(error["error"].as_str().unwrap().contains("unavailable"), "{error}");
    let (_, health) = nodes[1].get("/healthz").await;
    assert_eq!(health["connections"], 1, "open streams stay open while Redis is down");
    // A resuming client cannot be replayed to now: it is asked to retry (a 200 that
    // ends at once, since EventSource would give up for good on a 503).
    let mut early = nodes[1].open_stream("/sse?client_id=s", Some(&before.id)).await;
    early.expect_end().await;

    redis.start_again().await;
    for node in &nodes {
        node.wait_healthy().await;
    }
    // The new Redis holds none of the old history: the node closes its streams, and
    // the client, resuming, is told it may have missed something.
    stream.expect_end().await;
    let mut back = nodes[1].open_stream("/sse?client_id=s", Some(&before.id)).await;
    let gap = back.next().await;
    assert_eq!(gap.event, "gap");
    sees_connections(&nodes[0], "s", 1).await;
    nodes[0].push(json!({"client_id": "s", "message": "after"})).await;
    next_is(&mut back, "after").await;

    for node in &mut nodes {
        assert!(node.is_running(), "no node exited");
        assert!(!node.log().contains("panicked"), "{}", node.log());
        let reconnects = node.metric("herald_redis_reconnects_total").await;
        assert!(reconnects.is_some_and(|count| count >= 1), "{reconnects:?}");
    }
}
