/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not one connection to the server under test could be opened.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The target URL.
        url: String,
        /// The first failure.
        source: volley_net::Error,
    },
    /// The chat server refused the set-up (rooms, joins) or broke the protocol.
    #[error("chat set-up: {0}")]
    Chat(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A comparison file is not what `bench/compare.sh` writes.
    #[error("bad comparison data: {0}")]
    Data(String),
    /// The game server broke the protocol or the scenario's set-up failed.
    #[error("game: {0}")]
    Game(String),
    /// Reading the server's metrics failed.
    #[error("metrics: {0}")]
    Io(#[from] std::io::Error),
    /// The options do not fit together (a transport a scenario does not
    /// drive, `--http2` on a `ws://` URL...).
    #[error("{0}")]
    Usage(String),
    /// The plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
}
