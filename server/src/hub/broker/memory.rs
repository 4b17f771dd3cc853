//! The in-memory broker: one node, ids from a counter, history in this process.
//!
//! Id assignment, the history append and local delivery happen under one lock, so
//! every connection sees ids in increasing order.

use std::sync::{Arc, Mutex};

use super::{Accepted, Missed};
use crate::hub::fanout::{Fanout, Message};
use crate::hub::history::{History, HistoryOptions};
use crate::hub::lock;
use crate::hub::registry::ClientPresence;
use crate::hub::subscriber::Handoff;
use crate::hub::types::{ClientId, DisconnectReason, Epoch, EventId, Position, Target};
use crate::sse;

#[derive(Debug)]
pub(crate) struct MemoryBroker {
    /// A `std` mutex: publishing never awaits.
    state: Mutex<State>,
    epoch: Epoch,
    fanout: Arc<Fanout>,
}

#[derive(Debug)]
struct State {
    last_seq: u64,
    history: History,
}

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
        });
        tokio::spawn(sweep_history(Arc::downgrade(&broker)));
        broker
    }

    /// Queues the message for its connections, counting in `handoff` those whose
    /// writers are waiting for it.
    pub(crate) fn publish(
        &self,
        target: &Target,
        frame_without_id: &[u8],
        handoff: &Arc<Handoff>,
    ) -> Accepted {
        let mut state = lock(&self.state);
        state.last_seq += 1;
        let id = EventId { epoch: self.epoch.clone(), seq: state.last_seq, kind: target.kind() };
        let frame = sse::with_id(&id.to_string(), frame_without_id);
        state.history.append(id.seq, target, frame.clone());
        let message = Message { position: id.position(), target: target.clone(), frame };
        let delivered = self.fanout.deliver(&message, Some(handoff));
        Accepted { id, delivered }
    }

    pub(crate) fn missed(&self, last_event_id: &str, targets: &[Target]) -> Missed {
        let mut state = lock(&self.state);
        let known = last_event_id
            .parse::<Position>()
            .ok()
            .filter(|seen| seen.epoch == self.epoch && seen.seq <= state.last_seq);
        let head = Position { epoch: self.epoch.clone(), seq: state.last_seq };
        match known {
            Some(seen) => {
                let missed = state.history.missed_since(seen.seq, targets);
                Missed { frames: missed.frames, gap: missed.gap.then_some("evicted"), head }
            }
            // An id from another history (this node restarted, say): everything held
            // is newer than it, and whatever came before is unknowable.
            None => {
                let missed = state.history.missed_since(0, targets);
                Missed { frames: missed.frames, gap: Some("unknown"), head }
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
