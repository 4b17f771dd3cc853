//! HTTP/1 on the wire, read byte by byte from raw sockets: event streams, pushes and
//! every other request on one connection, kept alive, pipelined, or hung up on.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{PATIENCE, TestServer, eventually};

/// A raw connection to `server`.
async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr).await.expect("connect")
}

/// Sends `request` on a fresh connection and reads until `text` has arrived; returns
/// the connection and what it has read.
async fn send_and_read_until(
    server: &TestServer,
    request: &str,
    text: &str,
) -> (TcpStream, String) {
    let mut socket = connect(server).await;
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut seen = String::new();
    read_until(&mut socket, &mut seen, text).await;
    (socket, seen)
}

/// Reads until `text` has arrived (failing after [`PATIENCE`]); returns all read so far.
async fn read_until(socket: &mut TcpStream, seen: &mut String, text: &str) {
    tokio::time::timeout(PATIENCE, async {
        while !seen.contains(text) {
            read_some(socket, seen, text).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{text:?} did not arrive; got {seen:?}"));
}

/// Reads what has arrived into `seen`; the connection must still be open, as it is
/// while `awaited` is still to come.
async fn read_some(socket: &mut TcpStream, seen: &mut String, awaited: &str) {
    let mut buffer = [0; 4096];
    let read = socket.read(&mut buffer).await.expect("read");
    assert!(read > 0, "the connection closed before {awaited:?} arrived; got {seen:?}");
    seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
}

/// Everything until the server closes the connection.
async fn read_to_end(socket: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut all))
        .await
        .expect("the server closed the connection in time")
        .expect("read");
    String::from_utf8(all).expect("text")
}

/// Decodes a complete chunked body (the bytes after the head).
fn dechunk(mut body: &str) -> String {
    let mut decoded = String::new();
    loop {
        let (size_line, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size_line, 16).expect("a hex chunk size");
        if size == 0 {
            assert_eq!(rest, "\r\n", "the last chunk ends the body");
            return decoded;
        }
        decoded.push_str(&rest[..size]);
        assert_eq!(&rest[size..size + 2], "\r\n", "a chunk ends with CRLF");
        body = &rest[size + 2..];
    }
}

#[tokio::test]
async fn a_stream_is_chunked_with_the_contract_headers_and_carries_pushes() {
    let server = TestServer::start().await;
    let (mut socket, mut seen) = send_and_read_until(
        &server,
        "GET /sse?client_id=raw HTTP/1.1\r\nHost: x\r\n\r\n",
        "herald.position",
    )
    .await;
    let (head, _) = seen.split_once("\r\n\r\n").expect("a complete head");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for line in [
        "content-type: text/event-stream; charset=utf-8",
        "cache-control: no-cache, no-transform",
        "x-accel-buffering: no",
        "transfer-encoding: chunked",
        "date: ",
    ] {
        assert!(head.contains(line), "{line:?} in {head}");
    }
    assert!(!head.contains("content-length") && !head.contains("content-encoding"), "{head}");

    let (id, delivered) = server.push(json!({"client_id": "raw", "message": "hello"})).await;
    assert_eq!(delivered, 1);
    read_until(&mut socket, &mut seen, "data: hello\n\n").await;
    let frame = format!("id: {id}\ndata: hello\n\n");
    assert!(seen.contains(&format!("{:x}\r\n{frame}\r\n", frame.len())), "one chunk: {seen:?}");
}

#[tokio::test]
async fn an_http_1_0_stream_is_delimited_by_closing_the_connection() {
    let server = TestServer::start().await;
    let (mut socket, seen) =
        send_and_read_until(&server, "GET /sse?client_id=old HTTP/1.0\r\n\r\n", "herald.position")
            .await;
    let head = seen.to_ascii_lowercase();
    assert!(head.contains("connection: close\r\n"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(seen.contains("\r\n\r\nretry: "), "the body starts right after the head: {seen:?}");

    server.state.hub.shutdown();
    let rest = read_to_end(&mut socket).await;
    assert!(!rest.contains("\r\n0\r\n"), "no chunk framing: {rest:?}");
}

#[tokio::test]
async fn a_finished_task_stream_ends_its_body_and_the_connection_serves_the_next_request() {
    let server = TestServer::start().await;
    let (_, task) = server.post("/jobs", json!({"title": "t", "total": 1})).await;
    let id = task["id"].as_str().unwrap();
    server.post(&format!("/jobs/{id}/finish"), json!({"result": 42})).await;

    let mut socket = connect(&server).await;
    // Two requests at once (pipelined): the stream, then a health check that closes.
    let requests = format!(
        "GET /jobs/{id}/events HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(requests.as_bytes()).await.unwrap();
    let all = read_to_end(&mut socket).await;
    let (first, second) = all.split_once("\r\n0\r\n\r\n").expect("the stream's last chunk");
    let (_, body) = first.split_once("\r\n\r\n").unwrap();
    let events = dechunk(&format!("{body}\r\n0\r\n\r\n"));
    assert!(events.contains("event: done\n") && events.contains("42"), "{events:?}");
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "the next response: {second:?}");
}

#[tokio::test]
async fn a_refused_stream_gets_its_error_and_the_connection_stays_usable() {
    let server = TestServer::start().await;
    let (mut socket, mut seen) =
        send_and_read_until(&server, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n", "}").await;
    assert!(seen.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{seen}");
    let (head, body) = seen.split_once("\r\n\r\n").unwrap();
    assert!(head.to_ascii_lowercase().contains(&format!("content-length: {}", body.len())));
    assert!(body.contains("client_id"), "{body}");

    socket
        .write_all(b"GET /sse?client_id=second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    seen.clear();
    read_until(&mut socket, &mut seen, "herald.position").await;
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
}

#[tokio::test]
async fn a_client_that_hangs_up_leaves_at_once() {
    let server = TestServer::start().await;
    let (socket, _) = send_and_read_until(
        &server,
        "GET /sse?client_id=leaving HTTP/1.1\r\nHost: x\r\n\r\n",
        "herald.position",
    )
    .await;
    assert_eq!(server.state.hub.clients().await.unwrap().len(), 1);
    drop(socket);
    // Well before any heartbeat (15 s) would have found the dead connection.
    tokio::time::timeout(Duration::from_secs(2), async {
        eventually(|| async { server.state.hub.clients().await.unwrap().is_empty() }).await;
    })
    .await
    .expect("the client left within 2 s");
}

#[tokio::test]
async fn requests_of_every_kind_are_served() {
    let server = TestServer::start().await;
    for request in [
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /sse?client_id=a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    ] {
        let (_, seen) = send_and_read_until(&server, request, "\r\n\r\n").await;
        assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{request:?}: {seen}");
    }
}

#[tokio::test]
async fn a_stream_ended_by_the_server_lets_the_client_reconnect_on_the_same_connection() {
    let server = TestServer::start().await;
    let (mut socket, mut seen) = send_and_read_until(
        &server,
        "GET /sse?client_id=kicked HTTP/1.1\r\nHost: x\r\n\r\n",
        "herald.position",
    )
    .await;
    let response = server.http.delete(server.url("/clients/kicked")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    read_until(&mut socket, &mut seen, "\r\n0\r\n\r\n").await;

    // As an EventSource does: the same connection, kept alive, asks again.
    socket.write_all(b"GET /sse?client_id=kicked HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    seen.clear();
    read_until(&mut socket, &mut seen, "herald.position").await;
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
    let (_, delivered) = server.push(json!({"client_id": "kicked", "message": "back"})).await;
    assert_eq!(delivered, 1);
    read_until(&mut socket, &mut seen, "data: back\n").await;
}

/// A `POST /push` request with `body`, as a publisher writes it.
fn push_request(body: &str) -> String {
    format!(
        "POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn pushes_on_one_kept_alive_connection_are_each_answered_in_order() {
    let server = TestServer::start().await;
    let mut stream = server.subscribe("client_id=reader").await;
    let mut publisher = connect(&server).await;
    // Two pushes in one write (pipelined), then one whose body comes in two pieces.
    let first = push_request(r#"{"client_id": "reader", "message": "one"}"#);
    let second = push_request(r#"{"client_id": "reader", "message": "two"}"#);
    publisher.write_all(format!("{first}{second}").as_bytes()).await.unwrap();
    let third = push_request(r#"{"client_id": "reader", "message": "three"}"#);
    let (head_and_some, rest) = third.split_at(third.len() - 10);
    publisher.write_all(head_and_some.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    publisher.write_all(rest.as_bytes()).await.unwrap();

    let answer = r#""delivered":1}"#;
    let mut seen = String::new();
    tokio::time::timeout(PATIENCE, async {
        while seen.matches(answer).count() < 3 {
            read_some(&mut publisher, &mut seen, answer).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("three answers did not arrive; got {seen:?}"));
    for response in seen.split("HTTP/1.1 ").skip(1) {
        let (head, body) = response.split_once("\r\n\r\n").expect("a head");
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("200 ok\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head} / {body}");
        assert!(!head.contains("connection: close"), "{head}");
    }
    for expected in ["one", "two", "three"] {
        assert_eq!(stream.next_data().await, expected);
    }
}

#[tokio::test]
async fn a_bad_push_gets_its_error_and_the_connection_stays_usable() {
    let server = TestServer::start().await;
    let (mut publisher, seen) =
        send_and_read_until(&server, &push_request(r#"{"client_id": "a"}"#), "}").await;
    assert!(seen.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{seen}");
    assert!(seen.contains("message is required"), "{seen}");

    let good = push_request(r#"{"client_id": "a", "message": "fine"}"#);
    publisher.write_all(good.as_bytes()).await.unwrap();
    let mut seen = String::new();
    read_until(&mut publisher, &mut seen, r#""delivered":0}"#).await;
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
}

#[tokio::test]
async fn a_push_whose_body_stops_short_is_answered_408_and_closed() {
    let server = TestServer::start_with(&["--body-timeout", "300ms"]).await;
    let mut publisher = connect(&server).await;
    let whole = push_request(r#"{"client_id": "a", "message": "never finished"}"#);
    publisher.write_all(&whole.as_bytes()[..whole.len() - 5]).await.unwrap();
    let answer = read_to_end(&mut publisher).await;
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
    let error: serde_json::Value = serde_json::from_str(body).expect("a JSON error");
    assert!(error["error"].as_str().unwrap().contains("did not arrive"), "{error}");
    assert_eq!(server.get("/healthz").await.0, 200, "others are served");
    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("herald_limited_total{limit=\"body_timeout\"} 1\n"), "{metrics}");
}

#[tokio::test]
async fn a_large_push_body_is_still_accepted() {
    let server = TestServer::start().await;
    let mut stream = server.subscribe("client_id=big").await;
    // Well over a socket read, within the body limit (1 MiB): JSON whitespace makes
    // the body large while the message stays small.
    let body = format!(r#"{{"client_id": "big", "message": "padded"{}}}"#, " ".repeat(100_000));
    let (_, seen) = send_and_read_until(&server, &push_request(&body), r#""delivered":1}"#).await;
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
    assert_eq!(stream.next_data().await, "padded");
}
