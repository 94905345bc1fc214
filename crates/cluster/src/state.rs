//! The state file a running `volley cluster up` leaves in its directory
//! (`cluster.json`), so `status`, `down`, `restart` and `fault` from
//! another terminal find its admin address, and `down` can still stop
//! every process by pid if the `up` process itself was killed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// What `up` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    /// The `up` process.
    pub pid: u32,
    /// When it started (see `started_at`): a reused pid is not it.
    pub pid_started: u64,
    /// Its admin address (the live page and the API).
    pub admin: u16,
    /// Where clients connect.
    pub proxy: u16,
    /// Every service process's name, pid and start time, as of the last change.
    pub pids: Vec<(String, u32, u64)>,
    /// The PostgreSQL data directory, if any (stopped with `pg_ctl`).
    pub pg_data: Option<PathBuf>,
}

/// The state file's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

impl StateFile {
    /// Write it (atomically: a reader never sees half a file).
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let tmp = dir.join("cluster.json.tmp");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(Error::io("write the state file"))?;
        std::fs::rename(&tmp, path(dir)).map_err(Error::io("write the state file"))
    }

    /// Read it; `NotRunning` when there is none.
    pub fn read(dir: &Path) -> Result<StateFile, Error> {
        let text = std::fs::read_to_string(path(dir)).map_err(|_| Error::NotRunning(dir.display().to_string()))?;
        serde_json::from_str(&text).map_err(|e| Error::Refused(format!("{}: {e}", path(dir).display())))
    }

    /// Whether the `up` process is alive (the same process, not a reused pid).
    pub fn alive(&self) -> bool {
        crate::process::started_at(self.pid) == Some(self.pid_started)
    }
}
