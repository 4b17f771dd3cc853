use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestServer;

#[tokio::test]
async fn the_stream_has_the_contract_headers() {
    let server = TestServer::start().await;
    let client = server.subscribe("client_id=a").await;
    let header = |name: &str| {
        client.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    };
    assert_eq!(header("content-type"), "text/event-stream; charset=utf-8");
    assert_eq!(header("cache-control"), "no-cache, no-transform");
    assert_eq!(header("x-accel-buffering"), "no");
    assert_eq!(header("content-encoding"), "");
}

#[tokio::test]
async fn the_stream_opens_with_retry_and_a_comment_at_once() {
    let server = TestServer::start_with(&["--retry", "1500ms"]).await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let request = "GET /sse?client_id=raw HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n\r\n";
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let opening = b"retry: 1500\n: herald\n\n";
    while !contains(&received, opening) {
        let mut buffer = [0; 4096];
        let read = tokio::time::timeout(crate::support::PATIENCE, socket.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "connection closed: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&received).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(!text.contains("content-encoding"), "a stream must never be compressed: {text}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_the_server_returns() {
    let server = TestServer::start().await;
    let mut first = server.subscribe("client_id=a").await;
    let mut second = server.subscribe("client_id=b&topic=t").await;
    let stopped = tokio::time::timeout(crate::support::PATIENCE, server.stop()).await;
    assert!(stopped.is_ok(), "the server returned in time");
    first.expect_end().await;
    second.expect_end().await;
}
