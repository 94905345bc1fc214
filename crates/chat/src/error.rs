/// Failures of the chat server as a whole (start-up, configuration, storage).
/// Request-level failures are protocol errors with an [`ErrorCode`](crate::protocol::ErrorCode).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] volley_net::InvalidSetting),
    /// The store failed.
    #[error(transparent)]
    Hub(#[from] volley_hub::Error),
    /// The store or the broker could not be reached at start.
    #[error("connecting to {what}: {source}")]
    Connect {
        /// Which: "the PostgreSQL store", "the Redis broker"... (no URL:
        /// it may hold a password).
        what: &'static str,
        /// Why.
        #[source]
        source: volley_hub::Error,
    },
    /// Binding, reading the secret or serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The transport could not be set up (certificates, keys, TLS).
    #[error(transparent)]
    Transport(#[from] volley_net::Error),
    /// A key for token verification could not be read.
    #[error("token key: {0}")]
    Key(String),
}
