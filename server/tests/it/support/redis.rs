//! A real `redis-server` (Debian's package) per test, on a free loopback port. It keeps
//! an RDB file in its own directory only when a test asks for a snapshot, so a crash
//! loses everything since the last one, as a production Redis with RDB persistence
//! (Redis' default) would. TLS and ACL users are set up as a managed Redis has them.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::{PATIENCE, eventually};

/// A running `redis-server`, killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    setup: Setup,
}

/// How a test's Redis differs from a plain local one.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Serve TLS only (no plain port), with this certificate.
    pub tls: Option<Tls>,
    /// An ACL user and password; the default user is then disabled.
    pub user: Option<(String, String)>,
    /// Replicate this primary (a port on loopback).
    pub replica_of: Option<u16>,
}

/// A certificate for `127.0.0.1`, its key, and the CA that signed it (PEM files).
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl RedisServer {
    /// Starts one on a free loopback port and waits until it answers `PING`.
    pub async fn start() -> Self {
        Self::start_with(Setup::default()).await
    }

    /// Starts one set up as `setup` says.
    pub async fn start_with(setup: Setup) -> Self {
        for _ in 0..5 {
            let port = free_port_outside_ephemeral_range();
            let dir =
                std::env::temp_dir().join(format!("herald-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a directory for redis-server");
            let mut server = Self { port, dir, child: None, setup: setup.clone() };
            if server.spawn().await {
                return server;
            }
        }
        panic!("redis-server did not start (is the Debian package redis-server installed?)");
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://user:password@127.0.0.1:PORT` as set up.
    pub fn url(&self) -> String {
        let scheme = if self.setup.tls.is_some() { "rediss" } else { "redis" };
        let user = match &self.setup.user {
            Some((user, password)) => format!("{user}:{password}@"),
            None => String::new(),
        };
        format!("{scheme}://{user}127.0.0.1:{}", self.port)
    }

    /// Its loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs one command with `redis-cli` (as set up: TLS, user) and returns its output.
    pub async fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(tls) = &self.setup.tls {
            command.arg("--tls").arg("--cacert").arg(&tls.ca);
        }
        if let Some((user, password)) = &self.setup.user {
            command.args(["--user", user, "--pass", password, "--no-auth-warning"]);
        }
        let output = command.args(args).output().await.expect("redis-cli (package redis-tools)");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// For a replica: waits until its link to the primary is up (the first full sync
    /// can wait for Redis' `repl-diskless-sync-delay`, 5 s by default).
    pub async fn until_replicating(&self) {
        eventually(|| async {
            self.cli(&["INFO", "replication"]).await.contains("master_link_status:up")
        })
        .await;
    }

    /// Writes an RDB snapshot now (`SAVE`): what a restart will come back with.
    pub async fn snapshot(&self) {
        assert_eq!(self.cli(&["SAVE"]).await, "OK", "redis-server saved its snapshot");
    }

    /// Stops the server (SIGKILL: no goodbye to clients, nothing saved).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port, with what its last [`snapshot`](Self::snapshot)
    /// held (empty without one): a restart after a crash.
    pub async fn start_again(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.spawn().await {
            assert!(tokio::time::Instant::now() < deadline, "redis-server did not restart");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Spawns on `self.port`; false if it did not come up (the port was taken).
    async fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"]);
        command.arg(&self.dir);
        match &self.setup.tls {
            None => command.args(["--port", &port]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca),
        };
        if let Some((user, password)) = &self.setup.user {
            // Each word its own argument: redis-server reads `--user NAME RULE…`.
            command.args(["--user", user, "on", &format!(">{password}"), "~*", "&*", "+@all"]);
            command.args(["--user", "default", "off"]);
        }
        if let Some(primary) = self.setup.replica_of {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child =
            command.stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true).spawn().expect(
                "redis-server on PATH (Debian package redis-server; make test installs it)",
            );
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && child.try_wait().ok().flatten().is_some()
            {
                self.child = None;
                return false;
            }
            if self.answers().await {
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

impl RedisServer {
    /// Whether it answers `PING` (through `redis-cli` when TLS or a user is set up).
    async fn answers(&self) -> bool {
        if self.setup.tls.is_none() && self.setup.user.is_none() {
            return ping(self.port).await;
        }
        self.cli(&["PING"]).await == "PONG"
    }
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
