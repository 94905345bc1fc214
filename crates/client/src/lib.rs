//! A Rust client for volley, over any transport `volley-net` opens
//! (ws, wss, a stream of an HTTP/2 or HTTP/3 connection).
//!
//! - [`chat::ChatClient`]: one authenticated connection, request/reply
//!   matched by `ref`, every other frame kept in order; what tests and
//!   load generators drive directly.
//! - [`chat::Session`]: what an application wants: it reconnects by
//!   itself (jittered backoff, or the proxy's 1012 hint), resumes every room
//!   from the last sequence number it saw, and re-sends unacknowledged
//!   messages with their ids so nothing is posted twice.
//! - [`game::GameClient`]: the binary protocol, delta snapshots and the
//!   resume token; [`predict`] holds interpolation and prediction for a
//!   renderer or a bot.
//! - [`Backoff`]: the reconnect schedule both share.
//!
//! The frames themselves are `volley-protocol`'s, the same types the server
//! encodes with.

mod backoff;
pub mod chat;
mod error;
pub mod game;
pub mod predict;
mod session;

pub use backoff::{Backoff, CloseHint};
pub use error::{Error, Refused};
pub use volley_protocol::{chat as chat_protocol, game as game_protocol, RoomId, Seq, UserId};
