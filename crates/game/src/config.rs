//! Settings of the game (the `[game]` table of `volley serve`'s TOML file).

use serde::{Deserialize, Serialize};

/// The game's settings; every field has a default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GameConfig {
    /// Simulation ticks per second.
    pub tick_hz: u32,
    /// Simulation threads; 0 means one per core.
    pub sim_threads: usize,
    /// People (not bots, not spectators) per room.
    pub room_capacity: usize,
    /// Server bots per room; a room keeps this many while it has free places,
    /// fewer as people fill it.
    pub bots_per_room: usize,
    /// Most rooms open at once (a join beyond gets "no room").
    pub max_rooms: usize,
    /// Spectators per room.
    pub max_spectators_per_room: usize,
    /// Side of the square world, in world units (at most 16,000).
    pub world_size: f32,
    /// Pellets per room.
    pub pellets: usize,
    /// How long a disconnected player's cells stay for a reconnect, in seconds.
    pub reconnect_grace_secs: u64,
    /// How long a room with no people stays open, in seconds.
    pub empty_room_secs: u64,
    /// Snapshots a client may lag behind before it gets full snapshots instead
    /// of deltas (the server keeps this many per client).
    pub baseline_window: usize,
    /// Inputs per second one connection may send (more are dropped, counted,
    /// and answered with a rate-limit error); 0 means twice the tick rate.
    pub inputs_per_sec: u32,
    /// Commands queued per room (inputs beyond are dropped and counted).
    pub command_queue: usize,
    /// In a cluster, how often each match's state is sent to another node,
    /// so a node killed without warning loses at most this much play (plus
    /// the few seconds it takes to notice); 0 turns it off.
    pub checkpoint_secs: u64,
}

impl Default for GameConfig {
    fn default() -> GameConfig {
        GameConfig {
            tick_hz: 30,
            sim_threads: 0,
            room_capacity: 32,
            bots_per_room: 16,
            max_rooms: 64,
            max_spectators_per_room: 32,
            world_size: 6000.0,
            pellets: 3000,
            reconnect_grace_secs: 15,
            empty_room_secs: 60,
            baseline_window: 30,
            inputs_per_sec: 0,
            command_queue: 4096,
            checkpoint_secs: 5,
        }
    }
}

impl GameConfig {
    /// Check ranges, once, at start; the error names the key, its value
    /// and what is allowed.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |key: &str, value: &dyn std::fmt::Display, allowed: &str| {
            Err(volley_net::InvalidSetting::new(format!("game.{key}"), value, allowed).into())
        };
        if !(1..=120).contains(&self.tick_hz) {
            return bad("tick_hz", &self.tick_hz, "1 to 120");
        }
        if !(500.0..=16_000.0).contains(&self.world_size) {
            return bad("world_size", &self.world_size, "500 to 16000");
        }
        if self.room_capacity == 0 {
            return bad("room_capacity", &0, "at least 1");
        }
        if self.max_rooms == 0 {
            return bad("max_rooms", &0, "at least 1");
        }
        if self.baseline_window == 0 {
            return bad("baseline_window", &0, "at least 1");
        }
        if self.command_queue < 16 {
            return bad("command_queue", &self.command_queue, "at least 16");
        }
        Ok(())
    }

    pub(crate) fn input_rate(&self) -> u32 {
        if self.inputs_per_sec == 0 {
            self.tick_hz * 2
        } else {
            self.inputs_per_sec
        }
    }

    pub(crate) fn threads(&self) -> usize {
        if self.sim_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.sim_threads
        }
    }

    pub(crate) fn rules(&self) -> crate::sim::Rules {
        crate::sim::Rules {
            world_size: self.world_size,
            pellets: self.pellets,
            tick_hz: self.tick_hz,
            ..crate::sim::Rules::default()
        }
    }
}
