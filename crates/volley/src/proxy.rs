//! `volley proxy`: the proxy in front of volley nodes (layer 4 for now;
//! see `volley_proxy`).

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
    /// A backend, host:port; repeatable.
    #[arg(long = "backend")]
    backends: Vec<String>,
    /// tcp (layer 4, bytes spliced) or http (layer 7, not built yet) [default: http].
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
        Ok(config)
    }
}

/// Check a file, or run until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    if let Some(Action::Check { file }) = &args.action {
        let config = read(file)?;
        config.validate()?;
        print!("{}", config.to_toml());
        return Ok(());
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
    volley_proxy::run(config, stop).await?;
    Ok(())
}
