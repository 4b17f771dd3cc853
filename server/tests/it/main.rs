//! Integration tests: each drives a real Herald server on a loopback port over real
//! sockets, and reads its streams with an independent SSE parser (`eventsource-stream`).

mod support;

/// Publish keys.
mod auth;
/// The broker contract, run against the memory and the Redis broker.
mod broker;
/// Several real nodes on one real Redis.
mod cluster;
/// HTTP/1 on the wire: the direct stream path, keep-alive, pipelining, hang-ups.
mod connections;
/// Redis as production runs it: TLS, ACL users, Sentinel failover.
mod deployments;
/// Bad input of every kind gets a clear JSON 4xx.
mod errors;
/// Client addresses behind trusted reverse proxies.
mod forwarded;
/// RFC 9112's refusals and the time limits on every phase of every request.
mod http1;
/// HTTPS and HTTP/2 (over TLS and h2c): streams, pushes, tasks, reloads, GOAWAY.
mod https;
/// Task streams: replay, live progress, the final event, 204 after it.
mod jobs;
/// Limits on streams, pushes, topics and sizes.
mod limits;
/// A Redis that comes back with less than it had: never an id twice, every loss told.
mod lost_writes;
/// Presence and operations endpoints.
mod presence;
/// The reverse-proxy recipes of deploy/ in front of a node.
mod proxies;
/// Pushing to clients, topics and everyone; tabs; form bodies.
mod push;
/// Resume by Last-Event-ID, gaps, operator disconnects.
mod resume;
/// SIGTERM: streams end, the process exits in time.
mod shutdown;
/// A stalled reader is cut off without delaying anyone else.
mod slow;
/// Stream headers and opening bytes.
mod subscribe;
/// `--ui off` and `--log-format json`.
mod switches;
/// Subscriber tokens on client and task streams.
mod tokens;
/// The encoder against an independent parser, for any payload.
mod wire;
