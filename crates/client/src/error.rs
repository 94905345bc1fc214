use std::time::Duration;

use serde_json::Value;
use volley_protocol::chat::ErrorCode;
use volley_protocol::game;

/// Everything a volley client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The WebSocket transport failed (connect, TLS, handshake refused, I/O).
    #[error(transparent)]
    Transport(#[from] volley_net::Error),
    /// The chat server refused a request; the connection stays usable.
    #[error("refused: {0}")]
    Refused(Refused),
    /// The game server refused the join.
    #[error("game refused: {code:?}: {message}")]
    GameRefused {
        /// The protocol's reason.
        code: game::ErrorCode,
        /// Its words.
        message: String,
    },
    /// A node of a cluster sent the join to another node (the match opens
    /// or runs there): join again with `?node=NODE`
    /// ([`game::with_node`](crate::game::with_node)).
    #[error("the match is on node {node}")]
    Moved {
        /// The node's id.
        node: String,
    },
    /// The server closed the connection; the code says whether to come back
    /// ([`CloseHint::of`](crate::CloseHint::of)).
    #[error("closed by the server: {code} {reason}")]
    Closed {
        /// The close frame's code (1006 when there was none).
        code: u16,
        /// The close frame's reason.
        reason: String,
    },
    /// A game frame could not be read.
    #[error(transparent)]
    Decode(#[from] game::DecodeError),
    /// The server sent something this client did not expect.
    #[error("unexpected from server: {0}")]
    Unexpected(String),
    /// The session was closed, or gave up reconnecting after a close that
    /// said not to come back.
    #[error("the session has stopped")]
    Stopped,
    /// More unacknowledged messages than the session keeps; wait for acks.
    #[error("the outbox is full ({0} unacknowledged messages)")]
    OutboxFull(usize),
}

/// A refused chat request, as the server's `error` frame described it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable detail; not stable.
    pub message: String,
    /// For `rate_limited` and `unavailable`: when trying again can work.
    pub retry_after: Option<Duration>,
    /// The request's `ref`.
    pub reference: Option<Value>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}
