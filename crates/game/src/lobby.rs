//! Matchmaking: which room a join goes to, opening rooms when all are full
//! and forgetting them once they close.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::Duration;

use rand::Rng;
use tokio::sync::oneshot;

use volley_hub::UserId;

use crate::accounts::{Account, AccountError, Accounts};
use crate::config::GameConfig;
use crate::placement::{Directory, Leader, Located, MatchLoad};
use crate::pool::Pool;
use crate::protocol::{ErrorCode, Join, MatchId};
use crate::room::{Closer, Command, Joined, Room, Shared};
use crate::seat::{SeatClaims, SeatError, SeatKeys};
use crate::Error;

/// The open rooms. Rooms close themselves through it, under its lock, so a
/// join never lands in a room that is closing.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    rooms: Mutex<Vec<Arc<Shared>>>,
    /// Best masses of signed-in players not yet stored, by account: one
    /// entry per account however often it scores, so an unreachable store
    /// costs no more memory than the accounts playing.
    scores: Mutex<HashMap<UserId, u32>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Shared>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn scores(&self) -> MutexGuard<'_, HashMap<UserId, u32>> {
        self.scores.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keep_best(&self, best: &[(UserId, u32)]) {
        let mut scores = self.scores();
        for &(account, mass) in best {
            let entry = scores.entry(account).or_insert(0);
            *entry = (*entry).max(mass);
        }
    }
}

impl Closer for Registry {
    fn close_if_empty(&self, room: &Arc<Shared>) -> bool {
        let mut rooms = self.lock();
        if room.humans.load(Ordering::Acquire) != 0 || room.spectators.load(Ordering::Acquire) != 0 {
            return false;
        }
        room.closed.store(true, Ordering::Release);
        rooms.retain(|r| !Arc::ptr_eq(r, room));
        true
    }

    fn scored(&self, best: &[(UserId, u32)]) {
        self.keep_best(best);
    }
}

/// Seats people in rooms; owns the simulation threads.
pub struct Lobby {
    config: Arc<GameConfig>,
    registry: Arc<Registry>,
    pool: Pool,
    next_room: AtomicU32,
    /// Bytes written to game connections, for the per-player bandwidth gauge.
    pub(crate) sent_bytes: AtomicU64,
    /// Connections currently seated (players and spectators).
    pub(crate) connected: AtomicUsize,
    /// Part of a cluster: match ids are drawn at random, so a match keeps
    /// its id on whatever node it moves to.
    clustered: AtomicBool,
    /// Handing its matches away: opens no new ones.
    draining: AtomicBool,
    /// The cluster this node is part of (weak: the cluster holds the lobby).
    cluster: OnceLock<Weak<dyn Directory>>,
    /// Signs and checks seat tokens; a random key until `set_seat_key`.
    seat_keys: RwLock<SeatKeys>,
    /// Checks account tokens and keeps best scores; without it, joins
    /// with an account are refused.
    accounts: OnceLock<Arc<dyn Accounts>>,
}

/// How often signed-in players' best scores are written to the store.
const SCORES_EVERY: Duration = Duration::from_secs(5);

/// How long a seat token outlives the reconnect grace; connections renew
/// theirs at a third of this.
pub(crate) const SEAT_TOKEN_MARGIN_SECS: u64 = 90;

/// Why a join got no seat here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The protocol's refusal.
    Code(ErrorCode),
    /// The match runs, or should open, on this other node.
    Elsewhere(String),
    /// The match's node has gone silent and its match is being recovered
    /// from a checkpoint: try again in a moment.
    Recovering,
    /// A spectator asked for a match no node runs.
    NoSuchMatch,
}

impl std::fmt::Debug for Lobby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lobby").field("rooms", &self.rooms()).finish()
    }
}

/// Which room and seat a connection got.
pub(crate) struct Seat {
    pub room: Arc<Shared>,
    pub joined: Joined,
    /// The join asked to resume a seat that is gone: this is a new one.
    pub resume_expired: bool,
}

impl Lobby {
    /// Start the simulation threads. Call within a tokio runtime (a task
    /// computes the bandwidth gauge every second).
    pub fn start(config: GameConfig) -> Result<Arc<Lobby>, Error> {
        config.validate()?;
        let pool = Pool::new(config.threads(), config.tick_hz)?;
        let lobby = Arc::new(Lobby {
            config: Arc::new(config),
            registry: Arc::new(Registry::default()),
            pool,
            next_room: AtomicU32::new(1),
            sent_bytes: AtomicU64::new(0),
            connected: AtomicUsize::new(0),
            clustered: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            cluster: OnceLock::new(),
            seat_keys: RwLock::new(SeatKeys::new(&rand::random::<[u8; 32]>())),
            accounts: OnceLock::new(),
        });
        let weak = Arc::downgrade(&lobby);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SCORES_EVERY);
            loop {
                every.tick().await;
                let Some(lobby) = weak.upgrade() else { return };
                lobby.store_scores().await;
            }
        });
        let weak = Arc::downgrade(&lobby);
        tokio::spawn(async move {
            let mut last = 0;
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let Some(lobby) = weak.upgrade() else { return };
                let sent = lobby.sent_bytes.load(Ordering::Relaxed);
                let connected = lobby.connected.load(Ordering::Relaxed);
                let rate = if connected == 0 {
                    0.0
                } else {
                    (sent - last) as f64 / connected as f64
                };
                metrics::gauge!("volley_game_bytes_per_player_per_second").set(rate);
                last = sent;
            }
        });
        Ok(lobby)
    }

    /// The configuration every room of this lobby runs with, as validated at start.
    pub fn config(&self) -> &GameConfig {
        &self.config
    }

    /// Register every game series at zero (Prometheus's convention: a
    /// fresh server shows every name). Call once the metrics recorder is
    /// installed.
    pub fn register_metrics(&self) {
        for name in [
            "volley_game_bad_frames_total",
            "volley_game_accounts_refused_total",
            "volley_game_bytes_sent_total",
            "volley_game_inputs_total",
            "volley_game_snapshots_skipped_total",
            "volley_game_tick_overruns_total",
            "volley_game_ticks_skipped_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        for reason in ["invalid", "per_tick", "queue_full", "rate", "stale"] {
            metrics::counter!("volley_game_inputs_rejected_total", "reason" => reason).increment(0);
        }
        for kind in ["bot", "human", "spectator"] {
            metrics::gauge!("volley_game_players", "kind" => kind).increment(0.0);
        }
        for name in [
            "volley_game_bytes_per_player_per_second",
            "volley_game_entities",
            "volley_game_rooms",
        ] {
            metrics::gauge!(name).increment(0.0);
        }
        for name in [
            "volley_game_tick_seconds",
            "volley_game_tick_sim_seconds",
            "volley_game_tick_encode_seconds",
        ] {
            let _ = metrics::histogram!(name);
        }
    }

    /// Let players sign in (see [`Accounts`]); the first call wins.
    pub fn set_accounts(&self, accounts: Arc<dyn Accounts>) {
        let _ = self.accounts.set(accounts);
    }

    /// Who an account token speaks for.
    pub(crate) async fn verify_account(&self, token: &str) -> Result<Account, AccountError> {
        match self.accounts.get() {
            Some(accounts) => tokio::time::timeout(Duration::from_secs(5), accounts.verify(token))
                .await
                .unwrap_or_else(|_| {
                    Err(AccountError::Unavailable(
                        "the accounts did not answer within 5 s".into(),
                    ))
                }),
            None => Err(AccountError::Refused("this server has no accounts".into())),
        }
    }

    /// Write the best scores gathered since the last call; kept for the
    /// next one if the store fails.
    pub async fn store_scores(&self) {
        let Some(accounts) = self.accounts.get() else { return };
        let batch: Vec<(UserId, u32)> = std::mem::take(&mut *self.registry.scores()).into_iter().collect();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = accounts.record_scores(&batch).await {
            tracing::warn!(error = %e, scores = batch.len(), "best scores not stored; retrying");
            self.registry.keep_best(&batch);
        }
    }

    /// The best scores of all time (empty without accounts).
    pub async fn best_scores(&self, limit: u32) -> Result<Vec<crate::BestScore>, String> {
        match self.accounts.get() {
            Some(accounts) => accounts.top_scores(limit).await,
            None => Ok(Vec::new()),
        }
    }

    /// The heaviest players now, in every match of the cluster (or of this
    /// node alone), heaviest first: (name, signed in, mass, match, node).
    pub fn live_leaders(&self, limit: usize) -> Vec<(Leader, u32, String)> {
        let nodes = match self.cluster() {
            Some(cluster) => cluster.nodes().into_iter().map(|n| (n.node, n.matches)).collect(),
            None => vec![(String::new(), self.loads())],
        };
        let mut all: Vec<(Leader, u32, String)> = nodes
            .into_iter()
            .flat_map(|(node, matches)| {
                matches
                    .into_iter()
                    .flat_map(move |m| {
                        let node = node.clone();
                        m.leaders.into_iter().map(move |l| (l, m.id, node.clone()))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_by_key(|l| std::cmp::Reverse(l.0.mass));
        all.truncate(limit);
        all
    }

    /// Open rooms.
    pub fn rooms(&self) -> usize {
        self.registry.lock().len()
    }

    /// Each open room's id, people seated (or on their way back) and what
    /// its ticks cost in microseconds: the load this node reports. A room
    /// being handed over is left out: it is about to run elsewhere, and
    /// listing it would make the node taking it think it runs twice.
    pub(crate) fn loads(&self) -> Vec<MatchLoad> {
        self.registry
            .lock()
            .iter()
            .filter(|r| !r.frozen.load(Ordering::Acquire))
            .map(|r| {
                let people = r.people();
                MatchLoad {
                    id: r.id.0,
                    humans: r.humans.load(Ordering::Acquire) as u32,
                    tick_micros: r.tick_micros.load(Ordering::Relaxed),
                    accounts: people.accounts.iter().map(|a| a.0).collect(),
                    leaders: people.leaders.clone(),
                    attached: r.attached.load(Ordering::Relaxed) as u32,
                }
            })
            .collect()
    }

    /// The running room holding `account`'s seat here.
    fn find_account(&self, account: UserId) -> Option<Arc<Shared>> {
        self.registry
            .lock()
            .iter()
            .find(|r| r.people().accounts.contains(&account))
            .cloned()
    }

    /// Simulation threads this node runs rooms on.
    pub(crate) fn sim_threads(&self) -> usize {
        self.config.threads()
    }

    pub(crate) fn set_cluster(&self, cluster: Weak<dyn Directory>) {
        self.clustered.store(true, Ordering::Release);
        let _ = self.cluster.set(cluster);
    }

    /// Sign seat tokens with `key` (every node of a cluster must use the
    /// same: `volley serve` derives it from the shared token secret).
    pub fn set_seat_key(&self, key: &[u8]) {
        *self.seat_keys.write().unwrap_or_else(|e| e.into_inner()) = SeatKeys::new(key);
    }

    /// A seat token for `player`'s seat holding `secret` in `room`; valid
    /// for the reconnect grace plus a minute (connections renew it).
    pub(crate) fn seat_token(&self, room: MatchId, player: u32, secret: &[u8; 16]) -> String {
        let node = self.cluster().map(|c| c.node().to_owned()).unwrap_or_default();
        let ttl = self.config.reconnect_grace_secs + SEAT_TOKEN_MARGIN_SECS;
        self.seat_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .issue(room, &node, player, secret, ttl)
    }

    pub(crate) fn verify_seat(&self, token: &str) -> Result<SeatClaims, SeatError> {
        self.seat_keys.read().unwrap_or_else(|e| e.into_inner()).verify(token)
    }

    /// The cluster this node belongs to, if any.
    pub fn cluster(&self) -> Option<Arc<dyn Directory>> {
        self.cluster.get().and_then(Weak::upgrade)
    }

    /// Open no new matches (a drain): joins that would need one are refused.
    pub(crate) fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::Release);
    }

    /// Whether this node is handing its matches away.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    fn find(&self, id: MatchId) -> Option<Arc<Shared>> {
        self.registry.lock().iter().find(|r| r.id == id).cloned()
    }

    /// Stop a room's clock and take it as bytes (see `Room::restore`);
    /// `None` if it closed meanwhile.
    pub(crate) async fn freeze(&self, id: MatchId) -> Option<Vec<u8>> {
        let room = self.find(id)?;
        // Before the room hears of it: from now on no join is sent its way.
        room.frozen.store(true, Ordering::Release);
        let (reply, answer) = oneshot::channel();
        let bytes = match room.commands.send(Command::Freeze { reply }).await {
            Ok(()) => answer.await.ok(),
            Err(_) => None,
        };
        if bytes.is_none() {
            room.frozen.store(false, Ordering::Release);
        }
        bytes
    }

    /// A room as bytes while it runs on (see `Command::Checkpoint`).
    pub(crate) async fn checkpoint(&self, id: MatchId) -> Option<Vec<u8>> {
        let room = self.find(id)?;
        let (reply, answer) = oneshot::channel();
        room.commands.send(Command::Checkpoint { reply }).await.ok()?;
        answer.await.ok()
    }

    /// The hand-off failed: the room runs on here.
    pub(crate) async fn thaw(&self, id: MatchId) {
        if let Some(room) = self.find(id) {
            let _ = room.commands.send(Command::Thaw).await;
        }
    }

    /// Forget a room (marked closed, under the lock joins take); the caller
    /// tells it to close.
    fn take_out(&self, id: MatchId) -> Option<Arc<Shared>> {
        let mut rooms = self.registry.lock();
        let at = rooms.iter().position(|r| r.id == id)?;
        let room = rooms.remove(at);
        room.closed.store(true, Ordering::Release);
        Some(room)
    }

    /// Drop a match this node took in a hand-off whose answer came too late
    /// (the sender kept it, or gave it to another node): nobody was sent here.
    pub(crate) async fn discard(&self, id: MatchId) {
        let Some(room) = self.take_out(id) else { return };
        tracing::warn!(room = %id, "a late hand-off's copy dropped");
        let _ = room.commands.send(Command::Moved).await;
    }

    /// `node` runs the match now: forget it here and send its connections there.
    pub(crate) async fn moved(&self, id: MatchId, node: &str) {
        let Some(room) = self.take_out(id) else { return };
        // Set before the room hears of it: a connection that sees its room
        // end, or the server stop, from now on says where the match went.
        let _ = room.moved.set(node.to_owned());
        let _ = room.commands.send(Command::Moved).await;
        tracing::info!(room = %id, to = node, "match handed over");
    }

    /// Run a match another node handed over, from its checkpoint. False when
    /// the bytes are not one, the rules differ, this node is draining or
    /// full, or a match with that id runs here already.
    pub(crate) fn adopt(&self, checkpoint: &[u8]) -> bool {
        if self.draining() {
            return false;
        }
        let Some((room, shared)) = Room::restore(checkpoint, self.config.clone(), self.registry.clone()) else {
            tracing::warn!("a handed-over match could not be restored (corrupt, or other game settings)");
            return false;
        };
        {
            let mut rooms = self.registry.lock();
            // Draining is checked again under the lock a drain lists rooms
            // under: a match adopted here either is listed, or is refused.
            if self.draining() || rooms.len() >= self.config.max_rooms || rooms.iter().any(|r| r.id == shared.id) {
                drop(rooms);
                room.discard();
                return false;
            }
            rooms.push(shared.clone());
        }
        tracing::info!(room = %shared.id, "match taken over");
        self.pool.assign(room);
        true
    }

    /// Watch match `id` (a spectator with `?match=`): here, or on the node
    /// that runs it.
    pub(crate) async fn watch(&self, join: Join, id: MatchId, pinned: Option<&str>) -> Result<Seat, Refused> {
        let Some(room) = self.find(id).filter(|r| !r.frozen.load(Ordering::Acquire)) else {
            return Err(match self.cluster().map(|c| c.locate(id)) {
                // Asked the proxy for that node and got this one: it is unreachable.
                Some(Located::At(node)) if pinned == Some(node.as_str()) => Refused::Recovering,
                Some(Located::At(node)) => Refused::Elsewhere(node),
                _ if self.find(id).is_some() => Refused::Recovering,
                Some(Located::Recovering) => Refused::Recovering,
                _ => Refused::NoSuchMatch,
            });
        };
        {
            // Under the registry lock, as `reserve` does, so a closing room is not joined.
            let _rooms = self.registry.lock();
            if room.closed.load(Ordering::Acquire)
                || room.spectators.load(Ordering::Acquire) >= self.config.max_spectators_per_room
            {
                return Err(Refused::Code(ErrorCode::NoRoom));
            }
            room.spectators.fetch_add(1, Ordering::AcqRel);
        }
        let mut token = [0u8; 16];
        token[..4].copy_from_slice(&id.0.to_le_bytes());
        match ask(&room, join, token, None, false).await {
            Ok(joined) => Ok(Seat {
                room,
                joined,
                resume_expired: false,
            }),
            Err(code) => {
                self.unreserve(&room, true);
                Err(code.map_or(Refused::Code(ErrorCode::NoRoom), Refused::Code))
            }
        }
    }

    /// Every match of the cluster (or of this node alone): id, node, people.
    pub fn matches(&self) -> Vec<(u32, String, u32)> {
        match self.cluster() {
            Some(cluster) => cluster
                .nodes()
                .into_iter()
                .flat_map(|n| {
                    n.matches
                        .iter()
                        .map(|m| (m.id, n.node.clone(), m.humans))
                        .collect::<Vec<_>>()
                })
                .collect(),
            None => self
                .loads()
                .into_iter()
                .map(|m| (m.id, String::new(), m.humans))
                .collect(),
        }
    }

    /// Seat a connection: take back a cell left behind (if the token is
    /// still valid), else a place in the fullest room with one free, else a
    /// new room. In a cluster, a resume for a match another node runs, or
    /// a new match another node has clearly more headroom for, is sent
    /// there, unless the client was routed here by name (`pinned`).
    pub(crate) async fn join(
        &self,
        mut join: Join,
        pinned: Option<&str>,
        account: Option<UserId>,
    ) -> Result<Seat, Refused> {
        // Watching is not playing: a spectator's account takes no seat.
        let account = account.filter(|_| !join.spectate);
        let mut expired = false;
        if let Some(token) = join.resume {
            let id = MatchId(u32::from_le_bytes([token[0], token[1], token[2], token[3]]));
            let room = self.find(id);
            match room {
                // Being handed over: in a moment it runs elsewhere (MOVED) or here again.
                Some(room) if room.frozen.load(Ordering::Acquire) => return Err(Refused::Recovering),
                Some(room) => match ask(&room, join.clone(), token, account, true).await {
                    Ok(joined) => {
                        return Ok(Seat {
                            room,
                            joined,
                            resume_expired: false,
                        })
                    }
                    Err(Some(ErrorCode::SeatReplayed)) => return Err(Refused::Code(ErrorCode::SeatReplayed)),
                    Err(_) => {}
                },
                None => match self.cluster().map(|c| c.locate(id)) {
                    // The client asked the proxy for that very node and got
                    // this one: the proxy cannot reach it (it died, the
                    // registry has not noticed yet).
                    Some(Located::At(node)) if pinned == Some(node.as_str()) => return Err(Refused::Recovering),
                    Some(Located::At(node)) => return Err(Refused::Elsewhere(node)),
                    Some(Located::Recovering) => return Err(Refused::Recovering),
                    _ => {}
                },
            }
            join.resume = None;
            expired = true;
        }
        // A signed-in player's seat is theirs wherever it is: take it back
        // here, or go to the node that runs its match.
        if let Some(account) = account.filter(|_| !join.spectate) {
            match self.find_account(account) {
                Some(room) if room.frozen.load(Ordering::Acquire) => return Err(Refused::Recovering),
                Some(room) => match ask(&room, join.clone(), [0; 16], Some(account), true).await {
                    Ok(joined) => {
                        return Ok(Seat {
                            room,
                            joined,
                            resume_expired: false,
                        })
                    }
                    // It froze for a hand-off meanwhile: the seat is on its
                    // way to another node, so no new one here.
                    Err(None) => return Err(Refused::Recovering),
                    Err(Some(_)) => {}
                },
                None => match self.cluster().map(|c| c.locate_account(account)) {
                    Some(Located::At(node)) if pinned == Some(node.as_str()) => return Err(Refused::Recovering),
                    Some(Located::At(node))
                        if node != self.cluster().map(|c| c.node().to_owned()).unwrap_or_default() =>
                    {
                        return Err(Refused::Elsewhere(node))
                    }
                    Some(Located::Recovering) => return Err(Refused::Recovering),
                    _ => {}
                },
            }
        }
        if !join.spectate && pinned.is_none() && !self.has_place() {
            if let Some(cluster) = self.cluster() {
                let elsewhere = cluster
                    .node_with_a_place(self.config.room_capacity)
                    .or_else(|| cluster.better_node_for_a_new_match());
                if let Some(node) = elsewhere {
                    return Err(Refused::Elsewhere(node));
                }
            }
        }
        for _ in 0..3 {
            let room = self.reserve(join.spectate).map_err(Refused::Code)?;
            let mut token = [0u8; 16];
            token[..4].copy_from_slice(&room.id.0.to_le_bytes());
            rand::rng().fill(&mut token[4..]);
            match ask(&room, join.clone(), token, account, false).await {
                Ok(joined) => {
                    return Ok(Seat {
                        room,
                        joined,
                        resume_expired: expired,
                    })
                }
                // The room closed, or froze for a hand-off, meanwhile.
                Err(None) => {
                    self.unreserve(&room, join.spectate);
                    continue;
                }
                Err(Some(code)) => {
                    self.unreserve(&room, join.spectate);
                    return Err(Refused::Code(code));
                }
            }
        }
        Err(Refused::Code(ErrorCode::NoRoom))
    }

    /// A running room has a free place for one more person.
    fn has_place(&self) -> bool {
        let limit = self.config.room_capacity;
        self.registry
            .lock()
            .iter()
            .any(|r| !r.frozen.load(Ordering::Acquire) && r.humans.load(Ordering::Acquire) < limit)
    }

    fn counter(room: &Shared, spectate: bool) -> &AtomicUsize {
        if spectate {
            &room.spectators
        } else {
            &room.humans
        }
    }

    fn unreserve(&self, room: &Shared, spectate: bool) {
        Lobby::counter(room, spectate).fetch_sub(1, Ordering::AcqRel);
    }

    fn reserve(&self, spectate: bool) -> Result<Arc<Shared>, ErrorCode> {
        let mut rooms = self.registry.lock();
        let limit = if spectate {
            self.config.max_spectators_per_room
        } else {
            self.config.room_capacity
        };
        // Fill the fullest room that has a place (spectators: the busiest room).
        let best = rooms
            .iter()
            .filter(|r| {
                !r.frozen.load(Ordering::Acquire) && Lobby::counter(r, spectate).load(Ordering::Acquire) < limit
            })
            .max_by_key(|r| (r.humans.load(Ordering::Acquire), std::cmp::Reverse(r.id)))
            .cloned();
        let room = match best {
            Some(room) => room,
            None => {
                if rooms.len() >= self.config.max_rooms || self.draining() {
                    return Err(ErrorCode::NoRoom);
                }
                let id = if self.clustered.load(Ordering::Acquire) {
                    // Unique across the cluster with overwhelming odds, and
                    // checked against this node's; 0 is never a match.
                    loop {
                        let id = MatchId(rand::rng().random_range(1..=u32::MAX));
                        if rooms.iter().all(|r| r.id != id) {
                            break id;
                        }
                    }
                } else {
                    MatchId(self.next_room.fetch_add(1, Ordering::AcqRel))
                };
                let seed = rand::rng().random();
                let (room, shared) = Room::new(id, seed, self.config.clone(), self.registry.clone());
                rooms.push(shared.clone());
                self.pool.assign(room);
                tracing::info!(room = %id, "room opened");
                shared
            }
        };
        Lobby::counter(&room, spectate).fetch_add(1, Ordering::AcqRel);
        Ok(room)
    }
}

/// Send a join to a room and wait for its answer; `Err(None)` if the room
/// is gone.
async fn ask(
    room: &Shared,
    join: Join,
    token: [u8; 16],
    account: Option<UserId>,
    take_back: bool,
) -> Result<Joined, Option<ErrorCode>> {
    let (reply, answer) = oneshot::channel();
    room.commands
        .send(Command::Join {
            join,
            token,
            account,
            take_back,
            reply,
        })
        .await
        .map_err(|_| None)?;
    match answer.await {
        Ok(Ok(joined)) => Ok(joined),
        Ok(Err(code)) => Err(Some(code)),
        Err(_) => Err(None),
    }
}
