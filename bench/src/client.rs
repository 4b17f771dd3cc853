//! Raw HTTP/1 over tokio + hyper: SSE subscribers bound to a chosen source address,
//! and a publisher on one kept-alive connection.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

use crate::sse::EventReader;
use crate::target::Target;

/// A failure worth reporting.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

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
    connection: http1::Connection<TokioIo<TcpStream>, Full<Bytes>>,
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
        tokio::select! {
            _ = connection => {}
            () = read => {}
        }
    }
}

/// Opens client `n`'s stream from `from`; ready to read once the response headers
/// said 200.
pub async fn subscribe(target: &Target, n: usize, from: IpAddr) -> Result<Subscribed, Error> {
    let socket = TcpSocket::new_v4()?;
    // Ports of an earlier run's closed connections linger in TIME_WAIT for a minute.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(target.addr).await?;
    let (mut sender, mut connection) = http1::handshake(TokioIo::new(stream)).await?;
    let request = hyper::Request::get(target.subscribe_path(n))
        .header(hyper::header::HOST, target.addr.to_string())
        .header(hyper::header::ACCEPT, "text/event-stream")
        .body(Full::new(Bytes::new()))?;
    let response = tokio::select! {
        response = sender.send_request(request) => response?,
        ended = &mut connection => {
            return Err(format!("client {n}: connection ended before the answer: {ended:?}").into());
        }
    };
    if response.status() != hyper::StatusCode::OK {
        return Err(format!("client {n}: {}", response.status()).into());
    }
    Ok(Subscribed { connection, body: response.into_body() })
}

/// Publishes over one kept-alive connection, opening a new one when the server closes
/// it (nginx does after `keepalive_requests`).
pub struct Publisher {
    sender: http1::SendRequest<Full<Bytes>>,
    target: Target,
}

impl Publisher {
    pub async fn connect(target: Target) -> Result<Self, Error> {
        Ok(Self { sender: Self::open(target).await?, target })
    }

    async fn open(target: Target) -> Result<http1::SendRequest<Full<Bytes>>, Error> {
        let stream = tokio::net::TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// POSTs `body` to `path` and waits for a 2xx.
    pub async fn post(&mut self, path: &str, body: String) -> Result<(), Error> {
        if self.sender.ready().await.is_err() {
            self.sender = Self::open(self.target).await?;
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
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("publish {path}: {status} {}", String::from_utf8_lossy(&body)).into())
        }
    }
}
