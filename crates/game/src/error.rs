/// Failures of the game server as a whole (start-up, configuration).
/// Per-connection problems are protocol errors with an
/// [`ErrorCode`](crate::protocol::ErrorCode) or a close code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] volley_net::InvalidSetting),
    /// A simulation thread could not be started.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
