//! Three real `redis-sentinel` processes (Debian's package) watching one primary, on
//! loopback ports, with a one-second down-after so a failover takes seconds: the
//! smallest setup in which Sentinel reaches a quorum, as production runs it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::redis::{RedisServer, free_port};

/// The name the sentinels monitor the primary under.
pub const MASTER: &str = "herald-test";

/// How long a failover may take: down-after, the vote, the promotion.
const FAILOVER_PATIENCE: Duration = Duration::from_secs(30);

/// Running sentinels, killed when dropped.
pub struct Sentinels {
    ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Sentinels {
    /// Starts three sentinels on `primary` and waits until they know its replica and
    /// each other, so that a failover can happen.
    pub async fn watch(primary: &RedisServer, replicas: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "herald-sentinel-{}-{}",
            std::process::id(),
            primary.port()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the sentinels");
        let mut sentinels = Self { ports: Vec::new(), dir, children: Vec::new() };
        for _ in 0..3 {
            let port = free_port();
            let config = sentinels.dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(&config, config_text(port, primary.port())).expect("sentinel.conf");
            let child = Command::new("redis-sentinel")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("redis-sentinel on PATH (Debian package redis-sentinel)");
            sentinels.ports.push(port);
            sentinels.children.push(child);
        }
        sentinels.until_ready(replicas).await;
        sentinels
    }

    /// `--redis-sentinel 127.0.0.1:PORT` for each, then `--redis-master NAME`.
    pub fn node_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for port in &self.ports {
            args.push("--redis-sentinel".to_owned());
            args.push(format!("127.0.0.1:{port}"));
        }
        args.extend(["--redis-master".to_owned(), MASTER.to_owned()]);
        args
    }

    /// The primary's port, as the first sentinel that answers says.
    pub async fn primary_port(&self) -> Option<u16> {
        for port in &self.ports {
            let reply = ask(*port, &["SENTINEL", "get-master-addr-by-name", MASTER]).await;
            if let Some(primary) = reply.lines().nth(1).and_then(|line| line.parse().ok()) {
                return Some(primary);
            }
        }
        None
    }

    /// Waits until the sentinels name another primary than `old`; returns its port.
    pub async fn failed_over_from(&self, old: u16) -> u16 {
        let deadline = tokio::time::Instant::now() + FAILOVER_PATIENCE;
        loop {
            if let Some(port) = self.primary_port().await.filter(|&port| port != old) {
                return port;
            }
            assert!(tokio::time::Instant::now() < deadline, "Sentinel did not fail over");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every sentinel sees the other two and `replicas` replicas.
    async fn until_ready(&self, replicas: usize) {
        let deadline = tokio::time::Instant::now() + FAILOVER_PATIENCE;
        loop {
            let mut ready = true;
            for port in &self.ports {
                let master = ask(*port, &["SENTINEL", "master", MASTER]).await;
                let field = |name: &str| {
                    let mut lines = master.lines();
                    lines.find(|line| *line == name).and_then(|_| lines.next()?.parse().ok())
                };
                ready &= field("num-other-sentinels") == Some(2usize)
                    && field("num-slaves") == Some(replicas);
            }
            if ready {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the sentinels did not meet");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config_text(port: u16, primary: u16) -> String {
    format!(
        "port {port}\nbind 127.0.0.1\ndaemonize no\n\
         sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
         sentinel down-after-milliseconds {MASTER} 1000\n\
         sentinel failover-timeout {MASTER} 5000\n\
         sentinel parallel-syncs {MASTER} 1\n"
    )
}

/// One command to the sentinel on `port`, through `redis-cli`.
async fn ask(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .expect("redis-cli");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
