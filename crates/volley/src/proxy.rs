//! `volley proxy`: the proxy in front of volley nodes (layer 4 or layer 7;
//! see `volley_proxy`), `volley proxy check FILE`, and `volley proxy drain`
//! / `undrain` against a running proxy's admin address.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use volley_proxy::{Balance, HealthKind, Mode, ProxyConfig};

/// Options of `volley proxy`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ProxyArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// TOML configuration file (flags override it).
    #[arg(long, env = "VOLLEY_PROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Where clients connect [default: 127.0.0.1:8000].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A backend, host:port or NAME=host:port (an affinity key equal to NAME goes to it); repeatable.
    #[arg(long = "backend")]
    backends: Vec<String>,
    /// tcp (layer 4, bytes spliced) or http (layer 7: TLS, HTTP/1.1, HTTP/2 and HTTP/3 to HTTP/1.1 backends) [default: http].
    #[arg(long, value_parser = ["tcp", "http"])]
    mode: Option<String>,
    /// round-robin, least-conn, or hash (of the client address) [default: round-robin].
    #[arg(long, value_parser = ["round-robin", "least-conn", "hash"])]
    balance: Option<String>,
    /// Send a PROXY protocol v2 header to the backends (they run `volley serve --proxy-protocol`).
    #[arg(long)]
    proxy_protocol: bool,
    /// Active health check: tcp (a connection opens) or http (GET /healthz answers 2xx) [default: http].
    #[arg(long, value_parser = ["tcp", "http"])]
    health: Option<String>,
    /// Serve Prometheus metrics on this address (GET /metrics); keep it off public interfaces.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Layer 7: keep a key's connections on one backend: query:NAME, path:N, header:NAME or cookie:NAME.
    #[arg(long)]
    affinity: Option<String>,
    /// Layer 7: end TLS with this PEM certificate chain.
    #[arg(long, requires = "tls_key", conflicts_with = "self_signed")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Layer 7: end TLS with a self-signed certificate (development only).
    #[arg(long)]
    self_signed: bool,
    /// Live connections a drain closes per second [default: 100].
    #[arg(long)]
    drain_rate: Option<u32>,
    /// Print the merged settings as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Check a configuration file: exit 0 and print it merged with the defaults, or name the bad key.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Drain a backend of a running proxy: no new connections; its live ones closed at the drain rate (1012).
    Drain {
        /// The backend: host:port, or its name.
        backend: String,
        /// The proxy's admin address.
        #[arg(long)]
        admin: SocketAddr,
    },
    /// Put a drained backend back into rotation.
    Undrain {
        /// The backend: host:port, or its name.
        backend: String,
        /// The proxy's admin address.
        #[arg(long)]
        admin: SocketAddr,
    },
}

fn read(path: &PathBuf) -> anyhow::Result<ProxyConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    ProxyConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

impl ProxyArgs {
    fn merged(&self) -> anyhow::Result<ProxyConfig> {
        let mut config = match &self.config {
            Some(path) => read(path)?,
            None => ProxyConfig::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if !self.backends.is_empty() {
            config.backends = self.backends.clone();
        }
        match self.mode.as_deref() {
            Some("tcp") => config.mode = Mode::Tcp,
            Some("http") => config.mode = Mode::Http,
            _ => {}
        }
        match self.balance.as_deref() {
            Some("round-robin") => config.balance = Balance::RoundRobin,
            Some("least-conn") => config.balance = Balance::LeastConn,
            Some("hash") => config.balance = Balance::Hash,
            _ => {}
        }
        match self.health.as_deref() {
            Some("tcp") => config.health.kind = HealthKind::Tcp,
            Some("http") => config.health.kind = HealthKind::Http,
            _ => {}
        }
        if self.proxy_protocol {
            config.proxy_protocol = true;
        }
        if let Some(admin) = self.admin {
            config.admin = Some(admin);
        }
        if let Some(affinity) = &self.affinity {
            config.affinity = Some(affinity.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls_cert = Some(cert.clone());
            config.tls_key = Some(key.clone());
            config.self_signed = false;
        }
        if self.self_signed {
            config.self_signed = true;
            config.tls_cert = None;
            config.tls_key = None;
        }
        if let Some(rate) = self.drain_rate {
            config.drain_rate = rate;
        }
        Ok(config)
    }
}

/// Check a file, or run until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    match &args.action {
        Some(Action::Check { file }) => {
            let config = read(file)?;
            volley_proxy::check(&config)?;
            print!("{}", config.to_toml());
            return Ok(());
        }
        Some(Action::Drain { backend, admin }) => return admin_post(*admin, "drain", backend).await,
        Some(Action::Undrain { backend, admin }) => return admin_post(*admin, "undrain", backend).await,
        None => {}
    }
    let config = args.merged()?;
    config.validate()?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::echo::shutdown_signal().await;
        tracing::info!("shutting down: no new connections; open ones run until they close");
        let _ = stop_tx.send(true);
    });
    // SIGHUP: read the file again (flags still win) and put it in force for
    // new connections; established ones are kept.
    let (reload_tx, reloads) = tokio::sync::mpsc::channel(4);
    #[cfg(unix)]
    {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                // A file that does not read or validate goes too, as an
                // error: the proxy logs and counts every refused reload.
                let config = args.merged().map_err(|e| format!("{e:#}"));
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = reload_tx.send(config).await;
            }
        });
    }
    #[cfg(not(unix))]
    drop(reload_tx);
    volley_proxy::run(config, reloads, stop).await?;
    Ok(())
}

/// `POST /backends/{action}?backend=...` on a proxy's admin address; print
/// its answer.
async fn admin_post(admin: SocketAddr, action: &str, backend: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .with_context(|| format!("cannot reach the proxy's admin address {admin}"))?;
    let query: String = backend
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b':' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    let request = format!(
        "POST /backends/{action}?backend={query} HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let ok = head.starts_with("HTTP/1.1 200");
    println!("{}", body.trim());
    if !ok {
        anyhow::bail!("{action} refused: {}", head.lines().next().unwrap_or("no answer"));
    }
    Ok(())
}
