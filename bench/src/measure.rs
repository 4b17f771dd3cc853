//! What is measured: the server's resident memory, the kernel's socket memory, the
//! wall clock that payloads carry, and percentiles.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch: the send time a payload carries (sender and
/// receivers share this machine's clock).
pub fn now_micros() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

/// Resident memory of process `pid` in bytes (`VmRSS` in /proc/PID/status).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time process `pid` has used so far, user and system, all its threads
/// (`utime` + `stime` in /proc/PID/stat; the kernel counts them in ticks of 10 ms).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    const TICK_MILLIS: u64 = 10;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) is in parentheses and may hold spaces: count after it.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let user: u64 = fields.nth(11)?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(user.checked_add(system)?.checked_mul(TICK_MILLIS)?))
}

/// Resident memory of every process in `pids`, summed (a cluster's nodes); none when
/// `pids` is empty or one of them cannot be read, so that a figure never silently
/// leaves a node out.
pub fn total_rss_bytes(pids: &[u32]) -> Option<u64> {
    sum_over(pids, rss_bytes)
}

/// CPU time of every process in `pids`, summed: a cluster's work is done by all its
/// nodes and its Redis, wherever the generator's requests land.
pub fn total_cpu_time(pids: &[u32]) -> Option<Duration> {
    sum_over(pids, cpu_time)
}

/// The sum of `read` over `pids`; none when `pids` is empty or any read fails.
fn sum_over<T: std::iter::Sum<T>>(pids: &[u32], read: impl Fn(u32) -> Option<T>) -> Option<T> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| read(*pid)).sum()
}

/// Memory the kernel holds for TCP sockets, in bytes (`TCP: … mem P` pages in
/// /proc/net/sockstat): reported apart from the server's own memory.
pub fn tcp_kernel_bytes() -> Option<u64> {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = sockstat.lines().find(|line| line.starts_with("TCP:"))?;
    let mut fields = line.split_whitespace();
    fields.find(|field| *field == "mem")?;
    let pages: u64 = fields.next()?.parse().ok()?;
    Some(pages * 4096)
}

/// The `p`-th percentile (0..=1) of sorted `samples`, in microseconds.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let last = sorted.len() - 1;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let index = ((last as f64) * p).round() as usize;
    sorted[index.min(last)]
}

/// Milliseconds with three decimals, for the human summary.
pub fn millis(micros: u64) -> String {
    format!("{:.3}", Duration::from_micros(micros).as_secs_f64() * 1e3)
}

/// Reads `"t":MICROS` and `"n":NUMBER` from a payload such as `{"t":…,"n":…}` (the
/// generator's own, so a scan for the two keys will do; a JSON parser per event was a
/// good part of the generator's work in a broadcast).
pub fn stamp(data: &[u8]) -> Option<(u64, usize)> {
    let t = number_after(data, b"\"t\":")?;
    let n = usize::try_from(number_after(data, b"\"n\":")?).ok()?;
    Some((t, n))
}

/// The decimal number right after the first `key` in `data`.
fn number_after(data: &[u8], key: &[u8]) -> Option<u64> {
    let start = data.windows(key.len()).position(|window| window == key)? + key.len();
    let digits = data[start..].iter().take_while(|byte| byte.is_ascii_digit()).count();
    std::str::from_utf8(&data[start..start + digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_samples() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.5), 51);
        assert_eq!(percentile(&samples, 0.99), 99);
        assert_eq!(percentile(&samples, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn stamps_are_read_from_payloads() {
        assert_eq!(stamp(br#"{"t":123,"n":4}"#), Some((123, 4)));
        assert_eq!(stamp(br#"{"n":4,"t":123}"#), Some((123, 4)));
        assert_eq!(stamp(b"hello"), None);
        assert_eq!(stamp(br#"{"t":,"n":4}"#), None);
    }

    #[test]
    fn this_machine_reports_memory() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert!(tcp_kernel_bytes().is_some());
    }

    #[test]
    fn sums_cover_every_pid_or_none() {
        let me = std::process::id();
        let one = rss_bytes(me).unwrap();
        assert!(total_rss_bytes(&[me, me]).unwrap() > one);
        assert_eq!(total_rss_bytes(&[]), None);
        assert_eq!(total_rss_bytes(&[me, u32::MAX]), None);
        assert!(total_cpu_time(&[me]).is_some());
        assert_eq!(total_cpu_time(&[]), None);
    }

    #[test]
    fn this_machine_reports_cpu_time() {
        let busy = std::time::Instant::now();
        while busy.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(now_micros());
        }
        assert!(cpu_time(std::process::id()).unwrap() > Duration::ZERO);
    }
}
