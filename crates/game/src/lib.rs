//! The real-time arena behind `volley serve`'s `/game`.
//!
//! Layers, from the inside out:
//! - [`sim`]: the world as a pure, deterministic state machine (no I/O, no
//!   clock, its own seeded random source), advanced by fixed ticks.
//! - [`protocol`]: the binary frames: client inputs and per-player delta
//!   snapshots (docs/game-protocol.md).
//! - rooms on simulation threads (not tokio workers), each owning its world;
//!   connections pass inputs in through a bounded queue and take snapshots
//!   from a latest-wins slot, so a slow client skips snapshots and never
//!   slows its room.
//! - [`Lobby`]: matchmaking; [`router`]: the page and the WebSocket endpoint.
//! - the Rust client is `volley-client`; the frames are `volley-protocol`'s.

mod accounts;
pub mod cluster;
pub mod config;
mod error;
mod http;
mod lobby;
mod placement;
mod pool;
mod room;
mod seat;
mod session;
pub mod sim;
mod view;

pub use volley_protocol::game as protocol;

pub use accounts::{Account, AccountError, Accounts, BestScore};
pub use cluster::Cluster;
pub use config::GameConfig;
pub use error::Error;
pub use http::router;
pub use lobby::Lobby;
pub use protocol::MatchId;
pub use room::{steer, TickBench, TickCost};
