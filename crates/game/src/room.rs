//! One room: a world, its viewers (players and spectators), and the tick
//! that advances the world and encodes every viewer's snapshot. A room is
//! owned by one simulation thread; connections talk to it only through its
//! bounded command queue and read from latest-wins slots.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use volley_hub::UserId;

use crate::config::GameConfig;
use crate::placement::Leader;
use crate::protocol::{
    EntityState, ErrorCode, Header, Join, MatchId, PlayerEntry, ServerMsg, SnapshotEncoder, Welcome,
};
use crate::sim::{Input, PlayerId, Vec2, World, FULL_SPEED_DISTANCE};
use crate::view::{quantize, view_rect, ViewIndex};

/// Who decides whether an empty room may close: the lobby's registry, which
/// answers under the lock joins take, so no join lands in a closing room. A
/// trait, so the room does not know the lobby (and tests need no lobby).
pub(crate) trait Closer: Send + Sync {
    /// Close `room` if nobody holds or is taking a place in it; true if closed.
    fn close_if_empty(&self, room: &Arc<Shared>) -> bool;
    /// Signed-in players' best masses in this life (once a second): kept
    /// by the lobby, which outlives rooms, until they are stored.
    fn scored(&self, _best: &[(UserId, u32)]) {}
}

/// A connection's number within its room.
pub(crate) type Key = u64;

/// Inputs one player may have applied per tick; more are dropped.
const MAX_INPUTS_PER_TICK: u32 = 4;
/// Longest steering vector accepted (a pointer beyond any view is a forged one).
const MAX_TARGET: f32 = 4000.0;
/// Entries on the leaderboard.
const LEADERS: usize = 10;

/// What connections send a room.
#[derive(Debug)]
pub(crate) enum Command {
    Join {
        join: Join,
        /// A fresh token for a new player (a resume presents its own in `join`).
        token: [u8; 16],
        /// The signed-in account the seat belongs to.
        account: Option<UserId>,
        /// Only take back a seat (by `join.resume`, or the account's):
        /// no new player if there is none.
        take_back: bool,
        reply: oneshot::Sender<Result<Joined, ErrorCode>>,
    },
    Input {
        key: Key,
        /// The connection's attachment: inputs still in flight from a
        /// connection that a resume replaced are dropped.
        attach: u32,
        seq: u32,
        ack: u32,
        target: (i16, i16),
        buttons: u8,
    },
    Respawn {
        key: Key,
    },
    /// The connection closed: players keep their cells for the grace period.
    Detach {
        key: Key,
        attach: u32,
    },
    /// Stop the clock and answer with the room as bytes (see [`Checkpoint`]):
    /// the first step of handing the match to another node.
    Freeze {
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// The hand-off failed: run on here.
    Thaw,
    /// Answer with the room as bytes and run on: the periodic checkpoint
    /// another node keeps in case this one dies.
    Checkpoint {
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// Another node runs the match now (`Shared::moved` says which): close;
    /// every connection tells its client where the match went.
    Moved,
}

/// What moves with a match: the world exactly as it stands after a tick,
/// and who holds which seat (a player's cells with the token that takes
/// them back). Connections do not move; their players come back within
/// the grace period, as after any reconnect.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    id: u32,
    world: World,
    seats: Vec<(PlayerId, [u8; 16], Option<UserId>)>,
    bots: Vec<PlayerId>,
    bot_names: u32,
}

/// The checkpoint's format version, its first byte. Version 1 had no such
/// byte and no accounts; it is still read, so a rolling upgrade can hand
/// matches from old nodes to new ones.
const CHECKPOINT_VERSION: u8 = 2;

/// A version 1 checkpoint (before players had accounts).
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointV1 {
    id: u32,
    world: World,
    seats: Vec<(PlayerId, [u8; 16])>,
    bots: Vec<PlayerId>,
    bot_names: u32,
}

impl Checkpoint {
    fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        if let Some(rest) = bytes.strip_prefix(&[CHECKPOINT_VERSION]) {
            if let Ok(c) = postcard::from_bytes::<Checkpoint>(rest) {
                return Some(c);
            }
        }
        let v1: CheckpointV1 = postcard::from_bytes(bytes).ok()?;
        Some(Checkpoint {
            id: v1.id,
            world: v1.world,
            seats: v1.seats.into_iter().map(|(p, t)| (p, t, None)).collect(),
            bots: v1.bots,
            bot_names: v1.bot_names,
        })
    }
}

/// A room's answer to a join.
#[derive(Debug)]
pub(crate) struct Joined {
    pub key: Key,
    pub attach: u32,
    pub welcome: Welcome,
    pub snapshots: watch::Receiver<Option<(u32, Bytes)>>,
    pub roster: watch::Receiver<Bytes>,
    pub board: watch::Receiver<Bytes>,
    /// The connection stores the tick of each snapshot it takes, so the room
    /// can count the ones a slow client skipped.
    pub taken: Arc<AtomicU32>,
}

/// The part of a room the lobby and connections hold.
#[derive(Debug)]
pub(crate) struct Shared {
    pub id: MatchId,
    pub commands: mpsc::Sender<Command>,
    /// Places taken by people, including those within their reconnect grace
    /// and joins on their way.
    pub humans: AtomicUsize,
    pub spectators: AtomicUsize,
    pub closed: AtomicBool,
    /// Bytes of frames written to this room's connections.
    pub sent_bytes: AtomicU64,
    /// The node the match moved to, once it has (connections read it when
    /// their room goes away).
    pub moved: OnceLock<String>,
    /// Being handed to another node: takes no joins (the lobby skips it,
    /// and a resume for it is told to come back in a moment).
    pub frozen: AtomicBool,
    /// What a tick costs, in microseconds, averaged over the last second or
    /// so: the load a node reports.
    pub tick_micros: AtomicU64,
    /// Who is in it, for the lobby and the cluster's heartbeat.
    pub people: Mutex<People>,
    /// Connections attached now (players and spectators), each tick.
    pub attached: AtomicUsize,
}

/// The room's people as the lobby sees them (the room thread writes it).
#[derive(Debug, Default)]
pub(crate) struct People {
    /// Accounts holding a seat (also those within their reconnect grace).
    pub accounts: Vec<UserId>,
    /// The heaviest players, as of the last leaderboard (once a second).
    pub leaders: Vec<Leader>,
}

impl Shared {
    pub(crate) fn people(&self) -> MutexGuard<'_, People> {
        self.people.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Viewer {
    player: Option<PlayerId>,
    /// The signed-in account this seat belongs to.
    account: Option<UserId>,
    token: [u8; 16],
    /// The token before the last take-over: presented again, it is a replay,
    /// unless the connection that took the seat over never sent anything
    /// (its welcome may have been lost with it): then it still works once.
    previous: Option<[u8; 16]>,
    /// The current connection has sent an input: its welcome arrived.
    confirmed: bool,
    attach: u32,
    slot: watch::Sender<Option<(u32, Bytes)>>,
    taken: Arc<AtomicU32>,
    published: u32,
    /// Snapshots sent and not yet superseded by an acknowledgement, oldest first.
    ring: VecDeque<(u32, Vec<EntityState>)>,
    acked: u32,
    last_seq: u32,
    inputs_this_tick: u32,
    /// Tick at which the connection went away.
    detached_at: Option<u32>,
}

impl Viewer {
    fn new(
        player: Option<PlayerId>,
        token: [u8; 16],
        slot: watch::Sender<Option<(u32, Bytes)>>,
        taken: Arc<AtomicU32>,
    ) -> Viewer {
        Viewer {
            player,
            account: None,
            token,
            previous: None,
            confirmed: false,
            attach: 1,
            slot,
            taken,
            published: 0,
            ring: VecDeque::new(),
            acked: 0,
            last_seq: 0,
            inputs_this_tick: 0,
            detached_at: None,
        }
    }
}

/// What one tick cost.
#[derive(Debug, Clone, Copy)]
pub struct TickCost {
    /// Commands, the world's step, bot balance and detach expiry.
    pub sim: Duration,
    /// Every viewer's snapshot and the room frames (roster, leaderboard).
    pub encode: Duration,
}

/// Counters a room keeps (flushed into `metrics` each tick).
#[derive(Debug, Default)]
struct Reported {
    humans: f64,
    bots: f64,
    spectators: f64,
    entities: f64,
}

pub(crate) struct Room {
    shared: Arc<Shared>,
    closer: Arc<dyn Closer>,
    config: Arc<GameConfig>,
    world: World,
    commands: mpsc::Receiver<Command>,
    viewers: BTreeMap<Key, Viewer>,
    next_key: Key,
    bots: Vec<PlayerId>,
    bot_names: u32,
    roster_tx: watch::Sender<Bytes>,
    board_tx: watch::Sender<Bytes>,
    roster_dirty: bool,
    /// The tick since which the room has had nobody in it.
    empty_since: Option<u32>,
    scratch: Vec<EntityState>,
    /// Cells and blobs quantized and bucketed once per tick for every viewer.
    index: ViewIndex,
    encoder: SnapshotEncoder,
    frame: Vec<u8>,
    reported: Reported,
    /// Checkpointed for a hand-off: the world must not move on.
    frozen: bool,
    /// Handed off: close at the end of this tick.
    moved: bool,
}

impl Room {
    pub(crate) fn new(id: MatchId, seed: u64, config: Arc<GameConfig>, closer: Arc<dyn Closer>) -> (Room, Arc<Shared>) {
        let (tx, rx) = mpsc::channel(config.command_queue);
        let shared = Arc::new(Shared {
            id,
            commands: tx,
            humans: AtomicUsize::new(0),
            spectators: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            sent_bytes: AtomicU64::new(0),
            moved: OnceLock::new(),
            frozen: AtomicBool::new(false),
            tick_micros: AtomicU64::new(0),
            people: Mutex::new(People::default()),
            attached: AtomicUsize::new(0),
        });
        let world = World::new(config.rules(), seed);
        let mut room = Room {
            frozen: false,
            moved: false,
            shared: shared.clone(),
            closer,
            empty_since: Some(world.tick()),
            world,
            config,
            commands: rx,
            viewers: BTreeMap::new(),
            next_key: 1,
            bots: Vec::new(),
            bot_names: 0,
            roster_tx: watch::channel(Bytes::new()).0,
            board_tx: watch::channel(Bytes::new()).0,
            roster_dirty: true,
            scratch: Vec::new(),
            index: ViewIndex::default(),
            encoder: SnapshotEncoder::default(),
            frame: Vec::new(),
            reported: Reported::default(),
        };
        room.balance_bots();
        room.publish_room_frames(true);
        metrics::gauge!("volley_game_rooms").increment(1.0);
        (room, shared)
    }

    pub(crate) fn id(&self) -> MatchId {
        self.shared.id
    }

    /// Take commands, step the world, send every viewer its snapshot.
    /// Returns what the tick cost, or `None` once the room has closed.
    pub(crate) fn tick(&mut self) -> Option<TickCost> {
        let started = Instant::now();
        self.drain_commands();
        if self.moved {
            self.close();
            return None;
        }
        if self.frozen {
            return Some(TickCost {
                sim: started.elapsed(),
                encode: Duration::ZERO,
            });
        }
        self.world.step();
        let tick = self.world.tick() - 1;
        if tick.is_multiple_of(self.config.tick_hz) {
            self.balance_bots();
        }
        self.expire_detached(tick);
        let simulated = Instant::now();
        self.encode_snapshots(tick);
        self.publish_room_frames(tick.is_multiple_of(self.config.tick_hz));
        let encoded = Instant::now();
        self.report();
        if self.should_close() {
            self.close();
            return None;
        }
        // Smoothed over about a second of ticks: one slow tick (a page
        // fault, a noisy neighbour) must not move matches.
        let cost = (encoded - started).as_micros() as u64;
        let before = self.shared.tick_micros.load(Ordering::Relaxed);
        self.shared.tick_micros.store(
            if before == 0 { cost } else { (before * 15 + cost) / 16 },
            Ordering::Relaxed,
        );
        Some(TickCost {
            sim: simulated - started,
            encode: encoded - simulated,
        })
    }

    /// A restored room that will not run after all (its match runs here
    /// already, or this node is full): undo what `Room::new` counted.
    pub(crate) fn discard(self) {
        metrics::gauge!("volley_game_rooms").decrement(1.0);
    }

    /// The room as it stands, for another node.
    fn checkpoint(&self) -> Vec<u8> {
        let checkpoint = Checkpoint {
            id: self.shared.id.0,
            world: self.world.clone(),
            seats: self
                .viewers
                .values()
                .filter_map(|v| v.player.map(|p| (p, v.token, v.account)))
                .collect(),
            bots: self.bots.clone(),
            bot_names: self.bot_names,
        };
        let mut bytes = vec![CHECKPOINT_VERSION];
        bytes.extend(postcard::to_allocvec(&checkpoint).unwrap_or_default());
        bytes
    }

    /// A room from another node's [`Command::Freeze`] answer: the world
    /// goes on from the tick it stopped at, every seat waits (detached, for
    /// the grace period) for its player to come back with its token.
    /// `None` when the bytes are not a checkpoint or were made under other
    /// rules (nodes of a cluster must share the game settings).
    pub(crate) fn restore(
        bytes: &[u8],
        config: Arc<GameConfig>,
        closer: Arc<dyn Closer>,
    ) -> Option<(Room, Arc<Shared>)> {
        let c = Checkpoint::decode(bytes)?;
        if !c.world.consistent() || *c.world.rules() != config.rules() || c.id == 0 {
            return None;
        }
        let players = c.world.players();
        if !c.seats.iter().all(|(p, _, _)| players.contains_key(p)) || !c.bots.iter().all(|p| players.contains_key(p)) {
            return None;
        }
        let (mut room, shared) = Room::new(MatchId(c.id), 0, config, closer);
        // Room::new placed bots in a fresh world; the checkpoint's replace them.
        let tick = c.world.tick();
        room.world = c.world;
        room.bots = c.bots;
        room.bot_names = c.bot_names;
        for (player, token, account) in c.seats {
            let key = room.next_key;
            room.next_key += 1;
            let mut viewer = Viewer::new(Some(player), token, watch::channel(None).0, Arc::new(AtomicU32::new(0)));
            viewer.detached_at = Some(tick);
            viewer.account = account;
            room.viewers.insert(key, viewer);
            shared.humans.fetch_add(1, Ordering::AcqRel);
        }
        room.empty_since = None;
        room.roster_dirty = true;
        room.sync_accounts();
        room.publish_room_frames(true);
        Some((room, shared))
    }

    fn drain_commands(&mut self) {
        for v in self.viewers.values_mut() {
            v.inputs_this_tick = 0;
        }
        // Bounded per tick, so a burst cannot stall the tick; the rest waits.
        for _ in 0..self.config.command_queue {
            match self.commands.try_recv() {
                Ok(command) => self.handle(command),
                Err(_) => break,
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            // A frozen room takes nobody: the lobby looks elsewhere.
            Command::Join { .. } if self.frozen => {}
            Command::Join {
                join,
                token,
                account,
                take_back,
                reply,
            } => {
                let result = self.join(join, token, account, take_back);
                // If the connection gave up waiting, undo.
                if let Err(Ok(joined)) = reply.send(result) {
                    self.detach(joined.key, joined.attach);
                }
            }
            Command::Input {
                key,
                attach,
                seq,
                ack,
                target,
                buttons,
            } => {
                if let Some(v) = self.viewers.get_mut(&key).filter(|v| v.attach == attach) {
                    v.confirmed = true;
                    self.input(key, seq, ack, target, buttons);
                } else {
                    metrics::counter!("volley_game_inputs_rejected_total", "reason" => "stale").increment(1);
                }
            }
            Command::Respawn { key } => {
                if let Some(player) = self.viewers.get(&key).and_then(|v| v.player) {
                    self.world.spawn(player);
                }
            }
            Command::Detach { key, attach } => self.detach(key, attach),
            Command::Freeze { reply } => {
                self.frozen = true;
                if reply.send(self.checkpoint()).is_err() {
                    self.frozen = false;
                }
            }
            Command::Thaw => {
                self.frozen = false;
                self.shared.frozen.store(false, Ordering::Release);
            }
            Command::Checkpoint { reply } => {
                if !self.frozen {
                    let _ = reply.send(self.checkpoint());
                }
            }
            Command::Moved => self.moved = true,
        }
    }

    /// The accounts seated here, for the lobby (after a seat is taken or given up).
    fn sync_accounts(&self) {
        self.shared.people().accounts = self.viewers.values().filter_map(|v| v.account).collect();
    }

    fn join(
        &mut self,
        join: Join,
        token: [u8; 16],
        account: Option<UserId>,
        take_back: bool,
    ) -> Result<Joined, ErrorCode> {
        let tick_hz = self.config.tick_hz as u8;
        let world_size = self.config.world_size as u16;
        let (snap_tx, snapshots) = watch::channel(None);
        let taken = Arc::new(AtomicU32::new(0));
        // A seat is taken back by its secret, or by the account it belongs
        // to (the account token was the credential).
        // A spectator never takes a seat; a signed-in join takes only its
        // own account's (a guest join may take any seat whose secret it has).
        let held = |v: &Viewer| {
            !join.spectate
                && v.player.is_some()
                && (account.is_none() || v.account == account)
                && match join.resume {
                    Some(resume) => v.token == resume || (v.previous == Some(resume) && !v.confirmed),
                    None => account.is_some(),
                }
        };
        if join.resume.is_some() || take_back || self.viewers.values().any(held) {
            let id = self.shared.id;
            let Some((&key, viewer)) = self.viewers.iter_mut().find(|(_, v)| held(v)) else {
                let replayed = join
                    .resume
                    .is_some_and(|resume| self.viewers.values().any(|v| v.previous == Some(resume)));
                return Err(if replayed {
                    ErrorCode::SeatReplayed
                } else {
                    ErrorCode::ResumeExpired
                });
            };
            let resume = viewer.token;
            if !take_back && join.resume.is_none() {
                // The lobby reserved a place for a new seat; the account
                // took its own back instead.
                self.shared.humans.fetch_sub(1, Ordering::AcqRel);
            }
            // A new secret for every take-over: the one just used (and any
            // seat token holding it) cannot take the seat again.
            let mut fresh = [0u8; 16];
            fresh[..4].copy_from_slice(&id.0.to_le_bytes());
            rand::Rng::fill(&mut rand::rng(), &mut fresh[4..]);
            if join.resume == Some(resume) {
                viewer.previous = Some(resume);
            }
            viewer.token = fresh;
            viewer.confirmed = false;
            // Take over: a new slot (the old connection's receiver sees it
            // closed and ends), a new attachment, full snapshot next.
            viewer.attach += 1;
            viewer.slot = snap_tx;
            viewer.taken = taken.clone();
            viewer.published = 0;
            viewer.ring.clear();
            viewer.acked = 0;
            viewer.detached_at = None;
            // A new connection numbers its inputs from 1 again.
            viewer.last_seq = 0;
            let player = viewer.player.unwrap_or(0);
            return Ok(Joined {
                key,
                attach: viewer.attach,
                welcome: Welcome {
                    player,
                    room: id,
                    token: fresh,
                    tick_hz,
                    world_size,
                    spectator: false,
                    resumed: true,
                },
                snapshots,
                roster: self.roster_tx.subscribe(),
                board: self.board_tx.subscribe(),
                taken,
            });
        }
        let player = if join.spectate {
            None
        } else {
            self.roster_dirty = true;
            Some(self.world.add_player(&join.name, false))
        };
        let key = self.next_key;
        self.next_key += 1;
        let mut viewer = Viewer::new(player, token, snap_tx, taken.clone());
        if player.is_some() && account.is_some() {
            viewer.account = account;
            self.viewers.insert(key, viewer);
            self.sync_accounts();
        } else {
            self.viewers.insert(key, viewer);
        }
        Ok(Joined {
            key,
            attach: 1,
            welcome: Welcome {
                player: player.unwrap_or(0),
                room: self.shared.id,
                token,
                tick_hz,
                world_size,
                spectator: player.is_none(),
                resumed: false,
            },
            snapshots,
            roster: self.roster_tx.subscribe(),
            board: self.board_tx.subscribe(),
            taken,
        })
    }

    fn input(&mut self, key: Key, seq: u32, ack: u32, target: (i16, i16), buttons: u8) {
        let current = self.world.tick() - 1;
        let Some(viewer) = self.viewers.get_mut(&key) else {
            return;
        };
        if ack > viewer.acked && ack <= current {
            viewer.acked = ack;
        }
        let Some(player) = viewer.player else { return };
        if seq <= viewer.last_seq {
            metrics::counter!("volley_game_inputs_rejected_total", "reason" => "stale").increment(1);
            return;
        }
        if viewer.inputs_this_tick >= MAX_INPUTS_PER_TICK {
            metrics::counter!("volley_game_inputs_rejected_total", "reason" => "per_tick").increment(1);
            return;
        }
        let target = Vec2::new(target.0 as f32, target.1 as f32);
        if target.length() > MAX_TARGET {
            metrics::counter!("volley_game_inputs_rejected_total", "reason" => "invalid").increment(1);
            return;
        }
        viewer.inputs_this_tick += 1;
        viewer.last_seq = seq;
        self.world.set_input(
            player,
            Input {
                target,
                split: buttons & crate::protocol::INPUT_FLAG_SPLIT != 0,
                eject: buttons & crate::protocol::INPUT_FLAG_EJECT != 0,
            },
        );
        metrics::counter!("volley_game_inputs_total").increment(1);
    }

    fn detach(&mut self, key: Key, attach: u32) {
        let tick = self.world.tick();
        let Some(viewer) = self.viewers.get_mut(&key) else {
            return;
        };
        if viewer.attach != attach {
            return; // a newer connection took this seat over
        }
        match viewer.player {
            Some(player) => {
                viewer.detached_at = Some(tick);
                // Keep the cells, but stop steering them.
                self.world.set_input(player, Input::default());
            }
            None => {
                self.viewers.remove(&key);
                self.shared.spectators.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    fn expire_detached(&mut self, tick: u32) {
        let grace = self.config.reconnect_grace_secs as u32 * self.config.tick_hz;
        let expired: Vec<Key> = self
            .viewers
            .iter()
            .filter(|(_, v)| v.detached_at.is_some_and(|at| tick.saturating_sub(at) >= grace))
            .map(|(&k, _)| k)
            .collect();
        let mut accounts_left = false;
        for key in expired {
            if let Some(v) = self.viewers.remove(&key) {
                if let Some(player) = v.player {
                    self.world.remove_player(player);
                    self.shared.humans.fetch_sub(1, Ordering::AcqRel);
                    self.roster_dirty = true;
                    accounts_left |= v.account.is_some();
                }
            }
        }
        if accounts_left {
            self.sync_accounts();
        }
    }

    /// Keep `bots_per_room` bots while places are free, fewer as people come.
    fn balance_bots(&mut self) {
        let humans = self.shared.humans.load(Ordering::Acquire);
        let want = self
            .config
            .bots_per_room
            .min(self.config.room_capacity.saturating_sub(humans));
        while self.bots.len() < want {
            self.bot_names += 1;
            let name = format!("bot {}", self.bot_names);
            let id = self.world.add_player(&name, true);
            self.bots.push(id);
            self.roster_dirty = true;
        }
        while self.bots.len() > want {
            if let Some(id) = self.bots.pop() {
                self.world.remove_player(id);
                self.roster_dirty = true;
            }
        }
    }

    fn encode_snapshots(&mut self, tick: u32) {
        let window = self.config.baseline_window;
        let leader = self
            .world
            .leaders(1)
            .first()
            .map(|p| (p.center, crate::sim::view_scale(p.mass)));
        let middle = Vec2::new(self.config.world_size / 2.0, self.config.world_size / 2.0);
        self.index.rebuild(&self.world);
        for viewer in self.viewers.values_mut() {
            if viewer.detached_at.is_some() {
                continue;
            }
            let (center, scale, alive, mass, killer, input_seq) = match viewer.player.and_then(|p| self.world.player(p))
            {
                Some(p) => (
                    p.center,
                    crate::sim::view_scale(p.mass),
                    p.alive,
                    p.mass.round() as u32,
                    p.killed_by.unwrap_or(0),
                    viewer.last_seq,
                ),
                None => {
                    let (center, scale) = leader.unwrap_or((middle, 2.0));
                    (center, scale.max(1.5), false, 0, 0, 0)
                }
            };
            self.index
                .visible(&self.world, &view_rect(center, scale), &mut self.scratch);
            while viewer.ring.front().is_some_and(|(t, _)| *t < viewer.acked) {
                viewer.ring.pop_front();
            }
            let base = viewer
                .ring
                .front()
                .filter(|(t, _)| *t == viewer.acked && viewer.acked > 0);
            let header = Header {
                tick,
                baseline: base.map_or(0, |(t, _)| *t),
                input_seq,
                alive,
                spectator: viewer.player.is_none(),
                mass,
                killer,
                view_x: quantize(center.x),
                view_y: quantize(center.y),
                view_scale: (scale * 100.0).round() as u16,
            };
            self.frame.clear();
            self.encoder
                .encode(&mut self.frame, &header, base.map_or(&[], |(_, s)| s), &self.scratch);
            let frame = Bytes::copy_from_slice(&self.frame);
            if viewer.published != 0 && viewer.taken.load(Ordering::Acquire) != viewer.published {
                metrics::counter!("volley_game_snapshots_skipped_total").increment(1);
            }
            viewer.slot.send_replace(Some((tick, frame)));
            viewer.published = tick;
            // Keep what was sent as a future baseline, reusing the oldest buffer.
            let mut kept = if viewer.ring.len() >= window {
                viewer.ring.pop_front().map(|(_, v)| v).unwrap_or_default()
            } else {
                Vec::new()
            };
            kept.clear();
            kept.extend_from_slice(&self.scratch);
            viewer.ring.push_back((tick, kept));
        }
    }

    /// Roster when it changed (at most every few ticks), leaderboard once a
    /// second: one frame per room, shared by every connection.
    fn publish_room_frames(&mut self, leaderboard: bool) {
        let signed_in = |id: PlayerId| {
            self.viewers
                .values()
                .find(|v| v.player == Some(id))
                .and_then(|v| v.account)
        };
        if self.roster_dirty && (leaderboard || self.world.tick().is_multiple_of(5)) {
            self.roster_dirty = false;
            let list = self
                .world
                .players()
                .values()
                .map(|p| PlayerEntry {
                    id: p.id,
                    name: p.name.clone(),
                    bot: p.brain.is_some(),
                    account: signed_in(p.id).is_some(),
                })
                .collect();
            self.roster_tx
                .send_replace(Bytes::from(ServerMsg::Roster(list).encode()));
        }
        if leaderboard {
            let leaders = self.world.leaders(LEADERS);
            self.shared.people().leaders = leaders
                .iter()
                .map(|p| Leader {
                    name: p.name.clone(),
                    account: signed_in(p.id).is_some(),
                    mass: p.mass.round() as u32,
                })
                .collect();
            let best: Vec<(UserId, u32)> = self
                .viewers
                .values()
                .filter_map(|v| {
                    let player = self.world.player(v.player?)?;
                    Some((v.account?, player.peak_mass.round() as u32))
                })
                .collect();
            if !best.is_empty() {
                self.closer.scored(&best);
            }
            let list = leaders.iter().map(|p| (p.id, p.mass.round() as u32)).collect();
            self.board_tx
                .send_replace(Bytes::from(ServerMsg::Leaderboard(list).encode()));
        }
    }

    fn report(&mut self) {
        let attached = self.viewers.values().filter(|v| v.detached_at.is_none()).count();
        self.shared.attached.store(attached, Ordering::Relaxed);
        let humans = self.viewers.values().filter(|v| v.player.is_some()).count() as f64;
        let spectators = self.viewers.values().filter(|v| v.player.is_none()).count() as f64;
        let bots = self.bots.len() as f64;
        let entities = (self.world.cells().len() + self.world.blobs().len() + self.world.pellet_count()) as f64;
        let r = &mut self.reported;
        metrics::gauge!("volley_game_players", "kind" => "human").increment(humans - r.humans);
        metrics::gauge!("volley_game_players", "kind" => "bot").increment(bots - r.bots);
        metrics::gauge!("volley_game_players", "kind" => "spectator").increment(spectators - r.spectators);
        metrics::gauge!("volley_game_entities").increment(entities - r.entities);
        *r = Reported {
            humans,
            bots,
            spectators,
            entities,
        };
    }

    fn should_close(&mut self) -> bool {
        let empty = self.shared.humans.load(Ordering::Acquire) == 0
            && self.shared.spectators.load(Ordering::Acquire) == 0
            && self.viewers.is_empty();
        if !empty {
            self.empty_since = None;
            return false;
        }
        // Counted in ticks, not wall time: an overloaded room that skips
        // ticks waits longer, and tests drive it without a clock.
        let now = self.world.tick();
        let since = *self.empty_since.get_or_insert(now);
        let wait = self
            .config
            .empty_room_secs
            .saturating_mul(u64::from(self.config.tick_hz));
        u64::from(now.saturating_sub(since)) >= wait && self.closer.close_if_empty(&self.shared)
    }

    fn close(&mut self) {
        let r = std::mem::take(&mut self.reported);
        metrics::gauge!("volley_game_players", "kind" => "human").decrement(r.humans);
        metrics::gauge!("volley_game_players", "kind" => "bot").decrement(r.bots);
        metrics::gauge!("volley_game_players", "kind" => "spectator").decrement(r.spectators);
        metrics::gauge!("volley_game_entities").decrement(r.entities);
        metrics::gauge!("volley_game_rooms").decrement(1.0);
        match self.shared.moved.get() {
            Some(node) => tracing::info!(room = %self.shared.id, to = %node, "room closed: the match moved"),
            None => tracing::info!(room = %self.shared.id, "room closed after staying empty"),
        }
    }
}

/// A closer for rooms that run alone (the tick benchmark): they never close.
struct NeverClose;

impl Closer for NeverClose {
    fn close_if_empty(&self, _room: &Arc<Shared>) -> bool {
        false
    }
}

/// Full steering towards a point, as the browser sends it (for bots over
/// the wire and tests).
pub fn steer(from: Vec2, to: Vec2) -> (i16, i16) {
    let d = (to - from).normalized() * FULL_SPEED_DISTANCE;
    (d.x as i16, d.y as i16)
}

/// A room driven directly, without sockets or threads: what one tick costs
/// (simulation plus every player's snapshot) for a given number of players.
/// Every player is a server bot with a viewer attached that acknowledges
/// each snapshot one tick later, like a client on a fast network.
pub struct TickBench {
    room: Room,
}

impl std::fmt::Debug for TickBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickBench")
            .field("tick", &self.room.world.tick())
            .field("viewers", &self.room.viewers.len())
            .finish()
    }
}

impl TickBench {
    /// A room of `players` bot-steered players with viewers (the room's own
    /// bots are turned off), seeded so runs repeat.
    pub fn new(mut config: GameConfig, players: usize, seed: u64) -> TickBench {
        config.bots_per_room = 0;
        let (mut room, _shared) = Room::new(MatchId(0), seed, Arc::new(config), Arc::new(NeverClose));
        for n in 0..players {
            let player = room.world.add_player(&format!("p{n}"), true);
            let key = room.next_key;
            room.next_key += 1;
            let viewer = Viewer::new(Some(player), [0; 16], watch::channel(None).0, Arc::default());
            room.viewers.insert(key, viewer);
        }
        TickBench { room }
    }

    /// Run one tick; returns its cost and the snapshot bytes it produced.
    pub fn tick(&mut self) -> (TickCost, usize) {
        let room = &mut self.room;
        for v in room.viewers.values_mut() {
            v.acked = v.published;
            v.taken.store(v.published, Ordering::Release);
        }
        let cost = room.tick().unwrap_or(TickCost {
            sim: Duration::ZERO,
            encode: Duration::ZERO,
        });
        let bytes = room
            .viewers
            .values()
            .map(|v| v.slot.borrow().as_ref().map_or(0, |(_, f)| f.len()))
            .sum();
        (cost, bytes)
    }

    /// The room's world, to read what the ticks did.
    pub fn world(&self) -> &World {
        &self.room.world
    }
}

/// The room driven tick by tick, as its simulation thread drives it, with
/// no sockets, threads or clock: commands go in through its queue, answers
/// come back on the oneshot and the latest-wins slots.
#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::protocol::Snapshot;

    /// Counts close requests and allows them.
    #[derive(Default)]
    struct Closes(AtomicUsize);

    impl Closer for Closes {
        fn close_if_empty(&self, room: &Arc<Shared>) -> bool {
            self.0.fetch_add(1, Ordering::AcqRel);
            room.closed.store(true, Ordering::Release);
            true
        }
    }

    fn config() -> GameConfig {
        GameConfig {
            tick_hz: 10,
            bots_per_room: 0,
            pellets: 50,
            world_size: 1000.0,
            reconnect_grace_secs: 2,
            empty_room_secs: 3,
            ..GameConfig::default()
        }
    }

    fn room(config: GameConfig) -> (Room, Arc<Shared>, Arc<Closes>) {
        let closes = Arc::new(Closes::default());
        let (room, shared) = Room::new(MatchId(1), 7, Arc::new(config), closes.clone());
        (room, shared, closes)
    }

    /// Seat someone the way the lobby does (reserve a place, send the join,
    /// wait for the tick that answers it).
    fn join(room: &mut Room, shared: &Shared, name: &str, resume: Option<[u8; 16]>) -> Result<Joined, ErrorCode> {
        join_as(room, shared, name, resume, None, resume.is_some())
    }

    fn join_as(
        room: &mut Room,
        shared: &Shared,
        name: &str,
        resume: Option<[u8; 16]>,
        account: Option<UserId>,
        take_back: bool,
    ) -> Result<Joined, ErrorCode> {
        if !take_back {
            shared.humans.fetch_add(1, Ordering::AcqRel);
        }
        let (reply, mut answer) = oneshot::channel();
        let join = Join {
            name: name.into(),
            spectate: false,
            resume,
            seat: None,
            account: None,
        };
        let token = [name.len() as u8; 16];
        let command = Command::Join {
            join,
            token,
            account,
            take_back,
            reply,
        };
        shared.commands.try_send(command).unwrap();
        room.tick().unwrap();
        answer.try_recv().unwrap()
    }

    fn input(shared: &Shared, key: Key, seq: u32, ack: u32, target: (i16, i16)) {
        let command = Command::Input {
            key,
            attach: 1,
            seq,
            ack,
            target,
            buttons: 0,
        };
        shared.commands.try_send(command).unwrap();
    }

    fn latest(joined: &Joined) -> Snapshot {
        let slot = joined.snapshots.borrow();
        let (_, frame) = slot.as_ref().expect("a snapshot was published");
        Snapshot::decode(frame).unwrap()
    }

    #[test]
    fn a_join_is_answered_by_the_next_tick_with_a_full_snapshot() {
        let (mut room, shared, _) = room(config());
        let joined = join(&mut room, &shared, "ann", None).unwrap();
        assert_ne!(joined.welcome.player, 0);
        assert_eq!(joined.welcome.room, MatchId(1));
        assert_eq!(joined.welcome.tick_hz, 10);
        assert!(!joined.welcome.resumed && !joined.welcome.spectator);
        let snapshot = latest(&joined);
        assert_eq!(snapshot.header.baseline, 0, "the first snapshot is full");
        assert!(snapshot.header.alive);
        assert!(!snapshot.created.is_empty(), "the player sees at least its own cell");
    }

    #[test]
    fn an_acknowledged_snapshot_becomes_the_next_baseline() {
        let (mut room, shared, _) = room(config());
        let joined = join(&mut room, &shared, "ann", None).unwrap();
        let first = latest(&joined).header.tick;
        input(&shared, joined.key, 1, first, (0, 0));
        room.tick().unwrap();
        let next = latest(&joined);
        assert_eq!(
            next.header.baseline, first,
            "a delta against what the client acknowledged"
        );
        // An acknowledgement of a tick not yet sent is ignored: no baseline
        // the client cannot have.
        input(&shared, joined.key, 2, next.header.tick + 100, (0, 0));
        room.tick().unwrap();
        assert_eq!(latest(&joined).header.baseline, first);
    }

    #[test]
    fn steering_moves_the_cell_toward_the_target() {
        let (mut room, shared, _) = room(config());
        let joined = join(&mut room, &shared, "ann", None).unwrap();
        let player = joined.welcome.player;
        let start = room.world.player(player).unwrap().center;
        // Toward the middle of the world, whichever side the cell spawned on.
        let toward = if start.x < 500.0 { 200 } else { -200 };
        input(&shared, joined.key, 1, 0, (toward, 0));
        for _ in 0..10 {
            room.tick().unwrap();
        }
        let now = room.world.player(player).unwrap().center;
        assert!((now.x - start.x) * f32::from(toward) > 0.0, "{start:?} -> {now:?}");
        assert_eq!(
            latest(&joined).header.input_seq,
            1,
            "the snapshot names the input applied"
        );
    }

    #[test]
    fn stale_excess_and_forged_inputs_are_dropped() {
        let (mut room, shared, _) = room(config());
        let joined = join(&mut room, &shared, "ann", None).unwrap();
        let key = joined.key;
        for seq in 1..=6 {
            input(&shared, key, seq, 0, (10, 0));
        }
        room.tick().unwrap();
        assert_eq!(
            room.viewers[&key].last_seq, MAX_INPUTS_PER_TICK,
            "at most four inputs a tick"
        );
        input(&shared, key, 2, 0, (10, 0));
        room.tick().unwrap();
        assert_eq!(room.viewers[&key].last_seq, 4, "an older sequence number is stale");
        input(&shared, key, 9, 0, (i16::MAX, i16::MAX));
        room.tick().unwrap();
        assert_eq!(room.viewers[&key].last_seq, 4, "a pointer beyond any view is forged");
        input(&shared, key, 9, 0, (100, 100));
        room.tick().unwrap();
        assert_eq!(room.viewers[&key].last_seq, 9);
    }

    #[test]
    fn a_detached_player_keeps_its_seat_for_the_grace_then_leaves() {
        let (mut room, shared, _) = room(config());
        let joined = join(&mut room, &shared, "ann", None).unwrap();
        let player = joined.welcome.player;
        let command = Command::Detach {
            key: joined.key,
            attach: joined.attach,
        };
        shared.commands.try_send(command).unwrap();
        // Grace: 2 s at 10 Hz, counted in ticks.
        for _ in 0..19 {
            room.tick().unwrap();
        }
        assert!(room.world.player(player).is_some(), "cells stay during the grace");
        assert_eq!(shared.humans.load(Ordering::Acquire), 1);
        room.tick().unwrap();
        room.tick().unwrap();
        assert!(room.world.player(player).is_none(), "gone after the grace");
        assert_eq!(shared.humans.load(Ordering::Acquire), 0, "the place is free again");
    }

    #[test]
    fn the_token_takes_the_seat_back_and_a_wrong_one_is_refused() {
        let (mut room, shared, _) = room(config());
        let first = join(&mut room, &shared, "ann", None).unwrap();
        let command = Command::Detach {
            key: first.key,
            attach: first.attach,
        };
        shared.commands.try_send(command).unwrap();
        room.tick().unwrap();
        let again = join(&mut room, &shared, "ann", Some(first.welcome.token)).unwrap();
        assert!(again.welcome.resumed);
        assert_eq!(again.welcome.player, first.welcome.player, "same cell, same score");
        assert_eq!(again.key, first.key);
        assert_eq!(again.attach, first.attach + 1);
        // The old connection's late detach must not evict the new one.
        let stale = Command::Detach {
            key: first.key,
            attach: first.attach,
        };
        shared.commands.try_send(stale).unwrap();
        room.tick().unwrap();
        assert!(room.viewers[&first.key].detached_at.is_none());
        let forged = join(&mut room, &shared, "ann", Some([9; 16]));
        assert_eq!(forged.err(), Some(ErrorCode::ResumeExpired));
    }

    #[test]
    fn an_empty_room_closes_after_its_wait_counted_in_ticks() {
        let (mut room, _shared, closes) = room(config());
        // 3 s at 10 Hz: 30 ticks from the room's opening.
        for _ in 0..29 {
            assert!(room.tick().is_some());
        }
        assert_eq!(closes.0.load(Ordering::Acquire), 0);
        assert!(room.tick().is_none(), "closed on the 30th tick");
        assert_eq!(closes.0.load(Ordering::Acquire), 1);
    }

    #[test]
    fn a_room_that_empties_waits_again_from_when_it_emptied() {
        let (mut room, shared, closes) = room(config());
        let joined = join(&mut room, &shared, "ann", None).unwrap();
        for _ in 0..50 {
            room.tick().unwrap();
        }
        // She leaves for good: detached, then the grace (2 s: 20 ticks after the
        // tick that took the detach) expires.
        let command = Command::Detach {
            key: joined.key,
            attach: joined.attach,
        };
        shared.commands.try_send(command).unwrap();
        for _ in 0..21 {
            room.tick().unwrap();
        }
        assert_eq!(shared.humans.load(Ordering::Acquire), 0);
        // Empty from here: 30 ticks more (not counted from the room's opening).
        for _ in 0..29 {
            assert!(room.tick().is_some());
        }
        assert_eq!(closes.0.load(Ordering::Acquire), 0);
        assert!(room.tick().is_none());
    }

    #[test]
    fn a_room_with_someone_in_it_stays_open() {
        let (mut room, shared, closes) = room(config());
        let _joined = join(&mut room, &shared, "ann", None).unwrap();
        for _ in 0..100 {
            assert!(room.tick().is_some());
        }
        assert_eq!(closes.0.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_account_s_seat_is_its_own_here_and_after_a_move() {
        let (mut room, shared, _) = room(config());
        let ada = Some(UserId(7));
        let first = join_as(&mut room, &shared, "ada", None, ada, false).unwrap();
        assert!(!first.welcome.resumed);
        assert_eq!(shared.people().accounts, vec![UserId(7)]);
        // Signing in again (the lobby reserved a place for a new seat):
        // the same player, and the place is given back.
        let again = join_as(&mut room, &shared, "ada", None, ada, false).unwrap();
        assert!(again.welcome.resumed);
        assert_eq!(again.welcome.player, first.welcome.player);
        assert_ne!(again.welcome.token, first.welcome.token, "a fresh secret");
        assert_eq!(shared.humans.load(Ordering::Acquire), 1);
        // Another account gets its own seat; a take-back for an account
        // with none here is refused rather than seated.
        let bob = join_as(&mut room, &shared, "bob", None, Some(UserId(8)), false).unwrap();
        assert_ne!(bob.welcome.player, first.welcome.player);
        assert_eq!(
            join_as(&mut room, &shared, "cy", None, Some(UserId(9)), true).err(),
            Some(ErrorCode::ResumeExpired)
        );
        // The seat moves with the match: restored elsewhere, the account
        // takes it back with no secret at all.
        let (tx, rx) = oneshot::channel();
        shared.commands.try_send(Command::Freeze { reply: tx }).unwrap();
        room.tick().unwrap();
        let bytes = rx.blocking_recv().unwrap();
        let closes = Arc::new(Closes::default());
        let (mut moved, moved_shared) = Room::restore(&bytes, Arc::new(config()), closes).unwrap();
        let mut accounts = moved_shared.people().accounts.clone();
        accounts.sort();
        assert_eq!(accounts, vec![UserId(7), UserId(8)]);
        let back = join_as(&mut moved, &moved_shared, "ada", None, ada, true).unwrap();
        assert!(back.welcome.resumed);
        assert_eq!(back.welcome.player, first.welcome.player);
    }

    #[test]
    fn a_checkpoint_of_the_format_before_accounts_is_still_restored() {
        let (mut room, shared, _) = room(config());
        let ann = join(&mut room, &shared, "ann", None).unwrap();
        room.tick().unwrap();
        let current = Checkpoint::decode(&room.checkpoint()).unwrap();
        let old = CheckpointV1 {
            id: current.id,
            world: current.world,
            seats: current.seats.iter().map(|(p, t, _)| (*p, *t)).collect(),
            bots: current.bots,
            bot_names: current.bot_names,
        };
        let bytes = postcard::to_allocvec(&old).unwrap();
        let (mut restored, restored_shared) =
            Room::restore(&bytes, Arc::new(config()), Arc::new(Closes::default())).unwrap();
        let back = join(&mut restored, &restored_shared, "ann", Some(ann.welcome.token)).unwrap();
        assert!(back.welcome.resumed);
        assert_eq!(back.welcome.player, ann.welcome.player);
    }

    #[test]
    fn bots_fill_the_free_places_and_make_way_for_people() {
        let mut config = config();
        config.bots_per_room = 3;
        config.room_capacity = 4;
        let (mut room, shared, _) = room(config);
        assert_eq!(room.bots.len(), 3);
        let _a = join(&mut room, &shared, "ann", None).unwrap();
        let _b = join(&mut room, &shared, "bob", None).unwrap();
        // Bots are rebalanced once a second (every tick_hz ticks).
        for _ in 0..10 {
            room.tick().unwrap();
        }
        assert_eq!(room.bots.len(), 2, "four places, two people: two bots");
    }
}
