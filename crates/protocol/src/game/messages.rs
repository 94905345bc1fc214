//! Every frame except snapshots.

use super::codec::{Reader, Writer};
use super::{kind, DecodeError};

/// Longest player name, in bytes.
pub const MAX_NAME_BYTES: usize = 24;

/// Input button bits.
pub const INPUT_FLAG_SPLIT: u8 = 1;
/// Input button bit: eject mass from every cell heavy enough (32 by default).
pub const INPUT_FLAG_EJECT: u8 = 2;

/// Longest seat token a join may carry, in bytes.
pub const MAX_SEAT_TOKEN_BYTES: usize = 1024;
/// Longest account token (the chat's access token) a join may carry, in bytes.
pub const MAX_ACCOUNT_TOKEN_BYTES: usize = 2048;

/// The first frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Join {
    /// At most [`MAX_NAME_BYTES`], printable; trimmed by the server, and an empty one becomes "player".
    pub name: String,
    /// Watch without playing.
    pub spectate: bool,
    /// From an earlier `Welcome`: take back the cell left behind.
    pub resume: Option<[u8; 16]>,
    /// From the latest `Seat` frame: take the seat back on whatever node
    /// runs the match now (wins over `resume`).
    pub seat: Option<String>,
    /// The chat's access token: play as that account (its name replaces
    /// `name`). The seat then belongs to the account: joining again with
    /// it, from any node, takes the same seat back while it is held, and
    /// the account's best score goes on the server's leaderboard.
    pub account: Option<String>,
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    /// Take a seat (or watch); must come within 10 s of connecting, and only once.
    Join(Join),
    /// Steering: `target` is relative to the player's centre, in world
    /// units; `ack` is the newest snapshot tick the client holds.
    Input {
        /// Must increase from one input to the next; a stale one is ignored.
        seq: u32,
        /// Tick of the newest snapshot applied: the server's next delta baseline (0: none yet).
        ack: u32,
        /// Steering point (x, y) in world units from the centre of mass; beyond 4,000 is ignored.
        target: (i16, i16),
        /// [`INPUT_FLAG_SPLIT`] and [`INPUT_FLAG_EJECT`] bits; any other bit is a bad frame.
        buttons: u8,
    },
    /// Round trip: answered at once with a pong carrying the same id.
    Ping(u32),
    /// A dead player asks for a new cell.
    Respawn,
}

impl ClientMsg {
    /// Read one client frame; fails on an unknown type, bad flags or buttons, or trailing bytes.
    pub fn decode(frame: &[u8]) -> Result<ClientMsg, DecodeError> {
        let mut r = Reader::new(frame);
        let msg = match r.u8().map_err(|_| DecodeError::Empty)? {
            kind::JOIN => {
                let flags = r.u8()?;
                if flags & !15 != 0 {
                    return Err(DecodeError::Invalid("join flags"));
                }
                // Any length the frame can carry decodes (at most 255 bytes);
                // whether the name is acceptable is the session's `bad_name`.
                let name = r.short_str()?;
                let resume = if flags & 2 != 0 {
                    let mut token = [0u8; 16];
                    token.copy_from_slice(r.take(16)?);
                    Some(token)
                } else {
                    None
                };
                let seat = if flags & 4 != 0 {
                    let n = usize::from(r.u16()?);
                    if n > MAX_SEAT_TOKEN_BYTES {
                        return Err(DecodeError::Invalid("seat token length"));
                    }
                    let bytes = r.take(n)?;
                    Some(std::str::from_utf8(bytes).map_err(|_| DecodeError::Utf8)?.to_owned())
                } else {
                    None
                };
                let account = if flags & 8 != 0 {
                    let n = usize::from(r.u16()?);
                    if n > MAX_ACCOUNT_TOKEN_BYTES {
                        return Err(DecodeError::Invalid("account token length"));
                    }
                    let bytes = r.take(n)?;
                    Some(std::str::from_utf8(bytes).map_err(|_| DecodeError::Utf8)?.to_owned())
                } else {
                    None
                };
                ClientMsg::Join(Join {
                    name: name.to_owned(),
                    spectate: flags & 1 != 0,
                    resume,
                    seat,
                    account,
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

    /// The frame as sent, one binary WebSocket message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(16);
        match self {
            ClientMsg::Join(join) => {
                w.u8(kind::JOIN);
                w.u8(join.spectate as u8
                    | if join.resume.is_some() { 2 } else { 0 }
                    | if join.seat.is_some() { 4 } else { 0 }
                    | if join.account.is_some() { 8 } else { 0 });
                w.short_str(&join.name);
                if let Some(token) = &join.resume {
                    w.bytes(token);
                }
                if let Some(seat) = &join.seat {
                    let seat = &seat.as_bytes()[..seat.len().min(MAX_SEAT_TOKEN_BYTES)];
                    w.u16(seat.len() as u16);
                    w.bytes(seat);
                }
                if let Some(account) = &join.account {
                    let account = &account.as_bytes()[..account.len().min(MAX_ACCOUNT_TOKEN_BYTES)];
                    w.u16(account.len() as u16);
                    w.bytes(account);
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
    /// The seat token's signature or form is wrong; close 4001 follows.
    SeatInvalid = 8,
    /// The seat token has expired; close 4002 follows.
    SeatExpired = 9,
    /// The seat token (or resume token) was already used to take the seat
    /// back, and a newer one replaced it; close 4003 follows.
    SeatReplayed = 10,
    /// The account token is invalid or expired, or this server takes no
    /// guests; close 4005 follows.
    AccountRefused = 11,
}

impl ErrorCode {
    /// The code for a wire value; `None` for a value this build does not know.
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
            SeatInvalid,
            SeatExpired,
            SeatReplayed,
            AccountRefused,
        ]
        .into_iter()
        .find(|c| *c as u16 == v)
    }
}

/// A match's (room's) id: numbered from 1 on a single node, random on a
/// node of a cluster (a match keeps its id when it moves to another node),
/// never two alike at once. Its own type so it cannot be confused with a
/// player id.
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
    /// Snapshots per second: the server's tick rate, and how often to send input.
    pub tick_hz: u8,
    /// Side of the square world, in world units (not quantized).
    pub world_size: u16,
    /// Seated as a spectator: no cells, the view follows the heaviest player.
    pub spectator: bool,
    /// The cell left behind by an earlier connection was taken back.
    pub resumed: bool,
}

/// A roster line: who is in the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerEntry {
    /// Player id, as in cell owners, the leaderboard and `Welcome::player`.
    pub id: u32,
    /// Display name, at most [`MAX_NAME_BYTES`].
    pub name: String,
    /// A server bot rather than a person.
    pub bot: bool,
    /// Playing as a signed-in account (the name is the account's), not as
    /// an anonymous guest.
    pub account: bool,
}

/// Frames the server sends, except snapshots ([`super::Snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// The answer to a join; snapshots follow from the next tick.
    Welcome(Welcome),
    /// Answer to a ping, with its id.
    Pong(u32),
    /// Everyone in the room (sent on join and when it changes).
    Roster(Vec<PlayerEntry>),
    /// The heaviest players: (id, mass), heaviest first.
    Leaderboard(Vec<(u32, u32)>),
    /// A refusal with a human-readable message (at most 255 bytes on the wire).
    Error(ErrorCode, String),
    /// The credential that takes this seat back on whatever node runs the
    /// match (a signed token; see docs/game-protocol.md): sent after the
    /// welcome and renewed before it expires.
    Seat {
        /// The node that runs the match, for `?node=` at the proxy.
        node: String,
        /// The token, for the `seat` of the next join.
        token: String,
    },
    /// The match moved to the node with this id (the one being drained
    /// handed it over): close 1012 follows; join again through the proxy
    /// with `?node=ID` and the same resume token, and the seat, cells and
    /// score are there.
    Moved(String),
}

impl ServerMsg {
    /// The frame as sent, one binary WebSocket message.
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
                    w.u8(p.bot as u8 | (p.account as u8) << 1);
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
            ServerMsg::Moved(node) => {
                w.u8(kind::MOVED);
                w.short_str(node);
            }
            ServerMsg::Seat { node, token } => {
                w.u8(kind::SEAT);
                w.short_str(node);
                let token = &token.as_bytes()[..token.len().min(MAX_SEAT_TOKEN_BYTES)];
                w.u16(token.len() as u16);
                w.bytes(token);
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
                    let flags = r.u8()?;
                    let name = r.short_str()?.to_owned();
                    list.push(PlayerEntry {
                        id,
                        name,
                        bot: flags & 1 != 0,
                        account: flags & 2 != 0,
                    });
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
            kind::MOVED => ServerMsg::Moved(r.short_str()?.to_owned()),
            kind::SEAT => {
                let node = r.short_str()?.to_owned();
                let n = usize::from(r.u16()?);
                if n > MAX_SEAT_TOKEN_BYTES {
                    return Err(DecodeError::Invalid("seat token length"));
                }
                let token = std::str::from_utf8(r.take(n)?)
                    .map_err(|_| DecodeError::Utf8)?
                    .to_owned();
                ServerMsg::Seat { node, token }
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}
