//! The game's binary protocol (docs/game-protocol.md).
//!
//! Every frame is a binary WebSocket message whose first byte is its type.
//! Client frames are small and fixed-layout; snapshots are varint-packed
//! deltas against a tick the client acknowledged. Decoding never trusts a
//! length or count beyond what the frame holds.

mod codec;
mod messages;
mod snapshot;

pub use codec::{Reader, Writer};
pub use messages::{
    ClientMsg, ErrorCode, Join, MatchId, PlayerEntry, ServerMsg, Welcome, INPUT_FLAG_EJECT, INPUT_FLAG_SPLIT,
    MAX_ACCOUNT_TOKEN_BYTES, MAX_NAME_BYTES, MAX_SEAT_TOKEN_BYTES,
};
pub use snapshot::{
    apply, encode_snapshot, EntityState, Header, Kind, Snapshot, SnapshotEncoder, Update, POSITION_SCALE,
};

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A zero-length message: there is no type byte.
    #[error("empty frame")]
    Empty,
    /// The type byte is not one this side accepts.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// A field needs more bytes than the frame has left.
    #[error("frame ends early")]
    Truncated,
    /// The frame has this many bytes beyond its last field.
    #[error("{0} bytes after the end of the frame")]
    Trailing(usize),
    /// A varint longer than 5 bytes or above 32 bits.
    #[error("malformed varint")]
    Varint,
    /// A `str8` that is not UTF-8.
    #[error("text is not UTF-8")]
    Utf8,
    /// A list count larger than the remaining bytes could hold (a forged count).
    #[error("count {0} exceeds the frame")]
    Count(usize),
    /// A field out of its range (flags, mask, kind, ids not increasing); names the field.
    #[error("invalid field: {0}")]
    Invalid(&'static str),
    /// A delta names an entity the baseline lacks or already holds: the wrong baseline was used.
    #[error("delta refers to entity {0}, which the baseline does not hold")]
    UnknownEntity(u32),
}

/// Frame type bytes.
pub mod kind {
    /// Client: take a seat or spectate; the first frame of a connection.
    pub const JOIN: u8 = 0x01;
    /// Client: steering and buttons, once per tick; also acknowledges a snapshot.
    pub const INPUT: u8 = 0x02;
    /// Client: round-trip probe, answered with [`PONG`] even before a join.
    pub const PING: u8 = 0x03;
    /// Client: a dead player asks for a new cell.
    pub const RESPAWN: u8 = 0x04;
    /// Server: the answer to a join (player, room, resume token, tick rate).
    pub const WELCOME: u8 = 0x81;
    /// Server: one per tick, what the viewer sees, as a delta against an acknowledged tick.
    pub const SNAPSHOT: u8 = 0x82;
    /// Server: the answer to a [`PING`], with the same id.
    pub const PONG: u8 = 0x83;
    /// Server: everyone in the room, after the welcome and whenever players come or go.
    pub const ROSTER: u8 = 0x84;
    /// Server: the 10 heaviest players, once a second.
    pub const LEADERBOARD: u8 = 0x85;
    /// Server: a refused request; close follows only where the protocol says so.
    pub const ERROR: u8 = 0x86;
    /// Server: the match moved to another node; close 1012 follows.
    pub const MOVED: u8 = 0x87;
    /// Server: the signed seat token (after the welcome, renewed before it expires).
    pub const SEAT: u8 = 0x88;
}
