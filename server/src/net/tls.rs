//! HTTPS on the listening port: TLS 1.2 and 1.3 by rustls (no OpenSSL), the
//! certificate chain and key from PEM files, and ALPN offering `h2` then `http/1.1`
//! (RFC 7301) so that browsers speak HTTP/2 and carry every tab's streams on one
//! connection.
//!
//! A renewed certificate is taken without a restart: the files are read again on
//! `SIGHUP`, and whenever their modification time changes (looked at every
//! [`RELOAD_CHECK`]). New handshakes get the new certificate; open connections keep
//! theirs. A pair that does not load (a key that does not match, a file half
//! written) is refused with a warning and the previous certificate stays.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// How often the certificate files' modification times are looked at.
pub const RELOAD_CHECK: Duration = Duration::from_secs(10);

/// The ALPN protocol ids offered, most preferred first (RFC 7301 §6 registry).
pub(super) const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Where the certificate chain and its private key are read from (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM `CERTIFICATE` blocks).
    pub cert: PathBuf,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate and key could not be used.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// A file held no certificate, or no private key.
    Missing {
        /// The file.
        path: PathBuf,
        /// What it lacks: "certificate" or "private key".
        what: &'static str,
    },
    /// A file's PEM could not be parsed.
    Pem {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        error: rustls::pki_types::pem::Error,
    },
    /// The key does not belong to the chain's first certificate.
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The chain's first certificate cannot be parsed.
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        why: String,
    },
    /// rustls refused the pair for another reason.
    Rejected(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            Self::Missing { path, what } => write!(f, "{} holds no {what}", path.display()),
            Self::Pem { path, error } => write!(f, "{} is not valid PEM: {error}", path.display()),
            Self::Mismatch { cert, key } => write!(
                f,
                "the private key in {} does not belong to the certificate in {}",
                key.display(),
                cert.display()
            ),
            Self::BadCertificate { path, why } => {
                write!(f, "{} holds no valid certificate ({why})", path.display())
            }
            Self::Rejected(error) => write!(f, "the certificate and key cannot be used: {error}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The TLS side of the listener: accepts handshakes with the current certificate.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certificate: Arc<CurrentCertificate>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("certificate", &self.certificate).finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads `files` and builds the server's TLS configuration.
    ///
    /// # Errors
    /// When the files cannot be read or do not hold a usable certificate and key.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate = Arc::new(CurrentCertificate::load(files, provider.clone())?);
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rejected)?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(config)), certificate })
    }

    /// Runs the handshake on an accepted connection.
    ///
    /// # Errors
    /// When the handshake fails (the peer is not speaking TLS, say, or goes away).
    pub async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }

    /// Reads the certificate files again now. On failure the previous certificate
    /// stays in use.
    ///
    /// # Errors
    /// Why the files could not be used.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.certificate.reload()
    }

    /// Keeps the certificate current until `stop`: reloads it on `SIGHUP` and when
    /// the files change, logging the outcome.
    pub async fn keep_current(self, stop: CancellationToken) {
        let mut hangups = hangup_signals();
        let mut check = tokio::time::interval(RELOAD_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.reset();
        loop {
            let asked = tokio::select! {
                () = stop.cancelled() => return,
                () = next_hangup(&mut hangups) => true,
                _ = check.tick() => false,
            };
            if asked || self.certificate.files_changed() {
                let files = &self.certificate.files;
                match self.reload() {
                    Ok(()) => tracing::info!(
                        "loaded the TLS certificate from {} again",
                        files.cert.display()
                    ),
                    Err(error) => tracing::warn!(
                        "keeping the current TLS certificate: the new one cannot be used: {error}"
                    ),
                }
            }
        }
    }
}

/// Without TLS, `SIGHUP` has nothing to reload; taken (and logged) all the same until
/// `stop`, so that a `systemctl reload` (or a terminal closing) does not end the node,
/// as the default action of `SIGHUP` would.
pub async fn ignore_hangups(stop: CancellationToken) {
    let mut hangups = hangup_signals();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = next_hangup(&mut hangups) => {
                tracing::info!("SIGHUP: nothing to reload (no --tls-cert)");
            }
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangup_signals() -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .inspect_err(|error| tracing::warn!("cannot listen for SIGHUP: {error}"))
        .ok()
}

#[cfg(not(unix))]
fn hangup_signals() -> Hangups {}

/// The next `SIGHUP`; never, where there are none.
async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signal) = hangups
        && signal.recv().await.is_some()
    {
        return;
    }
    let _ = hangups;
    std::future::pending::<()>().await;
}

/// The certificate handshakes get, swapped in place when the files are renewed.
struct CurrentCertificate {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    key: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times when last loaded.
    loaded: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

impl fmt::Debug for CurrentCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentCertificate").field("files", &self.files).finish_non_exhaustive()
    }
}

impl CurrentCertificate {
    fn load(files: TlsFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let loaded = modified(&files);
        let key = certified_key(&files, &provider)?;
        Ok(Self { files, provider, key: RwLock::new(Arc::new(key)), loaded: RwLock::new(loaded) })
    }

    fn reload(&self) -> Result<(), TlsError> {
        let loaded = modified(&self.files);
        // Marked as seen even when it fails: a broken pair is reported once, not at
        // every check, and the next change is tried again.
        *self.loaded.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        let key = certified_key(&self.files, &self.provider)?;
        *self.key.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    fn files_changed(&self) -> bool {
        let seen = *self.loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        modified(&self.files) != seen
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

fn modified(files: &TlsFiles) -> (Option<SystemTime>, Option<SystemTime>) {
    let time = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    (time(&files.cert), time(&files.key))
}

/// The chain and key in `files`, checked to belong together.
fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read(&files.cert)?;
    let certs = CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem { path: files.cert.clone(), error })?;
    if certs.is_empty() {
        return Err(TlsError::Missing { path: files.cert.clone(), what: "certificate" });
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            path: files.key.clone(),
            what: "private key (PKCS#8, PKCS#1 or SEC1; an encrypted key must be decrypted \
                   first: openssl pkey -in KEY -out KEY.pem)",
        },
        error => TlsError::Pem { path: files.key.clone(), error },
    })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => {
            TlsError::Mismatch { cert: files.cert.clone(), key: files.key.clone() }
        }
        rustls::Error::InvalidCertificate(why) => {
            TlsError::BadCertificate { path: files.cert.clone(), why: format!("{why:?}") }
        }
        error => TlsError::Rejected(error),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read { path: path.to_owned(), error })
}
