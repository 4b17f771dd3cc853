//! The real `herald` binary as a separate process: what a deployment runs, so tests
//! can send it signals, kill it without warning, and run several side by side.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::redis::RedisServer;
use super::{Api, PATIENCE, eventually};

/// A running `herald` process on a free loopback port, killed when dropped.
pub struct Node {
    child: Child,
    api: Api,
    log: Arc<Mutex<String>>,
    /// Reads the node's stderr into `log`; aborting it closes the pipe.
    log_reader: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Starts `herald` with these arguments and waits until it listens.
    pub async fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["--listen", "127.0.0.1:0", "--log", "info"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start herald");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let base = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                if let Some((_, rest)) = line.split_once("listening on ") {
                    // Up to the end of the URL: the line's end, or a JSON line's quote.
                    let url = rest.split(|c: char| c == '"' || c.is_whitespace()).next();
                    return url.unwrap_or_default().to_owned();
                }
            }
            panic!("herald exited before listening");
        })
        .await
        .expect("herald listens");
        let log_reader = tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut log = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        Self { child, api: Api::new(base), log, log_reader }
    }

    /// A node of the cluster on `redis` under `prefix`, ready to take pushes.
    pub async fn on_redis(redis: &RedisServer, prefix: &str, args: &[&str]) -> Self {
        let url = redis.url();
        let mut all = vec!["--redis-url", &url, "--redis-prefix", prefix];
        all.extend_from_slice(args);
        let node = Self::start(&all).await;
        node.wait_healthy().await;
        node
    }

    /// Waits until `/healthz` says ok.
    pub async fn wait_healthy(&self) {
        eventually(|| async { self.get("/healthz").await.0 == 200 }).await;
    }

    /// Sends SIGTERM, as an orchestrator stopping the node would.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGKILL: the node dies without a word to anyone.
    pub async fn kill9(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait().await;
    }

    /// Sends SIGHUP, as an operator (or certbot's deploy hook) asking for a reload.
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    /// Talks to the node with `http` from now on (one that trusts its certificate, say).
    pub fn use_client(&mut self, http: reqwest::Client) {
        self.api.http = http;
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill").args([signal, &pid]).status();
        assert!(status.expect("kill").success());
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().await.expect("wait for herald")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops reading the node's stderr and closes the pipe, as a log collector that
    /// went away (or `herald … | head`) leaves it: every later log line fails to write.
    pub async fn close_log(&mut self) {
        self.log_reader.abort();
        let _ = (&mut self.log_reader).await;
    }

    /// Everything the node logged since it listened.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl std::ops::Deref for Node {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}
