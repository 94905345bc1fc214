/// Everything the hub's engines can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine failed (disk full, corrupt file, locked database).
    #[error("storage: {0}")]
    Storage(#[from] rusqlite::Error),
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
