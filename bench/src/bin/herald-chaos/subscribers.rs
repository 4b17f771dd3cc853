//! The clients: each behaves like a browser's EventSource that never gives up.
//!
//! A client opens `GET /sse?client_id=…&topic=…` on a live node. When the stream
//! ends for any reason (the node died or shut down, Herald cut a slow reader, the
//! checker cut the connection, a refusal while Redis fails over), it waits about the
//! `retry:` delay and reconnects to a random live node with `Last-Event-ID` set to
//! the last id it received — the position marker's included, as EventSource tracks
//! every id. Everything it receives is recorded for the checker.
//!
//! Slow readers read with a small socket buffer, pause between reads (and now and
//! then for seconds) and join the firehose topic of large messages, so that their
//! queue on the node fills and Herald disconnects them; they resume like everyone
//! else. Reading a closed stream's backlog takes them long, so they often resume
//! from far back, across several epochs: the hardest resumes the run has.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use herald_bench::client::{self, Opened, StreamRequest};
use herald_bench::sse::{Event, EventReader};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ids::{Epochs, EventId};
use crate::nodes::Board;
use crate::record::{ClientLog, ClientSpec, Clock, Connection, End, Ms, Received, TOPICS, What};

/// An answer's head must arrive within this (a stopped node answers after SIGCONT).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream silent this long (heartbeats come every 5 s) is given up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// A slow reader's socket receive buffer.
const SLOW_RECEIVE_BUFFER: u32 = 4096;

/// What every client shares.
#[derive(Debug)]
pub struct Shared {
    pub clock: Clock,
    pub board: Arc<Board>,
    /// Ends every client.
    pub stop: CancellationToken,
    /// Cancelled when the run drains: slow readers then read at full speed, to catch
    /// up.
    pub drain: CancellationToken,
}

/// A running client.
#[derive(Debug)]
pub struct Client {
    pub spec: Arc<ClientSpec>,
    /// Notified to drop the current connection (the client-cut fault).
    pub cut: Arc<Notify>,
    /// Since when the current stream is live (its position marker arrived); `u64::MAX`
    /// while it is not.
    pub live_since: Arc<AtomicU64>,
    /// When the client last read from its stream.
    pub last_read: Arc<AtomicU64>,
    pub task: tokio::task::JoinHandle<ClientLog>,
}

/// Starts a client.
pub fn spawn(spec: ClientSpec, shared: Arc<Shared>, seed: u64) -> Client {
    let spec = Arc::new(spec);
    let cut = Arc::new(Notify::new());
    let live_since = Arc::new(AtomicU64::new(u64::MAX));
    let last_read = Arc::new(AtomicU64::new(0));
    let state = State {
        spec: spec.clone(),
        shared,
        cut: cut.clone(),
        live_since: live_since.clone(),
        last_read: last_read.clone(),
        rng: StdRng::seed_from_u64(seed),
        epochs: Epochs::default(),
        log: ClientLog::default(),
        last_event_id: None,
        retry: None,
    };
    Client { spec, cut, live_since, last_read, task: tokio::spawn(state.run()) }
}

struct State {
    spec: Arc<ClientSpec>,
    shared: Arc<Shared>,
    cut: Arc<Notify>,
    live_since: Arc<AtomicU64>,
    last_read: Arc<AtomicU64>,
    rng: StdRng,
    epochs: Epochs,
    log: ClientLog,
    /// EventSource's last event ID, kept across connections.
    last_event_id: Option<String>,
    /// The latest `retry:` the server sent, in milliseconds.
    retry: Option<u64>,
}

impl State {
    async fn run(mut self) -> ClientLog {
        let path = self.path();
        while !self.shared.stop.is_cancelled() {
            let node = self.shared.board.pick(&mut self.rng);
            let opened = self.shared.clock.now();
            let resume_from = self.last_event_id.clone();
            let end = self.connect(node, &path).await;
            self.live_since.store(u64::MAX, Ordering::Release);
            let ended = self.shared.clock.now();
            self.log.connections.push(Connection { node, opened, resume_from, ended, end });
            let wait = self.reconnect_delay();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shared.stop.cancelled() => {}
            }
        }
        self.log
    }

    fn path(&self) -> String {
        let mut path = format!("/sse?client_id={}", self.spec.name);
        for &topic in &self.spec.topics {
            path.push_str("&topic=");
            path.push_str(&TOPICS[topic].replace('/', "%2F").replace(':', "%3A"));
        }
        path
    }

    /// About the server's `retry:` (jittered, so that clients cut at once do not all
    /// come back at once), or 200–1000 ms before the first stream said.
    fn reconnect_delay(&mut self) -> Duration {
        let millis = match self.retry {
            Some(retry) => self.rng.random_range(retry * 3 / 4..=retry * 5 / 4),
            None => self.rng.random_range(200..=1000),
        };
        Duration::from_millis(millis)
    }

    /// One connection, from the request to its end.
    async fn connect(&mut self, node: usize, path: &str) -> End {
        let request = StreamRequest {
            last_event_id: self.last_event_id.as_deref(),
            receive_buffer: self.spec.slow.then_some(SLOW_RECEIVE_BUFFER),
            ..StreamRequest::new(self.shared.board.addr(node), path)
        };
        let opened = tokio::select! {
            opened = tokio::time::timeout(OPEN_TIMEOUT, client::open_stream(&request)) => opened,
            () = self.shared.stop.cancelled() => return End::Stopped,
        };
        let mut stream = match opened {
            Err(_) => return End::Unreachable("no answer in time".to_owned()),
            Ok(Err(error)) => return End::Unreachable(error.to_string()),
            Ok(Ok(Opened::Refused(status))) => return End::Refused(status.as_u16()),
            Ok(Ok(Opened::Stream(stream))) => stream,
        };
        let connection = u32::try_from(self.log.connections.len()).unwrap_or(u32::MAX);
        let resumed_from = self.last_event_id.clone().unwrap_or_default();
        let mut reader = EventReader::resuming(resumed_from.as_bytes());
        let end = loop {
            let chunk = tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => break End::Stopped,
                () = self.cut.notified() => break End::Cut,
                chunk = tokio::time::timeout(IDLE_TIMEOUT, stream.chunk()) => chunk,
            };
            let chunk = match chunk {
                Err(_) => break End::Idle,
                Ok(None) => break End::ByServer,
                Ok(Some(Err(error))) => break End::Broken(error.to_string()),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let at = self.shared.clock.now();
            self.last_read.store(at, Ordering::Release);
            let (log, epochs, live_since) = (&mut self.log, &mut self.epochs, &self.live_since);
            reader.feed_events(&chunk, &mut |event: Event<'_>| {
                let what = read_event(&event, epochs);
                if matches!(what, What::Marker(_)) {
                    live_since.store(at, Ordering::Release);
                }
                log.events.push(Received { connection, at, what });
            });
            if self.spec.slow {
                self.dawdle().await;
            }
        };
        let last = String::from_utf8_lossy(reader.last_event_id()).into_owned();
        self.last_event_id = (!last.is_empty()).then_some(last);
        self.retry = reader.retry().or(self.retry);
        end
    }

    /// A slow reader's pause after a read: short ones always, and a few seconds now
    /// and then. Not while the run drains.
    async fn dawdle(&mut self) {
        if self.shared.drain.is_cancelled() {
            return;
        }
        let pause = if self.rng.random_ratio(1, 50) {
            self.rng.random_range(2_000..=6_000)
        } else {
            self.rng.random_range(100..=400)
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(pause)) => {}
            () = self.shared.drain.cancelled() => {}
        }
    }
}

/// What the checker records of an event.
fn read_event(event: &Event<'_>, epochs: &mut Epochs) -> What {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let id = event.id.map(text);
    let parsed = id.as_deref().and_then(|id| EventId::parse(id, epochs));
    let describe = || {
        format!(
            "event {:?} id {:?} data {:?}",
            text(event.event_type),
            id.as_deref().unwrap_or("(none)"),
            text(event.data)
        )
    };
    match (event.event_type, parsed) {
        (b"herald.position", Some(id)) if id.kind == 'p' => What::Marker(id),
        (b"gap", None) if id.is_none() => {
            let data: Option<Value> = serde_json::from_slice(event.data).ok();
            let field = |name: &str| {
                data.as_ref()
                    .and_then(|data| data.get(name))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            match (field("last_event_id"), field("reason")) {
                (Some(last_event_id), Some(reason)) => What::Gap { last_event_id, reason },
                _ => What::Unreadable(format!("a gap without its fields: {}", describe())),
            }
        }
        (b"", Some(id)) if id.kind != 'p' => {
            let n = serde_json::from_slice::<Value>(event.data)
                .ok()
                .and_then(|data| data.get("n").and_then(Value::as_u64));
            match n {
                Some(n) => What::Message { id, n },
                None => What::Unreadable(format!("a message without its token: {}", describe())),
            }
        }
        _ => What::Unreadable(describe()),
    }
}

/// Whether every client has been live since `before` or earlier, and has read
/// nothing since `quiet_since` (it has read everything the node sent).
pub fn all_caught_up(clients: &[Client], before: Ms, quiet_since: Ms) -> bool {
    clients.iter().all(|client| {
        client.live_since.load(Ordering::Acquire) <= before
            && client.last_read.load(Ordering::Acquire) <= quiet_since
    })
}

/// How many clients are live now.
pub fn live_count(clients: &[Client]) -> usize {
    clients.iter().filter(|client| client.live_since.load(Ordering::Acquire) != u64::MAX).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(event_type: &[u8], id: Option<&[u8]>, data: &[u8]) -> What {
        let event = Event { event_type, data, id, last_event_id: id.unwrap_or(b"") };
        read_event(&event, &mut Epochs::default())
    }

    #[test]
    fn events_are_read_as_herald_sends_them() {
        assert!(
            matches!(read(b"herald.position", Some(b"e-3-p"), b""), What::Marker(id) if id.seq == 3)
        );
        assert!(matches!(
            read(b"gap", None, br#"{"last_event_id":"e-1-c","reason":"evicted"}"#),
            What::Gap { last_event_id, reason } if last_event_id == "e-1-c" && reason == "evicted"
        ));
        assert!(matches!(
            read(b"", Some(b"e-4-b"), br#"{"n":17,"pad":"x"}"#),
            What::Message { n: 17, .. }
        ));
    }

    #[test]
    fn anything_else_is_unreadable() {
        for (event_type, id, data) in [
            (&b"herald.position"[..], Some(&b"e-3-c"[..]), &b""[..]),
            (b"herald.position", None, b""),
            (b"gap", None, b"{}"),
            (b"", Some(b"e-4-p"), br#"{"n":1}"#),
            (b"", Some(b"e-4-b"), b"17"),
            (b"", None, br#"{"n":1}"#),
            (b"surprise", Some(b"e-5-b"), br#"{"n":1}"#),
        ] {
            assert!(
                matches!(read(event_type, id, data), What::Unreadable(_)),
                "{event_type:?} {id:?}"
            );
        }
    }
}
