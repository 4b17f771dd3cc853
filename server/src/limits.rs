//! Limits that keep one client or publisher from hurting everyone else: open streams
//! in total and per source address, and pushes per second per publisher.
//!
//! Each refusal is counted in metrics ([`Limit`]) and answered with a clear 429.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::hub::lock;
use crate::metrics::Limit;

/// Open event streams, counted per source address.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    /// `None`: streams are not counted per address.
    max_per_address: Option<usize>,
    open: Arc<Mutex<OpenStreams>>,
}

#[derive(Debug, Default)]
struct OpenStreams {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Held by an open stream; gives its place back when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    /// The address it counts against, when streams are counted per address.
    address: Option<IpAddr>,
    open: Arc<Mutex<OpenStreams>>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        let Some(address) = self.address else { return };
        if let Some(count) = open.by_address.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&address);
            }
        }
    }
}

impl ConnectionLimits {
    /// At most `max_total` streams, and `max_per_address` (if any) from one address.
    pub fn new(max_total: usize, max_per_address: Option<usize>) -> Self {
        Self { max_total, max_per_address, open: Arc::default() }
    }

    /// A place for one more stream from `address`.
    ///
    /// # Errors
    /// The [`Limit`] that is reached.
    pub fn acquire(&self, address: IpAddr) -> Result<ConnectionPermit, Limit> {
        let mut open = lock(&self.open);
        if open.total >= self.max_total {
            return Err(Limit::Connections);
        }
        let counted = match self.max_per_address {
            None => None,
            Some(max) => {
                let from_address = open.by_address.entry(address).or_insert(0);
                if *from_address >= max {
                    return Err(Limit::ConnectionsPerAddress);
                }
                *from_address += 1;
                Some(address)
            }
        };
        open.total += 1;
        Ok(ConnectionPermit { address: counted, open: self.open.clone() })
    }
}

/// Who a push's allowance is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Publisher {
    /// The publish key it presented (its position in the configuration).
    Key(usize),
    /// Its address, when no keys are configured.
    Address(IpAddr),
}

/// Pushes per second per publisher: a token bucket each, refilled at `per_second`
/// and holding at most `burst`.
#[derive(Debug)]
pub struct PushRate {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<Publisher, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets kept before idle (full) ones are forgotten.
const BUCKETS_BEFORE_PRUNING: usize = 10_000;

impl PushRate {
    /// `per_second` pushes per publisher on average, `burst` at once.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes one push from `publisher`'s allowance.
    ///
    /// # Errors
    /// How long until the next push would be allowed.
    pub fn take(&self, publisher: Publisher) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= BUCKETS_BEFORE_PRUNING {
            self.prune(&mut buckets, now);
        }
        let bucket =
            buckets.entry(publisher).or_insert(Bucket { tokens: self.burst, updated: now });
        bucket.tokens = self.refilled(bucket, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    /// Forgets publishers whose bucket has filled up again: they are as if new.
    fn prune(&self, buckets: &mut HashMap<Publisher, Bucket>, now: Instant) {
        buckets.retain(|_, bucket| self.refilled(bucket, now) < self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_limited_in_total_and_per_address() {
        let limits = ConnectionLimits::new(3, Some(2));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = limits.acquire(a).unwrap();
        let _second = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), Limit::ConnectionsPerAddress);
        let _third = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).unwrap_err(), Limit::Connections);
        drop(first);
        assert!(limits.acquire(a).is_ok(), "a closed stream gives its place back");
    }

    #[test]
    fn without_a_per_address_limit_only_the_total_counts() {
        let limits = ConnectionLimits::new(2, None);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let first = limits.acquire(a).unwrap();
        let _second = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), Limit::Connections);
        drop(first);
        assert!(limits.acquire(a).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn pushes_are_limited_per_publisher_and_refill_over_time() {
        let rate = PushRate::new(10, 2);
        let (a, b) = (Publisher::Key(0), Publisher::Address("127.0.0.1".parse().unwrap()));
        assert!(rate.take(a).is_ok() && rate.take(a).is_ok());
        let wait = rate.take(a).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(rate.take(b).is_ok(), "another publisher has its own allowance");
        tokio::time::advance(wait).await;
        assert!(rate.take(a).is_ok());
    }
}
