//! Publishing events to every node that has subscribers for them.

use std::sync::Arc;

use crate::fanout::{Event, Fanout, Topic};

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
}
