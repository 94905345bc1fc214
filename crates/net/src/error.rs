use volley_wire::handshake::HandshakeError;

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the protocol; we sent the matching close code.
    #[error("protocol violation: {0}")]
    Protocol(#[from] volley_wire::Error),
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// A deadline passed (handshake, keepalive, idle, close or write).
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The peer closed the TCP connection without a close frame (code 1006).
    #[error("connection closed without a close frame")]
    AbnormalClosure,
    /// The connection is closed; nothing more can be sent or received.
    #[error("connection already closed")]
    Closed,
    /// The TLS handshake failed (expired or misnamed certificate, unknown CA,
    /// garbage instead of TLS...).
    #[error("TLS: {0}")]
    Tls(String),
    /// Certificates or keys could not be loaded.
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// QUIC or HTTP/3 failed below the WebSocket (the connection was lost
    /// or refused, the peer broke HTTP/3 framing or QPACK).
    #[error("HTTP/3: {0}")]
    Http3(String),
}

impl From<volley_h3::Error> for Error {
    fn from(e: volley_h3::Error) -> Error {
        Error::Http3(e.to_string())
    }
}
