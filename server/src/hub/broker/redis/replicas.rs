//! `--redis-min-replicas N`: a push is acknowledged only once N replicas have it, so it
//! survives a failover, and an old primary cut off from its replicas (the minority
//! side of a split, or one Sentinel already replaced) cannot acknowledge anything.
//!
//! Redis' `WAIT N TIMEOUT` blocks the connection it is sent on until the replicas
//! confirm every write that connection made before it. Every command of a node goes
//! over one multiplexed connection, so the waits are shared (a group commit): a push
//! whose script has returned waits for the next `WAIT` that starts after it, and one
//! `WAIT` covers every push that came back before it started. Only one is in flight at
//! a time, since the connection can do nothing else meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::RedisError;
use redis::aio::ConnectionManager;

/// How long a `WAIT` may take before the push is refused (it may still be delivered).
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_millis(1000);

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Replicas {
    /// Replicas that must confirm a write.
    required: usize,
    /// `WAIT`s begun so far; the number of the latest is its ticket.
    begun: AtomicU64,
    /// The ticket of the latest `WAIT` that got enough confirmations.
    confirmed: AtomicU64,
    /// Held while a `WAIT` is in flight.
    in_flight: tokio::sync::Mutex<()>,
}

/// Why a write is not known to be on enough replicas.
#[derive(Debug)]
pub(crate) enum NotReplicated {
    /// Fewer replicas than required confirmed it within [`WAIT_TIMEOUT`].
    TooFew { confirmed: usize, required: usize },
    /// The `WAIT` itself failed.
    Failed(RedisError),
}

impl std::fmt::Display for NotReplicated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooFew { confirmed, required } => write!(
                f,
                "only {confirmed} of {required} Redis replicas confirmed the message within \
                 {} ms; it may still be delivered",
                WAIT_TIMEOUT.as_millis()
            ),
            Self::Failed(error) => write!(f, "cannot ask the replicas: {error}"),
        }
    }
}

impl Replicas {
    /// `required` replicas per write; 0 waits for none.
    pub(crate) fn new(required: usize) -> Self {
        Self {
            required,
            begun: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            in_flight: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether writes wait for replicas at all.
    pub(crate) fn required(&self) -> bool {
        self.required > 0
    }

    /// Returns when every write `conn` made before this call is on the required
    /// number of replicas.
    pub(crate) async fn confirm(&self, conn: &mut ConnectionManager) -> Result<(), NotReplicated> {
        // Only a WAIT begun after this point covers the write that just returned.
        let written_before = self.begun.load(Ordering::Acquire);
        let _turn = self.in_flight.lock().await;
        if self.confirmed.load(Ordering::Acquire) > written_before {
            return Ok(());
        }
        let ticket = self.begun.fetch_add(1, Ordering::AcqRel) + 1;
        let confirmed: usize = redis::cmd("WAIT")
            .arg(self.required)
            .arg(u64::try_from(WAIT_TIMEOUT.as_millis()).unwrap_or(u64::MAX))
            .query_async(conn)
            .await
            .map_err(NotReplicated::Failed)?;
        if confirmed < self.required {
            return Err(NotReplicated::TooFew { confirmed, required: self.required });
        }
        self.confirmed.fetch_max(ticket, Ordering::AcqRel);
        Ok(())
    }
}
