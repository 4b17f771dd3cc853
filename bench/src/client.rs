//! Raw HTTP over tokio + hyper: SSE subscribers bound to a chosen source address (a
//! connection each over HTTP/1.1, or many streams per HTTP/2 connection), and a
//! publisher on one kept-alive connection; over TCP or TLS ([`Transport`]).
//!
//! The benchmark reads each stream whole with [`Subscribed::read`]. The delivery
//! checker needs more control, as a browser has: it states a `Last-Event-ID`, sees
//! refusals (a 503 while Redis fails over), reads one chunk at a time (a slow reader
//! sleeps between reads) and may drop a connection mid-stream; [`open_stream`] and
//! [`EventStream`] serve it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::sse::EventReader;
use crate::target::Target;
use crate::transport::{Io, PLAIN, Protocol, Transport};

pub use crate::transport::Error;

/// The source address of connection `n` when connections are spread over `sources`
/// addresses of the network 127.0.NET.0/24: 127.0.NET.1, 127.0.NET.2, …
pub fn source(n: usize, sources: u8, net: u8) -> IpAddr {
    let last = u8::try_from(n % usize::from(sources.max(1))).unwrap_or(0) + 1;
    IpAddr::V4(Ipv4Addr::new(127, 0, net, last))
}

/// An open event stream: its connection and the response body, read by one task
/// (a task for the connection and another for the body would make every chunk wake
/// a second task).
pub struct Subscribed {
    /// The stream's own HTTP/1.1 connection; `None` for an HTTP/2 stream, whose
    /// connection is driven by a task of its own.
    connection: Option<StreamConnection>,
    body: Incoming,
}

impl Subscribed {
    /// Reads the stream until it ends, calling `on_event` with each event's data.
    pub async fn read(self, mut on_event: impl FnMut(&[u8])) {
        let Self { connection, mut body } = self;
        let mut events = EventReader::default();
        let read = async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(chunk) = frame.into_data() {
                    events.feed(&chunk, &mut on_event);
                }
            }
        };
        match connection {
            Some(connection) => tokio::select! {
                _ = connection => {}
                () = read => {}
            },
            None => read.await,
        }
    }
}

/// Opens client `n`'s stream from `from` on a connection of its own (HTTP/1.1, over
/// `transport`); ready to read once the response headers said 200.
pub async fn subscribe(
    target: &Target,
    transport: &Transport,
    n: usize,
    from: IpAddr,
) -> Result<Subscribed, Error> {
    let path = target.subscribe_path(n);
    let request =
        StreamRequest { from: Some(from), transport, ..StreamRequest::new(target.addr, &path) };
    let (response, connection) = request_stream(&request).await?;
    if response.status() != hyper::StatusCode::OK {
        return Err(format!("client {n}: {}", response.status()).into());
    }
    Ok(Subscribed { connection: Some(connection), body: response.into_body() })
}

/// An HTTP/2 connection that streams are opened on.
pub type Http2Sender = http2::SendRequest<Full<Bytes>>;

/// Opens an HTTP/2 connection to `target` from `from` over `transport` (h2 by ALPN
/// over TLS, h2c with prior knowledge otherwise); a task drives it until it ends.
pub async fn connect_http2(
    target: &Target,
    transport: &Transport,
    from: IpAddr,
) -> Result<Http2Sender, Error> {
    let io = transport.connect(target.addr, Some(from), None, Protocol::Http2).await?;
    let (sender, connection) =
        http2::Builder::new(TokioExecutor::new()).handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Opens client `n`'s stream on an HTTP/2 connection; ready to read once the response
/// headers said 200.
pub async fn subscribe_http2(
    sender: &mut Http2Sender,
    target: &Target,
    transport: &Transport,
    n: usize,
) -> Result<Subscribed, Error> {
    let scheme = if transport.is_tls() { "https" } else { "http" };
    let uri = format!("{scheme}://{}{}", target.addr, target.subscribe_path(n));
    let request = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "text/event-stream")
        .body(Full::new(Bytes::new()))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    if response.status() != hyper::StatusCode::OK {
        return Err(format!("client {n}: {}", response.status()).into());
    }
    Ok(Subscribed { connection: None, body: response.into_body() })
}

/// An event stream to open, as a browser's EventSource would ask for it.
#[derive(Debug, Clone, Copy)]
pub struct StreamRequest<'a> {
    pub addr: SocketAddr,
    /// The path and query.
    pub path: &'a str,
    /// The local address to connect from (any, when `None`).
    pub from: Option<IpAddr>,
    /// Sent as the `Last-Event-ID` header.
    pub last_event_id: Option<&'a str>,
    /// The socket's receive buffer (`SO_RCVBUF`): a small one makes a slow reader
    /// fall behind after little data, as a phone on a bad network does.
    pub receive_buffer: Option<u32>,
    /// TCP or TLS (the stream speaks HTTP/1.1 either way).
    pub transport: &'a Transport,
}

impl<'a> StreamRequest<'a> {
    pub fn new(addr: SocketAddr, path: &'a str) -> Self {
        Self {
            addr,
            path,
            from: None,
            last_event_id: None,
            receive_buffer: None,
            transport: &PLAIN,
        }
    }
}

/// The answer to a [`StreamRequest`].
pub enum Opened {
    /// 200: the stream, ready to read (boxed: it holds the connection's buffers).
    Stream(Box<EventStream>),
    /// Any other status.
    Refused(hyper::StatusCode),
}

/// Opens an event stream and reads the answer's head.
pub async fn open_stream(request: &StreamRequest<'_>) -> Result<Opened, Error> {
    let (response, connection) = request_stream(request).await?;
    if response.status() != hyper::StatusCode::OK {
        return Ok(Opened::Refused(response.status()));
    }
    let stream = EventStream { connection: Some(connection), body: response.into_body() };
    Ok(Opened::Stream(Box::new(stream)))
}

type StreamConnection = http1::Connection<TokioIo<Box<dyn Io>>, Full<Bytes>>;

/// Sends a GET for an event stream and waits for the answer's head.
async fn request_stream(
    request: &StreamRequest<'_>,
) -> Result<(hyper::Response<Incoming>, StreamConnection), Error> {
    let stream = request
        .transport
        .connect(request.addr, request.from, request.receive_buffer, Protocol::Http1)
        .await?;
    let (mut sender, mut connection) = http1::handshake(TokioIo::new(stream)).await?;
    let mut builder = hyper::Request::get(request.path)
        .header(hyper::header::HOST, request.addr.to_string())
        .header(hyper::header::ACCEPT, "text/event-stream");
    if let Some(id) = request.last_event_id {
        builder = builder.header("last-event-id", id);
    }
    let response = tokio::select! {
        response = sender.send_request(builder.body(Full::new(Bytes::new()))?) => response?,
        ended = &mut connection => {
            return Err(format!("{}: connection ended before the answer: {ended:?}", request.path).into());
        }
    };
    Ok((response, connection))
}

/// An open event stream read a chunk at a time: between two reads nothing is read
/// from the socket, so a caller that waits is a slow reader to the server.
pub struct EventStream {
    /// `None` once the connection has ended; what it had received may still be read.
    connection: Option<StreamConnection>,
    body: Incoming,
}

impl EventStream {
    /// The next chunk of the body; `None` once the stream has ended.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            let frame = match &mut self.connection {
                Some(connection) => tokio::select! {
                    ended = connection => Err(ended),
                    frame = self.body.frame() => Ok(frame),
                },
                None => Ok(self.body.frame().await),
            };
            match frame {
                Err(ended) => {
                    self.connection = None;
                    if let Err(error) = ended {
                        return Some(Err(error.into()));
                    }
                }
                Ok(None) => return None,
                Ok(Some(Err(error))) => return Some(Err(error.into())),
                Ok(Some(Ok(frame))) => {
                    if let Ok(chunk) = frame.into_data() {
                        return Some(Ok(chunk));
                    }
                }
            }
        }
    }
}

/// GETs `path` on a connection of its own: the status and the body.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(hyper::StatusCode, Bytes), Error> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let exchange = async {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, Error>((status, body))
    };
    tokio::select! {
        answer = exchange => answer,
        ended = connection => Err(format!("GET {path}: connection ended: {ended:?}").into()),
    }
}

/// Publishes over one kept-alive connection, opening a new one when the server closes
/// it (nginx does after `keepalive_requests`).
pub struct Publisher {
    sender: http1::SendRequest<Full<Bytes>>,
    target: Target,
    transport: Transport,
}

impl Publisher {
    /// A publisher over plain TCP.
    pub async fn connect(target: Target) -> Result<Self, Error> {
        Self::connect_over(target, PLAIN.clone()).await
    }

    /// A publisher over `transport` (HTTP/1.1, over TCP or TLS).
    pub async fn connect_over(target: Target, transport: Transport) -> Result<Self, Error> {
        Ok(Self { sender: Self::open(target, &transport).await?, target, transport })
    }

    async fn open(
        target: Target,
        transport: &Transport,
    ) -> Result<http1::SendRequest<Full<Bytes>>, Error> {
        let stream = transport.connect(target.addr, None, None, Protocol::Http1).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// POSTs `body` to `path` and waits for a 2xx.
    pub async fn post(&mut self, path: &str, body: String) -> Result<(), Error> {
        let (status, body) = self.send(path, body).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("publish {path}: {status} {}", String::from_utf8_lossy(&body)).into())
        }
    }

    /// POSTs `body` to `path`: the answer's status and body, whatever the status.
    pub async fn send(
        &mut self,
        path: &str,
        body: String,
    ) -> Result<(hyper::StatusCode, Bytes), Error> {
        if self.sender.ready().await.is_err() {
            self.sender = Self::open(self.target, &self.transport).await?;
        }
        let content_type = match self.target.kind {
            crate::target::Kind::Herald => "application/json",
            crate::target::Kind::Nchan => "text/plain",
        };
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, self.target.addr.to_string())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
