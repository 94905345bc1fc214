//! The one error type of the proxy.

/// Why the proxy could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (the message names the key).
    #[error("configuration: {0}")]
    Config(String),
    /// The listener could not be bound or failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
