//! One service of the cluster as a process: started from its command with
//! its output in its own log file, ready when its health check passes (not
//! after a sleep), signalled by pid, stopped (TERM, then KILL) and started
//! again on the same port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::Error;

/// How to tell a service is ready.
#[derive(Debug, Clone)]
pub(crate) enum Health {
    /// A TCP connection opens on the port.
    Tcp,
    /// `GET path` on the port answers 2xx.
    Http(&'static str),
}

/// How the service's process is run.
#[derive(Debug, Clone)]
pub(crate) enum Runner {
    /// A child of this process, from a command line.
    Child {
        /// Program and arguments.
        argv: Vec<String>,
        /// Run as this user (PostgreSQL refuses root).
        user: Option<&'static str>,
    },
    /// PostgreSQL through `pg_ctl` (it daemonizes; its pid is in `postmaster.pid`).
    PgCtl {
        /// The PostgreSQL bin directory.
        bin: PathBuf,
        /// Its data directory.
        data: PathBuf,
        /// Run as `postgres` (when we are root).
        as_postgres: bool,
    },
}

/// One service.
#[derive(Debug)]
pub(crate) struct Process {
    pub name: String,
    pub port: u16,
    pub health: Health,
    pub runner: Runner,
    pub log: PathBuf,
    child: Option<Child>,
    /// SIGSTOPped (so a stop sends SIGCONT first).
    pub paused: bool,
}

impl Process {
    pub(crate) fn new(name: &str, port: u16, health: Health, runner: Runner, log: PathBuf) -> Process {
        Process {
            name: name.to_owned(),
            port,
            health,
            runner,
            log,
            child: None,
            paused: false,
        }
    }

    /// The pid while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.runner {
            Runner::Child { .. } => self.child.as_ref().and_then(Child::id),
            Runner::PgCtl { data, .. } => std::fs::read_to_string(data.join("postmaster.pid"))
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok())),
        }
    }

    /// Whether the process is alive (not reaped).
    pub(crate) fn running(&mut self) -> bool {
        match &self.runner {
            Runner::Child { .. } => match self.child.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(None)),
                None => false,
            },
            Runner::PgCtl { .. } => self
                .pid()
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists()),
        }
    }

    /// Start it and wait until it is healthy (30 s at most).
    pub(crate) async fn start(&mut self) -> Result<(), Error> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(Error::io(format!("log {}", self.log.display())))?;
        let err = log.try_clone().map_err(Error::io("log"))?;
        match &self.runner {
            Runner::Child { argv, user } => {
                let mut command = match user {
                    Some(user) => {
                        let mut c = Command::new("runuser");
                        c.args(["-u", user, "--"]).args(argv);
                        c
                    }
                    None => {
                        let mut c = Command::new(&argv[0]);
                        c.args(&argv[1..]);
                        c
                    }
                };
                command
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(log))
                    .stderr(Stdio::from(err))
                    .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
                    .kill_on_drop(true);
                let child = command.spawn().map_err(Error::io(format!("start {}", self.name)))?;
                self.child = Some(child);
            }
            Runner::PgCtl { bin, data, as_postgres } => {
                let options = format!(
                    "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
                    self.port,
                    data.parent().unwrap_or(data).display()
                );
                let mut command = pg_command(&bin.join("pg_ctl"), *as_postgres);
                command
                    .arg("-D")
                    .arg(data)
                    .args(["-w", "-t", "30", "-o", &options, "-l"])
                    .arg(&self.log)
                    .arg("start")
                    .stdout(Stdio::null())
                    .stderr(Stdio::from(err));
                let status = command.status().await.map_err(Error::io("pg_ctl start"))?;
                if !status.success() {
                    return Err(Error::NotReady(self.name.clone(), format!("pg_ctl start: {status}")));
                }
            }
        }
        self.paused = false;
        self.wait_ready(Duration::from_secs(30)).await
    }

    /// Poll the health check until it passes.
    pub(crate) async fn wait_ready(&mut self, within: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        loop {
            if !self.running() {
                return Err(Error::NotReady(
                    self.name.clone(),
                    format!("it exited; see {}", self.log.display()),
                ));
            }
            if self.healthy().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady(
                    self.name.clone(),
                    format!("no health within {within:?}; see {}", self.log.display()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One health check, now.
    pub(crate) async fn healthy(&self) -> bool {
        check(&self.health, self.port).await
    }

    /// Send a signal by name (`KILL`, `STOP`, `CONT`, `TERM`, `HUP`).
    /// PostgreSQL's STOP and CONT reach its backends too: stopping only the
    /// postmaster would leave the nodes' open connections answering.
    pub(crate) async fn signal(&mut self, signal: &str) -> Result<(), Error> {
        let pid = self
            .pid()
            .ok_or_else(|| Error::Refused(format!("{} is not running", self.name)))?;
        let mut pids = vec![pid.to_string()];
        if matches!(self.runner, Runner::PgCtl { .. }) && matches!(signal, "STOP" | "CONT") {
            pids.extend(children(pid).into_iter().map(|p| p.to_string()));
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .await
            .map_err(Error::io("kill"))?;
        if !status.success() {
            return Err(Error::Refused(format!("kill -{signal} {} ({}) failed", self.name, pid)));
        }
        match signal {
            "STOP" => self.paused = true,
            "CONT" => self.paused = false,
            _ => {}
        }
        Ok(())
    }

    /// Kill -9 (PostgreSQL: an immediate stop, which is a crash to it).
    pub(crate) async fn kill(&mut self) -> Result<(), Error> {
        if self.paused {
            let _ = self.signal("CONT").await;
        }
        match &self.runner {
            Runner::Child { .. } => {
                if let Some(mut child) = self.child.take() {
                    let _ = self.signal_pid(child.id(), "KILL").await;
                    let _ = child.kill().await;
                    let _ = child.wait().await;
                }
            }
            Runner::PgCtl { bin, data, as_postgres } => pg_stop(bin, data, *as_postgres, "immediate").await,
        }
        self.paused = false;
        Ok(())
    }

    async fn signal_pid(&self, pid: Option<u32>, signal: &str) -> Result<(), Error> {
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status()
                .await;
        }
        Ok(())
    }

    /// Stop it the polite way (TERM), then KILL after `grace`.
    pub(crate) async fn stop(&mut self, grace: Duration) {
        if self.paused {
            let _ = self.signal("CONT").await;
        }
        match &self.runner {
            Runner::Child { .. } => {
                let Some(mut child) = self.child.take() else { return };
                let _ = self.signal_pid(child.id(), "TERM").await;
                if tokio::time::timeout(grace, child.wait()).await.is_err() {
                    let _ = child.kill().await;
                    let _ = child.wait().await;
                }
            }
            Runner::PgCtl { bin, data, as_postgres } => pg_stop(bin, data, *as_postgres, "fast").await,
        }
    }
}

/// `pg_ctl stop` in `mode` (`fast`: a clean shutdown; `immediate`: a crash).
async fn pg_stop(bin: &Path, data: &Path, as_postgres: bool, mode: &str) {
    let mut command = pg_command(&bin.join("pg_ctl"), as_postgres);
    command
        .arg("-D")
        .arg(data)
        .args(["-m", mode, "-w", "stop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _ = command.status().await;
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_owned()))
                .and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// When process `pid` started, in clock ticks since boot (field 22 of
/// `/proc/PID/stat`): with the pid, it names one process even after the
/// pid is reused. `None` once it has exited (a zombie waiting for its
/// parent counts as exited).
pub(crate) fn started_at(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// A PostgreSQL tool, as `postgres` when we are root.
pub(crate) fn pg_command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// One health check of `port`, now (one second at most).
pub(crate) async fn check(health: &Health, port: u16) -> bool {
    match health {
        Health::Tcp => tcp_open(port).await,
        // A node whose store link is cut answers /readyz late: one
        // second is as long as a health check waits.
        Health::Http(path) => tokio::time::timeout(Duration::from_secs(1), crate::http::get(port, path))
            .await
            .is_ok_and(|r| r.is_ok_and(|(status, _)| (200..300).contains(&status))),
    }
}

async fn tcp_open(port: u16) -> bool {
    tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(Error::io("a free port"))
}

/// The first of `candidates` that exists, or the error naming its package.
pub(crate) fn find(program: &str, candidates: &[&str], package: &str) -> Result<PathBuf, Error> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| which(program))
        .ok_or_else(|| Error::Missing {
            program: program.into(),
            package: package.into(),
        })
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (then PostgreSQL runs as `postgres`).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
