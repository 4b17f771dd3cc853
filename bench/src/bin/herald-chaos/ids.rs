//! Herald's event ids, read as the checker needs them.
//!
//! An id is `EPOCH-SEQ-KIND` (`server/src/hub/types.rs`): EPOCH names a history (with
//! Redis, one per dataset, shared by every node), SEQ orders ids within it and is
//! what a client resumes from, KIND is the message's target kind (`c`, `t`, `b`) or
//! `p` for a position marker. The checker parses ids independently of the server, so
//! a malformed one is a finding, not a crash.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// A parsed event id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId {
    pub epoch: Arc<str>,
    pub seq: u64,
    /// `c`, `t`, `b` or `p`.
    pub kind: char,
}

/// A place in a history: what resuming from an id means, whatever its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub epoch: Arc<str>,
    pub seq: u64,
}

impl EventId {
    /// Parses `text`, or `None` when it is not an id Herald may send.
    pub fn parse(text: &str, epochs: &mut Epochs) -> Option<Self> {
        if text.len() > 64 {
            return None;
        }
        let mut parts = text.split('-');
        let (Some(epoch), Some(seq), Some(kind), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let epoch_ok = !epoch.is_empty()
            && epoch.len() <= 32
            && epoch.bytes().all(|byte| byte.is_ascii_alphanumeric());
        let seq_ok = !seq.is_empty() && seq.bytes().all(|byte| byte.is_ascii_digit());
        let kind = match kind {
            "c" | "t" | "b" | "p" => kind.chars().next()?,
            _ => return None,
        };
        if !epoch_ok || !seq_ok {
            return None;
        }
        Some(Self { epoch: epochs.intern(epoch), seq: seq.parse().ok()?, kind })
    }

    pub fn position(&self) -> Position {
        Position { epoch: self.epoch.clone(), seq: self.seq }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.epoch, self.seq, self.kind)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.seq)
    }
}

/// Interns epochs, so that the millions of ids a long run keeps share a handful of
/// strings.
#[derive(Debug, Default)]
pub struct Epochs(HashSet<Arc<str>>);

impl Epochs {
    pub fn intern(&mut self, epoch: &str) -> Arc<str> {
        if let Some(known) = self.0.get(epoch) {
            return known.clone();
        }
        let epoch: Arc<str> = epoch.into();
        self.0.insert(epoch.clone());
        epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_the_server_writes_them() {
        let mut epochs = Epochs::default();
        let id = EventId::parse("3f9a0c1e-42-c", &mut epochs).unwrap();
        assert_eq!((&*id.epoch, id.seq, id.kind), ("3f9a0c1e", 42, 'c'));
        assert_eq!(id.to_string(), "3f9a0c1e-42-c");
        assert_eq!(EventId::parse("e-0-p", &mut epochs).unwrap().kind, 'p');
        for bad in ["", "e-1", "e-1-c-x", "e-x-c", "e-1-q", "-1-c", "e:1-1-c", "e--c", "e-+1-c"] {
            assert!(EventId::parse(bad, &mut epochs).is_none(), "{bad}");
        }
        let again = EventId::parse("3f9a0c1e-43-b", &mut epochs).unwrap();
        assert!(Arc::ptr_eq(&id.epoch, &again.epoch));
    }
}
