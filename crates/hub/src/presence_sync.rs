//! Keeping every node's [`Presence`] replica of the others current, over the
//! broker's `volley.cluster` channel.
//!
//! Each node publishes its own changes as numbered deltas (every 50 ms when
//! there are any), a heartbeat with its current number every TTL/4, and its
//! whole table, in parts, when another node asks. A receiver that sees a
//! number it did not expect (a delta lost in a broker outage, a node it has
//! never heard of) asks that node for its table; a node it has not heard from
//! for the TTL is forgotten and its users go offline. A restarted node gets a
//! new epoch, so nothing of its previous life lingers. The whole exchange is
//! one broker message per node per interval, never one per key, so it costs
//! the same over Redis, NATS or any broker that carries events.
//!
//! While this node's own broker link is down it hears nobody; that is not
//! the others' fault, so their clocks are held until the link returns.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::fanout::Fanout;
use crate::fanout::{Delivery, Event, Subscriber, SubscriberHandle, Topic};
use crate::presence::{Op, Presence, Remote, SyncUser};

/// How often local changes go out as a delta.
const FLUSH: Duration = Duration::from_millis(50);
/// How often silent nodes are looked for.
const CHECK: Duration = Duration::from_millis(250);
/// A node asks another for its table at most this often.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// A node sends its table at most this often, however many ask.
const SYNC_EVERY: Duration = Duration::from_millis(500);
/// Bytes (about) per part of a table, and operations per delta: one message
/// stays well under NATS's default 1 MiB limit.
const PART: usize = 256 * 1024;
const DELTA_OPS: usize = 4096;
/// Queue between the broker and this task.
const QUEUE: usize = 16_384;

/// What nodes tell each other; `n` is the sender, `e` its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Wire {
    /// A node started with an empty table: forget its previous life, send it yours.
    Hello { n: String, e: u64 },
    /// Changes since the previous delta; `v` counts deltas.
    Delta { n: String, e: u64, v: u64, c: Vec<Op> },
    /// Still here, at delta `v`.
    Beat { n: String, e: u64, v: u64 },
    /// Part `part` of `parts` of the whole table as of delta `v`; `s`
    /// numbers the sends, so parts of two sends never mix.
    Sync {
        n: String,
        e: u64,
        v: u64,
        s: u64,
        part: u32,
        parts: u32,
        u: Vec<SyncUser>,
    },
    /// `n` asks `of` (everyone when absent) for its table.
    Want { n: String, of: Option<String> },
    /// A node stopping cleanly: forget it now rather than after the TTL.
    Bye { n: String, e: u64 },
}

impl Wire {
    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// This node's side of the exchange.
struct Sync {
    hub: Link,
    presence: Arc<Presence>,
    node: String,
    epoch: u64,
    ttl: Duration,
    version: u64,
    sync_due: bool,
    synced_at: Option<Instant>,
    sends: u64,
}

/// What the exchange needs of the node: the broker and the local fan-out
/// its deliveries arrive through (not the whole `Hub`, which starts it).
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) fanout: Arc<Fanout>,
}

impl Link {
    fn unsubscribe(&self, id: crate::fanout::ConnId) {
        if self.fanout.unsubscribe(Topic::Cluster, id) {
            self.broker.interest(Topic::Cluster, false);
        }
    }
}

fn publish(hub: &Link, wire: &Wire) {
    metrics::counter!("volley_presence_sent_total").increment(1);
    hub.broker.publish(Topic::Cluster, Event::control(wire.encode()));
}

fn subscribe(hub: &Link) -> (SubscriberHandle, mpsc::Receiver<Delivery>) {
    let (sub, rx) = Subscriber::new(QUEUE);
    if hub.fanout.subscribe(Topic::Cluster, &sub) {
        hub.broker.interest(Topic::Cluster, true);
    }
    (sub, rx)
}

/// Run the exchange until `leave` is notified: then send what is pending
/// and a goodbye, last, so nothing of this node arrives after it.
pub(crate) async fn run(
    hub: Link,
    presence: Arc<Presence>,
    (node, epoch): (String, u64),
    ttl: Duration,
    leave: Arc<tokio::sync::Notify>,
) {
    let (mut sub, mut rx) = subscribe(&hub);
    let mut me = Sync {
        hub,
        presence,
        node,
        epoch,
        ttl,
        version: 0,
        sync_due: false,
        synced_at: None,
        sends: 0,
    };
    publish(
        &me.hub,
        &Wire::Hello {
            n: me.node.clone(),
            e: me.epoch,
        },
    );
    let mut flush = tokio::time::interval(FLUSH);
    let mut beat = tokio::time::interval((ttl / 4).max(Duration::from_millis(100)));
    let mut check = tokio::time::interval(CHECK);
    for timer in [&mut flush, &mut beat, &mut check] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            delivery = rx.recv() => match delivery {
                Some(Delivery::Control { payload, .. }) => me.receive(&payload),
                Some(Delivery::Frame { .. }) => {}
                None => return,
            },
            () = sub.kicked() => {
                // Fell behind: what was dropped is unknown, so ask everyone.
                me.hub.unsubscribe(sub.id());
                (sub, rx) = subscribe(&me.hub);
                publish(&me.hub, &Wire::Want { n: me.node.clone(), of: None });
            }
            _ = flush.tick() => me.flush(),
            _ = beat.tick() => {
                publish(&me.hub, &Wire::Beat { n: me.node.clone(), e: me.epoch, v: me.version });
            }
            _ = check.tick() => me.expire(),
            () = leave.notified() => {
                me.flush();
                publish(&me.hub, &Wire::Bye { n: me.node.clone(), e: me.epoch });
                me.hub.unsubscribe(sub.id());
                return;
            }
        }
    }
}

impl Sync {
    /// Publish pending local changes, then the table if someone asked. The
    /// messages are taken under the state lock (so the table matches the
    /// deltas' numbering) and encoded and sent after it, by this task alone,
    /// in order.
    fn flush(&mut self) {
        let mut out = Vec::new();
        {
            let mut state = self.presence.state();
            let ops = std::mem::take(&mut state.outbox);
            for chunk in ops.chunks(DELTA_OPS) {
                self.version += 1;
                out.push(Wire::Delta {
                    n: self.node.clone(),
                    e: self.epoch,
                    v: self.version,
                    c: chunk.to_vec(),
                });
            }
            if self.sync_due && self.synced_at.is_none_or(|at| at.elapsed() >= SYNC_EVERY) {
                self.sync_due = false;
                self.synced_at = Some(Instant::now());
                self.sends += 1;
                let parts = state.table(PART);
                let count = parts.len() as u32;
                metrics::counter!("volley_presence_syncs_total").increment(1);
                for (i, users) in parts.into_iter().enumerate() {
                    out.push(Wire::Sync {
                        n: self.node.clone(),
                        e: self.epoch,
                        v: self.version,
                        s: self.sends,
                        part: i as u32,
                        parts: count,
                        u: users,
                    });
                }
            }
        }
        for wire in &out {
            publish(&self.hub, wire);
        }
    }

    /// Forget nodes silent for the TTL; hold everyone's clock while our own link is down.
    fn expire(&mut self) {
        let mut changes = Vec::new();
        {
            let mut state = self.presence.state();
            if !self.hub.broker.connected() {
                let now = Instant::now();
                state.nodes.values_mut().for_each(|r| r.heard = now);
                return;
            }
            for node in state.silent(self.ttl) {
                tracing::info!(%node, ttl = ?self.ttl, "node silent for the presence TTL; its users are offline");
                metrics::counter!("volley_presence_expired_total").increment(1);
                state.forget(&node, &mut changes);
            }
            metrics::gauge!("volley_presence_peers").set(state.nodes.len() as f64);
        }
        self.presence.emit(changes);
    }

    fn receive(&mut self, payload: &[u8]) {
        let Ok(wire) = serde_json::from_slice::<Wire>(payload) else {
            metrics::counter!("volley_broker_foreign_total", "broker" => "cluster").increment(1);
            return;
        };
        let mut changes = Vec::new();
        let mut ask = HashSet::new();
        {
            let mut state = self.presence.state();
            let now = Instant::now();
            match wire {
                Wire::Hello { n, .. } | Wire::Delta { n, .. } | Wire::Beat { n, .. } | Wire::Sync { n, .. }
                    if n == self.node =>
                {
                    return; // our own, back from the broker
                }
                Wire::Want { n, .. } | Wire::Bye { n, .. } if n == self.node => return,
                Wire::Hello { n, e } => {
                    if state.current(&n, e) {
                        state.forget(&n, &mut changes);
                        state.nodes.insert(n, Remote::new(e, true));
                        self.sync_due = true;
                    }
                }
                Wire::Bye { n, e } => {
                    if state.nodes.get(&n).is_some_and(|r| r.epoch == e) {
                        state.forget(&n, &mut changes);
                    }
                    let gone = state.gone.entry(n).or_insert(e);
                    *gone = (*gone).max(e);
                }
                Wire::Want { of, .. } => {
                    if of.is_none() || of.as_deref() == Some(self.node.as_str()) {
                        self.sync_due = true;
                    }
                }
                Wire::Beat { n, e, v } => {
                    let Some(remote) = state.renew(&n, e, &mut changes) else {
                        return;
                    };
                    remote.heard = now;
                    if !remote.synced || remote.version != v {
                        ask.insert(n);
                    }
                }
                Wire::Delta { n, e, v, c } => {
                    let Some(remote) = state.renew(&n, e, &mut changes) else {
                        return;
                    };
                    remote.heard = now;
                    let next = remote.version.saturating_add(1);
                    if !remote.synced || v > next {
                        remote.synced = false;
                        ask.insert(n);
                    } else if v == next {
                        remote.version = v;
                        for op in c {
                            state.apply(&n, op, &mut changes);
                        }
                    }
                }
                Wire::Sync {
                    n,
                    e,
                    v,
                    s,
                    part,
                    parts,
                    u,
                } => {
                    if state.add_part(&n, (e, v, s, part, parts), u, &mut changes) {
                        metrics::counter!("volley_presence_tables_applied_total").increment(1);
                    }
                }
            }
            ask.retain(|n| {
                let Some(remote) = state.nodes.get_mut(n) else {
                    return false;
                };
                if remote.asked.is_some_and(|at| at.elapsed() < ASK_EVERY) {
                    return false;
                }
                remote.asked = Some(now);
                true
            });
        }
        for n in ask {
            publish(
                &self.hub,
                &Wire::Want {
                    n: self.node.clone(),
                    of: Some(n),
                },
            );
        }
        self.presence.emit(changes);
    }
}
