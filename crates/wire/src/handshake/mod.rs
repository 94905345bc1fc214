//! The opening handshake (RFC 6455 section 4) over HTTP/1.1.
//!
//! HTTP is parsed with `httparse` into `http` types, so the same validation
//! serves a raw TCP accept and a request that hyper or axum already parsed.

mod client;
mod server;

pub use client::{client_request, parse_response, verify_response, Agreed, ClientRequest, WsUrl};
pub use server::{
    parse_request, reject_response, switching_response, upgrade_response, validate_connect, validate_head,
    validate_opening, validate_request, Validated,
};

use base64::Engine;
use sha1::{Digest, Sha1};

/// The only protocol version RFC 6455 defines.
pub const VERSION: &str = "13";

/// Most headers a handshake may carry; more is refused with 431.
pub const MAX_HEADERS: usize = 64;

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Why a handshake failed. On the server side each maps to the HTTP status
/// to answer with ([`HandshakeError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The bytes are not an HTTP/1.x message.
    #[error("malformed HTTP: {0}")]
    Malformed(String),
    /// The head did not fit the buffer limit or the header count limit.
    #[error("request header fields too large")]
    TooLarge,
    /// Not a GET request.
    #[error("method {0} is not GET")]
    Method(String),
    /// Older than HTTP/1.1.
    #[error("HTTP/1.1 or later is required")]
    HttpVersion,
    /// No `Upgrade: websocket`.
    #[error("missing or wrong Upgrade header (expected \"websocket\")")]
    NoUpgrade,
    /// No `upgrade` token in `Connection`.
    #[error("Connection header does not contain \"upgrade\"")]
    NoConnectionUpgrade,
    /// Missing `Sec-WebSocket-Key`, or not 16 bytes in base64.
    #[error("Sec-WebSocket-Key must be 16 bytes in base64")]
    BadKey,
    /// A `Sec-WebSocket-Version` other than 13.
    #[error("unsupported Sec-WebSocket-Version (supported: 13)")]
    UnsupportedVersion,
    /// The application refused the request (origin, path, auth...).
    #[error("rejected with {status}: {reason}")]
    Rejected {
        /// HTTP status to answer with.
        status: u16,
        /// Explanation sent in the body.
        reason: String,
    },
    /// A URL we cannot connect to.
    #[error("invalid WebSocket URL: {0}")]
    BadUrl(String),
    /// The server answered with something other than 101.
    #[error("server answered {status} instead of 101 Switching Protocols: {body}")]
    Status {
        /// The HTTP status the server sent.
        status: u16,
        /// Its body (cut at a limit), lossily decoded.
        body: String,
    },
    /// `Sec-WebSocket-Accept` missing or not matching our key.
    #[error("server's Sec-WebSocket-Accept does not match the key")]
    BadAccept,
    /// The server's permessage-deflate answer breaks RFC 7692 or asks for
    /// something we cannot do.
    #[error("permessage-deflate: {0}")]
    BadExtension(String),
    /// The server chose a subprotocol we did not offer.
    #[error("server chose subprotocol {0:?}, which was not offered")]
    UnexpectedProtocol(String),
    /// The server enabled an extension we did not offer.
    #[error("server chose extension {0:?}, which was not offered")]
    UnexpectedExtension(String),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::TooLarge => 431,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::Rejected { status, .. } => *status,
            _ => 400,
        }
    }
}

/// `Upgrade: websocket` and `Connection: upgrade`, required both ways.
fn check_upgrade_headers(headers: &http::HeaderMap) -> Result<(), HandshakeError> {
    let any = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| has_token(v.as_bytes(), token))
    };
    if !any(http::header::UPGRADE, "websocket") {
        return Err(HandshakeError::NoUpgrade);
    }
    if !any(http::header::CONNECTION, "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    Ok(())
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The comma-separated tokens of every instance of a header, trimmed.
fn tokens<'a>(headers: &'a http::HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn token_lists() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b"UPGRADE", "upgrade"));
        assert!(!has_token(b"upgrade-insecure", "upgrade"));
    }
}
