//! `--record FILE`: every record of a run, and every violation, as JSON lines, for
//! looking into a finding after the run (which client saw what, when, on which
//! connection).

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::check::Violation;
use crate::probe::Replay;
use crate::record::{ClientLog, ClientSpec, End, FaultEntry, Push, PushOutcome, What};

/// Writes the run's records to `path`.
pub fn write(
    path: &Path,
    pushes: &[Push],
    clients: &[(ClientSpec, ClientLog)],
    faults: &[FaultEntry],
    violations: &[Violation],
    probes: &[Replay],
) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut line = |value: Value| writeln!(out, "{value}");
    for violation in violations {
        line(json!({
            "violation": violation.rule.name(), "at": violation.at,
            "client": violation.client, "text": violation.text,
        }))?;
    }
    for probe in probes {
        let replayed: Vec<String> = probe.messages.iter().map(ToString::to_string).collect();
        line(json!({"probe": probe.live.to_string(), "replayed": replayed}))?;
    }
    for fault in faults {
        line(
            json!({"fault": fault.kind.name(), "at": fault.at, "start": fault.start, "text": fault.text}),
        )?;
    }
    for push in pushes {
        let (outcome, id) = match &push.outcome {
            PushOutcome::Accepted { id, delivered } => {
                (format!("accepted {delivered}"), Some(id.to_string()))
            }
            PushOutcome::Refused(status) => (format!("refused {status}"), None),
            PushOutcome::Failed(error) => (format!("failed: {error}"), None),
            PushOutcome::TimedOut => ("timed out".to_owned(), None),
            PushOutcome::Unreadable(body) => (format!("unreadable: {body}"), None),
        };
        line(json!({
            "push": push.n, "to": push.audience.to_string(), "node": push.node,
            "sent": push.sent, "answered": push.answered, "outcome": outcome, "id": id,
        }))?;
    }
    for (spec, log) in clients {
        let topics: Vec<&str> = spec.topics.iter().map(|&t| crate::record::TOPICS[t]).collect();
        line(json!({"client": spec.name, "topics": topics, "slow": spec.slow}))?;
        for (index, connection) in log.connections.iter().enumerate() {
            let end = match &connection.end {
                End::Unreachable(why) => format!("unreachable: {why}"),
                End::Refused(status) => format!("refused {status}"),
                End::ByServer => "by server".to_owned(),
                End::Broken(why) => format!("broken: {why}"),
                End::Cut => "cut".to_owned(),
                End::Idle => "idle".to_owned(),
                End::Stopped => "stopped".to_owned(),
            };
            line(json!({
                "client": spec.name, "connection": index, "node": connection.node,
                "opened": connection.opened, "ended": connection.ended,
                "resume_from": connection.resume_from, "end": end,
            }))?;
        }
        for event in &log.events {
            let mut value = match &event.what {
                What::Marker(id) => json!({"event": "marker", "id": id.to_string()}),
                What::Gap { last_event_id, reason } => {
                    json!({"event": "gap", "last_event_id": last_event_id, "reason": reason})
                }
                What::Message { id, n } => {
                    json!({"event": "message", "id": id.to_string(), "n": n})
                }
                What::Unreadable(text) => json!({"event": "unreadable", "text": text}),
            };
            value["client"] = json!(spec.name);
            value["connection"] = json!(event.connection);
            value["at"] = json!(event.at);
            line(value)?;
        }
    }
    out.flush()?;
    Ok(())
}
