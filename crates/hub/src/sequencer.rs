//! Publish a room's messages in sequence order.
//!
//! Senders publish after their append returns, and two appends to one room
//! can return to their tasks in either order. Receivers would then see a gap
//! and read the missing message from the store, correct but costly at scale
//! (each of a room's connections does it). The sequencer holds a message that
//! arrives ahead of its predecessor until the predecessor is published, or for
//! a short while at most (a sender that died between append and publish must
//! not stall its room; the receivers' gap fill covers that case).
//!
//! On several nodes a room's messages are appended by every node, so the
//! predecessor of this node's message is often another node's. What the node
//! has seen of the room (its own and other nodes' messages arriving from the
//! broker) is fed in with [`Sequencer::observe`]: a message whose
//! predecessor was seen goes out at once instead of waiting out the hold.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::fanout::Event;
use crate::model::{RoomId, Seq};

#[derive(Debug, Default)]
struct Order {
    /// The next sequence number to publish, once known.
    next: Option<Seq>,
    held: BTreeMap<Seq, Event>,
}

/// Per-room reordering of published messages.
#[derive(Debug, Default)]
pub struct Sequencer {
    rooms: Mutex<HashMap<RoomId, Order>>,
}

/// Most messages held for one room before they go out anyway.
const MAX_HELD: usize = 256;

impl Sequencer {
    /// An empty sequencer.
    pub fn new() -> Sequencer {
        Sequencer::default()
    }

    /// Offer message `seq` of `room`. Returns the events to publish now, in
    /// order, and whether something is held (the caller flushes it later).
    pub fn submit(&self, room: RoomId, seq: Seq, event: Event) -> (Vec<Event>, bool) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let order = rooms.entry(room).or_default();
        let next = *order.next.get_or_insert(seq);
        if seq < next {
            // Late (its successor was already released): receivers de-duplicate.
            return (vec![event], !order.held.is_empty());
        }
        order.held.insert(seq, event);
        let mut ready = Vec::new();
        while let Some((&first, _)) = order.held.first_key_value() {
            let expected = order.next.unwrap_or(first);
            if first != expected && order.held.len() <= MAX_HELD {
                break;
            }
            if let Some(event) = order.held.remove(&first) {
                order.next = Some(first.next());
                ready.push(event);
            }
        }
        (ready, !order.held.is_empty())
    }

    /// Messages up to `seen` of `room` have been published (by any node):
    /// returns what that releases, in order.
    pub fn observe(&self, room: RoomId, seen: Seq) -> Vec<Event> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let Some(order) = rooms.get_mut(&room) else {
            return Vec::new();
        };
        if order.next.is_some_and(|next| next > seen) {
            return Vec::new();
        }
        order.next = Some(seen.next());
        let mut ready = Vec::new();
        while let Some(entry) = order.held.first_entry() {
            if order.next.is_some_and(|next| *entry.key() > next) {
                break;
            }
            let seq = *entry.key();
            ready.push(entry.remove());
            order.next = Some(seq.next().max(order.next.unwrap_or(seq)));
        }
        ready
    }

    /// Whether anything is held for `room`.
    pub fn holds(&self, room: RoomId) -> bool {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.get(&room).is_some_and(|o| !o.held.is_empty())
    }

    /// Release everything held for `room`, in order, skipping the gaps.
    pub fn flush(&self, room: RoomId) -> Vec<Event> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let Some(order) = rooms.get_mut(&room) else {
            return Vec::new();
        };
        let held = std::mem::take(&mut order.held);
        if let Some((&last, _)) = held.last_key_value() {
            order.next = Some(last.next());
        }
        held.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> Event {
        Event {
            seq: Some(Seq(seq)),
            control: false,
            payload: bytes::Bytes::new(),
        }
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events.iter().filter_map(|e| e.seq.map(|s| s.0)).collect()
    }

    #[test]
    fn holds_a_message_until_its_predecessor_arrives() {
        let s = Sequencer::new();
        assert_eq!(seqs(&s.submit(RoomId(1), Seq(1), ev(1)).0), vec![1]);
        let (ready, held) = s.submit(RoomId(1), Seq(3), ev(3));
        assert!(ready.is_empty() && held);
        let (ready, held) = s.submit(RoomId(1), Seq(2), ev(2));
        assert_eq!(seqs(&ready), vec![2, 3]);
        assert!(!held);
    }

    #[test]
    fn flush_releases_past_a_hole() {
        let s = Sequencer::new();
        s.submit(RoomId(7), Seq(10), ev(10));
        s.submit(RoomId(7), Seq(12), ev(12));
        s.submit(RoomId(7), Seq(13), ev(13));
        assert_eq!(seqs(&s.flush(RoomId(7))), vec![12, 13]);
        // 11 shows up late: released at once, receivers de-duplicate.
        assert_eq!(seqs(&s.submit(RoomId(7), Seq(11), ev(11)).0), vec![11]);
        assert_eq!(seqs(&s.submit(RoomId(7), Seq(14), ev(14)).0), vec![14]);
    }

    #[test]
    fn what_other_nodes_published_releases_what_waits_for_it() {
        let s = Sequencer::new();
        let room = RoomId(3);
        assert_eq!(seqs(&s.submit(room, Seq(5), ev(5)).0), vec![5]);
        // 6 and 7 are another node's; ours is 8.
        let (ready, held) = s.submit(room, Seq(8), ev(8));
        assert!(ready.is_empty() && held);
        assert!(s.observe(room, Seq(6)).is_empty(), "7 is still missing");
        assert!(s.holds(room));
        assert_eq!(seqs(&s.observe(room, Seq(7))), vec![8]);
        assert!(!s.holds(room));
        assert!(s.observe(room, Seq(7)).is_empty(), "seeing the past changes nothing");
        assert_eq!(seqs(&s.submit(room, Seq(9), ev(9)).0), vec![9]);
    }
}
