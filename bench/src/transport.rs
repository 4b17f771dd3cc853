//! How the load generator reaches a hub: plain TCP or TLS (rustls, trusting the CA
//! the hub's certificate comes from), and HTTP/1.1 (a connection per stream, as
//! browsers do over plain HTTP) or HTTP/2 (many streams on each connection, as one
//! browser's tabs or a proxy in front share one).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;

/// A failure worth reporting.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A connection's bytes, over TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Which protocol a connection speaks (over TLS: which one ALPN offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// How every connection is made.
#[derive(Clone, Default)]
pub struct Transport {
    /// TLS connectors offering `http/1.1` and `h2` by ALPN; plain TCP when `None`.
    tls: Option<(TlsConnector, TlsConnector)>,
    /// Streams per HTTP/2 connection; HTTP/1.1 (a connection per stream) when `None`.
    pub http2_streams: Option<usize>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("tls", &self.tls.is_some())
            .field("http2_streams", &self.http2_streams)
            .finish()
    }
}

/// Plain TCP, HTTP/1.1.
pub static PLAIN: Transport = Transport { tls: None, http2_streams: None };

impl Transport {
    /// A transport over TLS that trusts the CA certificates in `ca` (PEM) when given,
    /// and HTTP/2 with `http2_streams` streams per connection when given.
    ///
    /// # Errors
    /// When `ca` cannot be read or holds no usable certificate.
    pub fn new(ca: Option<&Path>, http2_streams: Option<usize>) -> Result<Self, Error> {
        let tls = match ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca)? {
                    roots.add(cert?)?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let offering = |alpn: &[u8]| {
                    let mut config = config.clone();
                    config.alpn_protocols = vec![alpn.to_vec()];
                    TlsConnector::from(Arc::new(config))
                };
                Some((offering(b"http/1.1"), offering(b"h2")))
            }
            None => None,
        };
        Ok(Self { tls, http2_streams })
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A connection to `addr` from `from` (any address when `None`), with a small
    /// receive buffer if asked, ready for `protocol`.
    ///
    /// # Errors
    /// When the connection or the TLS handshake fails, or TLS chose another protocol.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        from: Option<IpAddr>,
        receive_buffer: Option<u32>,
        protocol: Protocol,
    ) -> Result<Box<dyn Io>, Error> {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        // Ports of an earlier run's closed connections linger in TIME_WAIT for a minute.
        socket.set_reuseaddr(true)?;
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        if let Some(from) = from {
            socket.bind(SocketAddr::new(from, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let Some((http1, http2)) = &self.tls else { return Ok(Box::new(stream)) };
        let connector = if protocol == Protocol::Http2 { http2 } else { http1 };
        let stream = connector.connect(ServerName::IpAddress(addr.ip().into()), stream).await?;
        let chosen = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let wanted: &[u8] = if protocol == Protocol::Http2 { b"h2" } else { b"http/1.1" };
        if chosen.as_deref() != Some(wanted) {
            return Err(format!("{addr}: ALPN chose {chosen:?}, not {wanted:?}").into());
        }
        Ok(Box::new(stream))
    }
}
