//! A request head, read and held to what RFC 9112 requires a server to refuse.
//!
//! Every request on every connection passes here, so there is one answer to each
//! malformed or ambiguous head: a `400` (or the status below) with a JSON error, and
//! the connection closed, because after a head it did not understand a server cannot
//! know where the next request starts (the request-smuggling class).
//!
//! | rule | RFC 9112 | answer |
//! |---|---|---|
//! | request line of three parts, one space apart, a valid target | §3, §3.2 | 400 |
//! | HTTP/1.0 or HTTP/1.1 | §2.3 | 505 for another version |
//! | HTTP/1.1 with exactly one `Host`, and a valid one | §3.2 | 400 |
//! | no whitespace between a field name and its colon | §5.1 | 400 |
//! | no obsolete line folding | §5.2 | 400 |
//! | field names are tokens; values hold no CR, LF, NUL or other controls | §5, §5.5 | 400 |
//! | `Content-Length` once, digits only | §6.3 | 400 |
//! | no `Transfer-Encoding` beside `Content-Length`, nor in HTTP/1.0 | §6.1, §6.3 | 400 |
//! | `Transfer-Encoding` ends in `chunked` (the only coding read here) | §6.3, §7 | 400 |
//! | a head of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields | RFC 6585 §5 | 431 |
//! | no fragment in the target; no `CONNECT` (Herald is no proxy) | §3.2, RFC 9110 §9.3.6 | 400; 405 |
//!
//! The parser is `httparse` (hyper's), strict by default: it refuses whitespace
//! before a colon, folded lines, bare CRs and controls in field values itself.

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::uri::Authority;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};

use super::PeerAddr;

/// As many header fields as hyper accepts by default.
pub(super) const MAX_HEADERS: usize = 100;

/// The longest request head read (nginx reads up to four 8 KiB lines by default).
pub(super) const MAX_HEAD: usize = 32 * 1024;

/// What the bytes read so far hold.
pub(super) enum Head {
    /// A complete, valid request head, `length` bytes long; its body (as `body`
    /// says) follows it. Boxed: the request is short-lived and should not make every
    /// connection's task larger.
    Complete { request: Box<Request>, length: usize, body: BodyFraming },
    /// Not a complete head yet.
    Partial,
    /// A head that must be refused, and the connection closed.
    Refused(Refusal),
}

/// How the request body's end is found (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why the connection refuses a request: its status and a message for a person. The
/// connection is closed after the answer.
///
/// A refusal of a request whose head could be read (a body too large or too slow,
/// an expectation not met) still goes through the router, carrying this in its
/// extensions, so that it is answered like any API error (CORS headers included);
/// one whose head could not be trusted is answered here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The status to answer with.
    pub status: StatusCode,
    /// What is wrong, for a person.
    pub message: &'static str,
    /// The refused request was a `HEAD`: the answer has no body (RFC 9110 §9.3.2).
    pub(super) bodiless: bool,
}

impl Refusal {
    pub(super) const fn new(status: StatusCode, message: &'static str) -> Self {
        Self { status, message, bodiless: false }
    }

    const fn bad(message: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// Parses and checks the request head at the start of `bytes`, if it is complete.
pub(super) fn parse(bytes: &[u8], peer: PeerAddr) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(length)) if length > MAX_HEAD => Head::Refused(too_large()),
        Ok(httparse::Status::Complete(length)) => match request(&parsed, peer) {
            Ok((request, body)) => Head::Complete { request: Box::new(request), length, body },
            Err(refusal) => {
                Head::Refused(Refusal { bodiless: parsed.method == Some("HEAD"), ..refusal })
            }
        },
        Ok(httparse::Status::Partial) if bytes.len() > MAX_HEAD => Head::Refused(too_large()),
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(error) => Head::Refused(parse_refusal(error, bytes)),
    }
}

fn too_large() -> Refusal {
    Refusal::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "the request head is too large")
}

/// The answer to a head `httparse` could not read.
fn parse_refusal(error: httparse::Error, bytes: &[u8]) -> Refusal {
    match error {
        httparse::Error::Version if !names_a_version(bytes) => {
            Refusal::bad("the request line must be: METHOD SP request-target SP HTTP-version")
        }
        httparse::Error::Version => Refusal::new(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "only HTTP/1.0 and HTTP/1.1 are served on this connection",
        ),
        httparse::Error::TooManyHeaders => Refusal::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request has too many header fields",
        ),
        httparse::Error::HeaderName => Refusal::bad(
            "a header field name is invalid (a token, directly followed by its colon; \
             no folded lines)",
        ),
        httparse::Error::HeaderValue => {
            Refusal::bad("a header field value holds a control character")
        }
        httparse::Error::NewLine | httparse::Error::Status => {
            Refusal::bad("the request has a malformed line ending")
        }
        httparse::Error::Token => {
            Refusal::bad("the request line must be: METHOD SP request-target SP HTTP-version")
        }
    }
}

/// Whether the request line is three parts whose last is a well-formed version
/// (`HTTP/2.0`): one this server does not speak (505), as opposed to a malformed
/// line (400).
fn names_a_version(bytes: &[u8]) -> bool {
    let line = bytes.split(|&byte| byte == b'\n').find(|line| !line.trim_ascii().is_empty());
    let Some(line) = line else { return false };
    let parts: Vec<&[u8]> = line.trim_ascii().split(|&byte| byte == b' ').collect();
    match parts.as_slice() {
        [_, _, version] => {
            matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                if major.is_ascii_digit() && minor.is_ascii_digit())
        }
        _ => false,
    }
}

/// The request a valid head describes, and how its body is framed.
fn request(
    parsed: &httparse::Request<'_, '_>,
    peer: PeerAddr,
) -> Result<(Request, BodyFraming), Refusal> {
    let request_line = || Refusal::bad("the request line is invalid");
    let method = Method::from_bytes(parsed.method.ok_or_else(request_line)?.as_bytes())
        .map_err(|_| request_line())?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(request_line()),
    };
    let uri = target(&method, parsed.path.ok_or_else(request_line)?)?;
    let mut request = Request::new(Body::empty());
    let mut content_length = None;
    let mut transfer_encoding = false;
    let mut hosts = 0;
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| Refusal::bad("a header field name is invalid"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| Refusal::bad("a header field value is invalid"))?;
        match name {
            header::HOST => {
                hosts += 1;
                check_host(&value)?;
            }
            header::CONTENT_LENGTH if content_length.is_some() => {
                return Err(Refusal::bad("Content-Length must be given once"));
            }
            header::CONTENT_LENGTH => content_length = Some(length(field.value)?),
            header::TRANSFER_ENCODING => {
                // Several lines form one list; it is checked whole below.
                transfer_encoding = true;
            }
            _ => {}
        }
        request.headers_mut().append(name, value);
    }
    if hosts > 1 || (hosts == 0 && version == Version::HTTP_11) {
        return Err(Refusal::bad("an HTTP/1.1 request must carry exactly one Host header"));
    }
    let body = match (transfer_encoding, content_length) {
        (false, None | Some(0)) => BodyFraming::None,
        (false, Some(length)) => BodyFraming::Length(length),
        (true, Some(_)) => {
            return Err(Refusal::bad(
                "a request must not carry both Transfer-Encoding and Content-Length",
            ));
        }
        (true, None) if version == Version::HTTP_10 => {
            return Err(Refusal::bad("an HTTP/1.0 request must not use Transfer-Encoding"));
        }
        (true, None) => chunked(request.headers())?,
    };
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    request.extensions_mut().insert(ConnectInfo(peer));
    Ok((request, body))
}

/// The request target in one of its four forms (RFC 9112 §3.2): a path (and query),
/// an absolute URI, `*` for `OPTIONS`, or `host:port` for `CONNECT`.
///
/// `CONNECT` (a tunnel through a proxy) is refused with 405: Herald is no proxy.
/// An absolute URI without a path gets `/`, as its origin form would.
fn target(method: &Method, text: &str) -> Result<Uri, Refusal> {
    let invalid = || Refusal::bad("the request target is invalid");
    if *method == Method::CONNECT {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not served here: Herald is not a proxy",
        ));
    }
    // A fragment is the client's own business, never sent (RFC 9112 §3.2).
    if text.contains('#') {
        return Err(invalid());
    }
    let uri: Uri = text.parse().map_err(|_| invalid())?;
    if text.starts_with('/') || (text == "*" && *method == Method::OPTIONS) {
        return Ok(uri);
    }
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(invalid());
    }
    if uri.path_and_query().is_some() {
        return Ok(uri);
    }
    let mut parts = uri.into_parts();
    parts.path_and_query = Some(axum::http::uri::PathAndQuery::from_static("/"));
    Uri::from_parts(parts).map_err(|_| invalid())
}

/// A `Host` value: empty, or `host[:port]` without user information (RFC 9112
/// §3.2, RFC 9110 §7.2).
fn check_host(value: &HeaderValue) -> Result<(), Refusal> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Ok(());
    }
    match Authority::try_from(bytes) {
        Ok(authority) if !bytes.contains(&b'@') && !authority.host().is_empty() => Ok(()),
        _ => Err(Refusal::bad("the Host header is invalid")),
    }
}

/// A `Content-Length` value: decimal digits only (no sign, no spaces, no list).
fn length(value: &[u8]) -> Result<u64, Refusal> {
    let invalid = || Refusal::bad("Content-Length must be one number of digits");
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    std::str::from_utf8(value).ok().and_then(|text| text.parse().ok()).ok_or_else(invalid)
}

/// The framing a `Transfer-Encoding` list asks for: it must be `chunked` alone, the
/// only coding read here (RFC 9112 §6.1: chunked must be last and applied once; a
/// coding before it would have to be undone, and none is supported).
fn chunked(headers: &axum::http::HeaderMap) -> Result<BodyFraming, Refusal> {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|coding| !coding.is_empty());
    match (codings.next(), codings.next()) {
        (Some(coding), None) if coding.eq_ignore_ascii_case(b"chunked") => Ok(BodyFraming::Chunked),
        _ => Err(Refusal::bad("Transfer-Encoding must be chunked (and only chunked)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerAddr {
        PeerAddr("127.0.0.1:5000".parse().unwrap())
    }

    fn refused(bytes: &[u8]) -> Refusal {
        match parse(bytes, peer()) {
            Head::Refused(refusal) => refusal,
            Head::Complete { .. } => panic!("accepted: {:?}", String::from_utf8_lossy(bytes)),
            Head::Partial => panic!("partial: {:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn accepted(bytes: &[u8]) -> (Request, usize, BodyFraming) {
        match parse(bytes, peer()) {
            Head::Complete { request, length, body } => (*request, length, body),
            Head::Refused(refusal) => panic!("{refusal:?}: {:?}", String::from_utf8_lossy(bytes)),
            Head::Partial => panic!("partial: {:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn a_request_is_parsed_with_its_headers_peer_and_framing() {
        let bytes = b"GET /sse?client_id=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 5\r\n\r\nNEXT";
        let (request, length, body) = accepted(bytes);
        assert_eq!(&bytes[length..], b"NEXT");
        assert_eq!(
            (request.uri().to_string(), body),
            ("/sse?client_id=a".into(), BodyFraming::None)
        );
        assert_eq!(request.headers()["last-event-id"], "5");
        assert!(request.extensions().get::<ConnectInfo<PeerAddr>>().is_some());
        let post = b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(accepted(post).2, BodyFraming::Length(2));
        let chunked = b"POST /push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(accepted(chunked).2, BodyFraming::Chunked);
        assert_eq!(accepted(b"GET / HTTP/1.0\r\n\r\n").0.version(), Version::HTTP_10);
        assert!(matches!(parse(b"GET /sse HTTP/1.1\r\nHost:", peer()), Head::Partial));
        assert!(matches!(parse(b"", peer()), Head::Partial));
    }

    #[test]
    fn every_target_form_is_read() {
        for bytes in [
            &b"GET http://example.com/healthz HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: [::1]:3000\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            accepted(bytes);
        }
    }

    #[test]
    fn host_must_be_there_once_and_valid_in_http_1_1() {
        for bytes in [
            &b"GET /healthz HTTP/1.1\r\n\r\n"[..],
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
            b"GET /healthz HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: user@evil\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n",
        ] {
            assert_eq!(refused(bytes).status, StatusCode::BAD_REQUEST, "{bytes:?}");
        }
        accepted(b"GET /healthz HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn ambiguous_body_framing_is_refused() {
        for bytes in [
            &b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"[..],
            b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
            b"POST /push HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(refused(bytes).status, StatusCode::BAD_REQUEST, "{bytes:?}");
        }
    }

    #[test]
    fn malformed_fields_and_lines_are_refused() {
        for bytes in [
            &b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
            b"GET\r\nHost: x\r\n\r\n",
            b"GET / x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET relative HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz#fragment HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x16\x03\x01 not http at all\r\n\r\n",
        ] {
            assert_eq!(refused(bytes).status, StatusCode::BAD_REQUEST, "{bytes:?}");
        }
    }

    #[test]
    fn a_target_without_a_path_gets_one_and_connect_is_refused() {
        let (request, ..) =
            accepted(b"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(request.uri().path_and_query().map(|p| p.as_str()), Some("/"));
        let connect = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
        assert_eq!(refused(connect).status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn other_versions_and_huge_heads_get_their_own_status() {
        for bytes in [&b"GET / HTTP/2.0\r\n\r\n"[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"] {
            assert_eq!(refused(bytes).status, StatusCode::HTTP_VERSION_NOT_SUPPORTED);
        }
        let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-A: {}", "a".repeat(MAX_HEAD));
        assert_eq!(refused(huge.as_bytes()).status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let complete = format!("{huge}\r\n\r\n");
        assert_eq!(
            refused(complete.as_bytes()).status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let many: String = (0..=MAX_HEADERS).map(|n| format!("X-{n}: a\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert_eq!(refused(many.as_bytes()).status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
}
