//! The bus: the one channel (`Keys::bus`) on which every node hears what it must
//! deliver. Each kind of message is written by one script and read here, by every
//! node, in the order Redis ran the scripts.

use bytes::Bytes;

use crate::hub::fanout::Message;
use crate::hub::types::{ClientId, Epoch, JobId, Position, Target};

/// What travels on the bus.
#[derive(Debug)]
pub(crate) enum BusMessage {
    /// `m {epoch} {seq} {target}\n{frame}` (`publish.lua`): a message to deliver.
    Deliver(Message),
    /// `j {task} {n} {last}\n{frame}` (`jobs/redis/update.lua`, `sweep.lua`): event
    /// `n` of a task; `last` is `1` for the final one, which ends its streams.
    Task { job: JobId, n: u64, last: bool, frame: Bytes },
    /// `k {client}` (`kick.lua`): close this client's streams.
    Kick(ClientId),
}

impl BusMessage {
    /// Reads one bus payload; `None` when it is none of the above.
    pub(crate) fn parse(payload: &[u8]) -> Option<Self> {
        let header_end = payload.iter().position(|&byte| byte == b'\n').unwrap_or(payload.len());
        let header = std::str::from_utf8(&payload[..header_end]).ok()?;
        let mut fields = header.split(' ');
        match fields.next()? {
            "m" => {
                let epoch = Epoch::from_text(fields.next()?)?;
                let seq = fields.next()?.parse().ok()?;
                let target = Target::from_key(fields.next()?)?;
                let frame = Bytes::copy_from_slice(payload.get(header_end + 1..)?);
                Some(Self::Deliver(Message { position: Position { epoch, seq }, target, frame }))
            }
            "j" => Some(Self::Task {
                job: fields.next()?.parse().ok()?,
                n: fields.next()?.parse().ok()?,
                last: fields.next()? == "1",
                frame: Bytes::copy_from_slice(payload.get(header_end + 1..)?),
            }),
            "k" => Some(Self::Kick(fields.next()?.parse().ok()?)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_messages_round_trip() {
        let Some(BusMessage::Deliver(message)) =
            BusMessage::parse(b"m 3f9a0c1e 42 t:news/eu\nid: 3f9a0c1e-42-t\ndata: a\n\n")
        else {
            panic!("not a delivery");
        };
        assert_eq!(message.position.seq, 42);
        assert_eq!(message.target, Target::Topic("news/eu".parse().unwrap()));
        assert_eq!(&message.frame[..], b"id: 3f9a0c1e-42-t\ndata: a\n\n");
        assert!(matches!(BusMessage::parse(b"k tab-1"), Some(BusMessage::Kick(_))));
        let Some(BusMessage::Task { job, n, last, frame }) =
            BusMessage::parse(b"j 0123abcd 7 1\nid: 7\nevent: done\ndata: {}\n\n")
        else {
            panic!("not a task event");
        };
        assert_eq!((job.as_str(), n, last), ("0123abcd", 7, true));
        assert_eq!(&frame[..], b"id: 7\nevent: done\ndata: {}\n\n");
        assert!(BusMessage::parse(b"j ../x 1 0\n").is_none(), "not a task id");
        assert!(BusMessage::parse(b"m bad").is_none());
        assert!(BusMessage::parse(b"x 1").is_none());
    }
}
