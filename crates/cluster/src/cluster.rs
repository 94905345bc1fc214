//! A running cluster: PostgreSQL, the broker, the nodes and the proxy as
//! child processes on free loopback ports, each started once the one
//! before it is healthy, with a fault relay on every link that faults may
//! cut; and the faults themselves, by name.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex as AsyncMutex;

use crate::process::{find, free_port, is_root, pg_command, Health, Process, Runner};
use crate::relay::{Mode, Relay};
use crate::spec::{BrokerKind, Spec, StoreKind};
use crate::{proxies, Error};

/// A fault, as `volley cluster fault` and the nemesis name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// kill -9 (the store: an immediate stop).
    Kill,
    /// SIGSTOP: the process hangs.
    Pause,
    /// SIGCONT.
    Resume,
    /// Stop (SIGTERM: a node drains) and start again on the same port.
    Restart,
    /// SIGTERM a node: it hands its game matches over and stops; `restart` brings it back.
    Drain,
    /// Partition a link (or every link of a service).
    Cut,
    /// Undo cut and slow on a link, a service's links, or `all`.
    Heal,
    /// Delay a link by `ms` each way.
    Slow,
    /// Close a link's open connections with a RST.
    Reset,
    /// Make the proxy read its configuration again.
    Reload,
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Action, String> {
        Ok(match s {
            "kill" => Action::Kill,
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            "restart" => Action::Restart,
            "drain" => Action::Drain,
            "cut" => Action::Cut,
            "heal" => Action::Heal,
            "slow" => Action::Slow,
            "reset" => Action::Reset,
            "reload" => Action::Reload,
            other => {
                return Err(format!(
                "unknown fault {other:?}: one of kill, pause, resume, restart, drain, cut, heal, slow, reset, reload"
            ))
            }
        })
    }
}

impl Action {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Restart => "restart",
            Action::Drain => "drain",
            Action::Cut => "cut",
            Action::Heal => "heal",
            Action::Slow => "slow",
            Action::Reset => "reset",
            Action::Reload => "reload",
        }
    }
}

/// A fault as it was injected.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Injected {
    /// Milliseconds since the cluster came up.
    pub at_ms: u64,
    /// What.
    pub action: Action,
    /// To whom.
    pub target: String,
    /// What came of it.
    pub result: String,
}

/// What kind of service a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// PostgreSQL.
    Store,
    /// Redis or NATS.
    Broker,
    /// A `volley serve`.
    Node,
    /// The proxy.
    Proxy,
}

struct Service {
    role: Role,
    process: Process,
}

/// The cluster, once up.
pub struct Cluster {
    spec: Spec,
    services: AsyncMutex<Vec<Service>>,
    relays: Vec<Arc<Relay>>,
    injected: Mutex<Vec<Injected>>,
    /// The last answer of [`Cluster::services`].
    last_services: Mutex<Vec<ServiceState>>,
    started: Instant,
    /// The proxy's port: what clients connect to.
    pub proxy_port: u16,
    /// The proxy's metrics port.
    pub proxy_admin_port: u16,
    /// Each node's name and its own port (not through a relay).
    pub nodes: Vec<(String, u16)>,
    /// PostgreSQL's port, when the store is PostgreSQL.
    pub store_port: Option<u16>,
    /// The broker's port.
    pub broker_port: u16,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.spec.dir)
            .field("proxy_port", &self.proxy_port)
            .field("nodes", &self.nodes)
            .finish()
    }
}

fn postgres_bin() -> Result<PathBuf, Error> {
    let missing = || Error::Missing {
        program: "postgres".into(),
        package: "postgresql".into(),
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| missing())?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(missing)
}

/// PostgreSQL runs as `postgres` (it refuses root), so it must be able to
/// reach its data directory: the cluster's directory is opened to
/// traversal (`o+x`, no listing); an ancestor that is closed is an error
/// naming it.
fn traversable_by_postgres(dir: &std::path::Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(dir).map_err(Error::io(format!("{}", dir.display())))?;
    let mode = meta.permissions().mode();
    if mode & 0o001 == 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011))
            .map_err(Error::io(format!("open {} to traversal", dir.display())))?;
    }
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        if meta.permissions().mode() & 0o001 == 0 {
            return Err(Error::NotReady(
                "store".into(),
                format!(
                    "PostgreSQL runs as the postgres user and cannot reach {} (no o+x): choose another --dir",
                    ancestor.display()
                ),
            ));
        }
    }
    Ok(())
}

impl Cluster {
    /// Bring everything up, in order, each part healthy before the next
    /// starts. On failure what was started is stopped again.
    pub async fn up(mut spec: Spec) -> Result<Arc<Cluster>, Error> {
        // Absolute: PostgreSQL resolves paths from its own working directory.
        spec.dir = std::path::absolute(&spec.dir).map_err(Error::io(format!("{}", spec.dir.display())))?;
        let logs = spec.dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(Error::io(format!("create {}", logs.display())))?;
        let mut services: Vec<Service> = Vec::new();
        let result = Cluster::start_all(&spec, &mut services).await;
        match result {
            Ok((relays, ports)) => Ok(Arc::new(Cluster {
                spec,
                services: AsyncMutex::new(services),
                relays,
                injected: Mutex::new(Vec::new()),
                last_services: Mutex::new(Vec::new()),
                started: Instant::now(),
                proxy_port: ports.proxy,
                proxy_admin_port: ports.proxy_admin,
                nodes: ports.nodes,
                store_port: ports.store,
                broker_port: ports.broker,
            })),
            Err(e) => {
                for s in services.iter_mut().rev() {
                    s.process.stop(Duration::from_secs(5)).await;
                }
                Err(e)
            }
        }
    }

    async fn start_all(spec: &Spec, services: &mut Vec<Service>) -> Result<(Vec<Arc<Relay>>, Ports), Error> {
        let logs = spec.dir.join("logs");
        let log = |name: &str| logs.join(format!("{name}.log"));
        let mut relays = Vec::new();
        // The store.
        let store = match spec.store {
            StoreKind::Postgres => {
                let bin = postgres_bin()?;
                let root = spec.dir.join("store");
                let data = root.join("data");
                let as_postgres = is_root();
                if as_postgres {
                    traversable_by_postgres(&spec.dir)?;
                }
                if !data.join("PG_VERSION").is_file() {
                    std::fs::create_dir_all(&root).map_err(Error::io("create the store directory"))?;
                    if as_postgres {
                        let status = tokio::process::Command::new("chown")
                            .args(["-R", "postgres:postgres"])
                            .arg(&root)
                            .status()
                            .await
                            .map_err(Error::io("chown"))?;
                        if !status.success() {
                            return Err(Error::NotReady("store".into(), "chown to postgres failed".into()));
                        }
                    }
                    let out = pg_command(&bin.join("initdb"), as_postgres)
                        .args(["-A", "trust", "-U", "volley", "-E", "UTF8", "--no-sync", "-D"])
                        .arg(&data)
                        .output()
                        .await
                        .map_err(Error::io("initdb"))?;
                    if !out.status.success() {
                        return Err(Error::NotReady(
                            "store".into(),
                            format!("initdb: {}", String::from_utf8_lossy(&out.stderr)),
                        ));
                    }
                }
                let port = free_port()?;
                let runner = Runner::PgCtl { bin, data, as_postgres };
                let p = Process::new("store", port, Health::Tcp, runner, log("store"));
                if as_postgres {
                    // pg_ctl writes the log as postgres.
                    let _ = std::fs::File::create(&p.log);
                    let _ = tokio::process::Command::new("chown")
                        .args(["postgres:postgres"])
                        .arg(&p.log)
                        .status()
                        .await;
                }
                start(services, Role::Store, p).await?;
                Some(port)
            }
            StoreKind::Sqlite => None,
        };
        // The broker.
        let broker = free_port()?;
        let argv = match spec.broker {
            BrokerKind::Redis => {
                let bin = find("redis-server", &["/usr/bin/redis-server"], "redis-server")?;
                vec![
                    bin.display().to_string(),
                    "--port".into(),
                    broker.to_string(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--save".into(),
                    String::new(),
                    "--appendonly".into(),
                    "no".into(),
                ]
            }
            BrokerKind::Nats => {
                let bin = find(
                    "nats-server",
                    &["/usr/sbin/nats-server", "/usr/bin/nats-server"],
                    "nats-server",
                )?;
                let store_dir = spec.dir.join("nats");
                vec![
                    bin.display().to_string(),
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    broker.to_string(),
                    "-js".into(),
                    "-sd".into(),
                    store_dir.display().to_string(),
                ]
            }
        };
        let p = Process::new(
            "broker",
            broker,
            Health::Tcp,
            Runner::Child { argv, user: None },
            log("broker"),
        );
        start(services, Role::Broker, p).await?;
        // The nodes, each through its own relays to the broker and store.
        let secret: String = (0..32).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
        let mut nodes = Vec::new();
        for i in 1..=spec.nodes {
            let name = format!("n{i}");
            let to_broker = Relay::start(&format!("{name}-broker"), broker).await?;
            let broker_url = match spec.broker {
                BrokerKind::Redis => format!("redis://127.0.0.1:{}", to_broker.port),
                BrokerKind::Nats => format!("nats://127.0.0.1:{}", to_broker.port),
            };
            relays.push(to_broker);
            let port = free_port()?;
            let data = spec.dir.join("data").join(&name);
            let mut argv = vec![
                spec.volley.display().to_string(),
                "serve".into(),
                "--addr".into(),
                format!("127.0.0.1:{port}"),
                "--node-id".into(),
                name.clone(),
                "--data-dir".into(),
                data.display().to_string(),
                "--broker".into(),
                broker_url,
                "--token-secret".into(),
                secret.clone(),
                "--max-connections-per-ip".into(),
                "0".into(),
                "--account-attempts-per-sec".into(),
                "0".into(),
                "--game-checkpoint-secs".into(),
                spec.checkpoint_secs.to_string(),
            ];
            if let Some(store) = store {
                let to_store = Relay::start(&format!("{name}-store"), store).await?;
                argv.push("--store".into());
                argv.push(format!("postgres://volley@127.0.0.1:{}/postgres", to_store.port));
                relays.push(to_store);
            }
            let runner = Runner::Child { argv, user: None };
            let p = Process::new(&name, port, Health::Http("/readyz"), runner, log(&name));
            start(services, Role::Node, p).await?;
            nodes.push((name, port));
        }
        // The proxy, through a relay to each node.
        let mut behind = Vec::new();
        for (name, port) in &nodes {
            let relay = Relay::start(&format!("proxy-{name}"), *port).await?;
            behind.push((name.clone(), relay.port));
            relays.push(relay);
        }
        let (listen, admin) = (free_port()?, free_port()?);
        let argv = proxies::command(spec.proxy, &spec.volley, &spec.dir, listen, admin, &behind)?;
        // A TCP check: a request through the proxy would hang on a node
        // whose link is cut, and that is the nodes' health, not the proxy's.
        let p = Process::new(
            "proxy",
            listen,
            Health::Tcp,
            Runner::Child { argv, user: None },
            log("proxy"),
        );
        start(services, Role::Proxy, p).await?;
        Ok((
            relays,
            Ports {
                proxy: listen,
                proxy_admin: admin,
                nodes,
                store,
                broker,
            },
        ))
    }

    /// The directory it runs from.
    pub fn dir(&self) -> &std::path::Path {
        &self.spec.dir
    }

    /// What it was brought up with.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Milliseconds since it came up.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The faults injected so far.
    pub fn injected(&self) -> Vec<Injected> {
        self.injected.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The relays, by name.
    pub fn relays(&self) -> &[Arc<Relay>] {
        &self.relays
    }

    /// Every service: name, role, port, pid, whether it runs, is paused, is healthy now.
    pub async fn services(&self) -> Vec<ServiceState> {
        // A restart holds the services for up to a minute: meanwhile the
        // last answer stands, so the live page and `status` never wait.
        let Ok(mut services) = self.services.try_lock() else {
            return lock(&self.last_services).clone();
        };
        let mut out = Vec::new();
        let mut checks = Vec::new();
        for s in services.iter_mut() {
            let running = s.process.running();
            checks.push((running && !s.process.paused).then(|| (s.process.health.clone(), s.process.port)));
            out.push(ServiceState {
                name: s.process.name.clone(),
                role: s.role,
                port: s.process.port,
                pid: s.process.pid(),
                running,
                paused: s.process.paused,
                healthy: false,
                log: s.process.log.display().to_string(),
            });
        }
        drop(services);
        // Checked outside the lock, all at once.
        let results = futures_join(checks).await;
        for (state, healthy) in out.iter_mut().zip(results) {
            state.healthy = healthy;
        }
        *lock(&self.last_services) = out.clone();
        out
    }

    /// Inject a fault (see [`Action`]); `ms` is the delay of `slow`.
    pub async fn fault(&self, action: Action, target: &str, ms: Option<u64>) -> Result<String, Error> {
        let result = self.apply(action, target, ms).await;
        let text = match &result {
            Ok(text) => text.clone(),
            Err(e) => format!("failed: {e}"),
        };
        self.injected.lock().unwrap_or_else(|e| e.into_inner()).push(Injected {
            at_ms: self.now_ms(),
            action,
            target: target.to_owned(),
            result: text,
        });
        tracing::info!(fault = action.name(), target, "fault injected");
        result
    }

    fn links_of(&self, target: &str) -> Vec<Arc<Relay>> {
        if target == "all" {
            return self.relays.clone();
        }
        let exact: Vec<_> = self.relays.iter().filter(|r| r.name == target).cloned().collect();
        if !exact.is_empty() {
            return exact;
        }
        // A service's name: every link that touches it.
        self.relays
            .iter()
            .filter(|r| r.name.split('-').any(|part| part == target))
            .cloned()
            .collect()
    }

    async fn apply(&self, action: Action, target: &str, ms: Option<u64>) -> Result<String, Error> {
        match action {
            Action::Cut | Action::Heal | Action::Slow | Action::Reset => {
                let links = self.links_of(target);
                if links.is_empty() {
                    let names: Vec<&str> = self.relays.iter().map(|r| r.name.as_str()).collect();
                    return Err(Error::Unknown(format!(
                        "no link {target:?}: one of {}, a service's name, or all",
                        names.join(", ")
                    )));
                }
                for link in &links {
                    match action {
                        Action::Cut => link.set(Mode::Cut),
                        Action::Heal => link.set(Mode::Pass),
                        Action::Slow => link.set(Mode::Slow { ms: ms.unwrap_or(200) }),
                        _ => link.reset(),
                    }
                }
                let names: Vec<&str> = links.iter().map(|r| r.name.as_str()).collect();
                Ok(format!("{} {}", action.name(), names.join(", ")))
            }
            _ => {
                let mut services = self.services.lock().await;
                let Some(service) = services.iter_mut().find(|s| s.process.name == target) else {
                    let names: Vec<String> = services.iter().map(|s| s.process.name.clone()).collect();
                    return Err(Error::Unknown(format!(
                        "no service {target:?}: one of {}",
                        names.join(", ")
                    )));
                };
                let p = &mut service.process;
                match action {
                    Action::Kill => {
                        p.kill().await?;
                        Ok(format!("killed {target}"))
                    }
                    Action::Pause => {
                        p.signal("STOP").await?;
                        Ok(format!("paused {target}"))
                    }
                    Action::Resume => {
                        p.signal("CONT").await?;
                        Ok(format!("resumed {target}"))
                    }
                    Action::Drain => {
                        if service.role != Role::Node {
                            return Err(Error::Refused(format!("{target} is not a node: only nodes drain")));
                        }
                        p.stop(Duration::from_secs(25)).await;
                        Ok(format!("drained and stopped {target}"))
                    }
                    Action::Restart => {
                        if p.running() {
                            p.stop(Duration::from_secs(25)).await;
                        }
                        p.start().await?;
                        Ok(format!("restarted {target}"))
                    }
                    Action::Reload => {
                        if service.role != Role::Proxy {
                            return Err(Error::Refused(format!("{target} is not the proxy")));
                        }
                        p.signal(proxies::reload_signal(self.spec.proxy)).await?;
                        Ok(format!("reloaded {target}"))
                    }
                    _ => unreachable!("links handled above"),
                }
            }
        }
    }

    /// Heal every link, resume what is paused, start what is down: the
    /// state every check of a test run is made from.
    pub async fn heal_all(&self) -> Vec<String> {
        for relay in &self.relays {
            relay.set(Mode::Pass);
        }
        let mut done = Vec::new();
        let mut services = self.services.lock().await;
        for s in services.iter_mut() {
            let p = &mut s.process;
            if p.paused {
                let _ = p.signal("CONT").await;
                done.push(format!("resumed {}", p.name));
            }
            if !p.running() {
                match p.start().await {
                    Ok(()) => done.push(format!("started {}", p.name)),
                    Err(e) => done.push(format!("could not start {}: {e}", p.name)),
                }
            }
        }
        done
    }

    /// Stop everything, proxy first, store last; nothing is left running.
    pub async fn down(&self) {
        for relay in &self.relays {
            relay.set(Mode::Pass);
        }
        let mut services = self.services.lock().await;
        for s in services.iter_mut().rev() {
            s.process.stop(Duration::from_secs(10)).await;
        }
    }
}

/// Run the health checks side by side; `None` is a service not to check (down, paused).
async fn futures_join(checks: Vec<Option<(Health, u16)>>) -> Vec<bool> {
    let tasks: Vec<_> = checks
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                match c {
                    Some((health, port)) => crate::process::check(&health, port).await,
                    None => false,
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap_or(false));
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Start a service, healthy before it is listed (a failed one is not,
/// so nothing is left to stop).
async fn start(services: &mut Vec<Service>, role: Role, mut process: Process) -> Result<(), Error> {
    process.start().await?;
    services.push(Service { role, process });
    Ok(())
}

struct Ports {
    proxy: u16,
    proxy_admin: u16,
    nodes: Vec<(String, u16)>,
    store: Option<u16>,
    broker: u16,
}

/// A service as `status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ServiceState {
    /// `store`, `broker`, `n1`..., `proxy`.
    pub name: String,
    /// What it is.
    #[serde(skip_deserializing, default = "default_role")]
    pub role: Role,
    /// Its port.
    pub port: u16,
    /// Its pid, while it runs.
    pub pid: Option<u32>,
    /// Alive.
    pub running: bool,
    /// SIGSTOPped.
    pub paused: bool,
    /// Its health check passes now.
    pub healthy: bool,
    /// Its log file.
    pub log: String,
}

fn default_role() -> Role {
    Role::Node
}
