//! What the load generator (`herald-bench`) and the delivery checker under faults
//! (`herald-chaos`) share: an independent SSE parser, raw HTTP subscribers and
//! publishers (HTTP/1.1 or HTTP/2, over TCP or TLS), and the two hubs' APIs. Both programs talk to the hub the way a
//! browser and an application would, through real sockets, so that what they report
//! is what users would see.

pub mod client;
pub mod sse;
pub mod target;
pub mod transport;
