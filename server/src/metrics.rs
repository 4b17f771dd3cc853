//! Counters and gauges that describe what the hub is doing, rendered in the
//! Prometheus text format for `GET /metrics`.
//!
//! Plain atomics, updated with `Relaxed` ordering: each number is independent and a
//! scrape only needs every value to be recent, not a consistent snapshot across them.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::hub::types::{DisconnectReason, TargetKind};

/// All of Herald's metrics. One instance per hub, shared by reference.
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicI64,
    connections_opened: AtomicU64,
    published: [AtomicU64; TargetKind::ALL.len()],
    deliveries: AtomicU64,
    disconnects: [AtomicU64; DisconnectReason::ALL.len()],
    jobs_created: AtomicU64,
    jobs_finished: AtomicU64,
}

impl Metrics {
    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
        self.connections_opened.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(&self, reason: DisconnectReason) {
        self.connections.fetch_sub(1, Relaxed);
        self.disconnects[reason as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn published(&self, kind: TargetKind, delivered: usize) {
        self.published[kind as usize].fetch_add(1, Relaxed);
        self.deliveries.fetch_add(delivered as u64, Relaxed);
    }

    pub(crate) fn job_created(&self) {
        self.jobs_created.fetch_add(1, Relaxed);
    }

    pub(crate) fn job_finished(&self) {
        self.jobs_finished.fetch_add(1, Relaxed);
    }

    /// Open streams right now (client and task streams).
    pub fn open_connections(&self) -> i64 {
        self.connections.load(Relaxed)
    }

    /// How many streams have ended for `reason` since start.
    pub fn disconnects(&self, reason: DisconnectReason) -> u64 {
        self.disconnects[reason as usize].load(Relaxed)
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        header(
            &mut out,
            "herald_connections",
            "gauge",
            "Open event streams.",
        );
        sample(
            &mut out,
            "herald_connections",
            "",
            self.connections.load(Relaxed),
        );
        let opened = "herald_connections_opened_total";
        header(
            &mut out,
            opened,
            "counter",
            "Event streams opened since start.",
        );
        sample(&mut out, opened, "", self.connections_opened.load(Relaxed));
        let published = "herald_messages_published_total";
        header(
            &mut out,
            published,
            "counter",
            "Messages accepted, by target kind.",
        );
        for kind in TargetKind::ALL {
            let label = format!("target=\"{}\"", kind.name());
            sample(
                &mut out,
                published,
                &label,
                self.published[kind as usize].load(Relaxed),
            );
        }
        let deliveries = "herald_deliveries_total";
        header(
            &mut out,
            deliveries,
            "counter",
            "Messages queued on a connection.",
        );
        sample(&mut out, deliveries, "", self.deliveries.load(Relaxed));
        let disconnects = "herald_disconnects_total";
        header(
            &mut out,
            disconnects,
            "counter",
            "Event streams ended, by reason.",
        );
        for reason in DisconnectReason::ALL {
            let label = format!("reason=\"{}\"", reason.name());
            sample(&mut out, disconnects, &label, self.disconnects(reason));
        }
        let created = "herald_jobs_created_total";
        header(&mut out, created, "counter", "Tasks created.");
        sample(&mut out, created, "", self.jobs_created.load(Relaxed));
        let finished = "herald_jobs_finished_total";
        header(
            &mut out,
            finished,
            "counter",
            "Tasks that ended with a result or an error.",
        );
        sample(&mut out, finished, "", self.jobs_finished.load(Relaxed));
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}
