//! Herald: a server-push hub for the browser, over Server-Sent Events.
//!
//! Browsers hold `GET /sse?client_id=…` streams open; applications push to one client,
//! a topic or everyone with `POST /push`; long tasks stream their progress on
//! `/jobs/ID/events` and close. One binary serves the hub, its HTTP API and (with the
//! `ssr` feature, on by default) the Leptos web app.
//!
//! # Architecture
//!
//! Imports point one way: [`sse`] (pure wire encoding) ← [`hub`] (connections, fan-out,
//! tasks; no HTTP) ← [`stream`] (a subscription as a response body) ← [`api`] (thin
//! axum handlers) ← `web` / `main`. The hub is usable, tested and benchmarked without
//! axum or Leptos.
//!
//! # Layout
//!
//! - [`config`]: every setting, as flags and `HERALD_*` variables.
//! - [`auth`]: publish keys, compared in constant time.
//! - [`sse`]: event-stream framing that follows the WHATWG parser exactly.
//! - [`hub`]: the registry of connections, publishing, presence, and [`hub::jobs`].
//! - [`stream`]: preamble, frames and heartbeats for one response.
//! - [`api`]: the HTTP endpoints of the contract, and [`error`] for their failures.
//! - [`limits`]: streams per node and per address, pushes per second per publisher.
//! - [`forwarded`]: the client's address behind trusted reverse proxies.
//! - [`metrics`]: counters rendered for Prometheus.
//! - [`net`]: accepting connections and serving HTTP/1.1 on them: request heads held
//!   to RFC 9112, time limits on every phase, a lean writer for event streams.
//! - [`server`]: the router and the serve loop with graceful shutdown.

#![warn(missing_docs, unreachable_pub)]
// Leptos view types (the web app is rendered here) nest deeply in release builds.
#![recursion_limit = "256"]

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod forwarded;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod server;
pub mod sse;
pub mod state;
pub mod stream;
#[cfg(feature = "ssr")]
pub mod web;

pub use config::Config;
pub use hub::Hub;
pub use state::AppState;
