//! Graceful shutdown of the real `herald` binary: SIGTERM ends every stream (so
//! clients reconnect elsewhere and resume) and the process exits within its grace.

use std::time::Duration;

use serde_json::json;

use crate::support::node::Node;

#[tokio::test]
async fn sigterm_ends_streams_and_exits_within_the_grace_period() {
    let mut node = Node::start(&["--shutdown-grace", "5s"]).await;
    let mut stream = node.subscribe("client_id=a").await;
    node.push(json!({"client_id": "a", "message": "last words"})).await;

    node.terminate();
    assert_eq!(stream.next_data().await, "last words", "accepted messages are still delivered");
    stream.expect_end().await;
    let status = tokio::time::timeout(Duration::from_secs(8), node.wait()).await;
    let status = status.expect("herald exits within its grace period");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_grace_period_bounds_a_client_that_never_reads() {
    let mut node = Node::start(&["--shutdown-grace", "1s", "--queue-capacity", "100000"]).await;
    let addr: std::net::SocketAddr = node.url("").trim_start_matches("http://").parse().unwrap();
    // A reader that stops reading: its stream cannot drain, so only the grace period
    // lets the process exit.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let request = b"GET /sse?client_id=stalled HTTP/1.1\r\nHost: x\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut stalled, request).await.unwrap();
    let big = "z".repeat(60 * 1024);
    for _ in 0..200 {
        node.push(json!({"client_id": "stalled", "message": big})).await;
    }
    node.terminate();
    let status = tokio::time::timeout(Duration::from_secs(8), node.wait()).await;
    assert!(status.expect("herald exits after the grace period").success());
    drop(stalled);
}

#[tokio::test]
async fn a_node_whose_log_reader_went_away_keeps_serving_and_still_stops_on_sigterm() {
    let mut node = Node::start(&["--shutdown-grace", "5s"]).await;
    node.close_log().await;
    // Connections, pushes and the shutdown all log; none of it may take the node down.
    let mut stream = node.subscribe("client_id=a").await;
    node.push(json!({"client_id": "a", "message": "still here"})).await;
    assert_eq!(stream.next_data().await, "still here");

    node.terminate();
    stream.expect_end().await;
    let status = tokio::time::timeout(Duration::from_secs(8), node.wait()).await;
    let status = status.expect("herald exits on SIGTERM with nowhere to log");
    assert!(status.success(), "{status:?}");
}
