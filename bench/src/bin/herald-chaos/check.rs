//! The checker: judges a run's records against the contract's delivery rules
//! (`docs/contract.md` §3.1 and §6) once the run is over.
//!
//! # What is checked
//! Globally:
//! * **id-reused**: two different messages (tokens) under one position (epoch and
//!   seq; the kind letter aside, since a client resumes by position), whether seen
//!   in push answers or in deliveries.
//!
//! Per client, over all its connections in order:
//! * **duplicate-id**: a message id received twice. Position markers may repeat (a
//!   stream that resumes where the last one went live gets the same marker), but a
//!   replayed message must not.
//! * **repeated**: one message (token) received under two different ids.
//! * **out-of-order**: within an epoch, a message whose seq is not above everything
//!   the client has seen, or a position marker below it (a history that went back:
//!   the ids after it will be given again).
//! * **misdelivered**: a message for someone else (not its client id, not one of
//!   its topics, not a broadcast); **wrong-id**: a message under another id than its
//!   push was answered with, or with another kind letter than its target's, or a
//!   `gap` that names another id than the one the client resumed from.
//! * **lost**: an accepted push for the client that it neither received nor was told
//!   about by a `gap` (coverage, below).
//! * **unreadable**: an event the checker cannot read (bad id, bad data, unknown
//!   token, unknown event type); **not-live**: a client with no live stream at the
//!   end of the drain.
//!
//! # Coverage
//! Only accepted pushes (200 with an id) are owed; any other answer promises
//! nothing. A push is owed to a client if its target includes the client and it is
//! after the client's *start*, the first id the client received (normally its first
//! position marker): a push accepted before the client first connected is not
//! expected.
//!
//! Positions are compared within an epoch by seq. Across epochs, by the order in
//! which the run first saw each epoch (in an answer or a delivery): a new epoch only
//! begins when Redis lost its data, after everything of the old one.
//!
//! An owed push P that was not received is *covered* by a `gap` event when, on one of
//! the client's connections that received a gap (at the start of a resumed stream,
//! after `Last-Event-ID: R`), P lies after R, was sent before the client received the
//! gap, and is one the replay that followed may rightly lack. What a replay may lack
//! follows from how history is kept and lost:
//! * History is kept per target (client id, topic, broadcast) and drops a target's
//!   oldest messages first (by count and age): within an epoch, what is held of a
//!   target is a contiguous run of its messages, and what was evicted is older than
//!   everything held.
//! * Redis loses writes only as a suffix: a restart from a snapshot or a promoted
//!   replica keeps every write up to some point and none after. The epoch ends there
//!   (Herald starts a new one), so only an epoch that has ended can have lost its
//!   last messages; the epoch a stream goes live in has lost nothing.
//!
//! So, with the replay's messages of P's target (received before the stream's
//! position marker; "held" below) and the stream's *live* epoch (its marker's):
//! * nothing of the target held: P is covered if it is up to the marker (everything
//!   of the target up to there is gone), or in an ended epoch;
//! * P older than the first message held: covered (evicted);
//! * a message of P's epoch held after P: not covered (a hole in what was held);
//! * otherwise P is newer than all that was held of its epoch: not covered in the
//!   live epoch (it had to come in the replay or live); in an ended epoch covered
//!   (lost with the epoch's last writes) unless the run saw that write survive: some
//!   stream live in the same epoch replayed a message of P's epoch with a seq at
//!   least P's (every write up to it outlived the loss, so P was held and skipped).
//!
//! Without the survival evidence the checker cannot tell a message Redis lost from
//! one Herald held but did not replay; with it, it can. A gap never covers a push
//! sent after the client received it: the replay it announces was read before. (An
//! old epoch that goes on taking writes after a new one began — two primaries at
//! once, when Sentinel promotes a replica while the old primary is only paused — is
//! how such a push can exist.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::ids::{Epochs, EventId, Position};
use crate::probe::Replay;
use crate::record::{
    At, Audience, ClientLog, ClientSpec, Connection, End, Ms, Push, PushOutcome, What,
};

/// A rule a run can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    IdReused,
    DuplicateId,
    Repeated,
    OutOfOrder,
    Lost,
    Misdelivered,
    WrongId,
    Unreadable,
    NotLive,
    /// A node did not exit after SIGTERM (found by the fault runner).
    Shutdown,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Self::IdReused => "id-reused",
            Self::DuplicateId => "duplicate-id",
            Self::Repeated => "repeated",
            Self::OutOfOrder => "out-of-order",
            Self::Lost => "lost",
            Self::Misdelivered => "misdelivered",
            Self::WrongId => "wrong-id",
            Self::Unreadable => "unreadable",
            Self::NotLive => "not-live",
            Self::Shutdown => "shutdown",
        }
    }
}

/// One broken rule, with its evidence.
#[derive(Debug, Clone)]
pub struct Violation {
    pub rule: Rule,
    pub at: Ms,
    pub client: Option<String>,
    pub text: String,
}

/// What the run did, counted.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages received (replayed ones included).
    pub deliveries: usize,
    /// Messages received on a resumed stream before its position marker.
    pub replayed: usize,
    pub gaps: BTreeMap<String, usize>,
    pub connections: usize,
    pub reconnects: usize,
    /// How connection attempts ended, by kind.
    pub ends: BTreeMap<String, usize>,
    /// Streams of slow readers that the server ended (cleanly or not).
    pub slow_ended_by_server: usize,
    /// Accepted pushes owed to some client, counted once per client.
    pub owed: usize,
    pub owed_delivered: usize,
    pub owed_covered_by_gap: usize,
    /// Of those, owed to slow readers (which fall minutes behind, past history).
    pub owed_covered_slow: usize,
}

#[derive(Debug, Default)]
pub struct Findings {
    pub tally: Tally,
    pub violations: Vec<Violation>,
}

impl Findings {
    fn violation(&mut self, rule: Rule, at: Ms, client: Option<&str>, text: String) {
        self.violations.push(Violation { rule, at, client: client.map(str::to_owned), text });
    }
}

/// Checks a run, with the probes' replays of ended epochs as further evidence of
/// what the history held.
pub fn check(pushes: &[Push], clients: &[(ClientSpec, ClientLog)], probes: &[Replay]) -> Findings {
    let mut findings = Findings::default();
    let by_n: HashMap<u64, &Push> = pushes.iter().map(|push| (push.n, push)).collect();
    let order = EpochOrder::new(pushes, clients);
    let context = Context { order: &order, survivors: survivors(clients, probes) };
    ids_are_unique(pushes, clients, &mut findings);
    for (spec, log) in clients {
        let received = ClientCheck::new(spec, &by_n, &mut findings).run(log);
        coverage(spec, log, pushes, &by_n, &context, &received, &mut findings);
        tally_connections(spec, log, &mut findings.tally);
        if !log.live_at_end {
            let last = log.connections.last().map_or_else(|| "none".to_owned(), describe);
            let text = format!("no live stream at the end of the drain; last connection: {last}");
            let at = log.connections.last().map_or(0, |connection| connection.ended);
            findings.violation(Rule::NotLive, at, Some(&spec.name), text);
        }
    }
    findings.violations.sort_by_key(|violation| (violation.rule, violation.at));
    findings
}

/// The order epochs were first seen in: a later epoch begins after everything of an
/// earlier one.
struct EpochOrder(HashMap<Arc<str>, usize>);

impl EpochOrder {
    fn new(pushes: &[Push], clients: &[(ClientSpec, ClientLog)]) -> Self {
        let mut first: HashMap<Arc<str>, Ms> = HashMap::new();
        let mut see = |epoch: &Arc<str>, at: Ms| {
            let seen = first.entry(epoch.clone()).or_insert(at);
            *seen = (*seen).min(at);
        };
        for push in pushes {
            if let PushOutcome::Accepted { id, .. } = &push.outcome {
                see(&id.epoch, push.answered);
            }
        }
        for (_, log) in clients {
            for event in &log.events {
                match &event.what {
                    What::Marker(id) | What::Message { id, .. } => see(&id.epoch, event.at),
                    What::Gap { .. } | What::Unreadable(_) => {}
                }
            }
        }
        let mut epochs: Vec<(Arc<str>, Ms)> = first.into_iter().collect();
        epochs.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        Self(epochs.into_iter().enumerate().map(|(rank, (epoch, _))| (epoch, rank)).collect())
    }

    fn rank(&self, epoch: &str) -> usize {
        self.0.get(epoch).copied().unwrap_or(0)
    }

    /// Whether `a` comes strictly before `b`.
    fn before(&self, a: &Position, b: &Position) -> bool {
        if a.epoch == b.epoch { a.seq < b.seq } else { self.rank(&a.epoch) < self.rank(&b.epoch) }
    }
}

/// No two different messages under one position, in answers or deliveries.
fn ids_are_unique(pushes: &[Push], clients: &[(ClientSpec, ClientLog)], findings: &mut Findings) {
    struct Owner {
        n: u64,
        id: String,
        at: Ms,
        source: String,
    }
    let mut owners: HashMap<Position, Owner> = HashMap::new();
    let mut reported: HashSet<Position> = HashSet::new();
    let mut see =
        |findings: &mut Findings, id: &EventId, n: u64, at: Ms, source: &dyn Fn() -> String| {
            let position = id.position();
            match owners.get(&position) {
                None => {
                    owners.insert(position, Owner { n, id: id.to_string(), at, source: source() });
                }
                Some(owner) if owner.n != n && reported.insert(position) => {
                    let text = format!(
                        "{id} is message n={n} ({}, at {}) but {} was message n={} ({}, at {})",
                        source(),
                        At(at),
                        owner.id,
                        owner.n,
                        owner.source,
                        At(owner.at)
                    );
                    findings.violation(Rule::IdReused, at.max(owner.at), None, text);
                }
                Some(_) => {}
            }
        };
    for push in pushes {
        match &push.outcome {
            PushOutcome::Accepted { id, .. } => {
                let source = || format!("answer to a push via node {}", push.node);
                see(findings, id, push.n, push.answered, &source);
            }
            PushOutcome::Unreadable(body) => {
                let text =
                    format!("push n={} via node {} answered 200 with {body:?}", push.n, push.node);
                findings.violation(Rule::Unreadable, push.answered, None, text);
            }
            PushOutcome::Refused(_) | PushOutcome::Failed(_) | PushOutcome::TimedOut => {}
        }
    }
    for (spec, log) in clients {
        for event in &log.events {
            if let What::Message { id, n } = &event.what {
                let source = || format!("delivered to {}", spec.name);
                see(findings, id, *n, event.at, &source);
            }
        }
    }
}

/// The per-client rules over the client's events in order.
struct ClientCheck<'a, 'f> {
    spec: &'a ClientSpec,
    by_n: &'a HashMap<u64, &'a Push>,
    findings: &'f mut Findings,
    /// Message positions received, with their token and time.
    ids: HashMap<Position, (u64, Ms)>,
    /// Tokens received, with their id.
    tokens: HashMap<u64, EventId>,
    /// The highest seq seen per epoch (messages and markers).
    highest: HashMap<Arc<str>, u64>,
    received: Received,
}

/// What a client received, for the coverage check.
#[derive(Debug, Default)]
struct Received {
    tokens: HashSet<u64>,
    /// The first id received: pushes from before it are not owed.
    start: Option<Position>,
}

impl<'a, 'f> ClientCheck<'a, 'f> {
    fn new(
        spec: &'a ClientSpec,
        by_n: &'a HashMap<u64, &'a Push>,
        findings: &'f mut Findings,
    ) -> Self {
        Self {
            spec,
            by_n,
            findings,
            ids: HashMap::new(),
            tokens: HashMap::new(),
            highest: HashMap::new(),
            received: Received::default(),
        }
    }

    fn run(mut self, log: &ClientLog) -> Received {
        let mut marker_seen: Option<u32> = None;
        for event in &log.events {
            match &event.what {
                What::Marker(id) => {
                    marker_seen = Some(event.connection);
                    self.marker(id, event.at);
                }
                What::Message { id, n } => {
                    let resumed = log
                        .connections
                        .get(event.connection as usize)
                        .is_some_and(|connection| connection.resume_from.is_some());
                    if resumed && marker_seen != Some(event.connection) {
                        self.findings.tally.replayed += 1;
                    }
                    self.message(id, *n, event.at);
                }
                What::Gap { last_event_id, reason } => {
                    *self.findings.tally.gaps.entry(reason.clone()).or_default() += 1;
                    let sent = log
                        .connections
                        .get(event.connection as usize)
                        .and_then(|connection| connection.resume_from.as_deref());
                    if sent != Some(last_event_id.as_str()) {
                        let text = format!(
                            "a gap names last_event_id {last_event_id} but the stream resumed from {}",
                            sent.unwrap_or("(nothing)")
                        );
                        self.violation(Rule::WrongId, event.at, text);
                    }
                }
                What::Unreadable(text) => self.violation(Rule::Unreadable, event.at, text.clone()),
            }
        }
        self.received
    }

    fn violation(&mut self, rule: Rule, at: Ms, text: String) {
        self.findings.violation(rule, at, Some(&self.spec.name), text);
    }

    fn marker(&mut self, id: &EventId, at: Ms) {
        self.received.start.get_or_insert_with(|| id.position());
        let highest = self.highest.entry(id.epoch.clone()).or_insert(id.seq);
        if id.seq < *highest {
            let text = format!(
                "position marker {id} after {}-{} was seen: the history went back",
                id.epoch, *highest
            );
            self.violation(Rule::OutOfOrder, at, text);
        } else {
            *highest = id.seq;
        }
    }

    fn message(&mut self, id: &EventId, n: u64, at: Ms) {
        self.findings.tally.deliveries += 1;
        self.received.start.get_or_insert_with(|| id.position());
        self.received.tokens.insert(n);
        self.matches_its_push(id, n, at);
        let position = id.position();
        if let Some(&(first_n, first_at)) = self.ids.get(&position) {
            let what = if first_n == n {
                format!("message n={n} received twice under {id}")
            } else {
                format!("{id} received as message n={first_n} and again as n={n}")
            };
            self.violation(Rule::DuplicateId, at, format!("{what} (first at {})", At(first_at)));
        } else {
            self.ids.insert(position, (n, at));
            let highest = self.highest.entry(id.epoch.clone()).or_insert(0);
            let before = std::mem::replace(highest, (*highest).max(id.seq));
            if id.seq <= before {
                let text = format!("{id} (n={n}) after {}-{before} was seen", id.epoch);
                self.violation(Rule::OutOfOrder, at, text);
            }
        }
        match self.tokens.get(&n) {
            Some(earlier) if earlier.position() != id.position() => {
                let text = format!("message n={n} received as {earlier} and again as {id}");
                self.violation(Rule::Repeated, at, text);
            }
            Some(_) => {}
            None => {
                self.tokens.insert(n, id.clone());
            }
        }
    }

    /// The message is one of ours, for this client, under the id it was given.
    fn matches_its_push(&mut self, id: &EventId, n: u64, at: Ms) {
        let Some(push) = self.by_n.get(&n) else {
            self.violation(
                Rule::Unreadable,
                at,
                format!("{id} carries n={n}, which was never pushed"),
            );
            return;
        };
        if !push.audience.includes(self.spec) {
            let text = format!("{id} (n={n}) was pushed to another audience ({})", push.audience);
            self.violation(Rule::Misdelivered, at, text);
        }
        match &push.outcome {
            PushOutcome::Accepted { id: answered, .. } if answered != id => {
                let text =
                    format!("message n={n} arrived as {id} but its push was answered {answered}");
                self.violation(Rule::WrongId, at, text);
            }
            _ if id.kind != push.audience.tag() => {
                let text = format!(
                    "{id} (n={n}) is tagged {} but was pushed to {:?}",
                    id.kind, push.audience
                );
                self.violation(Rule::WrongId, at, text);
            }
            _ => {}
        }
    }
}

/// A resumed stream that began with `gap`: the pushes it tells the client about.
#[derive(Debug)]
struct GapWindow {
    connection: usize,
    /// When the client received the gap: no push sent later can have been missed by
    /// the replay it announces.
    at: Ms,
    /// Where the stream resumed from (`None`: from the beginning).
    after: Option<Position>,
    /// The replay: the positions of each target's messages.
    replayed: HashMap<Audience, Vec<Position>>,
    /// The position marker, or the last id delivered when the stream ended before it
    /// (none: it ended at its gap, and shows nothing).
    head: Option<Position>,
}

impl GapWindow {
    /// The epoch the stream went live in: the history's current one.
    fn live_epoch(&self) -> Option<&Arc<str>> {
        self.head.as_ref().map(|head| &head.epoch)
    }

    /// Whether the gap covers `push`, at `position`, of an accepted push (see the
    /// module's docs).
    fn covers(&self, push: &Push, position: &Position, context: &Context<'_>) -> bool {
        let order = context.order;
        let Some(head) = &self.head else {
            return false; // the stream ended at its gap: its replay showed nothing
        };
        if push.sent > self.at
            || self.after.as_ref().is_some_and(|after| !order.before(after, position))
        {
            return false;
        }
        let held = self.replayed.get(&push.audience).map_or(&[][..], Vec::as_slice);
        let live = self.live_epoch().is_some_and(|live| *live == position.epoch);
        let oldest = held.iter().reduce(|a, b| if order.before(b, a) { b } else { a });
        let Some(first) = oldest else {
            // Nothing of the target was held: everything up to the head is gone.
            return !live || !order.before(head, position);
        };
        if order.before(position, first) {
            return true; // older than everything held: evicted
        }
        let hole =
            held.iter().any(|held| held.epoch == position.epoch && order.before(position, held));
        if hole || live {
            return false; // held messages on both sides, or the live epoch lost nothing
        }
        // Newer than what was held of its (ended) epoch: lost with that epoch's last
        // writes, unless a replay in the same history showed later writes survived.
        !context.survived(self.live_epoch(), position)
    }
}

/// What the coverage rule consults beyond one client's records.
struct Context<'a> {
    order: &'a EpochOrder,
    /// Per (live epoch, older epoch): the highest seq of the older epoch that some
    /// stream live in the first replayed. Redis loses a suffix of its writes, so every
    /// older-epoch message up to it outlived the loss.
    survivors: HashMap<(Arc<str>, Arc<str>), u64>,
}

impl Context<'_> {
    fn survived(&self, live: Option<&Arc<str>>, position: &Position) -> bool {
        live.and_then(|live| self.survivors.get(&(live.clone(), position.epoch.clone())))
            .is_some_and(|&highest| position.seq <= highest)
    }
}

/// [`Context::survivors`] from every client's replays and the probes'.
fn survivors(
    clients: &[(ClientSpec, ClientLog)],
    probes: &[Replay],
) -> HashMap<(Arc<str>, Arc<str>), u64> {
    let mut survivors: HashMap<(Arc<str>, Arc<str>), u64> = HashMap::new();
    for probe in probes {
        for id in probe.messages.iter().filter(|id| id.epoch != probe.live.epoch) {
            let highest =
                survivors.entry((probe.live.epoch.clone(), id.epoch.clone())).or_insert(0);
            *highest = (*highest).max(id.seq);
        }
    }
    for (_, log) in clients {
        let mut replay: Vec<&EventId> = Vec::new();
        let mut connection = u32::MAX;
        for event in &log.events {
            if event.connection != connection {
                replay.clear();
                connection = event.connection;
            }
            match &event.what {
                What::Message { id, .. } => replay.push(id),
                What::Marker(live) => {
                    for id in replay.drain(..).filter(|id| id.epoch != live.epoch) {
                        let highest =
                            survivors.entry((live.epoch.clone(), id.epoch.clone())).or_insert(0);
                        *highest = (*highest).max(id.seq);
                    }
                    connection = u32::MAX - 1; // what follows the marker is live
                }
                What::Gap { .. } | What::Unreadable(_) => {}
            }
        }
    }
    survivors
}

fn gap_windows(log: &ClientLog, by_n: &HashMap<u64, &Push>) -> Vec<GapWindow> {
    let mut epochs = Epochs::default();
    let mut windows: Vec<GapWindow> = Vec::new();
    // Whether the current window is still reading its connection's replay.
    let mut open = false;
    for event in &log.events {
        let connection = event.connection as usize;
        if let What::Gap { .. } = event.what {
            let after = log
                .connections
                .get(connection)
                .and_then(|connection| connection.resume_from.as_deref())
                .and_then(|id| EventId::parse(id, &mut epochs))
                .map(|id| id.position());
            let (at, replayed, head) = (event.at, HashMap::new(), None);
            windows.push(GapWindow { connection, at, after, replayed, head });
            open = true;
            continue;
        }
        let Some(window) =
            windows.last_mut().filter(|window| open && window.connection == connection)
        else {
            open = false;
            continue;
        };
        match &event.what {
            What::Message { id, n } => {
                if let Some(push) = by_n.get(n) {
                    window.replayed.entry(push.audience).or_default().push(id.position());
                }
                window.head = Some(id.position());
            }
            What::Marker(id) => {
                window.head = Some(id.position());
                open = false;
            }
            What::Gap { .. } | What::Unreadable(_) => {}
        }
    }
    windows
}

/// Every owed push was received or is covered by a gap.
fn coverage(
    spec: &ClientSpec,
    log: &ClientLog,
    pushes: &[Push],
    by_n: &HashMap<u64, &Push>,
    context: &Context<'_>,
    received: &Received,
    findings: &mut Findings,
) {
    let Some(start) = &received.start else { return };
    let windows = gap_windows(log, by_n);
    for push in pushes {
        let PushOutcome::Accepted { id, .. } = &push.outcome else { continue };
        let position = id.position();
        if !push.audience.includes(spec) || !context.order.before(start, &position) {
            continue;
        }
        findings.tally.owed += 1;
        if received.tokens.contains(&push.n) {
            findings.tally.owed_delivered += 1;
        } else if windows.iter().any(|window| window.covers(push, &position, context)) {
            findings.tally.owed_covered_by_gap += 1;
            findings.tally.owed_covered_slow += usize::from(spec.slow);
        } else {
            let text = lost_evidence(push, id, log);
            findings.violation(Rule::Lost, push.answered, Some(&spec.name), text);
        }
    }
}

/// What the client was doing when a lost push was accepted.
fn lost_evidence(push: &Push, id: &EventId, log: &ClientLog) -> String {
    let delivered = match &push.outcome {
        PushOutcome::Accepted { delivered, .. } => *delivered,
        _ => 0,
    };
    let mut text = format!(
        "{id} (n={}, to {}, via node {}, sent {}, answered {} with delivered {delivered}) \
         never arrived and no gap covers it",
        push.n,
        push.audience,
        push.node,
        At(push.sent),
        At(push.answered)
    );
    let during = log.connections.iter().position(|connection| connection.ended >= push.answered);
    if let Some(index) = during {
        let _ = write!(text, "; connection then: #{index} {}", describe(&log.connections[index]));
        if let Some(next) = log.connections.get(index + 1) {
            let _ = write!(text, "; next: #{} {}", index + 1, describe(next));
        }
    }
    if let Some(gap) = next_gap(log, push.answered) {
        let _ = write!(text, "; {gap}");
    }
    text
}

/// The first gap the client received after `at`, and where its stream went live.
fn next_gap(log: &ClientLog, at: Ms) -> Option<String> {
    let (index, gap) = log
        .events
        .iter()
        .enumerate()
        .find(|(_, event)| event.at >= at && matches!(event.what, What::Gap { .. }))?;
    let What::Gap { last_event_id, reason } = &gap.what else { return None };
    let live = log.events[index..]
        .iter()
        .take_while(|event| event.connection == gap.connection)
        .find_map(|event| match &event.what {
            What::Marker(id) => Some(id.to_string()),
            _ => None,
        });
    Some(format!(
        "next gap: {} on #{} ({reason}, after {last_event_id}), stream live at {}",
        At(gap.at),
        gap.connection,
        live.as_deref().unwrap_or("(no marker)")
    ))
}

fn describe(connection: &Connection) -> String {
    format!(
        "node {} {}–{} from {} ended {}",
        connection.node,
        At(connection.opened),
        At(connection.ended),
        connection.resume_from.as_deref().unwrap_or("(start)"),
        end_name(&connection.end)
    )
}

fn end_name(end: &End) -> String {
    match end {
        End::Unreachable(why) => format!("unreachable ({why})"),
        End::Refused(status) => format!("refused {status}"),
        End::ByServer => "by the server".to_owned(),
        End::Broken(why) => format!("broken ({why})"),
        End::Cut => "cut".to_owned(),
        End::Idle => "idle".to_owned(),
        End::Stopped => "at the end of the run".to_owned(),
    }
}

fn tally_connections(spec: &ClientSpec, log: &ClientLog, tally: &mut Tally) {
    tally.connections += log.connections.len();
    tally.reconnects += log.connections.len().saturating_sub(1);
    for connection in &log.connections {
        let kind = match &connection.end {
            End::Unreachable(_) => "unreachable".to_owned(),
            End::Refused(status) => format!("refused {status}"),
            End::ByServer => "ended by the server".to_owned(),
            End::Broken(_) => "broken".to_owned(),
            End::Cut => "cut".to_owned(),
            End::Idle => "idle".to_owned(),
            End::Stopped => "open at the end".to_owned(),
        };
        *tally.ends.entry(kind).or_default() += 1;
        if spec.slow && matches!(connection.end, End::ByServer | End::Broken(_)) {
            tally.slow_ended_by_server += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Received as Event;

    /// A run built by hand: pushes and one client's connections and events.
    struct Run {
        epochs: Epochs,
        pushes: Vec<Push>,
        log: ClientLog,
        spec: ClientSpec,
        /// Clients done with, checked too.
        others: Vec<(ClientSpec, ClientLog)>,
        clock: Ms,
    }

    impl Run {
        fn new() -> Self {
            let spec = ClientSpec { index: 0, name: "c0".into(), topics: vec![1], slow: false };
            let log = ClientLog { live_at_end: true, ..ClientLog::default() };
            let (epochs, pushes, others) = (Epochs::default(), Vec::new(), Vec::new());
            Self { epochs, pushes, log, spec, others, clock: 0 }
        }

        /// Goes on with another client (same topics); the earlier ones stay checked.
        fn next_client(&mut self) -> &mut Self {
            let index = self.others.len() + 1;
            let spec = ClientSpec { index, name: format!("c{index}"), ..self.spec.clone() };
            let log = ClientLog { live_at_end: true, ..ClientLog::default() };
            self.others.push((
                std::mem::replace(&mut self.spec, spec),
                std::mem::replace(&mut self.log, log),
            ));
            self
        }

        fn id(&mut self, text: &str) -> EventId {
            EventId::parse(text, &mut self.epochs).unwrap()
        }

        fn tick(&mut self) -> Ms {
            self.clock += 10;
            self.clock
        }

        /// An accepted push: `id` like `e-5-b`.
        fn push(&mut self, n: u64, id: &str) -> &mut Self {
            let id = self.id(id);
            let audience = match id.kind {
                'c' => Audience::Client(0),
                't' => Audience::Topic(1),
                _ => Audience::Everyone,
            };
            let at = self.tick();
            let outcome = PushOutcome::Accepted { id, delivered: 1 };
            self.pushes.push(Push { n, audience, node: 0, sent: at, answered: at, outcome });
            self
        }

        fn connect(&mut self, resume_from: Option<&str>) -> &mut Self {
            let at = self.tick();
            self.log.connections.push(Connection {
                node: 0,
                opened: at,
                resume_from: resume_from.map(str::to_owned),
                ended: at,
                end: End::ByServer,
            });
            self
        }

        fn event(&mut self, what: What) -> &mut Self {
            let at = self.tick();
            let connection = u32::try_from(self.log.connections.len() - 1).unwrap();
            self.log.events.push(Event { connection, at, what });
            if let Some(connection) = self.log.connections.last_mut() {
                connection.ended = at;
            }
            self
        }

        fn marker(&mut self, id: &str) -> &mut Self {
            let id = self.id(id);
            self.event(What::Marker(id))
        }

        fn message(&mut self, n: u64, id: &str) -> &mut Self {
            let id = self.id(id);
            self.event(What::Message { id, n })
        }

        fn gap(&mut self, last_event_id: &str, reason: &str) -> &mut Self {
            let (last_event_id, reason) = (last_event_id.to_owned(), reason.to_owned());
            self.event(What::Gap { last_event_id, reason })
        }

        fn rules(&mut self) -> Vec<Rule> {
            let mut clients = std::mem::take(&mut self.others);
            clients.push((self.spec.clone(), std::mem::take(&mut self.log)));
            let findings = check(&self.pushes, &clients, &[]);
            findings.violations.iter().map(|violation| violation.rule).collect()
        }
    }

    #[test]
    fn a_clean_run_breaks_no_rule() {
        let mut run = Run::new();
        run.push(1, "e-1-b").connect(None).marker("e-1-p");
        run.push(2, "e-2-t").message(2, "e-2-t").push(3, "e-3-c").message(3, "e-3-c");
        run.connect(Some("e-3-c")).push(4, "e-4-b").message(4, "e-4-b").marker("e-4-p");
        run.connect(Some("e-4-p")).marker("e-4-p");
        assert_eq!(run.rules(), []);
    }

    #[test]
    fn pushes_before_the_start_are_not_owed_and_later_ones_are() {
        let mut run = Run::new();
        run.push(1, "e-1-b").push(2, "e-2-b").connect(None).marker("e-2-p");
        run.push(3, "e-3-b");
        assert_eq!(run.rules(), [Rule::Lost]);
    }

    #[test]
    fn a_gap_covers_the_evicted_prefix_of_each_target() {
        let mut run = Run::new();
        run.connect(None).marker("e-0-p").connect(Some("e-0-p"));
        // Broadcasts 1 and 2 and client message 3 were evicted; 4 (broadcast) is held,
        // and client message 5 was evicted even though it is newer than 4: each
        // target's history is bounded on its own.
        for (n, id) in [(1, "e-1-b"), (2, "e-2-b"), (3, "e-3-c"), (4, "e-4-b"), (5, "e-5-c")] {
            run.push(n, id);
        }
        run.connect(Some("e-0-p")).gap("e-0-p", "evicted").message(4, "e-4-b").marker("e-5-p");
        assert_eq!(run.rules(), []);
    }

    #[test]
    fn a_hole_in_the_middle_of_a_replay_is_lost() {
        let mut run = Run::new();
        run.connect(None).marker("e-0-p");
        for (n, id) in [(1, "e-1-b"), (2, "e-2-b"), (3, "e-3-b")] {
            run.push(n, id);
        }
        run.connect(Some("e-0-p")).gap("e-0-p", "evicted").message(1, "e-1-b");
        run.message(3, "e-3-b").marker("e-3-p");
        assert_eq!(run.rules(), [Rule::Lost]);
    }

    #[test]
    fn a_gap_covers_nothing_after_the_marker() {
        let mut run = Run::new();
        run.connect(None).marker("e-0-p").push(1, "e-1-b");
        run.connect(Some("e-0-p")).gap("e-0-p", "evicted").marker("e-1-p").push(2, "e-2-b");
        assert_eq!(run.rules(), [Rule::Lost]);
    }

    #[test]
    fn a_stream_cut_during_its_replay_covers_up_to_its_last_id() {
        let mut run = Run::new();
        run.connect(None).marker("e-0-p");
        for (n, id) in [(1, "e-1-c"), (2, "e-2-b"), (3, "e-3-b")] {
            run.push(n, id);
        }
        run.connect(Some("e-0-p")).gap("e-0-p", "evicted").message(2, "e-2-b");
        run.connect(Some("e-2-b")).message(3, "e-3-b").marker("e-3-p");
        assert_eq!(run.rules(), []);
    }

    #[test]
    fn an_epoch_change_covers_the_rest_of_the_old_epoch() {
        let mut run = Run::new();
        run.connect(None).marker("old-0-p").push(1, "old-1-b").message(1, "old-1-b");
        run.push(2, "old-2-b").push(3, "new-1-b").push(4, "new-2-b");
        run.connect(Some("old-1-b")).gap("old-1-b", "unknown").message(4, "new-2-b");
        run.marker("new-2-p");
        assert_eq!(run.rules(), []);
    }

    #[test]
    fn an_id_given_twice_is_found_where_it_is_seen() {
        let mut run = Run::new();
        run.connect(None).marker("e-0-p").push(1, "e-1-b").message(1, "e-1-b");
        // Redis lost seq 1 and gave it again: the answer and the delivery say so.
        run.push(2, "e-1-b").marker("e-0-p").message(2, "e-1-b");
        let rules = run.rules();
        assert!(rules.contains(&Rule::IdReused), "{rules:?}");
        assert!(rules.contains(&Rule::DuplicateId), "{rules:?}");
        assert!(rules.contains(&Rule::OutOfOrder), "{rules:?}");
    }

    #[test]
    fn a_replayed_message_must_not_repeat() {
        let mut run = Run::new();
        run.connect(None).marker("e-0-p").push(1, "e-1-t").message(1, "e-1-t");
        run.connect(Some("e-0-p")).message(1, "e-1-t").marker("e-1-p");
        assert_eq!(run.rules(), [Rule::DuplicateId]);
    }

    #[test]
    fn messages_for_others_and_under_other_ids_are_found() {
        let mut run = Run::new();
        run.connect(None).marker("e-0-p").push(1, "e-1-c");
        run.pushes[0].audience = Audience::Client(7);
        run.message(1, "e-1-c").push(2, "e-2-b").message(2, "e-3-b");
        assert_eq!(run.rules(), [Rule::Misdelivered, Rule::WrongId]);
    }

    #[test]
    fn a_gap_covers_nothing_pushed_after_it() {
        let mut run = Run::new();
        run.connect(None).marker("old-0-p").push(1, "old-1-b").message(1, "old-1-b");
        run.push(2, "new-1-b").connect(Some("old-1-b")).gap("old-1-b", "unknown");
        run.message(2, "new-1-b").marker("new-1-p");
        // The old epoch goes on taking writes on another primary.
        run.push(3, "old-2-b");
        assert_eq!(run.rules(), [Rule::Lost]);
    }

    /// A client away across two epoch changes (a, then b, then c) resumes from its
    /// id in a: the replay gives a-2 (its own epoch) and c-4 (the current one).
    fn away_across_two_epochs(run: &mut Run) {
        run.connect(None).marker("a-0-p").push(1, "a-1-t").message(1, "a-1-t");
        run.push(2, "a-2-t").push(3, "b-3-t").push(4, "c-4-t");
        run.connect(Some("a-1-t")).gap("a-1-t", "unknown").message(2, "a-2-t");
        run.message(4, "c-4-t").marker("c-4-p");
    }

    #[test]
    fn an_ended_epochs_last_writes_may_be_lost() {
        // b-3 may have been lost with b's last writes: nothing shows it outlived them.
        let mut run = Run::new();
        away_across_two_epochs(&mut run);
        assert_eq!(run.rules(), []);
    }

    #[test]
    fn a_message_known_to_outlive_its_epoch_must_be_replayed() {
        let mut run = Run::new();
        away_across_two_epochs(&mut run);
        // Another client, whose own epoch is b, is replayed b-5 while c is live: b kept
        // its writes up to 5 at least, so b-3 was held and the replay above skipped it.
        run.next_client();
        run.spec.topics.clear();
        run.connect(None).marker("b-2-p").push(5, "b-5-c");
        run.pushes.last_mut().unwrap().audience = Audience::Client(1);
        run.connect(Some("b-2-p")).gap("b-2-p", "unknown").message(5, "b-5-c").marker("c-5-p");
        assert_eq!(run.rules(), [Rule::Lost]);
    }

    #[test]
    fn a_stream_that_ends_at_its_gap_covers_nothing() {
        let mut run = Run::new();
        run.connect(None).marker("e-0-p").push(1, "e-1-b");
        run.connect(Some("e-0-p")).gap("e-0-p", "evicted");
        run.connect(Some("e-0-p")).marker("e-1-p");
        assert_eq!(run.rules(), [Rule::Lost]);
    }
}
