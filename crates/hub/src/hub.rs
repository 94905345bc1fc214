//! The facade handlers use: store, broker, local fan-out and presence together.

use std::sync::Arc;

use crate::broker::{Broker, MemoryBroker};
use crate::fanout::{ConnId, Event, Fanout, SubscriberHandle, Topic};
use crate::model::{RoomId, Seq};
use crate::presence::Presence;
use crate::sequencer::Sequencer;
use crate::store::Store;

/// One node's view of the shared state.
#[derive(Clone)]
pub struct Hub {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    fanout: Arc<Fanout>,
    presence: Arc<Presence>,
    sequencer: Arc<Sequencer>,
    /// This node's name and epoch in the presence exchange, once joined.
    identity: Arc<std::sync::OnceLock<(String, u64)>>,
    /// Stops the presence exchange with a goodbye.
    leave: Arc<tokio::sync::Notify>,
}

/// A number that grows from one life of a node to the next (the clock in
/// nanoseconds), so the others can tell the newer life from a stale one.
fn new_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// How long a message may wait for its predecessor before it is published anyway.
const HOLD: std::time::Duration = std::time::Duration::from_millis(20);
/// How often a held message checks whether its predecessor has been seen.
const WATCH: std::time::Duration = std::time::Duration::from_millis(1);

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    /// A single-node hub: `store` with the in-process broker.
    pub fn embedded(store: Arc<dyn Store>) -> Hub {
        let fanout = Arc::new(Fanout::new());
        let broker = Arc::new(MemoryBroker::new(fanout.clone()));
        Hub::new(store, broker, fanout)
    }

    /// A hub over any broker; `fanout` is the table the broker delivers into.
    pub fn new(store: Arc<dyn Store>, broker: Arc<dyn Broker>, fanout: Arc<Fanout>) -> Hub {
        Hub {
            store,
            broker,
            fanout,
            presence: Arc::new(Presence::new()),
            sequencer: Arc::new(Sequencer::new()),
            identity: Arc::new(std::sync::OnceLock::new()),
            leave: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The durable store.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// Who is online, on this node and (once [`Hub::join_cluster`] ran) on the others.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Share presence with the other nodes on the broker as `node`, forgetting
    /// a node silent for `ttl`. Does nothing on the in-process broker. Must be
    /// called within a tokio runtime, before the first connection.
    pub fn join_cluster(&self, node: &str, ttl: std::time::Duration) {
        if !self.broker.spans_nodes() {
            return;
        }
        let epoch = new_epoch();
        if self.identity.set((node.to_owned(), epoch)).is_err() {
            return; // joined already
        }
        self.presence.state().shared = true;
        let link = crate::presence_sync::Link {
            broker: self.broker.clone(),
            fanout: self.fanout.clone(),
        };
        tokio::spawn(crate::presence_sync::run(
            link,
            self.presence.clone(),
            (node.to_owned(), epoch),
            ttl,
            self.leave.clone(),
        ));
    }

    /// Tell the other nodes this one is stopping, so its users go offline
    /// there now rather than after the presence TTL: the exchange sends what
    /// is pending, then its goodbye, and stops.
    pub fn leave_cluster(&self) {
        self.leave.notify_one();
    }

    /// Local subscribers of a topic.
    pub fn local_subscribers(&self, topic: Topic) -> usize {
        self.fanout.count(topic)
    }

    /// Subscribe a connection, telling the broker when this node first needs the topic.
    pub fn subscribe(&self, topic: Topic, sub: &SubscriberHandle) {
        if self.fanout.subscribe(topic, sub) {
            self.broker.interest(topic, true);
        }
    }

    /// Unsubscribe a connection, telling the broker when this node no longer needs the topic.
    pub fn unsubscribe(&self, topic: Topic, id: ConnId) {
        if self.fanout.unsubscribe(topic, id) {
            self.broker.interest(topic, false);
        }
    }

    /// Publish message `seq` of `room`, after its predecessors (see [`Sequencer`]).
    /// Must be called within a tokio runtime.
    pub fn publish_message(&self, room: RoomId, seq: Seq, event: Event) {
        let (mut ready, held) = self.sequencer.submit(room, seq, event);
        if held {
            // The predecessor may be another node's, already seen here.
            if let Some(seen) = self.fanout.position(room) {
                ready.extend(self.sequencer.observe(room, seen));
            }
        }
        for event in ready {
            self.broker.publish(Topic::Room(room), event);
        }
        if held && self.sequencer.holds(room) {
            let hub = self.clone();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + HOLD;
                // Watch for the predecessor arriving from another node (a
                // millisecond or so) rather than always waiting the hold out.
                while tokio::time::Instant::now() < deadline && hub.sequencer.holds(room) {
                    tokio::time::sleep(WATCH).await;
                    if let Some(seen) = hub.fanout.position(room) {
                        for event in hub.sequencer.observe(room, seen) {
                            hub.broker.publish(Topic::Room(room), event);
                        }
                    }
                }
                for event in hub.sequencer.flush(room) {
                    hub.broker.publish(Topic::Room(room), event);
                }
            });
        }
    }

    /// Publish to every subscriber of `topic` on every node.
    pub fn publish(&self, topic: Topic, event: Event) {
        self.broker.publish(topic, event);
    }

    /// Hand an event to this node's subscribers only (a catch-up from the
    /// store: the other nodes catch up on their own).
    pub fn deliver_local(&self, topic: Topic, event: Event) -> usize {
        self.fanout.deliver(topic, event)
    }

    /// A subscriber has read `room` from the store up to `seq` (see
    /// [`Fanout::note_position`]).
    pub fn note_position(&self, room: RoomId, seq: Seq) {
        self.fanout.note_position(room, seq);
    }

    /// Rooms this node serves and the last seq it handed out in each.
    pub fn served_rooms(&self) -> Vec<(RoomId, Option<Seq>)> {
        self.fanout.served_rooms()
    }

    /// The broker, for its health and reconnections.
    pub fn broker(&self) -> &dyn Broker {
        &*self.broker
    }

    /// The broker and the table it delivers into, for another service of
    /// this node that talks to the other nodes over the same broker (the
    /// game's registry and match hand-offs).
    pub fn link(&self) -> (Arc<dyn Broker>, Arc<Fanout>) {
        (self.broker.clone(), self.fanout.clone())
    }
}
