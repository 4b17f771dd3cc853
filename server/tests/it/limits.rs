//! Limits hold under abuse: each answers with a clear 4xx, is counted in metrics, and
//! leaves the node serving everyone else.

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{PATIENCE, TestServer, eventually};

async fn open(server: &TestServer, client: &str) -> reqwest::Response {
    server.http.get(server.url(&format!("/sse?client_id={client}"))).send().await.unwrap()
}

#[tokio::test]
async fn streams_per_address_are_limited_and_given_back() {
    let server = TestServer::start_with(&["--max-connections-per-ip", "2"]).await;
    let first = open(&server, "a").await;
    let _second = open(&server, "b").await;
    let refused = open(&server, "c").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let error: serde_json::Value = refused.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("at most 2 streams from one address"));
    assert_eq!(server.limited("connections_per_address").await, 1);

    drop(first);
    eventually(|| async { open(&server, "c").await.status() == StatusCode::OK }).await;
}

#[tokio::test]
async fn streams_per_node_are_limited() {
    let server = TestServer::start_with(&["--max-connections", "1"]).await;
    let _only = open(&server, "a").await;
    let task = server.post("/jobs", json!({"title": "t", "total": 1})).await.1;
    let events = server.url(task["events"].as_str().unwrap());
    for response in [open(&server, "b").await, server.http.get(events).send().await.unwrap()] {
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(server.limited("connections").await, 2);
    // Everything that is not a stream goes on as before.
    server.push(json!({"client_id": "a", "message": "still here"})).await;
}

#[tokio::test]
async fn pushes_per_publisher_are_limited_with_retry_after() {
    let keys = ["first-publisher-key-0123", "second-publisher-key-012"];
    let server = TestServer::start_with(&[
        "--publish-key",
        keys[0],
        "--publish-key",
        keys[1],
        "--push-rate",
        "1",
        "--push-burst",
        "3",
    ])
    .await;
    let push = |key: &'static str| {
        server
            .http
            .post(server.url("/push"))
            .bearer_auth(key)
            .json(&json!({"broadcast": true, "message": "x"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(push(keys[0]).await.unwrap().status(), StatusCode::OK);
    }
    let refused = push(keys[0]).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(push(keys[1]).await.unwrap().status(), StatusCode::OK, "another publisher");
    assert_eq!(server.limited("push_rate").await, 1);
}

#[tokio::test]
async fn topic_and_size_refusals_are_counted() {
    let server = TestServer::start_with(&["--max-topics", "1", "--max-message-bytes", "8"]).await;
    let response = open(&server, "a&topic=x&topic=y").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(server.limited("topics").await, 1);
    let (status, _) = server.post("/push", json!({"broadcast": true, "message": "too long"})).await;
    assert_eq!(status, StatusCode::OK, "8 bytes fit");
    let (status, _) =
        server.post("/push", json!({"broadcast": true, "message": "far too long"})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(server.limited("size").await, 1);
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    let server = TestServer::start_with(&["--header-timeout", "300ms"]).await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server closes a connection whose headers never end");
    assert_eq!(server.limited("header_timeout").await, 1);
    assert_eq!(server.get("/healthz").await.0, StatusCode::OK, "others are served");
}

#[tokio::test]
async fn a_peer_that_stops_taking_data_is_cut_off() {
    let server =
        TestServer::start_with(&["--write-timeout", "300ms", "--queue-capacity", "100000"]).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(server.addr).await.unwrap();
    stalled.write_all(b"GET /sse?client_id=stalled HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let connected =
        || async { server.get("/clients").await.1["clients"].as_array().unwrap().len() };
    eventually(|| async { connected().await == 1 }).await;

    let big = "z".repeat(60 * 1024);
    for _ in 0..64 {
        server.push(json!({"client_id": "stalled", "message": big})).await;
    }
    eventually(|| async { connected().await == 0 }).await;
    assert_eq!(server.limited("write_timeout").await, 1);
    let mut fast = server.subscribe("client_id=fast").await;
    server.push(json!({"client_id": "fast", "message": "served"})).await;
    assert_eq!(fast.next_data().await, "served");
    drop(stalled);
}
