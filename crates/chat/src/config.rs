//! Settings of `volley serve`. Every field has a default; a TOML file may set
//! any of them (same names), and flags or `VOLLEY_*` variables override the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The chat server's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Directory for the SQLite database and the token secret.
    pub data_dir: PathBuf,
    /// `full` (an acked message survives power loss) or `normal` (survives a process crash).
    pub sqlite_sync: String,
    /// Origins allowed to open WebSockets, besides the server's own
    /// (same-origin) and clients that send no Origin (non-browsers). `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Whether guests (name only, no password) may connect.
    pub guests: bool,
    /// Lifetime of tokens issued by this server, in seconds.
    pub token_ttl_secs: u64,
    /// HS256 secret for tokens this server issues; generated into the data
    /// directory on first start when unset (so tokens survive restarts).
    pub token_secret: Option<String>,
    /// Tokens minted by another application ("bring your own JWT").
    pub jwt: ExternalJwt,
    /// Largest message text, in bytes.
    pub max_text_bytes: usize,
    /// Largest WebSocket message accepted from a client, in bytes (1009 beyond).
    pub max_frame_bytes: usize,
    /// Deliveries queued for one connection before it is closed with 1013.
    pub outbound_queue: usize,
    /// Sustained messages per second per user.
    pub messages_per_sec: f64,
    /// Burst of messages a user may send at once.
    pub message_burst: f64,
    /// Register, login and guest attempts per second per client IP (burst:
    /// four times that); 0 is unlimited. Password hashing is deliberately
    /// slow, so this also bounds the CPU one address can make us spend.
    pub account_attempts_per_sec: f64,
    /// Simultaneous connections per user.
    pub max_connections_per_user: u32,
    /// Simultaneous connections per client IP (0: unlimited).
    pub max_connections_per_ip: u32,
    /// Time a connection has to authenticate, in milliseconds.
    pub auth_timeout_ms: u64,
    /// How long typing indicators show, in milliseconds.
    pub typing_ttl_ms: u64,
    /// Fewest milliseconds between two typing events of a user in a room.
    pub typing_interval_ms: u64,
    /// Presence and membership changes are sent per room at most this often,
    /// in milliseconds (batched, so large rooms do not get one frame per change).
    pub presence_batch_ms: u64,
    /// Longest wait for connections to close on shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Compress frames with permessage-deflate when the client offers it.
    pub deflate: bool,
}

/// Verification settings for tokens minted elsewhere.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalJwt {
    /// `HS256`, `RS256` or `ES256`; unset disables external tokens.
    pub algorithm: Option<String>,
    /// The shared secret for HS256.
    pub secret: Option<String>,
    /// A PEM public key file for RS256 or ES256.
    pub public_key_file: Option<PathBuf>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("volley-data"),
            sqlite_sync: "full".into(),
            allowed_origins: Vec::new(),
            guests: true,
            token_ttl_secs: 7 * 24 * 3600,
            token_secret: None,
            jwt: ExternalJwt::default(),
            max_text_bytes: 4000,
            max_frame_bytes: 64 * 1024,
            outbound_queue: 1024,
            messages_per_sec: 10.0,
            message_burst: 20.0,
            account_attempts_per_sec: 2.0,
            max_connections_per_user: 16,
            max_connections_per_ip: 256,
            auth_timeout_ms: 10_000,
            typing_ttl_ms: 5_000,
            typing_interval_ms: 2_000,
            presence_batch_ms: 250,
            shutdown_grace_ms: 10_000,
            deflate: true,
        }
    }
}

impl ChatConfig {
    /// Parse a TOML file's text; unknown keys are errors (typos should not pass silently).
    pub fn from_toml(text: &str) -> Result<ChatConfig, crate::Error> {
        toml::from_str(text).map_err(|e| crate::Error::Config(e.to_string()))
    }

    /// Check values that would make the server misbehave.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: &str| Err(crate::Error::Config(m.to_owned()));
        if !matches!(self.sqlite_sync.as_str(), "full" | "normal") {
            return bad("sqlite_sync must be \"full\" or \"normal\"");
        }
        if self.max_text_bytes == 0 || self.max_text_bytes > self.max_frame_bytes {
            return bad("max_text_bytes must be between 1 and max_frame_bytes");
        }
        if self.outbound_queue == 0 {
            return bad("outbound_queue must be at least 1");
        }
        if !(self.messages_per_sec > 0.0 && self.message_burst >= 1.0) {
            return bad("messages_per_sec must be > 0 and message_burst >= 1");
        }
        if self.max_connections_per_user == 0 {
            return bad("max_connections_per_user must be at least 1");
        }
        if let Some(alg) = &self.jwt.algorithm {
            match alg.as_str() {
                "HS256" if self.jwt.secret.is_none() => return bad("jwt.algorithm HS256 needs jwt.secret"),
                "RS256" | "ES256" if self.jwt.public_key_file.is_none() => {
                    return bad("jwt.algorithm RS256/ES256 needs jwt.public_key_file")
                }
                "HS256" | "RS256" | "ES256" => {}
                _ => return bad("jwt.algorithm must be HS256, RS256 or ES256"),
            }
        }
        Ok(())
    }
}
