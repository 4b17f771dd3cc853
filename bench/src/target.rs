//! The two hubs' APIs: where a client subscribes, and how a message is published to
//! one client or to everyone.

use std::net::SocketAddr;

/// Which hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Herald: `GET /sse?client_id=ID`, `POST /push` with JSON.
    Herald,
    /// nchan (nginx), configured as in `bench/nchan.conf`: `GET /sub/ID` subscribes
    /// to channel ID and to `broadcast`; `POST /pub/CHANNEL` publishes the body.
    Nchan,
}

impl Kind {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Herald => "herald",
            Self::Nchan => "nchan",
        }
    }
}

/// Who a message is for.
#[derive(Debug, Clone, Copy)]
pub enum Audience {
    /// Client number N (`c{N}`).
    Client(usize),
    /// Everyone.
    Everyone,
}

/// A hub at an address.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
}

impl Target {
    pub fn new(kind: Kind, addr: SocketAddr) -> Self {
        Self { kind, addr }
    }

    /// The path client `n` subscribes to.
    pub fn subscribe_path(&self, n: usize) -> String {
        match self.kind {
            Kind::Herald => format!("/sse?client_id=c{n}"),
            Kind::Nchan => format!("/sub/c{n}"),
        }
    }

    /// The path and body that publish `payload` (a JSON object) to `audience`.
    pub fn publish(&self, audience: Audience, payload: &str) -> (String, String) {
        match (self.kind, audience) {
            (Kind::Herald, Audience::Client(n)) => {
                ("/push".into(), format!(r#"{{"client_id":"c{n}","message":{payload}}}"#))
            }
            (Kind::Herald, Audience::Everyone) => {
                ("/push".into(), format!(r#"{{"broadcast":true,"message":{payload}}}"#))
            }
            (Kind::Nchan, Audience::Client(n)) => (format!("/pub/c{n}"), payload.to_owned()),
            (Kind::Nchan, Audience::Everyone) => ("/pub/broadcast".into(), payload.to_owned()),
        }
    }
}
