//! Any bytes a client sends on a connection — a request head, a body, several
//! pipelined requests, or garbage — are served by the real server over a real socket
//! without a panic: the server answers with HTTP/1.x (never a 500) or closes, and once
//! the client has finished sending it closes, unless it is answering with an event
//! stream (a client that only half-closed may still be reading one). Covers the
//! server's own HTTP/1.1 reading: heads and their RFC 9112 checks (the corpus holds a
//! seed per rule: Host, Content-Length, Transfer-Encoding, field syntax, the request
//! line), `Content-Length` and chunked bodies, `Expect`, `HEAD`, keep-alive. Bytes that
//! open with HTTP/2's connection preface are h2c (prior knowledge): hyper serves them,
//! and the answer must be HTTP/2, opening with the server's SETTINGS frame.

#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use clap::Parser;
use libfuzzer_sys::fuzz_target;

/// The server, on a runtime of its own, for the whole fuzzing run.
struct Harness {
    _runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // libFuzzer's `main` is not Rust's, which ignores SIGPIPE: without this, a write
        // to a socket the other side has closed (ours or the server's) kills the run.
        // SAFETY: called once, before any other thread of this process writes a socket.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr = runtime.block_on(async {
            let config = herald::Config::parse_from([
                "herald",
                "--push-rate",
                "1000000000",
                "--max-connections-per-ip",
                "1000000",
            ]);
            let listener = herald::net::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let state = herald::AppState::new(config).expect("a hub");
            tokio::spawn(herald::server::serve(listener, state, std::future::pending()));
            addr
        });
        Harness { _runtime: runtime, addr }
    })
}

/// The connection preface an HTTP/2 client opens with (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fuzz_target!(|input: &[u8]| {
    let mut socket = TcpStream::connect(harness().addr).expect("connect");
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    // The server may close before taking everything (a refused head): not a failure.
    let _ = socket.write_all(input);
    let _ = socket.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    if let Err(error) = socket.read_to_end(&mut answer) {
        let still_open = matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        );
        let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        // Over h2c, too, a stream may still be answering (its frames are not parsed here).
        assert!(
            !still_open
                || input.starts_with(HTTP2_PREFACE)
                || head.starts_with("http/1.")
                    && head.get(8..13) == Some(" 200 ")
                    && head.contains("content-type: text/event-stream"),
            "the server kept the connection open after the client finished, and not for \
             an event stream: {:?} -> {head:?}",
            String::from_utf8_lossy(input)
        );
    }
    if answer.is_empty() {
        return;
    }
    if input.starts_with(HTTP2_PREFACE) {
        // RFC 9113 §3.4: the server's preface is a SETTINGS frame (type 4, stream 0).
        assert!(
            answer.len() >= 9 && answer[3] == 4 && answer[5..9] == [0, 0, 0, 0],
            "h2c answered without SETTINGS first: {answer:?}"
        );
        return;
    }
    let status_line = answer.split(|&byte| byte == b'\r').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    let code = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .unwrap_or_else(|| panic!("not an HTTP/1 answer: {status_line:?}"));
    assert_ne!(code, "500", "for {:?}", String::from_utf8_lossy(input));
});
