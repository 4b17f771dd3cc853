//! A request body, read whole from the connection before the request reaches the
//! router: every handler reads its body whole anyway (a push, a task update), and a
//! body handed over as one piece spares the connection's task the wake-ups of a
//! streamed one. Its size is bounded by `--max-body-bytes` and its time by
//! `--body-timeout` (both applied by the caller).

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::head::BodyFraming;

/// A chunk-size line (with its extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 1024;

/// Why a body could not be read.
#[derive(Debug)]
pub(super) enum BodyError {
    /// Larger than the limit (413).
    TooLarge,
    /// Chunked framing that does not follow RFC 9112 §7.1 (400).
    Malformed,
    /// The connection failed or closed first.
    Io(io::Error),
}

impl From<io::Error> for BodyError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// Reads the body `framing` describes, at most `limit` bytes of it, from `unread`
/// (what was read past the head) and then the connection; leaves in `unread` only
/// the bytes after the body (a pipelined next request).
pub(super) async fn read(
    io: &mut (impl AsyncRead + Unpin),
    unread: &mut Vec<u8>,
    framing: BodyFraming,
    limit: usize,
) -> Result<Bytes, BodyError> {
    match framing {
        BodyFraming::None => Ok(Bytes::new()),
        BodyFraming::Length(length) => {
            let length = usize::try_from(length).map_err(|_| BodyError::TooLarge)?;
            if length > limit {
                return Err(BodyError::TooLarge);
            }
            fill(io, unread, length).await?;
            let body = Bytes::copy_from_slice(&unread[..length]);
            unread.drain(..length);
            Ok(body)
        }
        BodyFraming::Chunked => read_chunked(io, unread, limit).await,
    }
}

/// Decodes a chunked body (RFC 9112 §7.1): chunks of `size[;extensions] CRLF data
/// CRLF`, a last chunk of size 0, then trailer fields (read and dropped) and CRLF.
async fn read_chunked(
    io: &mut (impl AsyncRead + Unpin),
    unread: &mut Vec<u8>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let mut body = BytesMut::new();
    loop {
        let (line, size) = loop {
            match chunk_size(unread)? {
                Some(found) => break found,
                None => read_more(io, unread).await?,
            }
        };
        unread.drain(..line);
        if size == 0 {
            skip_trailers(io, unread).await?;
            return Ok(body.freeze());
        }
        let size = usize::try_from(size).map_err(|_| BodyError::TooLarge)?;
        if size > limit.saturating_sub(body.len()) {
            return Err(BodyError::TooLarge);
        }
        fill(io, unread, size + 2).await?;
        if &unread[size..size + 2] != b"\r\n" {
            return Err(BodyError::Malformed);
        }
        body.extend_from_slice(&unread[..size]);
        unread.drain(..size + 2);
    }
}

/// The chunk-size line at the start of `bytes`, if it is complete: its length with
/// its CRLF, and the size it gives.
///
/// Strict, because a chunk boundary two parsers see differently is a smuggled
/// request (RFC 9112 §7.1, §11.2): hex digits, then any extensions, then CRLF. An
/// extension holds no control character, so no bare LF or CR that a proxy in front
/// could take for the end of the line; the line must end in CRLF, never a bare LF.
fn chunk_size(bytes: &[u8]) -> Result<Option<(usize, u64)>, BodyError> {
    let Some(end) = bytes.iter().position(|&byte| byte == b'\n') else {
        return if bytes.len() <= MAX_CHUNK_LINE { Ok(None) } else { Err(BodyError::Malformed) };
    };
    let line = match bytes[..end].strip_suffix(b"\r") {
        Some(line) if line.len() <= MAX_CHUNK_LINE => line,
        _ => return Err(BodyError::Malformed),
    };
    let digits = line.iter().take_while(|byte| byte.is_ascii_hexdigit()).count();
    let (size, extensions) = line.split_at(digits);
    if size.is_empty() {
        return Err(BodyError::Malformed);
    }
    // Leading zeros are allowed, and say nothing of the size.
    let significant =
        size.iter().position(|&digit| digit != b'0').map_or(&size[..1], |at| &size[at..]);
    if significant.len() > 16 {
        return Err(BodyError::TooLarge);
    }
    let extensions_valid = extensions.iter().all(|&byte| byte == b'\t' || !byte.is_ascii_control())
        && (extensions.is_empty() || extensions.trim_ascii_start().starts_with(b";"));
    if !extensions_valid {
        return Err(BodyError::Malformed);
    }
    let size =
        std::str::from_utf8(significant).ok().and_then(|hex| u64::from_str_radix(hex, 16).ok());
    size.map(|size| Some((end + 1, size))).ok_or(BodyError::Malformed)
}

/// Reads past the trailer section that ends a chunked body.
async fn skip_trailers(
    io: &mut (impl AsyncRead + Unpin),
    unread: &mut Vec<u8>,
) -> Result<(), BodyError> {
    loop {
        if let Some(length) = trailers_end(unread)? {
            unread.drain(..length);
            return Ok(());
        }
        read_more(io, unread).await?;
    }
}

/// Where the trailer section at the start of `bytes` ends, if it is complete. Its
/// lines end in CRLF, as every line of a chunked body must (see [`chunk_size`]).
///
/// Not inline in [`skip_trailers`]: the parser's field array (3 KiB) would then live
/// across its `await`, in the future of every connection's task, streams included.
fn trailers_end(bytes: &[u8]) -> Result<Option<usize>, BodyError> {
    let mut fields = [httparse::EMPTY_HEADER; super::head::MAX_HEADERS];
    match httparse::parse_headers(bytes, &mut fields) {
        Ok(httparse::Status::Complete((length, _))) if !has_bare_lf(&bytes[..length]) => {
            Ok(Some(length))
        }
        Ok(httparse::Status::Partial) if bytes.len() <= super::head::MAX_HEAD => {
            if has_bare_lf(bytes) { Err(BodyError::Malformed) } else { Ok(None) }
        }
        _ => Err(BodyError::Malformed),
    }
}

/// Whether a line in `bytes` ends in LF without CR.
fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(at, &byte)| byte == b'\n' && (at == 0 || bytes[at - 1] != b'\r'))
}

/// Reads until `unread` holds at least `wanted` bytes.
async fn fill(
    io: &mut (impl AsyncRead + Unpin),
    unread: &mut Vec<u8>,
    wanted: usize,
) -> io::Result<()> {
    unread.reserve(wanted.saturating_sub(unread.len()));
    while unread.len() < wanted {
        read_more(io, unread).await?;
    }
    Ok(())
}

/// Reads what the peer has sent, failing when it has closed.
async fn read_more(io: &mut (impl AsyncRead + Unpin), unread: &mut Vec<u8>) -> io::Result<()> {
    unread.reserve(4096);
    match io.read_buf(unread).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the body of `framing` from `sent`; returns it and what is left after it.
    async fn body(
        sent: &[u8],
        framing: BodyFraming,
        limit: usize,
    ) -> (Result<Bytes, BodyError>, Vec<u8>) {
        // Split in two, so that reads from the socket are exercised too.
        let (buffered, rest) = sent.split_at(sent.len().min(3));
        let mut unread = buffered.to_vec();
        let mut socket = rest;
        let body = read(&mut socket, &mut unread, framing, limit).await;
        unread.extend_from_slice(socket);
        (body, unread)
    }

    #[tokio::test]
    async fn a_body_of_known_length_is_read_and_the_rest_kept() {
        let (read, rest) = body(b"hello world NEXT", BodyFraming::Length(11), 64).await;
        assert_eq!(&read.unwrap()[..], b"hello world");
        assert_eq!(rest, b" NEXT");
        assert!(matches!(
            body(b"hello", BodyFraming::Length(65), 64).await.0,
            Err(BodyError::TooLarge)
        ));
        assert!(matches!(body(b"hel", BodyFraming::Length(5), 64).await.0, Err(BodyError::Io(_))));
    }

    #[tokio::test]
    async fn a_chunked_body_is_decoded_with_extensions_and_trailers() {
        let sent =
            b"5;name=value\r\nhello\r\n6 ; q=\"a b\"\r\n world\r\n0\r\nChecksum: x\r\n\r\nNEXT";
        let (read, rest) = body(sent, BodyFraming::Chunked, 64).await;
        assert_eq!(&read.unwrap()[..], b"hello world");
        assert_eq!(rest, b"NEXT");
        let (read, rest) = body(b"0\r\n\r\n", BodyFraming::Chunked, 64).await;
        assert!(read.unwrap().is_empty() && rest.is_empty());
        // Leading zeros, however many, and upper-case digits.
        let (read, _) =
            body(b"000000000000000000005\r\nhello\r\n0000\r\n\r\n", BodyFraming::Chunked, 64).await;
        assert_eq!(&read.unwrap()[..], b"hello");
        let (read, _) = body(b"A\r\n0123456789\r\n0\r\n\r\n", BodyFraming::Chunked, 64).await;
        assert_eq!(read.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn chunked_bodies_are_bounded_and_checked() {
        let over = b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
        assert!(matches!(body(over, BodyFraming::Chunked, 8).await.0, Err(BodyError::TooLarge)));
        let huge = b"ffffffffffffffff\r\n";
        assert!(matches!(body(huge, BodyFraming::Chunked, 8).await.0, Err(BodyError::TooLarge)));
        for malformed in [
            &b"5\r\nhelloXX0\r\n\r\n"[..],
            b"zz\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
            // A bare LF or a control character inside an extension: a proxy that ends
            // the line there sees other chunks (a smuggled request).
            b"2;\nxx\r\n2f\r\n0\r\n\r\n",
            b"2;a=\x01\r\nxx\r\n0\r\n\r\n",
            b"2;\x00\r\nxx\r\n0\r\n\r\n",
            b"0;\nX\r\n\r\n",
            b"2\nxx\r\n0\r\n\r\n",
            b"2 x\r\nxx\r\n0\r\n\r\n",
            b" 2\r\nxx\r\n0\r\n\r\n",
            b"0x2\r\nxx\r\n0\r\n\r\n",
            // Trailers end their lines in CRLF too.
            b"0\r\n\n",
            b"0\r\nX: y\n\r\n",
        ] {
            let (read, _) = body(malformed, BodyFraming::Chunked, 64).await;
            assert!(matches!(read, Err(BodyError::Malformed)), "{malformed:?}: {read:?}");
        }
    }
}
