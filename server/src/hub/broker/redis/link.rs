//! The link to the Redis primary: where it is — one address, or whichever server
//! Sentinel names — and a command connection that follows it across a failover.
//!
//! With Sentinel, the primary is looked up (`SENTINEL get-master-addr-by-name`, then
//! `ROLE` on the answer, both by the redis crate's [`SentinelClient`]) at start, every
//! second, after any command fails in a way a moved primary explains (the connection
//! is refused, dropped or times out, or the server answers `READONLY` because it was
//! demoted), and whenever the subscription is lost. When the answer is a new address, the command
//! connection is replaced, the subscription is told (it resubscribes there), and the
//! move is logged and counted (`herald_redis_primary_changes_total`).
//!
//! TLS (`rediss://`) uses rustls with the system's roots, or only the CA given by
//! `--redis-ca`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisError, TlsCertificates, TlsMode};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::super::Unavailable;
use crate::hub::{RedisOptions, SentinelOptions};
use crate::metrics::Metrics;

/// Each attempt to reach Redis gives up after this long.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A command unanswered for this long fails (a push then answers 503).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The command connection's reconnect backoff stops growing here.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one lookup through Sentinel may take, all sentinels together.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often Sentinel is asked anyway: a primary that Sentinel replaced but that still
/// answers (it was stalled, or cut off from the sentinels) would otherwise keep taking
/// this node's commands until it is demoted.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Lookups after a failure are at least this far apart, so a burst of failed pushes
/// asks Sentinel once.
const LOOKUP_INTERVAL: Duration = Duration::from_millis(250);

/// The primary this node talks to now.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// Opens connections to it (the subscription's).
    pub client: redis::Client,
    /// The shared command connection (multiplexed; reconnects by itself).
    pub conn: ConnectionManager,
    /// `host:port`, for logs.
    pub address: String,
}

/// See the module docs.
pub(crate) struct Link {
    locator: Locator,
    endpoint: RwLock<Option<Endpoint>>,
    /// When the last lookup after a failure began.
    last_lookup: tokio::sync::Mutex<Option<Instant>>,
    /// Bumped on every move of the primary; the subscription watches it.
    moved: watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

enum Locator {
    /// One address: the URL's.
    Fixed,
    /// Whatever Sentinel names as the primary of `master`.
    Sentinel { client: Box<tokio::sync::Mutex<SentinelClient>>, master: String },
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let address = self.endpoint().map(|endpoint| endpoint.address);
        f.debug_struct("Link").field("primary", &address).finish_non_exhaustive()
    }
}

impl Link {
    /// A link as `options` describe it. Nothing is connected yet: a fixed address is
    /// connected on first use, Sentinel is asked by [`locate`](Self::locate).
    ///
    /// # Errors
    /// An unusable URL or sentinel address, or a CA without TLS.
    pub(crate) fn new(options: &RedisOptions, metrics: Arc<Metrics>) -> Result<Self, RedisError> {
        let info = options.url.as_str().into_connection_info()?;
        let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        if options.ca.is_some() && !tls {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a CA file (--redis-ca) needs a rediss:// URL",
            )));
        }
        if tls {
            // rustls needs one crypto provider per process; a second install is a no-op.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let certificates = options
            .ca
            .clone()
            .map(|root| TlsCertificates { client_tls: None, root_cert: Some(root) });
        let (locator, endpoint) = match &options.sentinel {
            None => {
                let client = match certificates {
                    Some(certificates) => redis::Client::build_with_tls(info, certificates)?,
                    None => redis::Client::open(info)?,
                };
                (Locator::Fixed, Some(endpoint_of(client)?))
            }
            Some(sentinel) => {
                let client = sentinel_client(sentinel, &info, certificates)?;
                let locator = Locator::Sentinel {
                    client: Box::new(tokio::sync::Mutex::new(client)),
                    master: sentinel.master.clone(),
                };
                (locator, None)
            }
        };
        Ok(Self {
            locator,
            endpoint: RwLock::new(endpoint),
            last_lookup: tokio::sync::Mutex::new(None),
            moved: watch::Sender::new(0),
            metrics,
        })
    }

    /// Where the primary is, if known.
    pub(crate) fn endpoint(&self) -> Option<Endpoint> {
        self.endpoint.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The command connection to the primary.
    ///
    /// # Errors
    /// [`Unavailable`] while Sentinel has not named a primary yet.
    pub(crate) fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        self.endpoint().map(|endpoint| endpoint.conn).ok_or_else(|| {
            Unavailable::NotNow("no Redis primary is known yet; asking Sentinel".to_owned())
        })
    }

    /// Changes whenever the primary moves.
    pub(crate) fn moves(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// Asks Sentinel where the primary is and follows it if it moved. With a fixed
    /// address there is nothing to ask.
    ///
    /// # Errors
    /// No sentinel answered with a primary that says it is one.
    pub(crate) async fn locate(&self) -> Result<(), RedisError> {
        let Locator::Sentinel { client, master } = &self.locator else { return Ok(()) };
        let lookup = async { client.lock().await.async_get_client().await };
        let primary = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(primary) => primary?,
            Err(_) => {
                return Err(RedisError::from((
                    redis::ErrorKind::Io,
                    "Sentinel did not name a primary in time",
                )));
            }
        };
        let address = primary.get_connection_info().addr().to_string();
        let before = self.endpoint().map(|endpoint| endpoint.address);
        if before.as_deref() == Some(address.as_str()) {
            return Ok(());
        }
        let endpoint = endpoint_of(primary)?;
        *self.endpoint.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(endpoint);
        match before {
            Some(before) => {
                self.metrics.redis_primary_changed();
                tracing::warn!(
                    "Sentinel names a new primary for {master}: {address} (was {before})"
                );
            }
            None => tracing::info!("Sentinel names {address} as the primary for {master}"),
        }
        self.moved.send_modify(|moves| *moves += 1);
        Ok(())
    }

    /// With Sentinel, asks it every [`CHECK_INTERVAL`] until `stop`, following the
    /// primary when it moved.
    pub(crate) async fn keep_following(self: Arc<Self>, stop: CancellationToken) {
        if matches!(self.locator, Locator::Fixed) {
            return;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(CHECK_INTERVAL) => {}
                () = stop.cancelled() => return,
            }
            if let Err(error) = self.locate().await {
                tracing::debug!("Sentinel did not answer the periodic check: {error}");
            }
        }
    }

    /// Called with every failed command: when Sentinel is in use and the failure is one
    /// a moved primary explains, a lookup starts (at most one per [`LOOKUP_INTERVAL`]).
    pub(crate) fn failed(self: &Arc<Self>, error: &RedisError) {
        if matches!(self.locator, Locator::Fixed) || !primary_may_have_moved(error) {
            return;
        }
        let link = Arc::clone(self);
        tokio::spawn(async move {
            {
                let mut last = link.last_lookup.lock().await;
                if last.is_some_and(|at| at.elapsed() < LOOKUP_INTERVAL) {
                    return;
                }
                *last = Some(Instant::now());
            }
            if let Err(error) = link.locate().await {
                tracing::warn!("cannot find the Redis primary through Sentinel: {error}");
            }
        });
    }
}

/// A lazily connected command connection to `client`'s server.
fn endpoint_of(client: redis::Client) -> Result<Endpoint, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(MAX_BACKOFF);
    let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
    let address = client.get_connection_info().addr().to_string();
    Ok(Endpoint { client, conn, address })
}

/// A Sentinel client that connects to the primary as the URL says (TLS, user,
/// password, database); the URL's host and port are not used.
fn sentinel_client(
    sentinel: &SentinelOptions,
    info: &redis::ConnectionInfo,
    certificates: Option<TlsCertificates>,
) -> Result<SentinelClient, RedisError> {
    let sentinels = sentinel
        .addresses
        .iter()
        .map(|address| Ok(address.as_str().into_connection_info()?.addr().clone()))
        .collect::<Result<Vec<_>, RedisError>>()?;
    let settings = info.redis_settings();
    let mut builder =
        SentinelClientBuilder::new(sentinels, &sentinel.master, SentinelServerType::Master)?
            .set_client_to_redis_db(settings.db());
    if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
    }
    if let Some(certificates) = certificates {
        builder = builder.set_client_to_redis_certificates(certificates);
    }
    if let Some(username) = settings.username() {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = settings.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(password) = &sentinel.password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    builder.build()
}

/// Whether `error` is what a client of a primary that failed over sees.
fn primary_may_have_moved(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || matches!(error.kind(), redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly))
}
