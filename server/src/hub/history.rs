//! Recent messages, kept per target so a reconnecting client can be sent what it
//! missed, and so that what can no longer be sent is known and announced as a gap.
//!
//! Three bounds keep memory in check however many targets exist:
//! * at most `per_target` messages per target (older ones are evicted);
//! * nothing older than `ttl` (idle targets disappear entirely);
//! * at most `max_bytes` of frames in all (oldest evicted first).
//!
//! One FIFO of every message in publish order serves the last two bounds: ids
//! increase with time, so the oldest message anywhere is always at its front.
//! Entries whose message was already evicted by its target's own bound stay in the
//! FIFO until they reach the front (or a compaction), and are skipped then.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::types::Target;

/// History limits.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// Messages kept per target.
    pub per_target: usize,
    /// How long a message is kept.
    pub ttl: Duration,
    /// Bytes of encoded frames kept in all.
    pub max_bytes: usize,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        Self { per_target: 100, ttl: Duration::from_secs(600), max_bytes: 64 * 1024 * 1024 }
    }
}

/// What a client missed since a position.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct HeldSince {
    /// The frames still held, in id order.
    pub frames: Vec<Bytes>,
    /// Whether some messages after the position are no longer held.
    pub gap: bool,
}

#[derive(Debug)]
pub(crate) struct History {
    options: HistoryOptions,
    rings: HashMap<Target, Ring>,
    order: VecDeque<Entry>,
    /// Messages held in all rings.
    held: usize,
    bytes: usize,
    /// The highest seq removed by age or by the byte bound (whose ring may be gone).
    expired_up_to: u64,
}

#[derive(Debug)]
struct Ring {
    frames: VecDeque<(u64, Bytes)>,
    /// The highest seq this target's history no longer holds.
    evicted_up_to: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    target: Target,
    at: Instant,
}

impl History {
    pub(crate) fn new(options: HistoryOptions) -> Self {
        Self {
            options,
            rings: HashMap::new(),
            order: VecDeque::new(),
            held: 0,
            bytes: 0,
            expired_up_to: 0,
        }
    }

    /// Keeps `frame` (message `seq`, newer than any before) for `target`.
    pub(crate) fn append(&mut self, seq: u64, target: &Target, frame: Bytes) {
        let now = Instant::now();
        self.expire(now);
        if self.options.per_target == 0 {
            self.expired_up_to = seq;
            return;
        }
        let expired_up_to = self.expired_up_to;
        // A new ring inherits the global expiry point: anything up to it may have
        // been this target's, so resuming from before it must report a gap.
        let ring = self
            .rings
            .entry(target.clone())
            .or_insert_with(|| Ring { frames: VecDeque::new(), evicted_up_to: expired_up_to });
        self.bytes += frame.len();
        self.held += 1;
        ring.frames.push_back((seq, frame));
        if ring.frames.len() > self.options.per_target
            && let Some((evicted, frame)) = ring.frames.pop_front()
        {
            ring.evicted_up_to = evicted;
            self.bytes -= frame.len();
            self.held -= 1;
        }
        self.order.push_back(Entry { seq, target: target.clone(), at: now });
        while self.bytes > self.options.max_bytes {
            self.evict_oldest();
        }
        self.compact_if_sparse();
    }

    /// What `targets` missed after `seq`: the frames still held, in id order, and
    /// whether any are gone. A target with no history left cannot prove it missed
    /// nothing once messages after `seq` have expired, so that counts as a gap too.
    pub(crate) fn missed_since(&mut self, seq: u64, targets: &[Target]) -> HeldSince {
        self.expire(Instant::now());
        let mut gap = false;
        let mut frames: Vec<(u64, Bytes)> = Vec::new();
        for target in targets {
            match self.rings.get(target) {
                Some(ring) => {
                    gap |= ring.evicted_up_to > seq;
                    let newer = ring.frames.partition_point(|(held, _)| *held <= seq);
                    frames.extend(ring.frames.range(newer..).cloned());
                }
                None => gap |= self.expired_up_to > seq,
            }
        }
        frames.sort_unstable_by_key(|(held, _)| *held);
        HeldSince { frames: frames.into_iter().map(|(_, frame)| frame).collect(), gap }
    }

    /// Drops messages older than the TTL.
    pub(crate) fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|entry| now.duration_since(entry.at) >= self.options.ttl)
        {
            self.evict_oldest();
        }
    }

    /// Messages held, and their size in bytes.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.held, self.bytes)
    }

    fn evict_oldest(&mut self) {
        let Some(entry) = self.order.pop_front() else { return };
        self.expired_up_to = self.expired_up_to.max(entry.seq);
        let Some(ring) = self.rings.get_mut(&entry.target) else { return };
        if ring.frames.front().is_some_and(|(held, _)| *held == entry.seq)
            && let Some((seq, frame)) = ring.frames.pop_front()
        {
            ring.evicted_up_to = seq;
            self.bytes -= frame.len();
            self.held -= 1;
        }
        if ring.frames.is_empty() {
            self.rings.remove(&entry.target);
        }
    }

    /// Drops FIFO entries whose message is gone once they outnumber the live ones,
    /// so a few busy targets cannot grow the FIFO without bound within one TTL.
    fn compact_if_sparse(&mut self) {
        if self.order.len() <= 2 * self.held + 64 {
            return;
        }
        let rings = &self.rings;
        self.order.retain(|entry| {
            rings
                .get(&entry.target)
                .and_then(|ring| ring.frames.front())
                .is_some_and(|(oldest, _)| *oldest <= entry.seq)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> Target {
        Target::Client(id.parse().unwrap())
    }

    fn frame(seq: u64) -> Bytes {
        Bytes::from(format!("{seq}"))
    }

    fn texts(missed: &HeldSince) -> Vec<String> {
        missed.frames.iter().map(|f| String::from_utf8(f.to_vec()).unwrap()).collect()
    }

    fn history(per_target: usize, ttl_secs: u64, max_bytes: usize) -> History {
        History::new(HistoryOptions { per_target, ttl: Duration::from_secs(ttl_secs), max_bytes })
    }

    #[tokio::test(start_paused = true)]
    async fn replays_every_target_merged_in_id_order() {
        let mut history = history(10, 60, 1 << 20);
        history.append(1, &client("a"), frame(1));
        history.append(2, &Target::Broadcast, frame(2));
        history.append(3, &client("b"), frame(3));
        history.append(4, &client("a"), frame(4));
        let missed = history.missed_since(1, &[client("a"), Target::Broadcast]);
        assert_eq!(texts(&missed), ["2", "4"]);
        assert!(!missed.gap);
        assert_eq!(texts(&history.missed_since(4, &[client("a")])), Vec::<String>::new());
    }

    #[tokio::test(start_paused = true)]
    async fn the_per_target_bound_evicts_and_reports_a_gap() {
        let mut history = history(2, 60, 1 << 20);
        for seq in 1..=4 {
            history.append(seq, &client("a"), frame(seq));
        }
        history.append(5, &client("b"), frame(5));
        assert_eq!(history.size().0, 3);
        let missed = history.missed_since(1, &[client("a")]);
        assert_eq!((texts(&missed), missed.gap), (vec!["3".to_owned(), "4".to_owned()], true));
        let missed = history.missed_since(2, &[client("a")]);
        assert!(!missed.gap, "message 2 was evicted but the client had seen it");
        assert!(!history.missed_since(1, &[client("b")]).gap);
    }

    #[tokio::test(start_paused = true)]
    async fn messages_expire_with_their_target_and_leave_a_gap() {
        let mut history = history(10, 60, 1 << 20);
        history.append(1, &client("a"), frame(1));
        tokio::time::advance(Duration::from_secs(30)).await;
        history.append(2, &client("b"), frame(2));
        tokio::time::advance(Duration::from_secs(31)).await;
        history.expire(Instant::now());
        assert_eq!(history.size().0, 1);
        assert!(history.missed_since(0, &[client("a")]).gap);
        let missed = history.missed_since(1, &[client("b")]);
        assert_eq!((texts(&missed), missed.gap), (vec!["2".to_owned()], false));
        tokio::time::advance(Duration::from_secs(30)).await;
        history.expire(Instant::now());
        assert_eq!(history.size(), (0, 0));
        assert!(history.rings.is_empty() && history.order.is_empty());
        assert!(!history.missed_since(2, &[client("a")]).gap, "nothing after 2 was ever lost");
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_recreated_after_expiry_still_reports_the_old_loss() {
        let mut history = history(10, 60, 1 << 20);
        history.append(1, &client("a"), frame(1));
        tokio::time::advance(Duration::from_secs(61)).await;
        history.append(2, &client("a"), frame(2));
        let missed = history.missed_since(0, &[client("a")]);
        assert_eq!((texts(&missed), missed.gap), (vec!["2".to_owned()], true));
    }

    #[tokio::test(start_paused = true)]
    async fn the_byte_bound_evicts_the_oldest_anywhere() {
        let mut history = history(100, 60, 10);
        for seq in 1..=12 {
            history.append(
                seq,
                &client(if seq % 2 == 0 { "a" } else { "b" }),
                Bytes::from_static(b"xx"),
            );
        }
        assert_eq!(history.size(), (5, 10));
        assert!(history.missed_since(5, &[client("a")]).gap, "6 was evicted");
        assert!(!history.missed_since(6, &[client("a")]).gap);
        assert!(history.missed_since(6, &[client("b")]).gap, "7 was evicted");
        assert_eq!(texts(&history.missed_since(6, &[client("b")])), ["xx", "xx"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_fifo_stays_proportional_to_what_is_held() {
        let mut history = history(2, 3600, 1 << 30);
        for seq in 1..=10_000 {
            history.append(seq, &client("busy"), frame(seq));
        }
        assert_eq!(history.size().0, 2);
        assert!(history.order.len() <= 2 * 2 + 64 + 1, "{}", history.order.len());
    }
}
