//! What a run prints at the end: counts of what happened, then every broken rule
//! with its first examples and the fault just before each.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::check::{Findings, Rule, Violation};
use crate::faults::Trouble;
use crate::procs;
use crate::record::{At, FaultEntry, FaultKind, Push, PushOutcome};

/// Examples printed per rule.
const EXAMPLES: usize = 5;

pub struct Summary<'a> {
    pub seed: u64,
    pub seconds: u64,
    pub clients: usize,
    pub slow: usize,
    pub rate: u32,
    pub sentinel: bool,
    pub pushes: &'a [Push],
    pub faults: &'a [FaultEntry],
    pub troubles: &'a [Trouble],
    /// `herald_disconnects_total` by reason, summed over the nodes.
    pub disconnects: &'a BTreeMap<String, u64>,
    pub findings: &'a Findings,
}

pub fn print(summary: &Summary<'_>) {
    let tally = &summary.findings.tally;
    println!();
    println!(
        "== herald-chaos: seed {}, {} s, {} clients ({} slow), {} pushes/s, {} ==",
        summary.seed,
        summary.seconds,
        summary.clients,
        summary.slow,
        summary.rate,
        if summary.sentinel { "Redis with Sentinel" } else { "one Redis, no Sentinel" }
    );
    println!("pushes: {}", pushes(summary.pushes));
    let gaps: usize = tally.gaps.values().sum();
    println!(
        "deliveries: {} ({} replayed); gaps: {gaps}{}",
        tally.deliveries,
        tally.replayed,
        listed(&tally.gaps)
    );
    println!(
        "owed to clients: {} (delivered {}, covered by a gap {}, of which to slow readers {})",
        tally.owed, tally.owed_delivered, tally.owed_covered_by_gap, tally.owed_covered_slow
    );
    println!(
        "connections: {} ({} reconnects; slow readers ended by the server: {}){}",
        tally.connections,
        tally.reconnects,
        tally.slow_ended_by_server,
        listed(&tally.ends)
    );
    println!(
        "streams the nodes closed (since each node's last start): {}{}",
        summary.disconnects.values().sum::<u64>(),
        listed(summary.disconnects)
    );
    let mut faults: BTreeMap<FaultKind, usize> = BTreeMap::new();
    for entry in summary.faults.iter().filter(|entry| entry.start) {
        *faults.entry(entry.kind).or_default() += 1;
    }
    let faults: BTreeMap<&str, usize> = faults.into_iter().map(|(k, n)| (k.name(), n)).collect();
    println!("faults: {}{}", faults.values().sum::<usize>(), listed(&faults));
    for trouble in summary.troubles {
        println!("trouble: [{}] {}: {}", At(trouble.at), trouble.kind.name(), trouble.text);
    }
    violations(&summary.findings.violations, summary.faults);
}

fn pushes(pushes: &[Push]) -> String {
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failure = None;
    for push in pushes {
        let outcome = match &push.outcome {
            PushOutcome::Accepted { .. } => "accepted".to_owned(),
            PushOutcome::Refused(status) => format!("refused {status}"),
            PushOutcome::Failed(error) => {
                failure.get_or_insert(error);
                "no answer (connection failed)".to_owned()
            }
            PushOutcome::TimedOut => "no answer in time".to_owned(),
            PushOutcome::Unreadable(_) => "unreadable answer".to_owned(),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let example = failure.map(|error| format!(" (first failure: {error})")).unwrap_or_default();
    format!("{} attempted{}{example}", pushes.len(), listed(&outcomes))
}

/// `: a 1, b 2`, or nothing for no entries.
fn listed<K: std::fmt::Display, V: std::fmt::Display>(counts: &BTreeMap<K, V>) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let items: Vec<String> = counts.iter().map(|(key, count)| format!("{key} {count}")).collect();
    format!(": {}", items.join(", "))
}

fn violations(violations: &[Violation], faults: &[FaultEntry]) {
    if violations.is_empty() {
        println!("violations: none");
        return;
    }
    let mut by_rule: BTreeMap<Rule, Vec<&Violation>> = BTreeMap::new();
    for violation in violations {
        by_rule.entry(violation.rule).or_default().push(violation);
    }
    let counts: BTreeMap<&str, usize> =
        by_rule.iter().map(|(rule, found)| (rule.name(), found.len())).collect();
    println!("VIOLATIONS: {}{}", violations.len(), listed(&counts));
    for (rule, found) in &by_rule {
        println!("  {} ({}), first {}:", rule.name(), found.len(), found.len().min(EXAMPLES));
        for violation in found.iter().take(EXAMPLES) {
            let client = violation.client.as_deref().map(|c| format!("{c}: ")).unwrap_or_default();
            println!("    [{}] {client}{}", At(violation.at), violation.text);
            if let Some(fault) = faults.iter().rev().find(|fault| fault.at <= violation.at) {
                println!("      after [{}] {}: {}", At(fault.at), fault.kind.name(), fault.text);
            }
        }
    }
}

/// The end of each log, for a run that failed.
pub fn log_tails(logs: &[(String, PathBuf)]) {
    for (name, path) in logs {
        let lines = if name.starts_with("herald") { 15 } else { 5 };
        let tail = procs::tail(path, lines);
        if !tail.is_empty() {
            println!("--- {name} ({}), last {lines} lines:", path.display());
            println!("{tail}");
        }
    }
}
