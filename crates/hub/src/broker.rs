//! Publishing events to every node that has subscribers for them.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::watch;

use crate::fanout::{Event, Fanout, Topic};
use crate::model::{RoomId, Seq, UserId};

/// Carries events between nodes.
///
/// `publish` reaches every node with interest in the topic, this one
/// included; each node hands the event to its [`Fanout`]. Per topic, events
/// from one publisher arrive in publish order. The embedded [`MemoryBroker`]
/// has one node; Redis or NATS brokers implement the same trait.
pub trait Broker: Send + Sync + 'static {
    /// Send `event` to every subscriber of `topic` on every node.
    fn publish(&self, topic: Topic, event: Event);
    /// This node gained its first (`true`) or lost its last (`false`) local
    /// subscriber of `topic`.
    fn interest(&self, topic: Topic, on: bool);
    /// Counts the broker's reconnections: each change means events may have
    /// been lost while it was away, so the node checks every room it serves
    /// against the store. `None` for a broker that cannot lose events.
    fn reconnections(&self) -> Option<watch::Receiver<u64>> {
        None
    }
    /// Whether the broker is connected now (for `/health`).
    fn connected(&self) -> bool {
        true
    }
    /// Whether other nodes are on the other side (false for the in-process
    /// broker: there is no cluster to tell about presence).
    fn spans_nodes(&self) -> bool {
        true
    }
}

/// The name of a topic on a broker: `volley.r.{room}` or `volley.u.{user}`
/// (dots suit NATS subjects and are plain characters to Redis).
pub(crate) fn channel(topic: Topic) -> String {
    match topic {
        Topic::Room(RoomId(id)) => format!("volley.r.{id}"),
        Topic::User(UserId(id)) => format!("volley.u.{id}"),
        Topic::Cluster => "volley.cluster".to_owned(),
        Topic::Game => "volley.game".to_owned(),
        Topic::GameNode(node) => format!("volley.gn.{node}"),
    }
}

/// The topic a broker channel names; `None` for a name that is not ours.
pub(crate) fn topic_of(channel: &str) -> Option<Topic> {
    if channel == "volley.cluster" {
        return Some(Topic::Cluster);
    }
    if channel == "volley.game" {
        return Some(Topic::Game);
    }
    if let Some(node) = channel.strip_prefix("volley.gn.") {
        return node.parse().ok().map(Topic::GameNode);
    }
    let rest = channel.strip_prefix("volley.")?;
    let (kind, id) = rest.split_once('.')?;
    let id: i64 = id.parse().ok()?;
    match kind {
        "r" => Some(Topic::Room(RoomId(id))),
        "u" => Some(Topic::User(UserId(id))),
        _ => None,
    }
}

const FLAG_CONTROL: u8 = 1;
const FLAG_SEQ: u8 = 2;

/// An event as bytes between nodes: a flags byte, the room seq (8 bytes,
/// little-endian) when there is one, then the payload as is.
pub(crate) fn encode_event(event: &Event) -> Bytes {
    let mut out = BytesMut::with_capacity(9 + event.payload.len());
    let flags = if event.control { FLAG_CONTROL } else { 0 } | if event.seq.is_some() { FLAG_SEQ } else { 0 };
    out.put_u8(flags);
    if let Some(seq) = event.seq {
        out.put_u64_le(seq.0);
    }
    out.put_slice(&event.payload);
    out.freeze()
}

/// The event in bytes from another node; `None` for bytes that are not one
/// (another program on the same channel): they are dropped and counted.
pub(crate) fn decode_event(mut bytes: Bytes) -> Option<Event> {
    use bytes::Buf;
    if bytes.is_empty() {
        return None;
    }
    let flags = bytes.get_u8();
    if flags & !(FLAG_CONTROL | FLAG_SEQ) != 0 {
        return None;
    }
    let seq = if flags & FLAG_SEQ != 0 {
        if bytes.len() < 8 {
            return None;
        }
        Some(Seq(bytes.get_u64_le()))
    } else {
        None
    };
    Some(Event {
        seq,
        control: flags & FLAG_CONTROL != 0,
        payload: bytes,
    })
}

/// Which of `shards` carries `topic`: jump consistent hashing (Lamping and
/// Veach), so adding a shard moves only 1/n of the topics, and every node
/// computes the same answer with no shared state.
pub(crate) fn shard_of(topic: Topic, shards: usize) -> usize {
    let (tag, id) = match topic {
        Topic::Room(RoomId(id)) => (1u64, id),
        Topic::User(UserId(id)) => (2u64, id),
        Topic::Cluster => (3u64, 0),
        Topic::Game => (4u64, 0),
        Topic::GameNode(node) => (5u64, node as i64),
    };
    // splitmix64 of the id and its kind, then the jump.
    let mut key = (id as u64) ^ tag.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    key = (key ^ (key >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    key = (key ^ (key >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    key ^= key >> 31;
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < shards as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

/// The in-process broker: publishing is delivering to the local fan-out.
#[derive(Debug, Clone)]
pub struct MemoryBroker {
    fanout: Arc<Fanout>,
}

impl MemoryBroker {
    /// A broker for the one node whose table is `fanout`.
    pub fn new(fanout: Arc<Fanout>) -> MemoryBroker {
        MemoryBroker { fanout }
    }
}

impl Broker for MemoryBroker {
    fn publish(&self, topic: Topic, event: Event) {
        self.fanout.deliver(topic, event);
    }

    fn interest(&self, _topic: Topic, _on: bool) {}

    fn spans_nodes(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_between_nodes() {
        let events = [
            Event {
                seq: Some(Seq(u64::MAX)),
                control: false,
                payload: Bytes::from_static(b"{\"type\":\"message\"}"),
            },
            Event::control(Bytes::from_static(b"{}")),
            Event::ephemeral(Bytes::new()),
        ];
        for event in events {
            assert_eq!(decode_event(encode_event(&event)), Some(event));
        }
    }

    #[test]
    fn foreign_bytes_are_not_events() {
        assert_eq!(decode_event(Bytes::new()), None);
        assert_eq!(decode_event(Bytes::from_static(b"\xff")), None, "unknown flags");
        assert_eq!(decode_event(Bytes::from_static(b"\x02\x01\x02")), None, "a cut seq");
    }

    #[test]
    fn channels_name_topics_both_ways() {
        for topic in [
            Topic::Room(RoomId(42)),
            Topic::User(UserId(7)),
            Topic::Cluster,
            Topic::Game,
            Topic::GameNode(u64::MAX),
        ] {
            assert_eq!(topic_of(&channel(topic)), Some(topic));
        }
        assert_eq!(topic_of("volley.x.1"), None);
        assert_eq!(topic_of("other.r.1"), None);
        assert_eq!(topic_of("volley.r.abc"), None);
    }

    #[test]
    fn shards_spread_topics_and_move_few_when_one_is_added() {
        let rooms: Vec<Topic> = (1..=10_000).map(|id| Topic::Room(RoomId(id))).collect();
        let mut counts = [0usize; 4];
        for t in &rooms {
            counts[shard_of(*t, 4)] += 1;
        }
        assert!(counts.iter().all(|&c| (2000..3000).contains(&c)), "{counts:?}");
        let moved = rooms.iter().filter(|t| shard_of(**t, 4) != shard_of(**t, 5)).count();
        assert!((1500..2500).contains(&moved), "about a fifth move: {moved}");
        assert!(rooms.iter().all(|t| shard_of(*t, 1) == 0));
    }
}
