//! The process metrics operators look for first, under the names every Prometheus
//! client library gives them (`process_*`; see the Prometheus "writing exporters"
//! guide): CPU time, resident memory, open and allowed file descriptors.
//!
//! Read from `/proc/self` at each scrape (proc(5)); where there is no `/proc`, none
//! is reported.

use std::fs;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `/proc/self/stat` counts CPU time in clock ticks of `sysconf(_SC_CLK_TCK)`, which
/// is `USER_HZ`: 100 on every architecture Linux exports it for (proc(5), time(7)).
const TICKS_PER_SECOND: f64 = 100.0;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let help = "Total user and system CPU time spent in seconds";
        encode(&mut encoder, "process_cpu_seconds", help, cpu_seconds().map(ConstCounter::new))?;
        let help = "Resident memory size in bytes";
        encode(
            &mut encoder,
            "process_resident_memory_bytes",
            help,
            resident_bytes().map(ConstGauge::new),
        )?;
        let help = "Number of open file descriptors";
        encode(&mut encoder, "process_open_fds", help, open_fds().map(ConstGauge::new))?;
        let help = "Maximum number of open file descriptors";
        encode(&mut encoder, "process_max_fds", help, max_fds().map(ConstGauge::new))
    }
}

/// Writes one metric with its description, if it could be read.
fn encode(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: Option<impl EncodeMetric>,
) -> Result<(), std::fmt::Error> {
    let Some(metric) = metric else { return Ok(()) };
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// User plus system time: fields 14 and 15 of `/proc/self/stat`, counted after the
/// command name's closing parenthesis (the name itself may hold spaces).
fn cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) is the 11th from here.
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_SECOND)
}

/// `VmRSS` of `/proc/self/status`, which it gives in KiB.
fn resident_bytes() -> Option<i64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The entries of `/proc/self/fd`.
fn open_fds() -> Option<i64> {
    let count = fs::read_dir("/proc/self/fd").ok()?.count();
    i64::try_from(count).ok()
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_fds() -> Option<i64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_measured() {
        assert!(cpu_seconds().is_some_and(|seconds| seconds >= 0.0));
        assert!(resident_bytes().is_some_and(|bytes| bytes > 0));
        assert!(open_fds().is_some_and(|count| count >= 3));
        assert!(max_fds().is_some_and(|limit| limit >= 3));
    }
}
