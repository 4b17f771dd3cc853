//! The `herald` binary: parse the configuration, serve until SIGTERM or Ctrl-C.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use herald::auth::token::{Claims, mint};
use herald::config::{Command, LogFormat, TokenArgs};
use herald::net::Tls;
use herald::{AppState, Config, server};

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let outcome = match &config.command {
        Some(Command::Token(args)) => print_token(&config, args),
        None => run(config).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Not `eprintln!`: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "herald: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `herald token`: prints a subscriber token signed with the configured secret.
fn print_token(config: &Config, args: &TokenArgs) -> Result<(), String> {
    let secret = config.subscriber_secret.as_ref().ok_or(
        "herald token needs --subscriber-secret (or HERALD_SUBSCRIBER_SECRET) to sign with",
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|error| error.to_string())?;
    let claims = Claims {
        sub: args.sub.clone(),
        topics: args.topics.clone(),
        jobs: args.jobs.clone(),
        exp: (now + args.ttl).as_secs(),
    };
    println!("{}", mint(secret, &claims)?);
    Ok(())
}

async fn run(config: Config) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.log)
        .map_err(|error| format!("invalid --log filter: {error}"))?;
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // By default a line that cannot be written is reported with `eprintln!`, which
    // panics when stderr is gone (a log collector that died, `herald | head`): the
    // task that logged would die with it — a connection, or the one that stops the
    // server on SIGTERM. A server with nowhere to log keeps serving.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match config.log_format {
        LogFormat::Text => logs.with_ansi(colour).init(),
        LogFormat::Json => logs.json().init(),
    }
    let addr = config.listen_addr();
    let listener =
        herald::net::bind(addr).map_err(|error| format!("cannot listen on {addr}: {error}"))?;
    let local = listener.local_addr().map_err(|error| error.to_string())?;
    let tls = config.tls_files().map(Tls::load).transpose().map_err(|error| error.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{local}");
    if !local.ip().is_loopback() && config.publish_keys.is_empty() {
        // Subscriber tokens alone do not stop anyone from pushing.
        tracing::warn!(
            "listening on {local}, beyond this machine, with no publish key: anyone who can \
             reach it may push to any client (see --publish-key)"
        );
    }
    let state = AppState::new(config).map_err(|error| error.to_string())?;
    // Served from a worker thread rather than this one: a task spawned on a worker (a
    // connection's, at every accept) starts in that worker's own queue, where one
    // spawned from outside goes through the runtime's shared queue and wakes a worker.
    tokio::spawn(server::serve_with(listener, tls, state, shutdown_signal()))
        .await
        .map_err(|error| format!("the server stopped: {error}"))?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!("cannot listen for SIGTERM: {error}");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
