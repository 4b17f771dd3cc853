//! The in-memory broker: one node, ids from a counter, history in this process.
//!
//! Id assignment, the history append and local delivery happen under one lock, so
//! every connection sees ids in increasing order.

use std::sync::{Arc, Mutex};

use super::window::Window;
use super::{Accepted, Replay};
use crate::hub::fanout::{Fanout, Message};
use crate::hub::history::{History, HistoryOptions};
use crate::hub::registry::ClientPresence;
use crate::hub::subscriber::Handoff;
use crate::hub::types::{ClientId, DisconnectReason, Epoch, EventId, GapReason, Position, Target};
use crate::hub::{WRITE_BEFORE_ANSWER, lock};
use crate::sse;

#[derive(Debug)]
pub(crate) struct MemoryBroker {
    /// A `std` mutex: publishing never awaits.
    state: Mutex<State>,
    epoch: Epoch,
    fanout: Arc<Fanout>,
    /// Large fan-outs being handed to their writers.
    window: Window,
}

#[derive(Debug)]
struct State {
    last_seq: u64,
    history: History,
}

/// The longest a publisher waits for the writers of a small fan-out to take its frame.
/// Writers are waited for only while they wait on their queue, so they take it at once;
/// the bound is for a reader that is the publishing task itself (or runs only after
/// it), which would otherwise never get to take it.
const TAKEN_WITHIN: std::time::Duration = std::time::Duration::from_millis(2);

/// How often idle history is swept for expired messages (publishing and resuming
/// expire it too, so this only bounds how long memory is held when nothing happens).
const HISTORY_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl MemoryBroker {
    /// A broker with a fresh epoch. Must be called inside a Tokio runtime (it starts
    /// the history sweeper, which stops when the broker is dropped).
    pub(crate) fn new(history: HistoryOptions, epoch: Epoch, fanout: Arc<Fanout>) -> Arc<Self> {
        let broker = Arc::new(Self {
            state: Mutex::new(State { last_seq: 0, history: History::new(history) }),
            epoch,
            fanout,
            window: Window::default(),
        });
        tokio::spawn(sweep_history(Arc::downgrade(&broker)));
        broker
    }

    /// Queues the message for its connections, and returns once its publisher may be
    /// answered:
    /// - a fan-out to at most [`WRITE_BEFORE_ANSWER`] connections, once the writers
    ///   that were waiting for it took it (they run first, woken on this worker), so
    ///   that it is on the wire before the answer, as in nchan, whose publish writes to
    ///   subscribers itself; for [`TAKEN_WITHIN`] at most;
    /// - a larger one, once at most [`window::WINDOW`](super::window::WINDOW) large
    ///   fan-outs are in flight (see [`Window`]).
    ///
    /// Only writers that were waiting on their queue are waited for: one busy on a
    /// socket its client does not read would take nothing until the client reads.
    pub(crate) async fn publish(&self, target: &Target, frame_without_id: &[u8]) -> Accepted {
        let handoff = Arc::new(Handoff::default());
        let accepted = self.queue(target, frame_without_id, &handoff);
        if accepted.delivered > WRITE_BEFORE_ANSWER {
            self.window.wait_for_room(handoff).await;
        } else if handoff.untaken() > 0 {
            // Not yielding: a yielded task makes tokio wake the other worker.
            let _ = tokio::time::timeout(TAKEN_WITHIN, handoff.taken()).await;
        }
        accepted
    }

    /// Gives the message its id, keeps it in history and queues it for its
    /// connections, counting in `handoff` those whose writers are waiting for it.
    fn queue(&self, target: &Target, frame_without_id: &[u8], handoff: &Arc<Handoff>) -> Accepted {
        let mut state = lock(&self.state);
        state.last_seq += 1;
        let id = EventId { epoch: self.epoch.clone(), seq: state.last_seq, kind: target.kind() };
        let frame = sse::with_id(&id.to_string(), frame_without_id);
        state.history.append(id.seq, target, frame.clone());
        let message = Message { position: id.position(), target: target.clone(), frame };
        let delivered = self.fanout.deliver(&message, Some(handoff));
        Accepted { id, delivered }
    }

    pub(crate) fn missed(&self, last_event_id: &str, targets: &[Target]) -> Replay {
        let mut state = lock(&self.state);
        let known = last_event_id
            .parse::<Position>()
            .ok()
            .filter(|seen| seen.epoch == self.epoch && seen.seq <= state.last_seq);
        let head = Position { epoch: self.epoch.clone(), seq: state.last_seq };
        match known {
            Some(seen) => {
                let missed = state.history.missed_since(seen.seq, targets);
                Replay {
                    frames: missed.frames,
                    gap: missed.gap.then_some(GapReason::Evicted),
                    head,
                }
            }
            // An id from another history (this node restarted, say): everything held
            // is newer than it, and whatever came before is unknowable.
            None => {
                let missed = state.history.missed_since(0, targets);
                Replay { frames: missed.frames, gap: Some(GapReason::Unknown), head }
            }
        }
    }

    pub(crate) fn disconnect(&self, client: &ClientId) -> usize {
        self.fanout.close_target(&Target::Client(client.clone()), DisconnectReason::Kicked)
    }

    pub(crate) fn clients(&self) -> Vec<ClientPresence> {
        self.fanout.presence()
    }

    pub(crate) fn history_size(&self) -> (usize, usize) {
        lock(&self.state).history.size()
    }
}

/// Expires history until the broker is gone.
async fn sweep_history(broker: std::sync::Weak<MemoryBroker>) {
    let mut tick = tokio::time::interval(HISTORY_SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(broker) = broker.upgrade() else { return };
        lock(&broker.state).history.expire(tokio::time::Instant::now());
    }
}
