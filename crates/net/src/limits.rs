//! The limits every connection meets before routing, whatever its transport.

use std::time::Duration;

use volley_wire::handshake::MAX_HEADERS;

/// Limits applied to every connection before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontLimits {
    /// A request head (the first, or the next on a keep-alive connection)
    /// must arrive whole within this; otherwise the connection is closed.
    pub head_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; beyond: 431.
    pub max_head_bytes: usize,
    /// Most header fields in one request; beyond: 431.
    pub max_headers: usize,
    /// Open connections per client address, whatever their state; 0 is
    /// unlimited. Beyond: 429 and close.
    pub per_address: u32,
}

impl Default for FrontLimits {
    fn default() -> FrontLimits {
        let raw = crate::Config::default();
        FrontLimits {
            head_timeout: raw.handshake_timeout,
            max_head_bytes: raw.max_handshake_size,
            max_headers: MAX_HEADERS,
            per_address: 256,
        }
    }
}
