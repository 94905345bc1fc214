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
    MAX_NAME_BYTES,
};
pub use snapshot::{apply, encode_snapshot, EntityState, Header, Kind, Snapshot, Update, POSITION_SCALE};

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty frame")]
    Empty,
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    #[error("frame ends early")]
    Truncated,
    #[error("{0} bytes after the end of the frame")]
    Trailing(usize),
    #[error("malformed varint")]
    Varint,
    #[error("text is not UTF-8")]
    Utf8,
    #[error("count {0} exceeds the frame")]
    Count(usize),
    #[error("invalid field: {0}")]
    Invalid(&'static str),
    #[error("delta refers to entity {0}, which the baseline does not hold")]
    UnknownEntity(u32),
}

/// Frame type bytes.
pub mod kind {
    pub const JOIN: u8 = 0x01;
    pub const INPUT: u8 = 0x02;
    pub const PING: u8 = 0x03;
    pub const RESPAWN: u8 = 0x04;
    pub const WELCOME: u8 = 0x81;
    pub const SNAPSHOT: u8 = 0x82;
    pub const PONG: u8 = 0x83;
    pub const ROSTER: u8 = 0x84;
    pub const LEADERBOARD: u8 = 0x85;
    pub const ERROR: u8 = 0x86;
}
