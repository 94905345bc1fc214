//! Every frame except snapshots.

use super::codec::{Reader, Writer};
use super::{kind, DecodeError};

/// Longest player name, in bytes.
pub const MAX_NAME_BYTES: usize = 24;

/// Input button bits.
pub const INPUT_FLAG_SPLIT: u8 = 1;
pub const INPUT_FLAG_EJECT: u8 = 2;

/// The first frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    pub name: String,
    /// Watch without playing.
    pub spectate: bool,
    /// From an earlier `Welcome`: take back the cell left behind.
    pub resume: Option<[u8; 16]>,
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    Join(Join),
    /// Steering: `target` is relative to the player's centre, in world
    /// units; `ack` is the newest snapshot tick the client holds.
    Input {
        seq: u32,
        ack: u32,
        target: (i16, i16),
        buttons: u8,
    },
    Ping(u32),
    Respawn,
}

impl ClientMsg {
    pub fn decode(frame: &[u8]) -> Result<ClientMsg, DecodeError> {
        let mut r = Reader::new(frame);
        let msg = match r.u8().map_err(|_| DecodeError::Empty)? {
            kind::JOIN => {
                let flags = r.u8()?;
                if flags & !3 != 0 {
                    return Err(DecodeError::Invalid("join flags"));
                }
                let name = r.short_str()?;
                if name.len() > MAX_NAME_BYTES {
                    return Err(DecodeError::Invalid("name too long"));
                }
                let resume = if flags & 2 != 0 {
                    let mut token = [0u8; 16];
                    token.copy_from_slice(r.take(16)?);
                    Some(token)
                } else {
                    None
                };
                ClientMsg::Join(Join {
                    name: name.to_owned(),
                    spectate: flags & 1 != 0,
                    resume,
                })
            }
            kind::INPUT => {
                let seq = r.u32()?;
                let ack = r.u32()?;
                let target = (r.i16()?, r.i16()?);
                let buttons = r.u8()?;
                if buttons & !(INPUT_FLAG_SPLIT | INPUT_FLAG_EJECT) != 0 {
                    return Err(DecodeError::Invalid("input buttons"));
                }
                ClientMsg::Input {
                    seq,
                    ack,
                    target,
                    buttons,
                }
            }
            kind::PING => ClientMsg::Ping(r.u32()?),
            kind::RESPAWN => ClientMsg::Respawn,
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(16);
        match self {
            ClientMsg::Join(join) => {
                w.u8(kind::JOIN);
                w.u8(join.spectate as u8 | if join.resume.is_some() { 2 } else { 0 });
                w.short_str(&join.name);
                if let Some(token) = &join.resume {
                    w.bytes(token);
                }
            }
            ClientMsg::Input {
                seq,
                ack,
                target,
                buttons,
            } => {
                w.u8(kind::INPUT);
                w.u32(*seq);
                w.u32(*ack);
                w.i16(target.0);
                w.i16(target.1);
                w.u8(*buttons);
            }
            ClientMsg::Ping(id) => {
                w.u8(kind::PING);
                w.u32(*id);
            }
            ClientMsg::Respawn => w.u8(kind::RESPAWN),
        }
        w.buf
    }
}

/// Why the server refused something; the connection stays open unless the
/// close code says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// A frame could not be decoded or is not allowed now.
    BadFrame = 1,
    /// No room could take the player (all full and no more may open).
    NoRoom = 2,
    /// The resume token is unknown or its grace period is over.
    ResumeExpired = 3,
    /// Too many inputs: the excess was dropped.
    RateLimited = 4,
    /// The first frame must be a join.
    NotJoined = 5,
    /// A connection joins once.
    AlreadyJoined = 6,
    /// The name is empty or not printable.
    BadName = 7,
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> Option<ErrorCode> {
        use ErrorCode::*;
        [
            BadFrame,
            NoRoom,
            ResumeExpired,
            RateLimited,
            NotJoined,
            AlreadyJoined,
            BadName,
        ]
        .into_iter()
        .find(|c| *c as u16 == v)
    }
}

/// A match's (room's) id on its node: numbered from 1, never reused while
/// the node runs. Its own type so it cannot be confused with a player id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatchId(pub u32);

impl std::fmt::Display for MatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What `Welcome` tells a client about itself and its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// 0 for a spectator.
    pub player: u32,
    /// The match the player was seated in.
    pub room: MatchId,
    /// Present this to take the cell back after a reconnect.
    pub token: [u8; 16],
    pub tick_hz: u8,
    pub world_size: u16,
    pub spectator: bool,
    /// The cell left behind by an earlier connection was taken back.
    pub resumed: bool,
}

/// A roster line: who is in the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerEntry {
    pub id: u32,
    pub name: String,
    pub bot: bool,
}

/// Frames the server sends, except snapshots ([`super::Snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    Welcome(Welcome),
    Pong(u32),
    /// Everyone in the room (sent on join and when it changes).
    Roster(Vec<PlayerEntry>),
    /// The heaviest players: (id, mass), heaviest first.
    Leaderboard(Vec<(u32, u32)>),
    Error(ErrorCode, String),
}

impl ServerMsg {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32);
        match self {
            ServerMsg::Welcome(wl) => {
                w.u8(kind::WELCOME);
                w.u32(wl.player);
                w.u32(wl.room.0);
                w.bytes(&wl.token);
                w.u8(wl.tick_hz);
                w.u16(wl.world_size);
                w.u8(wl.spectator as u8 | (wl.resumed as u8) << 1);
            }
            ServerMsg::Pong(id) => {
                w.u8(kind::PONG);
                w.u32(*id);
            }
            ServerMsg::Roster(list) => {
                w.u8(kind::ROSTER);
                w.varint(list.len() as u32);
                for p in list {
                    w.varint(p.id);
                    w.u8(p.bot as u8);
                    w.short_str(&p.name);
                }
            }
            ServerMsg::Leaderboard(list) => {
                w.u8(kind::LEADERBOARD);
                w.varint(list.len() as u32);
                for &(id, mass) in list {
                    w.varint(id);
                    w.varint(mass);
                }
            }
            ServerMsg::Error(code, text) => {
                w.u8(kind::ERROR);
                w.u16(*code as u16);
                w.short_str(text);
            }
        }
        w.buf
    }

    /// Decode a non-snapshot server frame (clients, tests, the bench).
    pub fn decode(frame: &[u8]) -> Result<ServerMsg, DecodeError> {
        let mut r = Reader::new(frame);
        let msg = match r.u8().map_err(|_| DecodeError::Empty)? {
            kind::WELCOME => {
                let player = r.u32()?;
                let room = MatchId(r.u32()?);
                let mut token = [0u8; 16];
                token.copy_from_slice(r.take(16)?);
                let tick_hz = r.u8()?;
                let world_size = r.u16()?;
                let flags = r.u8()?;
                ServerMsg::Welcome(Welcome {
                    player,
                    room,
                    token,
                    tick_hz,
                    world_size,
                    spectator: flags & 1 != 0,
                    resumed: flags & 2 != 0,
                })
            }
            kind::PONG => ServerMsg::Pong(r.u32()?),
            kind::ROSTER => {
                let n = r.count(3)?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = r.varint()?;
                    let bot = r.u8()? != 0;
                    let name = r.short_str()?.to_owned();
                    list.push(PlayerEntry { id, name, bot });
                }
                ServerMsg::Roster(list)
            }
            kind::LEADERBOARD => {
                let n = r.count(2)?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push((r.varint()?, r.varint()?));
                }
                ServerMsg::Leaderboard(list)
            }
            kind::ERROR => {
                let code = r.u16()?;
                let code = ErrorCode::from_u16(code).ok_or(DecodeError::Invalid("error code"))?;
                ServerMsg::Error(code, r.short_str()?.to_owned())
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}
