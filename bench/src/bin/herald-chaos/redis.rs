//! Redis as users run it under Herald: persistence on (RDB snapshots every second),
//! a primary and one replica, and three sentinels that fail over when the primary
//! dies. Without Sentinel (`--no-sentinel`), one Redis with the same persistence.
//!
//! Herald-chaos speaks to Redis itself (a few commands: `PING`, `ROLE`,
//! `CLIENT PAUSE`, `SENTINEL …`) over a small RESP client here, rather than through
//! a client library, to stay independent of the server's own Redis code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::procs::{Proc, WorkDir};

/// The name the sentinels monitor the primary under.
pub const MASTER_NAME: &str = "herald-chaos";
/// How long a sentinel waits for an unanswered primary before calling it down.
pub const DOWN_AFTER: Duration = Duration::from_millis(1000);
/// Each command to Redis gives up after this long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for a bulk or status reply.
    fn text(&self) -> Option<String> {
        match self {
            Self::Status(text) => Some(text.clone()),
            Self::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// Sends one command to the Redis (or sentinel) on `port`, on a connection of its
/// own, and reads its reply. An error reply is returned as [`Reply::Error`].
pub async fn command(port: u16, args: &[&str]) -> Result<Reply> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request).await?;
        let mut buffer = Vec::new();
        loop {
            if let Some((reply, _)) = parse_reply(&buffer)? {
                return Ok(reply);
            }
            if stream.read_buf(&mut buffer).await? == 0 {
                bail!("the connection closed before the reply");
            }
        }
    };
    tokio::time::timeout(COMMAND_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("no reply in time"))?
        .with_context(|| format!("{} on port {port}", args.join(" ")))
}

/// One reply from the start of `buffer` and its length, or `None` when it is
/// incomplete.
fn parse_reply(buffer: &[u8]) -> Result<Option<(Reply, usize)>> {
    let Some(end) = buffer.windows(2).position(|pair| pair == b"\r\n") else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buffer[1..end]).context("a reply that is not text")?;
    let after = end + 2;
    let number = || line.parse::<i64>().with_context(|| format!("a bad length {line:?}"));
    let reply = match buffer.first() {
        Some(b'+') => (Reply::Status(line.to_owned()), after),
        Some(b'-') => (Reply::Error(line.to_owned()), after),
        Some(b':') => (Reply::Integer(number()?), after),
        Some(b'$') => match usize::try_from(number()?) {
            Err(_) => (Reply::Bulk(None), after),
            Ok(length) if buffer.len() >= after + length + 2 => {
                (Reply::Bulk(Some(buffer[after..after + length].to_vec())), after + length + 2)
            }
            Ok(_) => return Ok(None),
        },
        Some(b'*') => match usize::try_from(number()?) {
            Err(_) => (Reply::Array(None), after),
            Ok(count) => {
                let mut items = Vec::with_capacity(count);
                let mut at = after;
                for _ in 0..count {
                    let Some((item, length)) = parse_reply(&buffer[at..])? else {
                        return Ok(None);
                    };
                    items.push(item);
                    at += length;
                }
                (Reply::Array(Some(items)), at)
            }
        },
        _ => bail!("a reply of an unknown type: {:?}", String::from_utf8_lossy(buffer)),
    };
    Ok(Some(reply))
}

/// A data-holding Redis (primary or replica), by slot: it keeps its port and its
/// directory (and so its RDB file) across restarts.
#[derive(Debug)]
struct Instance {
    name: String,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

#[derive(Debug)]
struct Sentinel {
    port: u16,
    log: PathBuf,
    proc: Proc,
}

/// The Redis side of the cluster.
#[derive(Debug)]
pub struct Redis {
    server: PathBuf,
    work: PathBuf,
    instances: Vec<Instance>,
    sentinels: Vec<Sentinel>,
}

impl Redis {
    /// Starts the primary, and with Sentinel the replica and three sentinels, and
    /// waits until Sentinel sees the whole set.
    pub async fn start(work: &WorkDir, sentinel: bool) -> Result<Self> {
        let server = find_program("redis-server")?;
        let mut redis = Self {
            server,
            work: work.path().to_owned(),
            instances: Vec::new(),
            sentinels: Vec::new(),
        };
        let slots = if sentinel { 2 } else { 1 };
        for slot in 0..slots {
            let name = format!("redis-{}", ["a", "b"][slot]);
            redis.instances.push(Instance {
                port: free_port()?,
                dir: work.subdir(&name)?,
                log: work.path().join(format!("{name}.log")),
                proc: None,
                name,
            });
        }
        redis.launch(0, None).await?;
        if !sentinel {
            return Ok(redis);
        }
        let primary = redis.instances[0].port;
        redis.launch(1, Some(primary)).await?;
        redis.wait_replicating(1).await?;
        for index in 0..3 {
            let port = free_port()?;
            let dir = work.subdir(&format!("sentinel-{index}"))?;
            let config = dir.join("sentinel.conf");
            std::fs::write(&config, sentinel_config(port, &dir, primary))
                .with_context(|| format!("cannot write {}", config.display()))?;
            let log = work.path().join(format!("sentinel-{index}.log"));
            let args = [config.as_os_str(), "--sentinel".as_ref()];
            let proc = Proc::spawn(&format!("sentinel {index}"), &redis.server, args, &dir, &log)?;
            redis.sentinels.push(Sentinel { port, log, proc });
        }
        redis.wait_sentinels_agree().await?;
        Ok(redis)
    }

    /// The ports of the sentinels (empty without Sentinel).
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|sentinel| sentinel.port).collect()
    }

    /// The port of the first Redis: the only one without Sentinel.
    pub fn first_port(&self) -> u16 {
        self.instances[0].port
    }

    pub fn uses_sentinel(&self) -> bool {
        !self.sentinels.is_empty()
    }

    pub fn name(&self, index: usize) -> &str {
        &self.instances[index].name
    }

    pub fn port(&self, index: usize) -> u16 {
        self.instances[index].port
    }

    pub fn pid(&self, index: usize) -> u32 {
        self.instances[index].proc.as_ref().map_or(0, Proc::pid)
    }

    /// Every log file, named.
    pub fn logs(&self) -> Vec<(String, PathBuf)> {
        let instances = self.instances.iter().map(|i| (i.name.clone(), i.log.clone()));
        let sentinels = self
            .sentinels
            .iter()
            .enumerate()
            .map(|(index, sentinel)| (format!("sentinel-{index}"), sentinel.log.clone()));
        instances.chain(sentinels).collect()
    }

    /// The slot of the current primary: as Sentinel names it (the address clients
    /// are sent to), or the only Redis.
    pub async fn primary(&self) -> Result<usize> {
        if self.sentinels.is_empty() {
            return Ok(0);
        }
        let port = self.primary_port().await?;
        self.instances
            .iter()
            .position(|instance| instance.port == port)
            .with_context(|| format!("Sentinel names an unknown primary on port {port}"))
    }

    /// The port Sentinel names as the primary's, asking each sentinel in turn.
    pub async fn primary_port(&self) -> Result<u16> {
        let mut last_error = anyhow!("no sentinel");
        for sentinel in &self.sentinels {
            let args = ["SENTINEL", "get-master-addr-by-name", MASTER_NAME];
            match command(sentinel.port, &args).await {
                Ok(Reply::Array(Some(address))) if address.len() == 2 => {
                    let port = address[1].text().and_then(|port| port.parse().ok());
                    return port.context("Sentinel named a primary without a port");
                }
                Ok(other) => last_error = anyhow!("unexpected reply {other:?}"),
                Err(error) => last_error = error,
            }
        }
        Err(last_error.context("no sentinel names the primary"))
    }

    /// Starts the Redis in `slot` from its own RDB file, as a replica of the Redis on
    /// `replica_of` or as a primary, and waits until it answers.
    pub async fn launch(&mut self, slot: usize, replica_of: Option<u16>) -> Result<()> {
        let instance = &mut self.instances[slot];
        let mut args: Vec<String> = [
            "--port",
            &instance.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "1 1",
            "--appendonly",
            "no",
            "--dir",
            &instance.dir.to_string_lossy(),
            "--dbfilename",
            "dump.rdb",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
            // A replica (re)syncs at once rather than after the default 5 s.
            "--repl-diskless-sync-delay",
            "0",
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some(primary) = replica_of {
            args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), primary.to_string()]);
        }
        let proc = Proc::spawn(&instance.name, &self.server, &args, &self.work, &instance.log)?;
        instance.proc = Some(proc);
        let port = instance.port;
        wait_for(Duration::from_secs(10), &format!("{} to answer PING", instance.name), || async {
            matches!(command(port, &["PING"]).await, Ok(Reply::Status(pong)) if pong == "PONG")
        })
        .await
    }

    /// SIGKILL to the Redis in `slot`; waits until it is gone.
    pub async fn kill(&mut self, slot: usize) {
        if let Some(mut proc) = self.instances[slot].proc.take() {
            proc.kill().await;
        }
    }

    /// `CLIENT PAUSE` on the Redis in `slot`.
    pub async fn pause(&self, slot: usize, pause: Duration, mode: &str) -> Result<()> {
        let millis = pause.as_millis().to_string();
        match command(self.instances[slot].port, &["CLIENT", "PAUSE", &millis, mode]).await? {
            Reply::Status(_) => Ok(()),
            other => bail!("CLIENT PAUSE answered {other:?}"),
        }
    }

    /// Waits until the replica in `slot` has a live link to its primary.
    pub async fn wait_replicating(&self, slot: usize) -> Result<()> {
        let port = self.instances[slot].port;
        let name = &self.instances[slot].name;
        wait_for(Duration::from_secs(15), &format!("{name} to sync with its primary"), || async {
            let info = command(port, &["INFO", "replication"]).await;
            info.ok()
                .and_then(|reply| reply.text())
                .is_some_and(|info| info.lines().any(|line| line.trim() == "master_link_status:up"))
        })
        .await
    }

    /// Waits until every sentinel knows the other two and the replica, so that a
    /// failover can reach its quorum.
    async fn wait_sentinels_agree(&self) -> Result<()> {
        let ports = self.sentinel_ports();
        wait_for(Duration::from_secs(30), "the sentinels to find each other", || async {
            for &port in &ports {
                let Ok(Reply::Array(Some(fields))) =
                    command(port, &["SENTINEL", "master", MASTER_NAME]).await
                else {
                    return false;
                };
                let field = |name: &str| {
                    let at = fields.iter().position(|f| f.text().as_deref() == Some(name))?;
                    fields.get(at + 1)?.text()?.parse::<u32>().ok()
                };
                if field("num-other-sentinels") < Some(2) || field("num-slaves") < Some(1) {
                    return false;
                }
            }
            true
        })
        .await
    }

    /// Stops every process.
    pub async fn stop(&mut self) {
        for sentinel in &mut self.sentinels {
            sentinel.proc.kill().await;
        }
        for slot in 0..self.instances.len() {
            self.kill(slot).await;
        }
    }
}

fn sentinel_config(port: u16, dir: &Path, primary: u16) -> String {
    format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         logfile \"\"\n\
         dir \"{dir}\"\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {down_after}\n\
         sentinel failover-timeout {MASTER_NAME} 3000\n",
        dir = dir.display(),
        down_after = DOWN_AFTER.as_millis(),
    )
}

/// `name` found on PATH, or in the directories Debian installs Redis to.
fn find_program(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{name} is not installed (apt-get install redis-server)"))
}

/// A loopback port nothing listens on now.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `ready` every 100 ms until it holds, for at most `within`.
pub async fn wait_for<F, Fut>(within: Duration, what: &str, mut ready: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if ready().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("gave up waiting for {what} after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_whole_or_not_at_all() {
        let reply = b"*3\r\n$9\r\n127.0.0.1\r\n:7\r\n*-1\r\n";
        let (parsed, length) = parse_reply(reply).unwrap().unwrap();
        assert_eq!(length, reply.len());
        assert_eq!(
            parsed,
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"127.0.0.1".to_vec())),
                Reply::Integer(7),
                Reply::Array(None),
            ]))
        );
        for cut in 0..reply.len() {
            assert!(parse_reply(&reply[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert_eq!(parse_reply(b"+OK\r\n").unwrap().unwrap().0, Reply::Status("OK".into()));
        assert_eq!(parse_reply(b"-ERR x\r\n").unwrap().unwrap().0, Reply::Error("ERR x".into()));
        assert_eq!(parse_reply(b"$-1\r\n").unwrap().unwrap().0, Reply::Bulk(None));
        assert!(parse_reply(b"?\r\n").is_err());
    }
}
