//! volley's application protocols as data, with no I/O: the chat's JSON
//! frames ([`chat`], docs/protocol.md) and the game's binary frames and
//! delta snapshots ([`game`], docs/game-protocol.md). The server and the
//! Rust client (`volley-client`) both build on this crate, so a frame the
//! server writes is, by construction, one the client reads.

pub mod chat;
pub mod game;
mod ids;

pub use ids::{RoomId, Seq, UserId};
