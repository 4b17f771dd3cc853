//! Writing a response on an HTTP/1.1 connection: the router's answer, framed by
//! `Content-Length` when its size is known and chunked otherwise (delimited by
//! closing, to an HTTP/1.0 client), several waiting frames per write.
//!
//! Why not hyper's writer: an idle stream is almost all a push hub holds, and hyper
//! keeps an 8 KiB write buffer and a read buffer of 8–16 KiB for as long as a
//! connection is open. Here a quiet stream holds its socket, its response body (the
//! subscription and its heartbeat timer) and a few words of state; buffers exist only
//! while bytes move. And a push is the hub's hot request: its body was read whole
//! (see [`super::body`]) and is handed over as one piece, where hyper hands a body to
//! the handler through a channel within the connection's own task, which then wakes
//! itself on every request (measured with `strace -f`: an eventfd write and a worker
//! hand-off per push).

use std::io::{self, IoSlice, Write as _};
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, BodyDataStream, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Version, header, response};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use super::guard::GuardedStream;
use super::head::Refusal;

/// Frames already waiting are written together, up to this many...
const MAX_BATCH_FRAMES: usize = 64;
/// ...or this many bytes.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Bytes a client may send (a pipelined next request) while its stream is open.
const MAX_UNREAD: usize = 16 * 1024;

/// Whether the connection can carry another request after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reuse {
    KeepAlive,
    Close,
}

/// The interim response that tells a client waiting on `Expect: 100-continue` to
/// send its body (RFC 9110 §10.1.1).
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A complete response to a request refused before the router could see it (its
/// head could not be trusted): the refusal's status and a JSON error, the contract's
/// error shape, closing the connection.
pub(super) fn refusal(refusal: &Refusal) -> Vec<u8> {
    let body = serde_json::json!({ "error": refusal.message }).to_string();
    let mut parts = response::Response::new(()).into_parts().0;
    parts.status = refusal.status;
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let length = u64::try_from(body.len()).unwrap_or(u64::MAX);
    let mut bytes = response_head(&parts, Framing::Length(length), Reuse::Close);
    if !refusal.bodiless {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
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
        if matches!(framing, Framing::Empty | Framing::HeadOnly) {
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
        let head_only = request.method() == Method::HEAD;
        let response = match Box::pin(app.oneshot(*request)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let framing = if head_only {
            // The router answers HEAD with GET's headers (its Content-Length too)
            // and no body (RFC 9110 §9.3.2).
            Framing::HeadOnly
        } else {
            // A handler that knows its body's length says so in the header even when
            // the body cannot (a file, say); `send_body` holds the body to it.
            let size = body.size_hint().exact().or_else(|| declared_length(&parts.headers));
            Framing::choose(parts.status, size, wants_close)
        };
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
    /// The answer to a `HEAD`: no body, the headers of a `GET` (its length kept).
    HeadOnly,
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
        let ours = match *name {
            header::CONTENT_LENGTH => framing != Framing::HeadOnly,
            header::TRANSFER_ENCODING | header::CONNECTION => true,
            _ => false,
        };
        if ours {
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
        Framing::Empty | Framing::HeadOnly | Framing::UntilClose => {}
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
    let mut length = LengthCheck::for_framing(framing);
    length.add(&ready.frames)?;
    write_batch(io, &head, &ready.frames, framing).await?;
    // Nothing written is kept while the stream waits for more.
    let mut last = ready.last;
    drop((head, ready));
    while !last {
        let batch = next_batch(&mut frames, io, unread).await?;
        length.add(&batch.frames)?;
        write_batch(io, &[], &batch.frames, framing).await?;
        last = batch.last;
    }
    length.finish()?;
    if framing == Framing::Chunked {
        io.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// A valid `Content-Length` header's value.
fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Holds a body to the length its head announced: a body that runs over or ends
/// short would leave the client reading the next response at the wrong byte, so
/// either ends the connection instead.
struct LengthCheck {
    /// Bytes still due; `None` when the framing is not by length.
    due: Option<u64>,
}

impl LengthCheck {
    fn for_framing(framing: Framing) -> Self {
        Self { due: if let Framing::Length(length) = framing { Some(length) } else { None } }
    }

    fn add(&mut self, frames: &[Bytes]) -> io::Result<()> {
        let Some(due) = &mut self.due else { return Ok(()) };
        let size: u64 = frames.iter().map(|frame| frame.len() as u64).sum();
        *due = due.checked_sub(size).ok_or_else(|| mismatch("more"))?;
        Ok(())
    }

    fn finish(&self) -> io::Result<()> {
        match self.due {
            Some(due) if due > 0 => Err(mismatch("less")),
            _ => Ok(()),
        }
    }
}

fn mismatch(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the response body held {what} than its Content-Length"),
    )
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

    #[tokio::test]
    async fn a_declared_length_frames_a_body_of_unknown_size() {
        // A file served by the router: its size is in the header, not the body's hint.
        let app = Router::new().route(
            "/",
            axum::routing::get(|| async {
                let chunks =
                    futures::stream::iter([Ok::<_, io::Error>(Bytes::from_static(b"hello"))]);
                ([(header::CONTENT_LENGTH, "5")], Body::from_stream(chunks))
            }),
        );
        let reply = Reply::to(Box::new(Request::new(Body::empty())), app).await;
        assert_eq!(reply.framing, Framing::Length(5));
        let head = String::from_utf8(reply.head).unwrap();
        assert!(head.contains("content-length: 5\r\n") && !head.contains("chunked"), "{head}");
    }

    #[test]
    fn a_body_is_held_to_its_announced_length() {
        let frames = [Bytes::from_static(b"abc"), Bytes::from_static(b"de")];
        let mut exact = LengthCheck::for_framing(Framing::Length(5));
        assert!(exact.add(&frames).is_ok() && exact.finish().is_ok());
        let mut short = LengthCheck::for_framing(Framing::Length(6));
        assert!(short.add(&frames).is_ok() && short.finish().is_err());
        assert!(LengthCheck::for_framing(Framing::Length(4)).add(&frames).is_err());
        let mut chunked = LengthCheck::for_framing(Framing::Chunked);
        assert!(chunked.add(&frames).is_ok() && chunked.finish().is_ok());
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
