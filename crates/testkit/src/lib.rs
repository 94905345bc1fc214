//! Real servers for tests, never mocks: PostgreSQL, Redis and NATS from
//! Debian's packages (`postgresql`, `redis-server`, `nats-server`), each
//! started in its own temporary directory on a free loopback port, ready
//! (a health check, not a sleep) when `start` returns, and stopped by pid
//! when dropped, on success and on failure alike.
//!
//! A missing binary is an error naming the Debian package to install;
//! `scripts/test.sh` installs them.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Why a server could not be started.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn fail(what: impl Into<String>) -> Error {
    Error(what.into())
}

/// A port nobody listens on right now (the kernel's pick).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Wait until something accepts TCP connections on `port`.
fn wait_listening(port: u16, within: Duration, name: &str) -> Result<(), Error> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(fail(format!("{name} did not listen on {addr} within {within:?}")))
}

fn find(binary: &str, candidates: &[&str], package: &str) -> Result<PathBuf, Error> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            fail(format!(
                "{binary} not found: install Debian's `{package}` (apt-get install {package})"
            ))
        })
}

fn run(command: &mut Command, what: &str) -> Result<(), Error> {
    let out = command.output().map_err(|e| fail(format!("{what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Kill a child and reap it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Send a signal to a process (SIGSTOP/SIGCONT for pause tests, SIGKILL).
pub fn signal(pid: u32, signal: &str) -> Result<(), Error> {
    run(
        Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()),
        "kill",
    )
}

/// A PostgreSQL server: `initdb` into a temporary directory as the
/// `postgres` user (PostgreSQL refuses to run as root), `pg_ctl start` on a
/// free port with trust authentication for the `volley` role.
#[derive(Debug)]
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
}

impl Postgres {
    /// Start a fresh cluster; returns once it accepts connections.
    pub fn start() -> Result<Postgres, Error> {
        let bin = postgres_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("volley-pg-")
            .tempdir()
            .map_err(|e| fail(format!("temporary directory: {e}")))?;
        let as_root = is_root();
        if as_root {
            run(
                Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()),
                "chown the PostgreSQL directory",
            )?;
        }
        let data = dir.path().join("data");
        let mut initdb = postgres_command(&bin.join("initdb"), as_root);
        initdb
            .args(["-A", "trust", "-U", "volley", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data);
        run(&mut initdb, "initdb")?;
        let port = free_port().map_err(|e| fail(format!("free port: {e}")))?;
        let mut pg = Postgres {
            dir,
            bin,
            port,
            running: false,
        };
        pg.resume()?;
        Ok(pg)
    }

    /// `postgres://volley@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://volley@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = postgres_command(&self.bin.join("pg_ctl"), is_root());
        command.arg("-D").arg(self.data()).args(args);
        command
    }

    /// Start it again after [`stop`](Self::stop), on the same port and data.
    pub fn resume(&mut self) -> Result<(), Error> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let mut start = self.pg_ctl(&["-w", "-t", "30", "-o", &options, "-l"]);
        start.arg(&log).arg("start").stdout(Stdio::null());
        run(&mut start, "pg_ctl start")?;
        self.running = true;
        wait_listening(self.port, Duration::from_secs(10), "postgres")
    }

    /// Stop it now (`-m immediate`: like a crash, no checkpoint).
    pub fn stop(&mut self) -> Result<(), Error> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        run(
            self.pg_ctl(&["-m", "immediate", "-w", "stop"]).stdout(Stdio::null()),
            "pg_ctl stop",
        )
    }

    /// The postmaster's pid (for SIGSTOP/SIGKILL fault tests).
    pub fn pid(&self) -> Result<u32, Error> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .map_err(|e| fail(format!("postmaster.pid: {e}")))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| fail("postmaster.pid holds no pid"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn postgres_command(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The newest installed PostgreSQL's bin directory.
fn postgres_bin() -> Result<PathBuf, Error> {
    let missing = || fail("PostgreSQL not found: install Debian's `postgresql` (apt-get install postgresql)");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| missing())?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(missing)
}

/// A server process started from a command: its directory, its port, and
/// the child while it runs (killed with SIGKILL when dropped).
#[derive(Debug)]
struct Spawned {
    name: &'static str,
    command: fn(&Path, u16) -> Result<Command, Error>,
    child: Option<Child>,
    dir: TempDir,
    port: u16,
}

impl Spawned {
    fn start(name: &'static str, command: fn(&Path, u16) -> Result<Command, Error>) -> Result<Spawned, Error> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("volley-{name}-"))
            .tempdir()
            .map_err(|e| fail(format!("temporary directory: {e}")))?;
        let port = free_port().map_err(|e| fail(format!("free port: {e}")))?;
        let mut spawned = Spawned {
            name,
            command,
            child: None,
            dir,
            port,
        };
        spawned.resume()?;
        Ok(spawned)
    }

    fn resume(&mut self) -> Result<(), Error> {
        let child = (self.command)(self.dir.path(), self.port)?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", self.name)))?;
        self.child = Some(child);
        wait_listening(self.port, Duration::from_secs(10), self.name)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis server with persistence off (`--save ''`), on a free port.
#[derive(Debug)]
pub struct Redis(Spawned);

impl Redis {
    /// Start one; returns once it accepts connections.
    pub fn start() -> Result<Redis, Error> {
        Spawned::start("redis-server", |dir, port| {
            let mut command = Command::new(find("redis-server", &["/usr/bin/redis-server"], "redis-server")?);
            command
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir);
            Ok(command)
        })
        .map(Redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }

    /// Start it again after [`kill`](Self::kill), on the same port (empty).
    pub fn resume(&mut self) -> Result<(), Error> {
        self.0.resume()
    }

    /// Kill it with SIGKILL.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Its pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }
}

/// A NATS server with JetStream, storing in its temporary directory.
#[derive(Debug)]
pub struct Nats(Spawned);

impl Nats {
    /// Start one; returns once it accepts connections.
    pub fn start() -> Result<Nats, Error> {
        Spawned::start("nats-server", |dir, port| {
            let bin = find(
                "nats-server",
                &["/usr/sbin/nats-server", "/usr/bin/nats-server"],
                "nats-server",
            )?;
            let mut command = Command::new(bin);
            command
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir);
            Ok(command)
        })
        .map(Nats)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
    }

    /// Start it again after [`kill`](Self::kill), on the same port.
    pub fn resume(&mut self) -> Result<(), Error> {
        self.0.resume()
    }

    /// Kill it with SIGKILL.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Its pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(port: u16, request: &[u8], expect: &[u8]) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = vec![0u8; 256];
        if !request.is_empty() && s.write_all(request).is_err() {
            return false;
        }
        let n = s.read(&mut buf).unwrap_or(0);
        buf[..n].windows(expect.len()).any(|w| w == expect)
    }

    #[test]
    fn redis_starts_answers_and_is_gone_after_kill() {
        let mut redis = Redis::start().unwrap();
        let port = redis.0.port;
        assert!(answers(port, b"PING\r\n", b"+PONG"));
        redis.kill();
        assert!(!answers(port, b"PING\r\n", b"+PONG"));
        redis.resume().unwrap();
        assert!(answers(port, b"PING\r\n", b"+PONG"), "back on the same port");
    }

    #[test]
    fn nats_starts_and_greets() {
        let nats = Nats::start().unwrap();
        assert!(answers(nats.0.port, b"", b"INFO"));
    }

    #[test]
    fn postgres_starts_stops_and_resumes_on_its_port() {
        let mut pg = Postgres::start().unwrap();
        assert!(pg.pid().unwrap() > 1);
        pg.stop().unwrap();
        assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_err());
        pg.resume().unwrap();
        assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_ok());
    }
}
