//! What RFC 9112 requires a server to refuse, and the time limits on every phase of
//! every request, over raw sockets: each malformed or ambiguous head gets a JSON 4xx
//! and a closed connection, whether it is a connection's first request or a later
//! one, on any path.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{PATIENCE, TestServer};

/// What the server answered on a connection, until it closed it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn error(&self) -> String {
        let json: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("a JSON error body: {self:?}"));
        json["error"].as_str().expect("an error text").to_owned()
    }
}

/// Sends `bytes` and reads until the server closes the connection (failing if it
/// does not within [`PATIENCE`]); returns the last response on it.
async fn last_answer(server: &TestServer, bytes: &[u8]) -> Answer {
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    // The server may close before taking everything: not a failure.
    let _ = socket.write_all(bytes).await;
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut all))
        .await
        .unwrap_or_else(|_| panic!("the connection stayed open after {bytes:?}"))
        .ok();
    let all = String::from_utf8_lossy(&all).into_owned();
    let mut answers = responses(&all);
    answers.pop().unwrap_or_else(|| panic!("no answer to {bytes:?}"))
}

/// The responses in `all`, in order (each with a `Content-Length`, or the last).
fn responses(mut all: &str) -> Vec<Answer> {
    let mut answers = Vec::new();
    while let Some((head, rest)) = all.split_once("\r\n\r\n") {
        assert!(head.starts_with("HTTP/1.1 "), "a status line: {head:?}");
        let head = head.to_ascii_lowercase();
        let status = head[9..12].parse().expect("a status code");
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .map_or(rest.len(), |length| length.parse().expect("a length"));
        let (body, next) = rest.split_at(length.min(rest.len()));
        answers.push(Answer { status, head, body: body.to_owned() });
        all = next;
    }
    answers
}

/// Refused with `status`, a JSON error and `connection: close`, as a connection's
/// first request and after a good one, on several paths.
async fn refused_everywhere(server: &TestServer, request: &str, status: u16) {
    for path in ["/healthz", "/sse?client_id=c", "/push", "/"] {
        let request = request.replace("{path}", path);
        let warmed = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n{request}");
        for bytes in [request.as_bytes(), warmed.as_bytes()] {
            let answer = last_answer(server, bytes).await;
            assert_eq!(answer.status, status, "{request:?}: {answer:?}");
            assert!(answer.head.contains("content-type: application/json"), "{answer:?}");
            assert!(answer.head.contains("connection: close"), "{answer:?}");
            assert!(!answer.error().is_empty());
        }
    }
}

#[tokio::test]
async fn http_1_1_needs_exactly_one_valid_host() {
    let server = TestServer::start().await;
    for request in [
        "GET {path} HTTP/1.1\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: me@a\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: a/b\r\n\r\n",
    ] {
        refused_everywhere(&server, request, 400).await;
    }
    let answer = last_answer(&server, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(answer.error().contains("Host"), "{answer:?}");
    // HTTP/1.0 predates Host; an empty one is what a client sends for no authority.
    for fine in [
        "GET /healthz HTTP/1.0\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
    ] {
        assert_eq!(last_answer(&server, fine.as_bytes()).await.status, 200, "{fine:?}");
    }
}

#[tokio::test]
async fn ambiguous_body_lengths_are_refused_and_close_the_connection() {
    let server = TestServer::start().await;
    for request in [
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\n{}",
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n{}",
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}",
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n0\r\n\r\n",
        "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST {path} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        refused_everywhere(&server, request, 400).await;
    }
}

#[tokio::test]
async fn a_smuggled_request_behind_a_refused_one_is_never_served() {
    let server = TestServer::start().await;
    let mut stream = server.subscribe("client_id=victim").await;
    // A front end that believes Content-Length sees one request; one that believes
    // Transfer-Encoding sees a push hidden in the body. Neither is served.
    let push = r#"{"client_id":"victim","message":"smuggled"}"#;
    let hidden = format!(
        "POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{push}",
        push.len()
    );
    let smuggler = format!(
        "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
        hidden.len() + 5
    );
    assert_eq!(last_answer(&server, smuggler.as_bytes()).await.status, 400);
    server.push(serde_json::json!({"client_id": "victim", "message": "next"})).await;
    assert_eq!(stream.next_data().await, "next", "the smuggled push was not delivered");
}

#[tokio::test]
async fn malformed_fields_and_request_lines_are_refused() {
    let server = TestServer::start().await;
    for request in [
        "GET {path} HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
        "GET {path}\r\nHost: x\r\n\r\n",
        "GET  {path} HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET {path} HTTP/1.1 x\r\nHost: x\r\n\r\n",
        "GET\r\nHost: x\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET {path}#fragment HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        refused_everywhere(&server, request, 400).await;
    }
    refused_everywhere(&server, "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 405).await;
    refused_everywhere(&server, "GET {path} HTTP/2.0\r\nHost: x\r\n\r\n", 505).await;
    let huge = format!("GET {{path}} HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n", "a".repeat(40_000));
    refused_everywhere(&server, &huge, 431).await;
}

#[tokio::test]
async fn a_chunk_extension_cannot_hide_a_request() {
    // A proxy that ends a line at a bare LF sees one request here; a parser that
    // allowed the LF inside the extension would see a second, smuggled one.
    let server = TestServer::start().await;
    let smuggler = "POST /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                    2;\nxx\r\n2f\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n";
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(smuggler.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut all)).await.unwrap().ok();
    let answers = responses(&String::from_utf8_lossy(&all));
    let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
    assert_eq!(statuses, [400], "{answers:?}");
    for extension in ["2;a=\x01", "2;\x00", "2\n"] {
        let request = format!(
            "POST /push HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{extension}\r\nxx\r\n0\r\n\r\n"
        );
        assert_eq!(last_answer(&server, request.as_bytes()).await.status, 400, "{extension:?}");
    }
}

#[tokio::test]
async fn refusals_of_a_head_request_have_no_body() {
    let server = TestServer::start().await;
    let answer = last_answer(&server, b"HEAD /healthz HTTP/1.1\r\n\r\n").await;
    assert_eq!((answer.status, answer.body.as_str()), (400, ""), "{answer:?}");
}

#[tokio::test]
async fn a_fresh_connection_that_says_nothing_is_closed_without_a_word() {
    let server = TestServer::start_with(&["--header-timeout", "300ms"]).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, silent.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert_eq!(server.limited("header_timeout").await, 1);
}

#[tokio::test]
async fn an_absolute_target_without_a_path_and_options_star_are_served() {
    let server = TestServer::start().await;
    let absolute = "GET http://x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = last_answer(&server, absolute.as_bytes()).await;
    assert!(answer.status < 500, "{answer:?}");
    let star = "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = last_answer(&server, star.as_bytes()).await;
    assert!(answer.status < 500, "{answer:?}");
}

#[tokio::test]
async fn chunked_bodies_expect_and_head_are_served() {
    let server = TestServer::start().await;
    let mut stream = server.subscribe("client_id=c").await;
    let chunked = "POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                   Transfer-Encoding: chunked\r\n\r\n\
                   10;ext=1\r\n{\"client_id\":\"c\"\r\n14\r\n,\"message\":\"chunks\"}\r\n\
                   0\r\nX-Trailer: 1\r\n\r\n\
                   GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = last_answer(&server, chunked.as_bytes()).await;
    assert_eq!(answer.status, 200, "the request after the chunked one: {answer:?}");
    assert_eq!(stream.next_data().await, "chunks");

    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let body = "client_id=c&message=continued";
    let head = format!(
        "POST /push HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0; 25];
    socket.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    socket.write_all(body.as_bytes()).await.unwrap();
    assert_eq!(stream.next_data().await, "continued");

    let head_request = "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = last_answer(&server, head_request.as_bytes()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, ""), "{answer:?}");
    assert!(answer.head.contains("content-length: "), "GET's length: {answer:?}");
    let strange =
        "POST /push HTTP/1.1\r\nHost: x\r\nExpect: the-unexpected\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(last_answer(&server, strange.as_bytes()).await.status, 417);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_before_they_are_read() {
    let server = TestServer::start_with(&["--max-body-bytes", "100"]).await;
    let length = "POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n";
    assert_eq!(last_answer(&server, length.as_bytes()).await.status, 413);
    let chunked = format!(
        "POST /push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{0}\r\n40\r\n{0}\r\n0\r\n\r\n",
        "a".repeat(64)
    );
    let answer = last_answer(&server, chunked.as_bytes()).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    let malformed = "POST /push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    assert_eq!(last_answer(&server, malformed.as_bytes()).await.status, 400);
}

#[tokio::test]
async fn a_refused_body_still_on_its_way_is_drained_not_reset() {
    // Closing a socket with unread data resets it, and a reset can throw away the
    // answer before the client reads it (a browser then sees a network error, not
    // the 413). So the server drains what the client still sends, then closes.
    let server = TestServer::start_with(&["--max-body-bytes", "100"]).await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let body = 4 * 1024 * 1024;
    let head = format!("POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: {body}\r\n\r\n");
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let read = socket.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    // The answer came before the body: sending it must not fail.
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..body / chunk.len() {
        socket.write_all(&chunk).await.expect("the body is taken, not reset");
    }
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest)).await.unwrap().unwrap();
}

/// A connection that has had one request answered.
async fn after_one_request(server: &TestServer) -> TcpStream {
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("\"status\"") {
        let mut buffer = [0; 1024];
        let read = socket.read(&mut buffer).await.unwrap();
        assert!(read > 0, "closed early");
        seen.extend_from_slice(&buffer[..read]);
    }
    socket
}

/// Sends `bytes` one at a time, `pause` apart, until the server closes; returns all
/// it answered and when it closed.
async fn trickle(socket: &mut TcpStream, bytes: &[u8], pause: Duration) -> (String, Duration) {
    let started = tokio::time::Instant::now();
    for byte in bytes {
        if socket.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer)).await;
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

#[tokio::test]
async fn a_kept_alive_connection_idle_too_long_is_closed() {
    let server = TestServer::start_with(&["--keepalive-timeout", "300ms"]).await;
    let mut socket = after_one_request(&server).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest)).await;
    assert!(closed.is_ok() && rest.is_empty(), "closed without a word: {rest:?}");
    assert_eq!(server.limited("keepalive_timeout").await, 1);
}

#[tokio::test]
async fn a_kept_alive_connection_waits_its_keepalive_timeout_not_the_header_timeout() {
    let server =
        TestServer::start_with(&["--header-timeout", "300ms", "--keepalive-timeout", "5s"]).await;
    let mut socket = after_one_request(&server).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
}

#[tokio::test]
async fn a_later_request_head_sent_slowly_is_cut_off() {
    let server = TestServer::start_with(&["--header-timeout", "500ms"]).await;
    let mut socket = after_one_request(&server).await;
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let (answer, took) = trickle(&mut socket, head, Duration::from_millis(50)).await;
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer:?}");
    assert!(answer.contains("did not arrive"), "{answer:?}");
    assert!(took < Duration::from_secs(4), "cut off at the header timeout, not the end: {took:?}");
    assert_eq!(server.limited("header_timeout").await, 1);
}

#[tokio::test]
async fn a_body_sent_slowly_is_cut_off_on_any_request() {
    let server = TestServer::start_with(&["--body-timeout", "500ms"]).await;
    for chunked in [false, true] {
        let mut socket = after_one_request(&server).await;
        let head = if chunked {
            "POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        } else {
            "POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n"
        };
        socket.write_all(head.as_bytes()).await.unwrap();
        let body = if chunked {
            &b"3c\r\n{\"broadcast\": true, \"message\": \"..............\"}"[..]
        } else {
            b"{\"broadcast\": true, \"message\": \"...........................\"}"
        };
        let (answer, _) = trickle(&mut socket, body, Duration::from_millis(50)).await;
        assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer:?}");
    }
    assert_eq!(server.limited("body_timeout").await, 2);
}
