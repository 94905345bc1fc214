//! Node-local fan-out: topic → the connections on this node subscribed to it.
//!
//! An event arrives once per node (from the broker); it is turned into a
//! WebSocket frame once ([`PreparedMessage`]) and the same shared frame is
//! queued to every subscriber. Queues are bounded: a subscriber whose queue is
//! full is kicked (its connection closes with 1013 and resumes from history),
//! so one slow reader never holds back a room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use volley_wire::{Message, PreparedMessage, Utf8Bytes};

use crate::model::{RoomId, Seq, UserId};

/// What a subscription is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Everything said in a room: messages, presence, typing, receipts.
    Room(RoomId),
    /// Events for one user's connections: membership changes.
    User(UserId),
    /// Between nodes themselves: the presence exchange.
    Cluster,
    /// Between game nodes: the registry's heartbeats.
    Game,
    /// To one game node (its id hashed): match hand-offs and their answers.
    GameNode(u64),
}

/// A connection's id on this node.
pub type ConnId = u64;

/// An event as the broker carries it between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The room sequence number for durable messages, for de-duplication.
    pub seq: Option<Seq>,
    /// True for control events addressed to the connection, not its socket.
    pub control: bool,
    /// The JSON text sent to clients (or read by the connection if `control`).
    pub payload: Bytes,
}

impl Event {
    /// An event for clients that is not a stored message (presence, typing, receipts).
    pub fn ephemeral(payload: Bytes) -> Event {
        Event {
            seq: None,
            control: false,
            payload,
        }
    }

    /// A control event for the connections themselves.
    pub fn control(payload: Bytes) -> Event {
        Event {
            seq: None,
            control: true,
            payload,
        }
    }
}

/// What a connection takes out of its queue.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A frame for the socket, shared by every receiver on this node.
    Frame {
        /// The topic it was published on; a room topic means room-level de-duplication applies.
        topic: Topic,
        /// The room seq of a durable message, so the connection can drop replays and fill gaps.
        seq: Option<Seq>,
        /// The encoded WebSocket frame, built once per node and shared by every subscriber.
        frame: Arc<PreparedMessage>,
    },
    /// A control event for the connection itself.
    Control {
        /// The topic it was published on (a user's topic for membership changes).
        topic: Topic,
        /// The control message for the connection to decode; never sent to the socket.
        payload: Bytes,
    },
}

/// One connection's end of the fan-out.
#[derive(Debug)]
pub struct Subscriber {
    id: ConnId,
    tx: mpsc::Sender<Delivery>,
    kicked: AtomicBool,
    kick: Notify,
}

/// Subscribers are shared between the fan-out table and their connection.
pub type SubscriberHandle = Arc<Subscriber>;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

impl Subscriber {
    /// A subscriber whose queue holds at most `capacity` deliveries.
    pub fn new(capacity: usize) -> (SubscriberHandle, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sub = Subscriber {
            id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            tx,
            kicked: AtomicBool::new(false),
            kick: Notify::new(),
        };
        (Arc::new(sub), rx)
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Resolves once the subscriber was kicked for falling behind.
    pub async fn kicked(&self) {
        if self.is_kicked() {
            return;
        }
        self.kick.notified().await;
    }

    /// Whether the subscriber fell behind.
    pub fn is_kicked(&self) -> bool {
        self.kicked.load(Ordering::Acquire)
    }

    /// Queue without waiting; a full queue kicks the subscriber. Returns
    /// whether the delivery was queued.
    pub fn offer(&self, delivery: Delivery) -> bool {
        match self.tx.try_send(delivery) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.kicked.swap(true, Ordering::AcqRel) {
                    metrics::counter!("volley_slow_consumers_total").increment(1);
                    self.kick.notify_one();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The node's subscription table.
#[derive(Debug, Default)]
pub struct Fanout {
    topics: RwLock<HashMap<Topic, Vec<SubscriberHandle>>>,
    /// The highest seq this node has handed out per room it serves: where a
    /// catch-up from the store starts when the broker may have lost events.
    positions: Mutex<HashMap<RoomId, Seq>>,
}

impl Fanout {
    /// An empty table.
    pub fn new() -> Fanout {
        Fanout::default()
    }

    /// Subscribe; returns true when `sub` is the first on this node (the
    /// broker must start carrying the topic here).
    pub fn subscribe(&self, topic: Topic, sub: &SubscriberHandle) -> bool {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let subs = topics.entry(topic).or_default();
        if subs.iter().any(|s| s.id == sub.id) {
            return false;
        }
        subs.push(sub.clone());
        subs.len() == 1
    }

    /// Unsubscribe; returns true when the topic has no subscriber left here.
    pub fn unsubscribe(&self, topic: Topic, id: ConnId) -> bool {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let Some(subs) = topics.get_mut(&topic) else {
            return false;
        };
        let Some(pos) = subs.iter().position(|s| s.id == id) else {
            return false;
        };
        subs.swap_remove(pos);
        if subs.is_empty() {
            topics.remove(&topic);
            if let Topic::Room(room) = topic {
                self.positions().remove(&room);
            }
            return true;
        }
        false
    }

    fn positions(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Seq>> {
        self.positions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A floor for the room's position: what a subscriber has already read
    /// from the store (messages up to it need no catch-up). Never lowers it.
    pub fn note_position(&self, room: RoomId, seq: Seq) {
        let mut positions = self.positions();
        let known = positions.entry(room).or_insert(seq);
        *known = (*known).max(seq);
    }

    /// The last seq of `room` this node has handed out (or noted).
    pub fn position(&self, room: RoomId) -> Option<Seq> {
        self.positions().get(&room).copied()
    }

    /// Rooms with subscribers on this node, and the last seq handed out in
    /// each (`None` before anything is known).
    pub fn served_rooms(&self) -> Vec<(RoomId, Option<Seq>)> {
        let rooms: Vec<RoomId> = {
            let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
            topics
                .keys()
                .filter_map(|t| match t {
                    Topic::Room(r) => Some(*r),
                    Topic::User(_) | Topic::Cluster | Topic::Game | Topic::GameNode(_) => None,
                })
                .collect()
        };
        let positions = self.positions();
        rooms.into_iter().map(|r| (r, positions.get(&r).copied())).collect()
    }

    /// Subscribers of `topic` on this node.
    pub fn count(&self, topic: Topic) -> usize {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.get(&topic).map_or(0, Vec::len)
    }

    /// Hand an event to every local subscriber of `topic`, encoding its frame
    /// once. Returns how many queues took it.
    pub fn deliver(&self, topic: Topic, event: Event) -> usize {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let Some(subs) = topics.get(&topic) else {
            return 0;
        };
        if let (Topic::Room(room), Some(seq)) = (topic, event.seq) {
            self.note_position(room, seq);
        }
        let delivery = if event.control {
            Delivery::Control {
                topic,
                payload: event.payload,
            }
        } else {
            let text = match Utf8Bytes::try_from(event.payload) {
                Ok(text) => text,
                Err(_) => {
                    tracing::error!(?topic, "dropping an event whose payload is not UTF-8");
                    return 0;
                }
            };
            Delivery::Frame {
                topic,
                seq: event.seq,
                frame: Arc::new(PreparedMessage::new(Message::Text(text))),
            }
        };
        let mut queued = 0;
        for sub in subs {
            if sub.offer(delivery.clone()) {
                queued += 1;
            }
        }
        metrics::counter!("volley_deliveries_total").increment(queued as u64);
        queued
    }
}
