//! Every setting, in one typed struct: each field is a `--flag`, a `HERALD_*`
//! environment variable and a line of `herald --help`, with its default beside it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::auth::Secret;
use crate::forwarded::ForwardedHeader;
use crate::hub::jobs::JobOptions;
use crate::hub::{
    BrokerOptions, DrainOptions, HistoryOptions, HubOptions, RedisOptions, SentinelOptions,
};
use crate::stream::StreamOptions;

/// Herald: a server-push hub for the browser over Server-Sent Events.
///
/// With no arguments it serves the API and the web app on http://127.0.0.1:3000,
/// keeping everything in memory.
#[derive(Debug, Clone, Parser)]
#[command(name = "herald", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on [default: 127.0.0.1:3000, or LEPTOS_SITE_ADDR when set by cargo-leptos].
    #[arg(long, env = "HERALD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain, leaf first; needs --tls-key. Reloaded on SIGHUP and when the file changes.
    #[arg(long, env = "HERALD_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "HERALD_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Send a heartbeat comment on a stream that was quiet this long (e.g. 15s, 500ms).
    #[arg(long, env = "HERALD_HEARTBEAT", default_value = "15s", value_parser = positive_duration)]
    pub heartbeat: Duration,

    /// Reconnection delay sent to browsers in the stream's `retry:` field.
    #[arg(long, env = "HERALD_RETRY", default_value = "2s", value_parser = positive_duration)]
    pub retry: Duration,

    /// Largest message accepted by POST /push, in bytes of the event's data.
    #[arg(long, env = "HERALD_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_message_bytes: u32,

    /// Largest request body accepted, in bytes (JSON escaping can make a body much larger than its message).
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_body_bytes: u32,

    /// Frames a connection may have waiting before it is cut off as too slow (it then resumes by Last-Event-ID).
    #[arg(long, env = "HERALD_QUEUE_CAPACITY", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_capacity: u32,

    /// Topics one connection may join.
    #[arg(long, env = "HERALD_MAX_TOPICS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_topics: u32,

    /// Messages kept per target (client id, topic, broadcast) for clients that resume with Last-Event-ID; 0 disables replay.
    #[arg(long, env = "HERALD_HISTORY", default_value_t = 100)]
    pub history: u32,

    /// How long a message is kept for resuming clients.
    #[arg(long, env = "HERALD_HISTORY_TTL", default_value = "10m", value_parser = positive_duration)]
    pub history_ttl: Duration,

    /// Bytes of messages kept in all, across every target; the oldest are dropped first.
    #[arg(long, env = "HERALD_HISTORY_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub history_bytes: u64,

    /// How long a finished task stays readable (GET /jobs/ID and its event stream).
    #[arg(long, env = "HERALD_JOB_TTL", default_value = "10m", value_parser = positive_duration)]
    pub job_ttl: Duration,

    /// A running task with no update for this long is failed as abandoned.
    #[arg(long, env = "HERALD_JOB_IDLE_TIMEOUT", default_value = "1h", value_parser = positive_duration)]
    pub job_idle_timeout: Duration,

    /// Tasks held at once, running and finished; more are refused with 429.
    #[arg(long, env = "HERALD_MAX_JOBS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_jobs: u32,

    /// On SIGTERM/SIGINT, wait at most this long for open requests to finish before exiting.
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Streams the node ends itself are told a random retry: of up to this much more than --retry, and on SIGTERM end at random moments over this window, so their clients come back spread out; 0: all at once. At most half of --shutdown-grace is used.
    #[arg(long, env = "HERALD_DRAIN_SPREAD", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_spread: Duration,

    /// Share messages, history, presence and tasks with other nodes through this Redis (redis://[USER:PASSWORD@]HOST:PORT[/DB], or rediss://… for TLS); without it, everything stays in this process.
    #[arg(long, env = "HERALD_REDIS_URL", value_name = "URL", value_parser = RedisUrlParser, hide_env_values = true)]
    pub redis_url: Option<String>,

    /// A PEM file of the CA that signed the Redis server's certificate, trusted instead of the system's roots (rediss:// only).
    #[arg(long, env = "HERALD_REDIS_CA", value_name = "FILE", value_parser = pem_certificates)]
    pub redis_ca: Option<PemCertificates>,

    /// A Redis Sentinel to ask where the primary is, and to follow when it fails over; repeat for each (the variable takes a comma-separated list). Needs --redis-master; --redis-url then gives only the scheme, user, password and database.
    #[arg(
        long = "redis-sentinel",
        env = "HERALD_REDIS_SENTINELS",
        value_name = "HOST:PORT",
        value_delimiter = ',',
        requires = "redis_master",
        value_parser = sentinel_address
    )]
    pub redis_sentinels: Vec<String>,

    /// The name the sentinels monitor the primary under (`sentinel monitor NAME …`).
    #[arg(long, env = "HERALD_REDIS_MASTER", value_name = "NAME", requires = "redis_sentinels")]
    pub redis_master: Option<String>,

    /// Acknowledge a push only once this many Redis replicas confirm it (WAIT, up to 1 s; else 503), so that it survives a failover and a primary cut off from its replicas accepts nothing; 0: as soon as the primary has it [default: 1 with --redis-sentinel, else 0].
    #[arg(long, env = "HERALD_REDIS_MIN_REPLICAS", value_name = "N")]
    pub redis_min_replicas: Option<u8>,

    /// The sentinels' own password (`requirepass` in sentinel.conf), if they have one.
    #[arg(
        long,
        env = "HERALD_REDIS_SENTINEL_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub redis_sentinel_password: Option<String>,

    /// Prefix of every Redis key and channel Herald uses, so several clusters can share one Redis.
    #[arg(long, env = "HERALD_REDIS_PREFIX", default_value = "herald", value_parser = redis_prefix)]
    pub redis_prefix: String,

    /// With Redis: a node that stops refreshing its presence (it died) drops out of GET /clients after this long.
    #[arg(long, env = "HERALD_PRESENCE_TTL", default_value = "15s", value_parser = presence_ttl)]
    pub presence_ttl: Duration,

    /// This node's name in the cluster [default: random].
    #[arg(long, env = "HERALD_NODE_ID", value_parser = node_id)]
    pub node_id: Option<String>,

    /// A key publishers must send as `Authorization: Bearer KEY` to push, drive tasks, disconnect clients and list them; repeat for several (the variable takes a comma-separated list). Without any, anyone may publish.
    #[arg(
        long = "publish-key",
        env = "HERALD_PUBLISH_KEYS",
        value_name = "KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub publish_keys: Vec<Secret>,

    /// Require subscribers (`/sse`, task streams) to present a JWT signed with this HS256 secret: `sub` = the client id, `topics` = topics it may join, `jobs` = tasks it may watch, `exp`.
    #[arg(long, env = "HERALD_SUBSCRIBER_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub subscriber_secret: Option<Secret>,

    /// Like --subscriber-secret, for tokens signed with a public-key algorithm (RS*, PS*, ES256, ES384, EdDSA): the PEM file of the public key. Repeat (or list, comma-separated, in the variable) to accept several keys at once, as when rotating them.
    #[arg(
        long = "subscriber-public-key",
        env = "HERALD_SUBSCRIBER_PUBLIC_KEY",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub subscriber_public_keys: Vec<std::path::PathBuf>,

    /// Like --subscriber-public-key, for every signing key of a JWKS file (an identity provider's jwks_uri document, saved); a token's `kid` picks its key.
    #[arg(long, env = "HERALD_SUBSCRIBER_JWKS", value_name = "FILE")]
    pub subscriber_jwks: Option<std::path::PathBuf>,

    /// Subscriber tokens must name this audience in `aud` (repeat to accept any of several). Without it, `aud` is not checked.
    #[arg(
        long = "subscriber-audience",
        env = "HERALD_SUBSCRIBER_AUDIENCES",
        value_name = "AUD",
        value_delimiter = ','
    )]
    pub subscriber_audiences: Vec<String>,

    /// Subscriber tokens must come from this issuer (`iss`; repeat to accept any of several). Without it, `iss` is not checked.
    #[arg(
        long = "subscriber-issuer",
        env = "HERALD_SUBSCRIBER_ISSUERS",
        value_name = "ISS",
        value_delimiter = ','
    )]
    pub subscriber_issuers: Vec<String>,

    /// Clock skew allowed between a token's minter and this node [default: 5s, for `nbf` only; when set, for `nbf` and `exp`].
    #[arg(long, env = "HERALD_TOKEN_LEEWAY", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub token_leeway: Option<Duration>,

    /// Also accept the subscriber token as a `token` query parameter (for short-lived tokens; Herald never logs it).
    #[arg(long, env = "HERALD_ALLOW_QUERY_TOKEN")]
    pub allow_query_token: bool,

    /// Let pages and publishers on this origin (e.g. https://app.example.com) call the API from a browser, with cookies; repeat for several. `*` allows any origin, without cookies.
    #[arg(long = "cors-origin", env = "HERALD_CORS_ORIGINS", value_name = "ORIGIN", value_delimiter = ',', value_parser = cors_origin)]
    pub cors_origins: Vec<String>,

    /// Event streams this node holds at once; more are refused with 429.
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Event streams one client address may hold at once; more are refused with 429. 0: no limit (the default: behind a proxy or a NAT one address is many people; see --trusted-proxy).
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: u32,

    /// A reverse proxy (address or CIDR, e.g. 10.0.0.0/8 or ::1) whose forwarding header names the client's address, for per-address limits and logs; repeat for several. Without any, the connection's peer is the client.
    #[arg(long = "trusted-proxy", env = "HERALD_TRUSTED_PROXIES", value_name = "CIDR", value_delimiter = ',', value_parser = proxy_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// The header the trusted proxies write the client's address into.
    #[arg(long, env = "HERALD_FORWARDED_HEADER", value_enum, default_value_t = ForwardedHeader::XForwardedFor)]
    pub forwarded_header: ForwardedHeader,

    /// Pushes per second one publisher (publish key, or source address without keys) may send on average; more get 429 with Retry-After.
    #[arg(long, env = "HERALD_PUSH_RATE", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub push_rate: u32,

    /// Pushes one publisher may send in a burst above --push-rate.
    #[arg(long, env = "HERALD_PUSH_BURST", default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub push_burst: u32,

    /// A request's headers must arrive within this long: of connecting, for a connection's first request; of its first byte, for later ones (slowloris).
    #[arg(long, env = "HERALD_HEADER_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub header_timeout: Duration,

    /// A request's body must arrive within this long of its headers (408 otherwise).
    #[arg(long, env = "HERALD_BODY_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub body_timeout: Duration,

    /// A kept-alive connection idle this long between requests is closed (nginx's keepalive_timeout).
    #[arg(long, env = "HERALD_KEEPALIVE_TIMEOUT", default_value = "75s", value_parser = positive_duration)]
    pub keepalive_timeout: Duration,

    /// A peer that takes no data for this long while Herald has some to send is disconnected (dead or stalled peer).
    #[arg(long, env = "HERALD_WRITE_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub write_timeout: Duration,

    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Log filter, in tracing's EnvFilter syntax (e.g. info, herald=debug).
    #[arg(long, env = "HERALD_LOG", default_value = "info")]
    pub log: String,

    /// How log lines are written: text for people, json (one object per line) for log collectors.
    #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve the web app (the page, its assets and POST /jobs/demo) beside the API; off serves the API alone.
    #[arg(long, env = "HERALD_UI", value_enum, default_value_t = Switch::On)]
    pub ui: Switch,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event, for people.
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log collectors.
    Json,
}

/// A setting that is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// Things `herald` does instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print a subscriber token signed with --subscriber-secret, for trying secured mode out (applications mint their own).
    Token(TokenArgs),
}

/// What a token from `herald token` grants.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The client id it is for.
    #[arg(long)]
    pub sub: String,
    /// A topic it may join (repeat for several; * for any).
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// A task it may watch (repeat for several; * for any).
    #[arg(long = "job")]
    pub jobs: Vec<String>,
    /// How long it is valid.
    #[arg(long, default_value = "1h", value_parser = positive_duration)]
    pub ttl: Duration,
}

/// Where to listen when neither `--listen` nor `HERALD_LISTEN` is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

impl Config {
    /// The certificate and key files to serve HTTPS with, if both are given.
    pub fn tls_files(&self) -> Option<crate::net::TlsFiles> {
        Some(crate::net::TlsFiles { cert: self.tls_cert.clone()?, key: self.tls_key.clone()? })
    }

    /// The address to bind: `--listen`, else the address cargo-leptos chose (so `cargo
    /// leptos watch` works unchanged), else [`DEFAULT_LISTEN`].
    pub fn listen_addr(&self) -> SocketAddr {
        let leptos = std::env::var("LEPTOS_SITE_ADDR").ok().and_then(|addr| addr.parse().ok());
        self.listen
            .or(leptos)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().unwrap_or(([127, 0, 0, 1], 3000).into()))
    }

    /// The configuration `herald` runs with when given no arguments (`HERALD_*`
    /// variables still apply).
    pub fn defaults() -> Self {
        Self::parse_from(["herald"])
    }

    /// The hub's share of the settings.
    pub fn hub_options(&self) -> HubOptions {
        HubOptions {
            queue_capacity: self.queue_capacity as usize,
            history: HistoryOptions {
                per_target: self.history as usize,
                ttl: self.history_ttl,
                max_bytes: usize::try_from(self.history_bytes).unwrap_or(usize::MAX),
            },
            drain: DrainOptions {
                // Half the grace at most: the streams must be over before it ends.
                spread: self.drain_spread.min(self.shutdown_grace / 2),
                retry: self.retry,
            },
            jobs: JobOptions {
                ttl: self.job_ttl,
                idle_timeout: self.job_idle_timeout,
                max_jobs: self.max_jobs as usize,
            },
            broker: match (&self.redis_url, &self.redis_master) {
                (None, None) => BrokerOptions::Memory,
                (url, master) => BrokerOptions::Redis(RedisOptions {
                    url: url
                        .clone()
                        .unwrap_or_else(|| "redis://sentinel-names-the-host".to_owned()),
                    ca: self.redis_ca.clone().map(|ca| ca.0),
                    // Sentinel means a failover can happen: by default an acknowledged
                    // push must survive it (docs/reliability.md).
                    min_replicas: usize::from(
                        self.redis_min_replicas.unwrap_or(u8::from(master.is_some())),
                    ),
                    sentinel: master.as_ref().map(|master| SentinelOptions {
                        addresses: self.redis_sentinels.clone(),
                        master: master.clone(),
                        password: self.redis_sentinel_password.clone(),
                    }),
                    prefix: self.redis_prefix.clone(),
                    node_id: self.node_id.clone().unwrap_or_else(|| {
                        uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
                    }),
                    presence_ttl: self.presence_ttl,
                }),
            },
        }
    }

    /// How event streams are framed.
    pub fn stream_options(&self) -> StreamOptions {
        StreamOptions { heartbeat: self.heartbeat, retry: self.retry, expires_in: None }
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be greater than zero".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error} (examples: 15s, 500ms, 2m)")),
    }
}

/// A CIDR (`10.0.0.0/8`), or one address (`127.0.0.1`, `::1`) as a network of one.
fn proxy_network(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| "must be an address or a CIDR, such as 10.0.0.0/8 or ::1".to_owned())
}

/// Checks a Redis URL without ever echoing it: it may hold a password, and clap's
/// own errors quote the rejected value (into a terminal, or an orchestrator's logs).
#[derive(Debug, Clone, Copy)]
struct RedisUrlParser;

impl clap::builder::TypedValueParser for RedisUrlParser {
    type Value = String;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        _argument: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let refuse = |why: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!(
                    "the Redis URL (--redis-url or HERALD_REDIS_URL; not shown, it may hold a \
                     password) is not usable: {why} (example: redis://127.0.0.1:6379/0)\n"
                ),
            )
        };
        let text = value.to_str().ok_or_else(|| refuse("it is not UTF-8"))?;
        match redis::Client::open(text) {
            Ok(_) => Ok(text.to_owned()),
            Err(error) => Err(refuse(error.detail().unwrap_or("it did not parse"))),
        }
    }
}

/// The certificates of a PEM file, read when the settings are parsed so that a
/// missing or wrong file stops the start with a clear error.
#[derive(Debug, Clone)]
pub struct PemCertificates(pub Vec<u8>);

fn pem_certificates(path: &str) -> Result<PemCertificates, String> {
    let pem = std::fs::read(path).map_err(|error| format!("cannot read {path}: {error}"))?;
    let marker: &[u8] = b"-----BEGIN CERTIFICATE-----";
    if pem.windows(marker.len()).any(|window| window == marker) {
        Ok(PemCertificates(pem))
    } else {
        Err(format!("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"))
    }
}

/// `host:port` of a sentinel, as the URL the redis crate takes.
fn sentinel_address(text: &str) -> Result<String, String> {
    let valid = text.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(['/', '@', ' '])
            && port.parse::<u16>().is_ok_and(|port| port > 0)
    });
    if valid {
        Ok(format!("redis://{text}"))
    } else {
        Err("must be HOST:PORT, such as 127.0.0.1:26379".to_owned())
    }
}

/// `*`, or `scheme://host[:port]` with nothing after it: what browsers send as `Origin`.
fn cors_origin(text: &str) -> Result<String, String> {
    let valid = text == "*"
        || text.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.contains(['/', '?', '#', ' '])
        });
    if valid {
        Ok(text.to_owned())
    } else {
        Err("must be * or an origin such as https://app.example.com (no path)".to_owned())
    }
}

/// Key prefixes are written into keys and channel names: keep them to plain words.
fn redis_prefix(text: &str) -> Result<String, String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
    if !text.is_empty() && text.len() <= 64 && text.chars().all(plain) {
        Ok(text.to_owned())
    } else {
        Err("must be 1 to 64 characters of A-Z a-z 0-9 . _ - :".to_owned())
    }
}

fn node_id(text: &str) -> Result<String, String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !text.is_empty() && text.len() <= 64 && text.chars().all(plain) {
        Ok(text.to_owned())
    } else {
        Err("must be 1 to 64 characters of A-Z a-z 0-9 . _ -".to_owned())
    }
}

/// Presence is refreshed every third of the TTL; under a second would mean a write
/// to Redis every few hundred milliseconds per node for little gain.
fn presence_ttl(text: &str) -> Result<Duration, String> {
    let ttl = positive_duration(text)?;
    if ttl < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Config::command().debug_assert();
    }

    #[test]
    fn durations_are_human() {
        let config = Config::parse_from(["herald", "--heartbeat", "500ms", "--job-ttl", "2m"]);
        assert_eq!(config.heartbeat, Duration::from_millis(500));
        assert_eq!(config.job_ttl, Duration::from_secs(120));
        assert!(Config::try_parse_from(["herald", "--heartbeat", "0s"]).is_err());
        assert!(Config::try_parse_from(["herald", "--queue-capacity", "0"]).is_err());
    }
}
