//! `herald-bench`: a load generator for SSE hubs, Herald or nchan, on loopback.
//!
//! It opens N real SSE connections (spread over several 127.0.0.x source addresses so
//! that N can exceed one address's ephemeral ports), parses every stream with an
//! independent SSE parser, and runs one scenario, bounded in time:
//!
//! * `hold N`: server RSS before and after (by PID) -> bytes per idle connection, and
//!   connects per second;
//! * `unicast N M RATE`: M pushes to random single clients at RATE/s; each payload
//!   carries its send time -> delivery latency p50/p99/max, and loss;
//! * `broadcast N B [RATE]`: B broadcasts, back to back or paced -> deliveries per
//!   second, time until a message reached every subscriber (p50/p99), and loss.
//!
//! A cluster (several nodes on one Redis) is measured the same way: give each node's
//! `--addr` and the subscribers are spread over them in turn, with every push going
//! through `--publish-addr`, so that messages cross from node to node.
//!
//! `--tls` speaks TLS to the hub; `--http2` carries the streams over HTTP/2, many on
//! each connection (`--streams-per-connection`), as a browser's tabs or a proxy do.
//!
//! Each run prints one JSON line (for scripts) and a short human summary.

mod measure;
mod scenario;

use herald_bench::transport::{self, Transport};
use herald_bench::{client, target};

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Load generator for SSE hubs (Herald or nchan), on loopback.
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version, about)]
struct Cli {
    /// The hub's address; repeat (or separate by commas) for a cluster's nodes:
    /// subscriber N connects to the (N mod count)-th.
    #[arg(
        long = "addr",
        value_name = "ADDR",
        default_value = "127.0.0.1:3000",
        value_delimiter = ','
    )]
    addrs: Vec<SocketAddr>,
    /// The node every push goes through [default: the first --addr]; need not be one
    /// of the --addr (pushes through node A to subscribers all on node B).
    #[arg(long)]
    publish_addr: Option<SocketAddr>,
    /// Which hub's API to speak.
    #[arg(long, value_enum, default_value = "herald")]
    target: target::Kind,
    /// The hub's process id, to read its memory (RSS) and CPU time from /proc; repeat
    /// (or separate by commas) for a cluster's processes: the figures are their sums.
    #[arg(long = "pid", value_name = "PID", value_delimiter = ',')]
    pids: Vec<u32>,
    /// Source addresses 127.0.NET.1..=127.0.NET.K to spread connections over [default: one per 5 000].
    #[arg(long)]
    sources: Option<u8>,
    /// The NET of the source addresses; give each run its own, so that no run meets the
    /// ports an earlier one left in TIME_WAIT.
    #[arg(long, default_value_t = 0)]
    source_net: u8,
    /// Stop the scenario after this long, whatever happens.
    #[arg(long, default_value = "120s", value_parser = humantime_duration)]
    deadline: Duration,
    /// Speak TLS to the hub (HTTP/1.1 or, with --http2, h2 by ALPN), trusting --tls-ca.
    #[arg(long, requires = "tls_ca")]
    tls: bool,
    /// The CA certificate (PEM) the hub's TLS certificate is signed by.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// Open the streams over HTTP/2, --streams-per-connection on each connection (h2
    /// over TLS, h2c with prior knowledge without); pushes stay on HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    streams_per_connection: u32,
    /// A name for this run in the JSON line.
    #[arg(long, default_value = "")]
    label: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Scenario {
    /// Hold N idle connections: bytes of server memory each, connects per second.
    Hold { connections: usize },
    /// N connections, M pushes to random single clients at RATE per second.
    Unicast { connections: usize, pushes: usize, rate: u32 },
    /// N connections, B broadcasts, back to back or at RATE per second.
    Broadcast { connections: usize, broadcasts: usize, rate: Option<u32> },
}

/// Where the scenario subscribes and publishes, from the command line.
fn setup(cli: &Cli, sources: u8, transport: Transport) -> scenario::Setup {
    let nodes: Vec<target::Target> =
        cli.addrs.iter().map(|addr| target::Target::new(cli.target, *addr)).collect();
    let publish_addr = cli.publish_addr.or_else(|| cli.addrs.first().copied());
    // clap gives --addr a default, so there is always a first; the fallback is its value.
    let publish_addr = publish_addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)));
    scenario::Setup {
        nodes,
        publish: target::Target::new(cli.target, publish_addr),
        sources,
        source_net: cli.source_net,
        pids: cli.pids.clone(),
        deadline: cli.deadline,
        transport,
    }
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| error.to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => eprintln!("herald-bench: open-file limit {limit}"),
        Err(error) => eprintln!("herald-bench: cannot raise the open-file limit: {error}"),
    }
    let connections = match cli.scenario {
        Scenario::Hold { connections }
        | Scenario::Unicast { connections, .. }
        | Scenario::Broadcast { connections, .. } => connections,
    };
    let sources = cli
        .sources
        .unwrap_or_else(|| u8::try_from(connections.div_ceil(5_000)).unwrap_or(u8::MAX).max(1));
    let http2_streams = cli.http2.then_some(cli.streams_per_connection as usize);
    let ca = if cli.tls { cli.tls_ca.as_deref() } else { None };
    let transport = match Transport::new(ca, http2_streams) {
        Ok(transport) => transport,
        Err(error) => {
            eprintln!("herald-bench: cannot set up TLS: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let setup = setup(&cli, sources, transport);
    let run = tokio::time::timeout(cli.deadline + Duration::from_secs(30), async {
        match cli.scenario {
            Scenario::Hold { connections } => scenario::hold(&setup, connections).await,
            Scenario::Unicast { connections, pushes, rate } => {
                scenario::unicast(&setup, connections, pushes, rate).await
            }
            Scenario::Broadcast { connections, broadcasts, rate } => {
                scenario::broadcast(&setup, connections, broadcasts, rate).await
            }
        }
    })
    .await;
    match run {
        Ok(Ok(mut report)) => {
            report.insert("label".into(), cli.label.into());
            report.insert("target".into(), cli.target.name().into());
            report.insert("nodes".into(), setup.nodes.len().into());
            report.insert("tls".into(), setup.transport.is_tls().into());
            report.insert("http2_streams_per_connection".into(), http2_streams.into());
            println!("{}", serde_json::Value::Object(report));
            std::process::ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            eprintln!("herald-bench: {error}");
            std::process::ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("herald-bench: the run did not finish in time");
            std::process::ExitCode::FAILURE
        }
    }
}
