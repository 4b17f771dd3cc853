//! A real `redis-server` (Debian's package) per test, on a free loopback port, with no
//! persistence: stopping it loses everything, as a crashed Redis without a disk would.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::PATIENCE;

/// A running `redis-server`, killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free loopback port and waits until it answers `PING`.
    pub async fn start() -> Self {
        for _ in 0..5 {
            let port = free_port_outside_ephemeral_range();
            let dir =
                std::env::temp_dir().join(format!("herald-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a directory for redis-server");
            let mut server = Self { port, dir, child: None };
            if server.spawn().await {
                return server;
            }
        }
        panic!("redis-server did not start (is the Debian package redis-server installed?)");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL: no goodbye to clients, nothing saved).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn start_again(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.spawn().await {
            assert!(tokio::time::Instant::now() < deadline, "redis-server did not restart");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Spawns on `self.port`; false if it did not come up (the port was taken).
    async fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (Debian package redis-server; make test installs it)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && child.try_wait().ok().flatten().is_some()
            {
                self.child = None;
                return false;
            }
            if ping(self.port).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop().await;
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A key prefix no other test uses, even on a shared Redis.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("t{}-{}-{test}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A free loopback port below the kernel's ephemeral range, for a server that is
/// stopped and started again on the same port. While it is down, nothing else may take
/// the port: a port from the ephemeral range can be picked as the source port of any
/// outgoing connection — even a Herald node's own reconnect to it, which then connects
/// to itself (TCP simultaneous open) and holds the port for good.
fn free_port_outside_ephemeral_range() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    const LOWEST: u64 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_start.saturating_sub(LOWEST).max(1);
    // Parallel test processes start from different places in the span.
    let start =
        u64::from(std::process::id()) * 7_919 + NEXT.fetch_add(1, Ordering::Relaxed) * 104_729;
    (0..span)
        .map(|step| LOWEST + (start + step) % span)
        .filter_map(|port| u16::try_from(port).ok())
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .unwrap_or_else(free_port)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

async fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").await.is_ok()
        && stream.read_exact(&mut reply).await.is_ok()
        && &reply == b"+PONG\r\n"
}
