//! The game across nodes: a registry of game nodes and their measured
//! load, kept by heartbeats over the chat's broker, and match hand-offs.
//!
//! Every node publishes, once a second on `volley.game`, what it runs:
//! each match with its people and the cost of its last tick, its
//! simulation threads, whether it is draining. A node not heard from for
//! [`TTL`] has left. The load is measured (tick time), not counted (rooms),
//! because a room of 300 players costs what ten rooms of 10 do.
//!
//! A draining node freezes each match (the simulation stops at a tick
//! boundary), sends the checkpoint to the node with the most headroom on
//! that node's own channel, and waits for its answer. Once the other node
//! runs the match, the connections here are told where it went (`MOVED`,
//! then close 1012) and their players take their seats back there with
//! the resume token they hold. If no node takes a match, it thaws and runs
//! on here until the node stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use volley_hub::{Broker, Delivery, Event, Fanout, Subscriber, Topic, UserId};

use crate::placement::Directory;
pub use crate::placement::{Located, MatchLoad, NodeLoad};
use crate::protocol::MatchId;
use crate::Lobby;

/// How often a node says what it runs.
const BEAT: Duration = Duration::from_secs(1);
/// A node silent this long has left the registry.
pub const TTL: Duration = Duration::from_secs(3);
/// How long a hand-off may take before the next node is asked.
const HANDOFF_WAIT: Duration = Duration::from_secs(3);
/// How long a drain may take in all (systemd's default stop timeout is 90 s).
const DRAIN_DEADLINE: Duration = Duration::from_secs(20);
/// Deliveries queued for the registry task.
const QUEUE: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
enum Wire {
    Beat(NodeLoad),
    Handoff {
        from: String,
        id: u32,
        /// Tells this attempt's answer from a late one to an earlier attempt.
        nonce: u64,
        checkpoint: Vec<u8>,
    },
    Taken {
        id: u32,
        nonce: u64,
        by: String,
        ok: bool,
    },
    /// An answer came too late: the sender gave the match to another node
    /// (or kept it); drop the copy you took.
    Release {
        id: u32,
    },
    /// Keep this periodic checkpoint of one of my matches, in case I die.
    Keep {
        from: String,
        id: u32,
        checkpoint: Vec<u8>,
    },
    /// Another node keeps that match's checkpoints now (or it ended).
    Forget {
        id: u32,
    },
}

/// A checkpoint kept for another node's match.
#[derive(Debug)]
struct Kept {
    from: String,
    at: Instant,
    bytes: Vec<u8>,
}

/// How long after its node vanished a match counts as being recovered
/// (joins for it are asked to wait rather than given a new seat).
const RECOVERY_WINDOW: Duration = Duration::from_secs(10);

impl Wire {
    fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).unwrap_or_default())
    }
}

fn cluster_checkpoint_interval(cluster: &std::sync::Weak<Cluster>) -> Option<Duration> {
    let secs = cluster.upgrade()?.lobby.config().checkpoint_secs;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// A node's channel: its id hashed (FNV-1a), so any id fits a topic.
fn node_topic(node: &str) -> Topic {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Topic::GameNode(h)
}

/// Where a hand-off attempt (match, nonce) hears which node took it (or none).
type Answer = oneshot::Sender<Option<String>>;

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Matches now running elsewhere, with the node that took each.
    pub moved: Vec<(MatchId, String)>,
    /// Matches no node took; they run on here until the node stops.
    pub kept: Vec<MatchId>,
}

/// This node's membership of the game cluster (see the module notes).
pub struct Cluster {
    node: String,
    broker: Arc<dyn Broker>,
    lobby: Arc<Lobby>,
    peers: Mutex<HashMap<String, (Instant, NodeLoad)>>,
    waiting: Mutex<HashMap<(u32, u64), Answer>>,
    /// Every node ever heard from: only their matches are recovered (a
    /// node never heard from is not dead, just unknown).
    seen: Mutex<std::collections::HashSet<String>>,
    /// Matches handed away lately, and where: a resume that comes here in
    /// the second before the new node lists them is sent on, not reseated.
    handed: Mutex<HashMap<u32, (String, Instant)>>,
    /// A checkpoint round is running (it waits on room ticks; heartbeats
    /// must not).
    checkpointing: std::sync::atomic::AtomicBool,
    /// Other nodes' matches this node would take over if they died.
    kept: Mutex<HashMap<u32, Kept>>,
    /// Which node keeps each of this node's matches' checkpoints.
    keepers: Mutex<HashMap<u32, String>>,
    /// Matches whose node vanished, and when.
    orphans: Mutex<HashMap<u32, Instant>>,
    /// When this life of the node began (see [`NodeLoad::life`]).
    life: u64,
    /// When this node joined: until it has heard every node's heartbeat,
    /// a match it does not know of may simply be one it has not heard of.
    started: Instant,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    /// Join the game cluster as `node` over the chat's broker (`link` from
    /// `Hub::link`): heartbeats out, the others' in, hand-offs both ways.
    /// Must be called within a tokio runtime.
    pub fn start(lobby: Arc<Lobby>, node: &str, link: (Arc<dyn Broker>, Arc<Fanout>)) -> Arc<Cluster> {
        let (broker, fanout) = link;
        let cluster = Arc::new(Cluster {
            node: node.to_owned(),
            broker: broker.clone(),
            lobby,
            peers: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            seen: Mutex::new(std::collections::HashSet::new()),
            handed: Mutex::new(HashMap::new()),
            checkpointing: std::sync::atomic::AtomicBool::new(false),
            kept: Mutex::new(HashMap::new()),
            keepers: Mutex::new(HashMap::new()),
            orphans: Mutex::new(HashMap::new()),
            started: Instant::now(),
            life: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        });
        let directory: Arc<dyn Directory> = cluster.clone();
        cluster.lobby.set_cluster(Arc::downgrade(&directory));
        if !node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            tracing::warn!(
                node,
                "this node id has characters a proxy's backend name cannot (letters, digits, - _ . only): \
                 set --node-id so that ?node= routes to it"
            );
        }
        let (sub, mut rx) = Subscriber::new(QUEUE);
        for topic in [Topic::Game, node_topic(node)] {
            if fanout.subscribe(topic, &sub) {
                broker.interest(topic, true);
            }
        }
        let weak = Arc::downgrade(&cluster);
        tokio::spawn(async move {
            // The subscription lives as long as this task.
            let _sub = sub;
            let mut beat = tokio::time::interval(BEAT);
            let every = cluster_checkpoint_interval(&weak);
            let mut checkpoints = tokio::time::interval(every.unwrap_or(Duration::from_secs(3600)));
            checkpoints.tick().await;
            loop {
                tokio::select! {
                    _ = beat.tick() => {
                        let Some(cluster) = weak.upgrade() else { return };
                        cluster.publish(Topic::Game, &Wire::Beat(cluster.own_load()));
                        cluster.expire();
                    }
                    _ = checkpoints.tick(), if every.is_some() => {
                        let Some(cluster) = weak.upgrade() else { return };
                        // On its own task: it waits for each room's next
                        // tick, and heartbeats and hand-offs must not.
                        if !cluster.checkpointing.swap(true, std::sync::atomic::Ordering::AcqRel) {
                            tokio::spawn(async move {
                                cluster.send_checkpoints().await;
                                cluster.checkpointing.store(false, std::sync::atomic::Ordering::Release);
                            });
                        }
                    }
                    delivery = rx.recv() => {
                        let Some(delivery) = delivery else { return };
                        let Some(cluster) = weak.upgrade() else { return };
                        if let Delivery::Control { payload, .. } = delivery {
                            match postcard::from_bytes::<Wire>(&payload) {
                                Ok(wire) => cluster.on_wire(wire),
                                Err(e) => tracing::warn!(error = %e, "unreadable game cluster message"),
                            }
                        }
                    }
                }
            }
        });
        cluster
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn publish(&self, topic: Topic, wire: &Wire) {
        self.broker.publish(topic, Event::control(wire.encode()));
    }

    fn own_load(&self) -> NodeLoad {
        NodeLoad {
            node: self.node.clone(),
            draining: self.lobby.draining(),
            threads: self.lobby.sim_threads() as u32,
            max_rooms: self.lobby.config().max_rooms as u32,
            matches: self.lobby.loads(),
            life: self.life,
        }
    }

    fn on_wire(self: &Arc<Self>, wire: Wire) {
        match wire {
            Wire::Beat(load) => {
                if load.node != self.node {
                    self.settle_duplicates(&load);
                    lock(&self.seen).insert(load.node.clone());
                    let before = lock(&self.peers)
                        .insert(load.node.clone(), (Instant::now(), load.clone()))
                        .map(|(_, l)| l);
                    if let Some(before) = before.filter(|b| b.life != load.life) {
                        self.recover_restarted(&before, &load);
                    }
                }
            }
            Wire::Handoff {
                from,
                id,
                nonce,
                checkpoint,
            } => {
                let ok = self.lobby.adopt(&checkpoint);
                metrics::counter!("volley_game_handoffs_received_total", "result" => if ok { "taken" } else { "refused" })
                    .increment(1);
                self.publish(
                    node_topic(&from),
                    &Wire::Taken {
                        id,
                        nonce,
                        by: self.node.clone(),
                        ok,
                    },
                );
                if ok {
                    // List it now, not at the next beat: resumes look it up.
                    self.publish(Topic::Game, &Wire::Beat(self.own_load()));
                }
            }
            Wire::Taken { id, nonce, by, ok } => {
                let waiter = lock(&self.waiting).remove(&(id, nonce));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(ok.then_some(by));
                    }
                    // Too late: this node moved on; the copy must not run.
                    None if ok => self.publish(node_topic(&by), &Wire::Release { id }),
                    None => {}
                }
            }
            Wire::Release { id } => {
                let lobby = self.lobby.clone();
                tokio::spawn(async move { lobby.discard(MatchId(id)).await });
            }
            Wire::Keep { from, id, checkpoint } => {
                let mut kept = lock(&self.kept);
                // Bounded: one per match, and no more matches than this
                // node could ever run.
                if kept.contains_key(&id) || kept.len() < self.lobby.config().max_rooms * 4 {
                    kept.insert(
                        id,
                        Kept {
                            from,
                            at: Instant::now(),
                            bytes: checkpoint,
                        },
                    );
                }
            }
            Wire::Forget { id } => {
                lock(&self.kept).remove(&id);
            }
        }
    }

    /// Another node lists a match this node runs too (a hand-off answer
    /// that crossed a timeout, a recovery of a node that was only slow):
    /// the copy on the node with the smaller id stays, the other sends its
    /// connections there.
    fn settle_duplicates(self: &Arc<Self>, other: &NodeLoad) {
        let mine = self.lobby.loads();
        for theirs in &other.matches {
            let Some(ours) = mine.iter().find(|m| m.id == theirs.id) else {
                continue;
            };
            // The copy its players are connected to stays (a node that was
            // only cut off kept playing; the copy recovered meanwhile from
            // an older checkpoint has nobody attached); on a tie, the node
            // with the smaller id keeps it. Each node decides alike.
            let give_way = theirs.attached > ours.attached
                || (theirs.attached == ours.attached && other.node.as_str() < self.node.as_str());
            let id = MatchId(ours.id);
            if give_way {
                tracing::warn!(room = %id, other = %other.node, "a match ran on two nodes; this copy gives way");
                metrics::counter!("volley_game_duplicates_settled_total").increment(1);
                let (lobby, node) = (self.lobby.clone(), other.node.clone());
                tokio::spawn(async move { lobby.moved(id, &node).await });
            }
        }
    }

    /// Forget nodes not heard from for [`TTL`]; their matches are orphans,
    /// and those this node has a checkpoint of, it runs from now on.
    fn expire(&self) {
        let gone: Vec<NodeLoad> = {
            let mut peers = lock(&self.peers);
            let dead: Vec<String> = peers
                .iter()
                .filter(|(_, (at, _))| at.elapsed() >= TTL)
                .map(|(n, _)| n.clone())
                .collect();
            dead.iter().filter_map(|n| peers.remove(n).map(|(_, l)| l)).collect()
        };
        let now = Instant::now();
        {
            let mut orphans = lock(&self.orphans);
            for node in &gone {
                tracing::warn!(node = %node.node, matches = node.matches.len(), "game node silent: gone from the registry");
                for m in &node.matches {
                    orphans.insert(m.id, now);
                }
            }
            orphans.retain(|_, at| at.elapsed() < RECOVERY_WINDOW);
        }
        let live: HashMap<String, Vec<u32>> = lock(&self.peers)
            .values()
            .map(|(_, l)| (l.node.clone(), l.matches.iter().map(|m| m.id).collect()))
            .collect();
        let adopt: Vec<(u32, Kept)> = {
            let mut kept = lock(&self.kept);
            let ids: Vec<u32> = kept.keys().copied().collect();
            let mut adopt = Vec::new();
            for id in ids {
                let Some(k) = kept.get(&id) else { continue };
                let known = lock(&self.seen).contains(&k.from);
                match live.get(&k.from) {
                    // Its node lives: keep the latest checkpoint while the
                    // node still runs the match (a fresh one may not be
                    // listed yet), forget it once it no longer does.
                    Some(matches) => {
                        if !matches.contains(&id) && k.at.elapsed() > TTL {
                            kept.remove(&id);
                        }
                    }
                    // Never heard from (a node that only just started, or
                    // another cluster's): not dead, so nothing to recover.
                    None if !known => {}
                    None => {
                        if let Some(k) = kept.remove(&id) {
                            adopt.push((id, k));
                        }
                    }
                }
            }
            adopt
        };
        if !adopt.is_empty() {
            self.resume_kept(adopt, &live);
        }
    }

    /// A node came back as a new life before it was missed (killed and
    /// restarted within the TTL): the matches it ran and no longer lists
    /// died with the old life; those this node keeps checkpoints of, it
    /// runs from now on.
    fn recover_restarted(&self, before: &NodeLoad, load: &NodeLoad) {
        tracing::warn!(node = %load.node, "game node restarted: its old matches are recovered");
        // Until their keeper lists them, a resume for them waits (1013)
        // rather than taking a new seat.
        {
            let now = Instant::now();
            let mut orphans = lock(&self.orphans);
            for m in before
                .matches
                .iter()
                .filter(|m| !load.matches.iter().any(|n| n.id == m.id))
            {
                orphans.insert(m.id, now);
            }
        }
        let lost: Vec<(u32, Kept)> = {
            let mut kept = lock(&self.kept);
            let ids: Vec<u32> = kept
                .iter()
                .filter(|(id, k)| k.from == load.node && !load.matches.iter().any(|m| m.id == **id))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| kept.remove(&id).map(|k| (id, k)))
                .collect()
        };
        let live: HashMap<String, Vec<u32>> = lock(&self.peers)
            .values()
            .map(|(_, l)| (l.node.clone(), l.matches.iter().map(|m| m.id).collect()))
            .collect();
        self.resume_kept(lost, &live);
    }

    /// Run kept checkpoints of matches whose node died, unless another
    /// node lists them already (a hand-off that crossed).
    fn resume_kept(&self, adopt: Vec<(u32, Kept)>, live: &HashMap<String, Vec<u32>>) {
        for (id, k) in adopt {
            if live.values().any(|m| m.contains(&id)) {
                continue;
            }
            let ok = self.lobby.adopt(&k.bytes);
            metrics::counter!("volley_game_recoveries_total", "result" => if ok { "resumed" } else { "refused" })
                .increment(1);
            tracing::warn!(
                room = id,
                from = %k.from,
                age_ms = k.at.elapsed().as_millis() as u64,
                resumed = ok,
                "a dead node's match resumed here from its last checkpoint"
            );
        }
        // Listed now, not at the next beat: resumes look it up.
        self.publish(Topic::Game, &Wire::Beat(self.own_load()));
    }

    /// Send each running match's state to the node that keeps it.
    async fn send_checkpoints(&self) {
        if self.lobby.draining() {
            return;
        }
        for id in self.lobby.loads().into_iter().map(|m| MatchId(m.id)) {
            let Some(checkpoint) = self.lobby.checkpoint(id).await else {
                continue;
            };
            let keeper = {
                let live: Vec<NodeLoad> = self.candidates();
                let mut keepers = lock(&self.keepers);
                let current = keepers
                    .get(&id.0)
                    .filter(|k| live.iter().any(|n| &&n.node == k))
                    .cloned();
                match current {
                    Some(k) => Some(k),
                    None => {
                        let chosen = live.first().map(|n| n.node.clone());
                        if let Some(old) = match &chosen {
                            Some(c) => keepers.insert(id.0, c.clone()),
                            None => keepers.remove(&id.0),
                        } {
                            self.publish(node_topic(&old), &Wire::Forget { id: id.0 });
                        }
                        chosen
                    }
                }
            };
            if let Some(keeper) = keeper {
                metrics::counter!("volley_game_checkpoints_sent_total").increment(1);
                self.publish(
                    node_topic(&keeper),
                    &Wire::Keep {
                        from: self.node.clone(),
                        id: id.0,
                        checkpoint,
                    },
                );
            }
        }
        // Matches that ended or moved: their keepers may forget them.
        let running: Vec<u32> = self.lobby.loads().iter().map(|m| m.id).collect();
        lock(&self.keepers).retain(|id, _| running.contains(id));
    }

    /// Where match `id` runs, as far as this node knows.
    pub fn locate(&self, id: MatchId) -> Located {
        if let Some(node) = self.holder_of(id) {
            return Located::At(node);
        }
        {
            let mut handed = lock(&self.handed);
            handed.retain(|_, (_, at)| at.elapsed() < RECOVERY_WINDOW);
            if let Some((node, _)) = handed.get(&id.0) {
                return Located::At(node.clone());
            }
        }
        if lock(&self.orphans).contains_key(&id.0) {
            return Located::Recovering;
        }
        // Its node is late with its heartbeat: it may be dying.
        let silent = lock(&self.peers)
            .values()
            .any(|(at, l)| at.elapsed() > BEAT * 2 && l.matches.iter().any(|m| m.id == id.0));
        // A node that just started (restarted, perhaps after a kill) has
        // not heard every heartbeat yet: its own old matches may be on their
        // way back from a checkpoint.
        if silent || self.started.elapsed() < TTL {
            Located::Recovering
        } else {
            Located::Unknown
        }
    }

    /// Where the match holding `account`'s seat runs: the match some node
    /// (beating or not) lists it in, located as [`Cluster::locate`] does.
    pub fn locate_account(&self, account: UserId) -> Located {
        let listed = lock(&self.peers).values().find_map(|(_, l)| {
            l.matches
                .iter()
                .find(|m| m.accounts.contains(&account.0))
                .map(|m| MatchId(m.id))
        });
        match listed {
            Some(id) => self.locate(id),
            None => Located::Unknown,
        }
    }

    /// Every node heard from within [`TTL`], this one included, by id.
    pub fn nodes(&self) -> Vec<NodeLoad> {
        let peers = lock(&self.peers);
        let mut all: Vec<NodeLoad> = peers
            .values()
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, l)| l.clone())
            .collect();
        drop(peers);
        all.push(self.own_load());
        all.sort_by(|a, b| a.node.cmp(&b.node));
        all
    }

    /// The other node that reported running match `id` and is beating
    /// (heard from within two heartbeats), if one did.
    pub fn holder_of(&self, id: MatchId) -> Option<String> {
        lock(&self.peers)
            .values()
            .find(|(at, l)| at.elapsed() <= BEAT * 2 && l.matches.iter().any(|m| m.id == id.0))
            .map(|(_, l)| l.node.clone())
    }

    /// Nodes that could take a match, most headroom first.
    fn candidates(&self) -> Vec<NodeLoad> {
        let mut others: Vec<NodeLoad> = self
            .nodes()
            .into_iter()
            .filter(|n| n.node != self.node && n.has_room())
            .collect();
        others.sort_by(|a, b| {
            a.cost()
                .total_cmp(&b.cost())
                .then(a.matches.len().cmp(&b.matches.len()))
        });
        others
    }

    /// Another node running a match with a free place (of `capacity`),
    /// the fullest such match's node: a join goes there before any new
    /// match opens anywhere.
    pub fn node_with_a_place(&self, capacity: usize) -> Option<String> {
        self.nodes()
            .into_iter()
            .filter(|n| n.node != self.node && !n.draining)
            .flat_map(|n| {
                n.matches
                    .iter()
                    .filter(|m| (m.humans as usize) < capacity)
                    .map(|m| (m.humans, n.node.clone()))
                    .collect::<Vec<_>>()
            })
            .max_by_key(|(humans, _)| *humans)
            .map(|(_, node)| node)
    }

    /// Where a new match should open: `None` for here, or the node with
    /// clearly more headroom (a sixtieth of a tick period per thread less
    /// busy, 0.55 ms at 30 Hz: a quiet match costs about 0.1 ms and one of
    /// 16 players 0.4 ms, so noise does not bounce players between nodes,
    /// but a node running a few more matches than the others does).
    pub fn better_node_for_a_new_match(&self) -> Option<String> {
        let own = self.own_load();
        let best = self.candidates().into_iter().next()?;
        let period_micros = 1_000_000.0 / f64::from(self.lobby.config().tick_hz.max(1));
        if !own.has_room() || own.cost() - best.cost() > period_micros / 60.0 {
            Some(best.node)
        } else {
            None
        }
    }

    /// Take no new matches and hand every running one to the other nodes
    /// (see the module notes). Returns what moved where and what stayed.
    pub async fn drain(&self) -> DrainReport {
        self.lobby.set_draining(true);
        // Tell the others at once, so no one hands this node a match.
        self.publish(Topic::Game, &Wire::Beat(self.own_load()));
        let mut report = DrainReport::default();
        let deadline = Instant::now() + DRAIN_DEADLINE;
        // Until nothing is left to try (a match adopted while the drain
        // began is listed by the second pass), or the time is up.
        loop {
            let pending: Vec<MatchId> = self
                .lobby
                .loads()
                .into_iter()
                .map(|m| MatchId(m.id))
                .filter(|id| !report.kept.contains(id))
                .collect();
            if pending.is_empty() {
                break;
            }
            for id in pending {
                if Instant::now() >= deadline {
                    tracing::warn!(room = %id, "drain deadline passed: the match stays and ends with the node");
                    report.kept.push(id);
                    continue;
                }
                match self.hand_off(id).await {
                    Some(node) => report.moved.push((id, node)),
                    None => report.kept.push(id),
                }
            }
        }
        // And once more: the matches that left are no longer listed here.
        self.publish(Topic::Game, &Wire::Beat(self.own_load()));
        tracing::info!(moved = report.moved.len(), kept = report.kept.len(), "game drain done");
        report
    }

    async fn hand_off(&self, id: MatchId) -> Option<String> {
        let started = Instant::now();
        let checkpoint = self.lobby.freeze(id).await?;
        for target in self.candidates() {
            let nonce: u64 = rand::random();
            let (tx, rx) = oneshot::channel();
            lock(&self.waiting).insert((id.0, nonce), tx);
            self.publish(
                node_topic(&target.node),
                &Wire::Handoff {
                    from: self.node.clone(),
                    id: id.0,
                    nonce,
                    checkpoint: checkpoint.clone(),
                },
            );
            let answer = tokio::time::timeout(HANDOFF_WAIT, rx).await;
            lock(&self.waiting).remove(&(id.0, nonce));
            if let Ok(Ok(Some(node))) = answer {
                lock(&self.handed).insert(id.0, (node.clone(), Instant::now()));
                self.lobby.moved(id, &node).await;
                // Its checkpoints' keeper may let them go: a stale copy
                // must not come back when this node stops.
                if let Some(keeper) = lock(&self.keepers).remove(&id.0) {
                    self.publish(node_topic(&keeper), &Wire::Forget { id: id.0 });
                }
                metrics::counter!("volley_game_handoffs_total", "result" => "moved").increment(1);
                metrics::histogram!("volley_game_handoff_seconds").record(started.elapsed().as_secs_f64());
                return Some(node);
            }
            tracing::warn!(room = %id, to = %target.node, "hand-off not taken; trying the next node");
        }
        metrics::counter!("volley_game_handoffs_total", "result" => "kept").increment(1);
        self.lobby.thaw(id).await;
        None
    }
}

impl Directory for Cluster {
    fn node(&self) -> &str {
        Cluster::node(self)
    }

    fn nodes(&self) -> Vec<NodeLoad> {
        Cluster::nodes(self)
    }

    fn locate(&self, id: MatchId) -> Located {
        Cluster::locate(self, id)
    }

    fn locate_account(&self, account: UserId) -> Located {
        Cluster::locate_account(self, account)
    }

    fn node_with_a_place(&self, capacity: usize) -> Option<String> {
        Cluster::node_with_a_place(self, capacity)
    }

    fn better_node_for_a_new_match(&self) -> Option<String> {
        Cluster::better_node_for_a_new_match(self)
    }
}
