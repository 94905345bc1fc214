/// What can go wrong bringing a cluster up, acting on it, or testing it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program the cluster needs is not installed.
    #[error("{program} not found: install Debian's `{package}` (apt-get install {package})")]
    Missing {
        /// The program looked for.
        program: String,
        /// The Debian package that has it.
        package: String,
    },
    /// A service did not become ready.
    #[error("{0} did not become ready: {1}")]
    NotReady(String, String),
    /// No service, link or fault by that name.
    #[error("{0}")]
    Unknown(String),
    /// No cluster runs from that directory.
    #[error("no cluster is running from {0} (start one with `volley cluster up`)")]
    NotRunning(String),
    /// A file or process operation failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The running cluster refused a request.
    #[error("the cluster answered: {0}")]
    Refused(String),
    /// A run found violations (quoted in the report).
    #[error("{0} violation(s); see the report")]
    Violations(usize),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |e| Error::Io(what, e)
    }
}
