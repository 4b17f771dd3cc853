//! `--redis-min-replicas N`: a push is acknowledged only once N replicas have it, so it
//! survives a failover, and an old primary cut off from its replicas (the minority
//! side of a split, or one Sentinel already replaced) cannot acknowledge anything.
//!
//! Redis' `WAIT N TIMEOUT` blocks the connection it is sent on until the replicas
//! confirm every write *that connection* made before it. So the script and its `WAIT`
//! travel as one pipeline, on one connection: a `WAIT` sent on another connection
//! (the command connection reconnects by itself, and follows a failover) would confirm
//! nothing about this write, yet answer with the number of replicas attached. The
//! delivery checker found exactly that with a shared `WAIT` (docs/reliability.md).

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{ErrorKind, RedisError, ScriptInvocation, ServerErrorKind};

/// How long a `WAIT` may take before the push is refused (it may still be delivered).
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Why a write is not acknowledged.
#[derive(Debug)]
pub(crate) enum NotReplicated {
    /// Fewer replicas than required confirmed it within [`WAIT_TIMEOUT`].
    TooFew { confirmed: usize, required: usize },
    /// The script or the `WAIT` failed.
    Failed(RedisError),
}

impl std::fmt::Display for NotReplicated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooFew { confirmed, required } => write!(
                f,
                "only {confirmed} of {required} Redis replicas confirmed the write within \
                 {} ms; it may still take effect",
                WAIT_TIMEOUT.as_millis()
            ),
            Self::Failed(error) => error.fmt(f),
        }
    }
}

/// Runs `script`, waiting for `required` replicas to confirm it when that is not 0
/// (see [`invoke_confirmed`]).
pub(crate) async fn invoke<T: redis::FromRedisValue>(
    script: &ScriptInvocation<'_>,
    required: usize,
    conn: &mut ConnectionManager,
) -> Result<T, NotReplicated> {
    if required == 0 {
        script.invoke_async(conn).await.map_err(NotReplicated::Failed)
    } else {
        invoke_confirmed(script, required, conn).await
    }
}

/// Runs `script`, then `WAIT required`, as one pipeline on `conn`; the script's reply
/// once `required` replicas confirmed it. A script Redis does not hold yet (it
/// restarted, or this is a new primary) is loaded and the pipeline sent again.
pub(crate) async fn invoke_confirmed<T: redis::FromRedisValue>(
    script: &ScriptInvocation<'_>,
    required: usize,
    conn: &mut ConnectionManager,
) -> Result<T, NotReplicated> {
    let wait = u64::try_from(WAIT_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
    let mut pipe = redis::pipe();
    pipe.invoke_script(script).cmd("WAIT").arg(required).arg(wait);
    let reply = match pipe.query_async::<(T, usize)>(conn).await {
        Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(conn).await.map_err(NotReplicated::Failed)?;
            pipe.query_async::<(T, usize)>(conn).await
        }
        reply => reply,
    };
    let (reply, confirmed) = reply.map_err(NotReplicated::Failed)?;
    if confirmed < required {
        return Err(NotReplicated::TooFew { confirmed, required });
    }
    Ok(reply)
}
