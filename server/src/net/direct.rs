//! The direct way for event streams and small requests: parse the request head,
//! call the same router every other request goes through, and write its response to
//! the socket ourselves.
//!
//! Why: an idle stream is almost all a push hub holds, and hyper keeps an 8 KiB write
//! buffer and a read buffer of 8–16 KiB for as long as a connection is open. Here a
//! quiet stream holds its socket, its response body (the subscription and its
//! heartbeat timer) and a few words of state; buffers exist only while bytes move.
//! And a push is the hub's hot request: hyper hands a request body to the handler
//! through a channel within the connection's own task, so the task wakes itself on
//! every request, and tokio answers a task that wakes itself by waking a second
//! worker thread to take it over (measured with `strace -f`: an eventfd write and a
//! worker hand-off per push). Here the body is read whole first and handed over as
//! one piece.
//!
//! Two kinds of request come this way (see [`Head::Direct`]): a `GET` of an event
//! stream (see [`crate::api::is_event_stream`]) without a body, and a `POST` whose
//! body has a `Content-Length` of at most [`MAX_DIRECT_BODY`]. Anything unusual about
//! them (a chunked body, `Expect`, `Upgrade`, a header the `http` types refuse, an
//! HTTP version other than 1.0 or 1.1) sends the whole connection to hyper instead,
//! which answers or refuses it as usual. Responses are HTTP/1.1: `Content-Length`
//! when the body's size is known, otherwise chunked (to an HTTP/1.0 client:
//! delimited by closing the connection).

use std::io::{self, IoSlice, Write as _};
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, BodyDataStream, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header, response};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use super::PeerAddr;
use super::guard::GuardedStream;

/// As many headers as hyper accepts by default.
const MAX_HEADERS: usize = 100;

/// Frames already waiting are written together, up to this many...
const MAX_BATCH_FRAMES: usize = 64;
/// ...or this many bytes.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Bytes a client may send (a pipelined next request) while its stream is open.
const MAX_UNREAD: usize = 16 * 1024;

/// The largest request body read whole here; a larger one (a push near the message
/// limit, say) goes to hyper, which streams it into the router's body limit.
const MAX_DIRECT_BODY: usize = 64 * 1024;

/// What the bytes read so far hold.
pub(super) enum Head {
    /// A complete request head, `length` bytes long, of a request served here; its
    /// body, `body` bytes, follows the head (boxed: the request is short-lived, and
    /// should not make every stream's task larger).
    Direct { request: Box<Request>, length: usize, body: usize },
    /// A request the direct path leaves to hyper (or bytes that are not HTTP/1).
    Other,
    /// Not a complete head yet.
    Partial,
}

/// Whether the connection can carry another request after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reuse {
    KeepAlive,
    Close,
}

/// Parses the request head at the start of `bytes`, if it is complete.
pub(super) fn parse_head(bytes: &[u8], peer: PeerAddr) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => match direct_request(&parsed, peer) {
            Some((request, body)) => Head::Direct { request: Box::new(request), length, body },
            None => Head::Other,
        },
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(_) => Head::Other,
    }
}

/// The request (its body still to be read) and its body's length, if it is one the
/// direct path serves.
fn direct_request(parsed: &httparse::Request<'_, '_>, peer: PeerAddr) -> Option<(Request, usize)> {
    let method = match parsed.method? {
        "GET" => Method::GET,
        "POST" => Method::POST,
        _ => return None,
    };
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return None,
    };
    let uri: Uri = parsed.path?.parse().ok()?;
    if method == Method::GET && !crate::api::is_event_stream(uri.path()) {
        return None;
    }
    let mut request = Request::new(Body::empty());
    let mut body = None;
    for parsed_header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(parsed_header.name.as_bytes()).ok()?;
        if matches!(name, header::TRANSFER_ENCODING | header::EXPECT | header::UPGRADE) {
            return None;
        }
        if name == header::CONTENT_LENGTH {
            // A second length, even an equal one, is hyper's to judge.
            body = match body {
                None => Some(content_length(parsed_header.value)?),
                Some(_) => return None,
            };
        }
        let value = HeaderValue::from_bytes(parsed_header.value).ok()?;
        request.headers_mut().append(name, value);
    }
    let body = body.unwrap_or(0);
    if body > MAX_DIRECT_BODY || (method == Method::GET && body > 0) {
        return None;
    }
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    request.extensions_mut().insert(ConnectInfo(peer));
    Some((request, body))
}

/// A `Content-Length` value: decimal digits only (no sign, no spaces, no list).
fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Answers `request` with `app` and writes the response. Bytes the peer sends
/// meanwhile are kept in `unread` for whoever serves the connection next.
pub(super) async fn respond(
    io: &mut GuardedStream,
    request: Box<Request>,
    app: Router,
    unread: &mut Vec<u8>,
) -> Reuse {
    let reply = Reply::to(request, app).await;
    let reuse = reply.reuse;
    let sent = async {
        let Reply { head, body, framing, .. } = reply;
        if framing == Framing::Empty {
            io.write_all(&head).await?;
        } else {
            send_body(io, head, body, framing, unread).await?;
        }
        io.flush().await
    };
    match sent.await {
        Ok(()) => reuse,
        Err(error) => {
            tracing::debug!("stream response ended early: {error}");
            Reuse::Close
        }
    }
}

/// A response about to be written: its encoded head, its body and how it is framed.
struct Reply {
    head: Vec<u8>,
    body: Body,
    framing: Framing,
    reuse: Reuse,
}

impl Reply {
    /// The router's answer to `request`. (A function of its own so that the request,
    /// the router's future and the response's parts are gone before the body is
    /// streamed, instead of taking room in every stream's task.)
    async fn to(request: Box<Request>, app: Router) -> Self {
        let wants_close = request.version() == Version::HTTP_10 || asks_to_close(&request);
        let response = match Box::pin(app.oneshot(*request)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let framing = Framing::choose(parts.status, body.size_hint().exact(), wants_close);
        // A body delimited by the close is only chosen when closing anyway.
        let reuse = if wants_close { Reuse::Close } else { Reuse::KeepAlive };
        Self { head: response_head(&parts, framing, reuse), body, framing, reuse }
    }
}

/// Whether the client's `Connection` header says `close`.
fn asks_to_close(request: &Request) -> bool {
    request.headers().get_all(header::CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&byte| byte == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// How the end of a response body is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body at all (204, 304).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0 clients).
    UntilClose,
}

impl Framing {
    fn choose(status: StatusCode, exact_size: Option<u64>, http10_or_closing: bool) -> Self {
        if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Self::Empty
        } else if let Some(size) = exact_size {
            Self::Length(size)
        } else if http10_or_closing {
            Self::UntilClose
        } else {
            Self::Chunked
        }
    }
}

/// The status line and headers, as hyper would write them (lower-case names, a
/// `Date`), with the framing and connection headers this writer decides.
fn response_head(parts: &response::Parts, framing: Framing, reuse: Reuse) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if matches!(*name, header::CONTENT_LENGTH | header::TRANSFER_ENCODING | header::CONNECTION)
        {
            continue;
        }
        put_header(&mut head, name.as_str(), value.as_bytes());
    }
    // Formatted in place: a response allocates its head and nothing else.
    let _ = write!(head, "date: {}\r\n", httpdate::HttpDate::from(SystemTime::now()));
    match framing {
        Framing::Length(size) => {
            let _ = write!(head, "content-length: {size}\r\n");
        }
        Framing::Chunked => put_header(&mut head, "transfer-encoding", b"chunked"),
        Framing::Empty | Framing::UntilClose => {}
    }
    if reuse == Reuse::Close {
        put_header(&mut head, "connection", b"close");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn put_header(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// Writes `head`, then `body` as it comes, several waiting frames per write, until
/// the body ends or the peer goes away (then the body is dropped: for a stream, that
/// unsubscribes it). What the body has ready at once leaves in the head's write: one
/// system call and one packet for an event stream's opening.
async fn send_body(
    io: &mut GuardedStream,
    head: Vec<u8>,
    body: Body,
    framing: Framing,
    unread: &mut Vec<u8>,
) -> io::Result<()> {
    let mut frames = body.into_data_stream();
    let mut ready = Batch::default();
    take_ready(&mut frames, &mut ready)?;
    write_batch(io, &head, &ready.frames, framing).await?;
    // Nothing written is kept while the stream waits for more.
    let mut last = ready.last;
    drop((head, ready));
    while !last {
        let batch = next_batch(&mut frames, io, unread).await?;
        write_batch(io, &[], &batch.frames, framing).await?;
        last = batch.last;
    }
    if framing == Framing::Chunked {
        io.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// Frames to write together.
#[derive(Default)]
struct Batch {
    frames: Vec<Bytes>,
    /// The body ended after these.
    last: bool,
}

/// Waits for the next frame and takes those already waiting behind it; fails when
/// the peer goes away first.
async fn next_batch(
    frames: &mut BodyDataStream,
    io: &mut GuardedStream,
    unread: &mut Vec<u8>,
) -> io::Result<Batch> {
    let first = tokio::select! {
        frame = frames.next() => frame,
        gone = peer_gone(io, unread) => return Err(gone),
    };
    let Some(first) = first else { return Ok(Batch { frames: Vec::new(), last: true }) };
    let mut batch = Batch { frames: vec![first.map_err(io::Error::other)?], last: false };
    take_ready(frames, &mut batch)?;
    Ok(batch)
}

/// Adds to `batch` the frames `frames` has ready now, within the batch limits.
fn take_ready(frames: &mut BodyDataStream, batch: &mut Batch) -> io::Result<()> {
    let mut bytes: usize = batch.frames.iter().map(Bytes::len).sum();
    while batch.frames.len() < MAX_BATCH_FRAMES && bytes < MAX_BATCH_BYTES {
        match frames.next().now_or_never() {
            Some(Some(frame)) => {
                let frame = frame.map_err(io::Error::other)?;
                bytes += frame.len();
                batch.frames.push(frame);
            }
            Some(None) => {
                batch.last = true;
                break;
            }
            None => break,
        }
    }
    Ok(())
}

/// Resolves when the peer closes the connection (or it fails), keeping whatever it
/// sends before that in `unread`.
async fn peer_gone(io: &mut GuardedStream, unread: &mut Vec<u8>) -> io::Error {
    // Small: a stream's client rarely sends anything, and this is part of its task.
    let mut scratch = [0; 32];
    loop {
        match io.read(&mut scratch).await {
            Ok(0) => return io::ErrorKind::UnexpectedEof.into(),
            Ok(read) if unread.len() + read <= MAX_UNREAD => {
                unread.extend_from_slice(&scratch[..read]);
            }
            Ok(_) => {
                return io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the client sent too much while its stream was open",
                );
            }
            Err(error) => return error,
        }
    }
}

/// Writes `prefix` (the head, or nothing) and `frames` as one piece of the body (one
/// chunk when chunked), in one vectored write when the socket takes it all.
async fn write_batch(
    io: &mut GuardedStream,
    prefix: &[u8],
    frames: &[Bytes],
    framing: Framing,
) -> io::Result<()> {
    let size: usize = frames.iter().map(Bytes::len).sum();
    // An empty chunk would end a chunked body.
    let chunked = framing == Framing::Chunked && size > 0;
    let size_line = ChunkSize::new(size);
    let mut slices = Vec::with_capacity(frames.len() + 3);
    slices.push(IoSlice::new(prefix));
    if chunked {
        slices.push(IoSlice::new(size_line.as_bytes()));
    }
    slices.extend(frames.iter().map(|frame| IoSlice::new(frame)));
    if chunked {
        slices.push(IoSlice::new(b"\r\n"));
    }
    write_all_vectored(io, &mut slices).await
}

/// A chunk's size line, `{size:x}\r\n`, without an allocation.
struct ChunkSize {
    text: [u8; 18],
    start: u8,
}

impl ChunkSize {
    fn new(mut size: usize) -> Self {
        let mut text = [0; 18];
        text[16..].copy_from_slice(b"\r\n");
        let mut start = 16;
        loop {
            start -= 1;
            text[start] = b"0123456789abcdef"[size % 16];
            size /= 16;
            if size == 0 {
                break;
            }
        }
        Self { text, start: start as u8 }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.text[usize::from(self.start)..]
    }
}

async fn write_all_vectored(
    io: &mut GuardedStream,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    // Drops empty slices up front: writing only those would look like a closed peer.
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let written = io.write_vectored(slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerAddr {
        PeerAddr("127.0.0.1:5000".parse().unwrap())
    }

    #[test]
    fn a_stream_request_is_parsed_with_its_headers_and_peer() {
        let bytes = b"GET /sse?client_id=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 5\r\n\r\nNEXT";
        let Head::Direct { request, length, body: 0 } = parse_head(bytes, peer()) else {
            panic!("not a stream request")
        };
        assert_eq!(&bytes[length..], b"NEXT");
        assert_eq!(request.uri(), "/sse?client_id=a");
        assert_eq!(request.headers()["last-event-id"], "5");
        assert!(request.extensions().get::<ConnectInfo<PeerAddr>>().is_some());
        let task = b"GET /jobs/abc/events HTTP/1.0\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(parse_head(task, peer()), Head::Direct { body: 0, .. }));
    }

    #[test]
    fn a_post_with_a_small_body_of_known_length_is_served_directly() {
        let bytes =
            b"POST /push HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let Head::Direct { request, length, body } = parse_head(bytes, peer()) else {
            panic!("not served directly")
        };
        assert_eq!((request.method(), &bytes[length..][..body]), (&Method::POST, &b"{}"[..]));
        assert_eq!(request.headers()["content-type"], "application/json");
        let no_body = b"POST /jobs/demo HTTP/1.1\r\n\r\n";
        assert!(matches!(parse_head(no_body, peer()), Head::Direct { body: 0, .. }));
        let largest = format!("POST /push HTTP/1.1\r\nContent-Length: {MAX_DIRECT_BODY}\r\n\r\n");
        assert!(matches!(parse_head(largest.as_bytes(), peer()), Head::Direct { .. }));
    }

    #[test]
    fn everything_else_is_left_to_hyper() {
        let too_large =
            format!("POST /push HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_DIRECT_BODY + 1);
        for bytes in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"HEAD /sse HTTP/1.1\r\n\r\n",
            b"PUT /push HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            b"GET /sse HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"POST /push HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /push HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
            b"POST /push HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}",
            b"POST /push HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n{}",
            b"POST /push HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST /push HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
            too_large.as_bytes(),
            b"GET /sse HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GET /sse HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"\x16\x03\x01 not http at all\r\n\r\n",
        ] {
            assert!(matches!(parse_head(bytes, peer()), Head::Other), "{bytes:?}");
        }
        assert!(matches!(parse_head(b"GET /sse HTTP/1.1\r\nHost:", peer()), Head::Partial));
        assert!(matches!(parse_head(b"", peer()), Head::Partial));
    }

    #[test]
    fn chunk_sizes_are_hex_lines() {
        for size in [0, 1, 15, 16, 255, 4096, 0xdead_beef, usize::MAX] {
            assert_eq!(ChunkSize::new(size).as_bytes(), format!("{size:x}\r\n").as_bytes());
        }
    }

    #[test]
    fn framing_follows_the_status_size_and_client() {
        assert_eq!(Framing::choose(StatusCode::NO_CONTENT, Some(0), false), Framing::Empty);
        assert_eq!(Framing::choose(StatusCode::UNAUTHORIZED, Some(40), true), Framing::Length(40));
        assert_eq!(Framing::choose(StatusCode::OK, None, false), Framing::Chunked);
        assert_eq!(Framing::choose(StatusCode::OK, None, true), Framing::UntilClose);
    }

    #[test]
    fn the_head_carries_the_handlers_headers_and_our_framing() {
        let (mut parts, ()) = axum::http::Response::new(()).into_parts();
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        let head =
            String::from_utf8(response_head(&parts, Framing::Chunked, Reuse::KeepAlive)).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ndate: "));
        assert!(head.ends_with("\r\ntransfer-encoding: chunked\r\n\r\n"), "{head}");
        assert!(!head.contains("999"));
        let closing =
            String::from_utf8(response_head(&parts, Framing::UntilClose, Reuse::Close)).unwrap();
        assert!(closing.ends_with("\r\nconnection: close\r\n\r\n"), "{closing}");
    }
}
