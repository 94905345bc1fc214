//! Matchmaking: which room a join goes to, opening rooms when all are full
//! and forgetting them once they close.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::sync::oneshot;

use crate::config::GameConfig;
use crate::pool::Pool;
use crate::protocol::{ErrorCode, Join, MatchId};
use crate::room::{Closer, Command, Joined, Room, Shared};
use crate::Error;

/// The open rooms. Rooms close themselves through it, under its lock, so a
/// join never lands in a room that is closing.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    rooms: Mutex<Vec<Arc<Shared>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Shared>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Open rooms.
    pub fn rooms(&self) -> usize {
        self.registry.lock().len()
    }

    /// Seat a connection: take back a cell left behind (if the token is
    /// still valid), else a place in the fullest room with one free, else a
    /// new room.
    pub(crate) async fn join(&self, mut join: Join) -> Result<Seat, ErrorCode> {
        let mut expired = false;
        if let Some(token) = join.resume {
            let id = MatchId(u32::from_le_bytes([token[0], token[1], token[2], token[3]]));
            let room = self.registry.lock().iter().find(|r| r.id == id).cloned();
            if let Some(room) = room {
                if let Ok(joined) = ask(&room, join.clone(), token).await {
                    return Ok(Seat {
                        room,
                        joined,
                        resume_expired: false,
                    });
                }
            }
            join.resume = None;
            expired = true;
        }
        for _ in 0..3 {
            let room = self.reserve(join.spectate)?;
            let mut token = [0u8; 16];
            token[..4].copy_from_slice(&room.id.0.to_le_bytes());
            rand::rng().fill(&mut token[4..]);
            match ask(&room, join.clone(), token).await {
                Ok(joined) => {
                    return Ok(Seat {
                        room,
                        joined,
                        resume_expired: expired,
                    })
                }
                Err(None) => continue, // the room closed meanwhile
                Err(Some(code)) => {
                    self.unreserve(&room, join.spectate);
                    return Err(code);
                }
            }
        }
        Err(ErrorCode::NoRoom)
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
            .filter(|r| Lobby::counter(r, spectate).load(Ordering::Acquire) < limit)
            .max_by_key(|r| (r.humans.load(Ordering::Acquire), std::cmp::Reverse(r.id)))
            .cloned();
        let room = match best {
            Some(room) => room,
            None => {
                if rooms.len() >= self.config.max_rooms {
                    return Err(ErrorCode::NoRoom);
                }
                let id = MatchId(self.next_room.fetch_add(1, Ordering::AcqRel));
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
async fn ask(room: &Shared, join: Join, token: [u8; 16]) -> Result<Joined, Option<ErrorCode>> {
    let (reply, answer) = oneshot::channel();
    room.commands
        .send(Command::Join { join, token, reply })
        .await
        .map_err(|_| None)?;
    match answer.await {
        Ok(Ok(joined)) => Ok(joined),
        Ok(Err(code)) => Err(Some(code)),
        Err(_) => Err(None),
    }
}
