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

/// A raw stream: what it last read as `retry:` and when its server ended it.
async fn read_until_the_end(mut socket: tokio::net::TcpStream) -> (u64, tokio::time::Instant) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => seen.extend_from_slice(&buffer[..read]),
        }
    }
    let ended = tokio::time::Instant::now();
    let text = String::from_utf8_lossy(&seen);
    let retry = text
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("retry: ")?.trim().parse().ok())
        .expect("a retry field");
    (retry, ended)
}

/// On SIGTERM the streams do not all end at once, and their clients are told
/// different delays, so they do not all come back at once (a thundering herd).
#[tokio::test]
async fn sigterm_spreads_the_end_of_streams_and_their_retry_over_the_drain_window() {
    let mut node =
        Node::start(&["--shutdown-grace", "6s", "--drain-spread", "2s", "--retry", "1s"]).await;
    let addr = node.url("").trim_start_matches("http://").to_owned();
    let mut readers = Vec::new();
    for n in 0..40 {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!("GET /sse?client_id=c{n} HTTP/1.1\r\nHost: x\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes()).await.unwrap();
        readers.push(tokio::spawn(read_until_the_end(socket)));
    }
    crate::support::eventually(|| async { node.get("/healthz").await.1["connections"] == 40 })
        .await;

    let signalled = tokio::time::Instant::now();
    node.terminate();
    let mut ends = Vec::new();
    let mut retries = std::collections::BTreeSet::new();
    for reader in readers {
        let (retry, ended) = reader.await.unwrap();
        assert!((1000..=3000).contains(&retry), "retry {retry} within 1 s + the 2 s spread");
        retries.insert(retry);
        ends.push(ended - signalled);
    }
    ends.sort();
    let (first, last) = (ends[0], ends[ends.len() - 1]);
    assert!(first < Duration::from_millis(500), "the first streams end at once: {first:?}");
    assert!(last > Duration::from_millis(1500), "the last near the window's end: {last:?}");
    assert!(last < Duration::from_millis(4000), "and all within it: {last:?}");
    assert!(retries.len() > 20, "different delays: {retries:?}");
    let status = tokio::time::timeout(Duration::from_secs(8), node.wait()).await;
    assert!(status.expect("herald exits").success());
}
