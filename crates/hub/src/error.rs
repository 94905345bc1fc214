/// A storage engine's own error, carried as the cause of [`Error::Storage`].
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything the hub's engines can fail with. No engine's error type
/// appears here: an engine boxes its own as the source of
/// [`Error::Storage`], so SQLite, PostgreSQL or a broker all report through
/// the same variants and callers never depend on a backend crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine failed (disk full, corrupt file, locked database,
    /// lost connection); the engine's error is the source.
    #[error("storage: {0}")]
    Storage(#[source] Cause),
    /// A transaction could not be begun or committed; nothing of it was kept.
    #[error("storage commit: {0}")]
    Commit(String),
    /// A unique name (user or room) is already taken.
    #[error("{0} is already taken")]
    Taken(&'static str),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The store is shutting down and takes no more work.
    #[error("the store is closed")]
    Closed,
    /// A filesystem step (creating the data directory) failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A storage failure caused by an engine's own error.
    pub fn storage(cause: impl Into<Cause>) -> Error {
        Error::Storage(cause.into())
    }
}
