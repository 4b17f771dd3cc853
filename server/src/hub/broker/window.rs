//! Flow control for large fan-outs: at most [`WINDOW`] of them are being handed to
//! their writers at a time, and the publisher of one more waits for the oldest.
//!
//! Why: a fan-out to many connections is answered as soon as it is queued, so one
//! publisher can queue messages faster than thousands of writers take them. Back to
//! back, every connection's queue then grows a backlog, each new message waits behind
//! it, and the time until it reaches every subscriber grows with the backlog (and so
//! does memory). Waiting for the fan-out [`WINDOW`] messages earlier keeps several
//! messages in flight, so that a writer still finds several frames to write in one
//! system call, but no more than that: a message reaches everyone within a few passes
//! over the connections, and the publisher feels the hub's pace instead of filling it.
//! Measured with `herald-bench broadcast 10000 1000` (back to back): 1.5 M deliveries/s
//! and 279 / 514 ms to reach every subscriber (p50 / p99) without the window, 0.67 M/s
//! and 116 / 218 ms with it, peak memory 93 → 44 MB (see docs/benchmarks.md).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::hub::lock;
use crate::hub::subscriber::Handoff;

/// How many large fan-outs may be in flight (queued, and not yet taken by every writer
/// that was waiting for it) when a publisher is answered.
pub(crate) const WINDOW: usize = 8;

/// The longest a publisher waits for the oldest fan-out in flight. Its writers were
/// waiting when it was queued, so they take it as soon as they run; the bound is for a
/// runtime so overloaded that a pass over the connections takes longer than this.
const WAIT_AT_MOST: Duration = Duration::from_secs(1);

/// The large fan-outs in flight, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Window {
    in_flight: Mutex<VecDeque<Arc<Handoff>>>,
}

impl Window {
    /// Enters the hand-over of a fan-out just queued. Returns the oldest fan-out still
    /// in flight when that makes more than [`WINDOW`]: its publisher waits for it
    /// ([`Handoff::taken`], at most [`WAIT_AT_MOST`]).
    fn enter(&self, handoff: Arc<Handoff>) -> Option<Arc<Handoff>> {
        let mut in_flight = lock(&self.in_flight);
        in_flight.retain(|earlier| earlier.untaken() > 0);
        if handoff.untaken() > 0 {
            in_flight.push_back(handoff);
        }
        if in_flight.len() > WINDOW { in_flight.pop_front() } else { None }
    }

    /// Waits, if the window is full, until the oldest fan-out in flight was taken.
    pub(crate) async fn wait_for_room(&self, handoff: Arc<Handoff>) {
        if let Some(oldest) = self.enter(handoff) {
            let _ = tokio::time::timeout(WAIT_AT_MOST, oldest.taken()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Waker};

    use bytes::Bytes;

    use super::*;
    use crate::hub::subscriber::Subscriber;

    /// A fan-out's hand-over, and the one writer it went to.
    type FanOut = (Arc<Handoff>, Arc<Subscriber>);

    /// A fan-out to one connection whose writer waits: in flight until it is taken.
    fn fan_out(seq: u64) -> FanOut {
        let subscriber = Arc::new(Subscriber::new(64));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(subscriber.poll_next(&mut cx).is_pending());
        let handoff = Arc::new(Handoff::default());
        subscriber.offer(seq, &Bytes::from_static(b"data: x\n\n"), Some(&handoff));
        (handoff, subscriber)
    }

    /// A window holding the first [`WINDOW`] of `count` fan-outs, and all of them.
    fn full_window(count: u64) -> (Window, Vec<FanOut>) {
        let window = Window::default();
        let fan_outs: Vec<_> = (1..=count).map(fan_out).collect();
        for (handoff, _) in &fan_outs[..WINDOW] {
            assert!(window.enter(handoff.clone()).is_none());
        }
        (window, fan_outs)
    }

    #[test]
    fn the_oldest_fan_out_in_flight_is_waited_for_once_the_window_is_full() {
        let (window, fan_outs) = full_window(WINDOW as u64 + 2);
        let oldest = window.enter(fan_outs[WINDOW].0.clone()).expect("the window is full");
        assert!(Arc::ptr_eq(&oldest, &fan_outs[0].0));
        let next = window.enter(fan_outs[WINDOW + 1].0.clone()).expect("still full");
        assert!(Arc::ptr_eq(&next, &fan_outs[1].0));
    }

    #[test]
    fn fan_outs_already_taken_leave_the_window() {
        let (window, fan_outs) = full_window(WINDOW as u64 + 1);
        let (_, third_writer) = &fan_outs[2];
        assert!(third_writer.try_next().is_some());
        assert!(window.enter(fan_outs[WINDOW].0.clone()).is_none(), "one left, one came");
    }

    #[test]
    fn a_fan_out_with_no_waiting_writer_is_not_in_flight() {
        let window = Window::default();
        for _ in 0..=WINDOW {
            assert!(window.enter(Arc::new(Handoff::default())).is_none());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_publisher_waits_for_room_until_the_oldest_is_taken_or_the_bound() {
        let (window, fan_outs) = full_window(WINDOW as u64 + 2);
        let window = Arc::new(window);
        let publisher = {
            let (window, handoff) = (window.clone(), fan_outs[WINDOW].0.clone());
            tokio::spawn(async move { window.wait_for_room(handoff).await })
        };
        tokio::task::yield_now().await;
        assert!(!publisher.is_finished(), "nine fan-outs in flight");
        assert!(fan_outs[0].1.try_next().is_some());
        publisher.await.expect("released by the take");
        // Nobody takes anything now: the bound answers the next publisher.
        let started = tokio::time::Instant::now();
        window.wait_for_room(fan_outs[WINDOW + 1].0.clone()).await;
        assert_eq!(started.elapsed(), WAIT_AT_MOST);
    }
}
