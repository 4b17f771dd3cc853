//! Probes, after the drain: what the history still holds of each ended epoch.
//!
//! A replay may rightly lack an ended epoch's last messages (Redis lost them), but
//! not messages it still holds. From a client's replay alone the checker cannot tell
//! the two apart; a probe can. It resumes from the very start of an ended epoch
//! (`Last-Event-ID: EPOCH-0-t`) with every topic, and Herald replays what that epoch
//! still holds: every write up to the highest one replayed outlived the loss. The
//! checker takes the probes as evidence like any replay (see `check`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use herald_bench::client::{self, Opened, StreamRequest};
use herald_bench::sse::{Event, EventReader};

use crate::ids::{Epochs, EventId};
use crate::nodes::Board;
use crate::record::TOPICS;

/// A probe gives up after this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Probes at once.
const AT_ONCE: usize = 4;

/// One probe's replay: the messages it was replayed, and where its stream went live.
#[derive(Debug, Clone)]
pub struct Replay {
    pub messages: Vec<EventId>,
    pub live: EventId,
}

/// Probes each of `epochs` through the nodes in turn; probes that fail are left out.
pub async fn ended_epochs(board: &Board, epochs: Vec<Arc<str>>) -> Vec<Replay> {
    futures::stream::iter(epochs.into_iter().enumerate())
        .map(|(index, epoch)| probe(board, index % board.len(), epoch))
        .buffer_unordered(AT_ONCE)
        .filter_map(|replay| async move { replay })
        .collect()
        .await
}

async fn probe(board: &Board, node: usize, epoch: Arc<str>) -> Option<Replay> {
    let mut path = "/sse?client_id=chaos-probe".to_owned();
    for topic in TOPICS {
        path.push_str("&topic=");
        path.push_str(&topic.replace('/', "%2F").replace(':', "%3A"));
    }
    let from = format!("{epoch}-0-t");
    let request =
        StreamRequest { last_event_id: Some(&from), ..StreamRequest::new(board.addr(node), &path) };
    let read = async {
        let Ok(Opened::Stream(mut stream)) = client::open_stream(&request).await else {
            return None;
        };
        let (mut reader, mut epochs) = (EventReader::default(), Epochs::default());
        let mut messages = Vec::new();
        let mut live = None;
        while live.is_none() {
            let chunk = stream.chunk().await?.ok()?;
            reader.feed_events(&chunk, &mut |event: Event<'_>| {
                let id = event
                    .id
                    .and_then(|id| EventId::parse(&String::from_utf8_lossy(id), &mut epochs));
                match (event.event_type, id) {
                    (b"herald.position", Some(id)) => live = live.take().or(Some(id)),
                    (b"", Some(id)) if live.is_none() => messages.push(id),
                    _ => {}
                }
            });
        }
        live.map(|live| Replay { messages, live })
    };
    tokio::time::timeout(PROBE_TIMEOUT, read).await.ok().flatten()
}
