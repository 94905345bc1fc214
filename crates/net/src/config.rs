use std::time::Duration;

/// Transport settings. The defaults suit a public server; every limit exists
/// so that one peer cannot hold resources without bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// Frame and message size limits enforced by the protocol core.
    pub protocol: volley_wire::Config,
    /// Most bytes queued for one peer. [`WebSocket::feed`](crate::WebSocket::feed)
    /// waits while the queue is above it, and reading pauses too, so a peer
    /// that does not read cannot make us buffer more.
    pub write_buffer_limit: usize,
    /// Longest time for the opening handshake, from accept (or connect) to 101.
    pub handshake_timeout: Duration,
    /// Largest HTTP head accepted in the handshake (answered with 431 beyond).
    pub max_handshake_size: usize,
    /// Send a ping after the peer has been silent this long. `None` disables
    /// keepalive.
    pub ping_interval: Option<Duration>,
    /// Close the connection when a ping is not answered within this time.
    pub pong_timeout: Duration,
    /// Close with 1001 when no data message went either way for this long.
    /// `None` keeps idle connections open (keepalive still detects dead ones).
    pub idle_timeout: Option<Duration>,
    /// Longest wait for the peer's close frame after ours, and for the
    /// server's TCP FIN after the close handshake (client side).
    pub close_timeout: Duration,
    /// Longest a write may make no progress before the peer is considered gone.
    pub write_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            protocol: volley_wire::Config::default(),
            write_buffer_limit: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            max_handshake_size: 16 * 1024,
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(15),
            idle_timeout: None,
            close_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// A setting that cannot be used: the key as the TOML file names it, the
/// value given and what is allowed. Every component that checks its settings
/// at start (chat, game) reports through this one type, so an operator reads
/// the same shape whichever was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {key}: {value} is not allowed: {allowed}")]
pub struct InvalidSetting {
    /// The key, dotted for tables (`game.tick_hz`, `jwt.secret`).
    pub key: String,
    /// The value given (secrets are not repeated).
    pub value: String,
    /// What would be accepted.
    pub allowed: String,
}

impl InvalidSetting {
    /// The refusal of `value` for `key`.
    pub fn new(key: impl Into<String>, value: impl std::fmt::Display, allowed: impl Into<String>) -> InvalidSetting {
        InvalidSetting {
            key: key.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}
