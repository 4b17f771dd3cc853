//! One address is not one person: behind a reverse proxy every client has the
//! proxy's address. Per-address limits are off by default, and with
//! `--trusted-proxy` they count the client the proxy names.

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{PATIENCE, TestServer};

/// Opens a stream for `client` on a raw connection, with `forwarded` header lines;
/// returns the status and the open connection.
async fn open_stream(server: &TestServer, client: &str, forwarded: &str) -> (u16, TcpStream) {
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET /sse?client_id={client} HTTP/1.1\r\nHost: x\r\n{forwarded}\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            let mut buffer = [0; 512];
            let read = socket.read(&mut buffer).await.unwrap();
            assert!(read > 0, "closed before answering");
            head.extend_from_slice(&buffer[..read]);
        }
    })
    .await
    .expect("an answer");
    let status = String::from_utf8_lossy(&head[9..12]).parse().unwrap();
    (status, socket)
}

#[tokio::test]
async fn by_default_one_address_may_hold_many_streams() {
    // The field report: behind a proxy, the 1 001st browser was refused.
    let server = TestServer::start().await;
    let mut open = Vec::new();
    for n in 0..1_100 {
        let (status, socket) = open_stream(&server, &format!("tab-{n}"), "").await;
        assert_eq!(status, 200, "stream {n}");
        open.push(socket);
    }
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_that_per_address_limits_count() {
    let server = TestServer::start_with(&[
        "--trusted-proxy",
        "127.0.0.0/8",
        "--max-connections-per-ip",
        "1",
    ])
    .await;
    let (first, _a) = open_stream(&server, "a", "X-Forwarded-For: 198.51.100.1\r\n").await;
    let (other, _b) = open_stream(&server, "b", "X-Forwarded-For: 198.51.100.2\r\n").await;
    assert_eq!((first, other), (200, 200), "two people behind one proxy");
    // The client wrote its own header; the proxy appended the address it saw.
    let spoofing = "X-Forwarded-For: 203.0.113.77, 198.51.100.1\r\n";
    let (again, _) = open_stream(&server, "c", spoofing).await;
    assert_eq!(again, 429, "the same person again, whatever it claims");
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_address() {
    let server =
        TestServer::start_with(&["--trusted-proxy", "10.0.0.0/8", "--max-connections-per-ip", "1"])
            .await;
    let (first, _a) = open_stream(&server, "a", "X-Forwarded-For: 198.51.100.1\r\n").await;
    let (second, _b) = open_stream(&server, "b", "X-Forwarded-For: 198.51.100.2\r\n").await;
    assert_eq!((first, second), (200, 429));
}

#[tokio::test]
async fn the_forwarded_header_is_read_when_chosen() {
    let server = TestServer::start_with(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--forwarded-header",
        "forwarded",
        "--max-connections-per-ip",
        "1",
    ])
    .await;
    let (first, _a) =
        open_stream(&server, "a", "Forwarded: for=\"[2001:db8::1]:4711\";proto=https\r\n").await;
    let (second, _b) = open_stream(&server, "b", "Forwarded: for=192.0.2.60\r\n").await;
    assert_eq!((first, second), (200, 200));
    // X-Forwarded-For is not what this proxy writes: a client could have.
    let (third, _c) = open_stream(&server, "c", "X-Forwarded-For: 192.0.2.99\r\n").await;
    let (fourth, _d) = open_stream(&server, "d", "X-Forwarded-For: 192.0.2.98\r\n").await;
    assert_eq!((third, fourth), (200, 429), "both counted as the proxy itself");
}

#[tokio::test]
async fn pushes_without_keys_are_limited_per_forwarded_client() {
    let server = TestServer::start_with(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--push-rate",
        "1",
        "--push-burst",
        "1",
    ])
    .await;
    let push = |client: &'static str| {
        server
            .http
            .post(server.url("/push"))
            .header("x-forwarded-for", client)
            .json(&json!({"broadcast": true, "message": "x"}))
            .send()
    };
    assert_eq!(push("198.51.100.1").await.unwrap().status(), StatusCode::OK);
    assert_eq!(push("198.51.100.1").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(push("198.51.100.2").await.unwrap().status(), StatusCode::OK, "another client");
}
