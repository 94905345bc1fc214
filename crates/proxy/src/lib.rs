//! `volley proxy`: what goes in front of several volley nodes.
//!
//! Two modes share the backends, their health checks ([`pool`],
//! [`health`]), paced draining and reloads:
//!
//! - layer 4 (`mode = "tcp"`): each client connection is spliced to one
//!   backend, chosen by round robin, fewest connections or a consistent hash
//!   of the client's address, with a PROXY protocol v2 header first so the
//!   node sees the real client ([`volley_net::proxy_protocol`]; `volley
//!   serve --proxy-protocol`);
//! - layer 7 (`mode = "http"`, the default): TLS ends here; clients speak
//!   HTTP/1.1, HTTP/2 or HTTP/3, and every request leaves as HTTP/1.1. A
//!   WebSocket (an upgrade, or an extended CONNECT over HTTP/2 or HTTP/3) is
//!   handshaken again with the backend under a key of our own, then its
//!   bytes are spliced; routes pick backends by host, path and header, and
//!   affinity keeps a room's connections on one backend.
//!
//! A reload (SIGHUP) swaps the configuration for new connections and keeps
//! every established one; a backend it removes is drained.

mod admin;
mod affinity;
mod certs;
mod config;
mod connect;
mod drain;
mod error;
mod forward;
pub mod frames;
mod headers;
pub mod health;
mod l7;
pub mod pool;
mod rates;
mod refusal;
pub mod route;
mod splice;
mod tcp;
mod ws;

pub use affinity::Affinity;
pub use config::{Balance, HealthKind, Mode, ProxyConfig, RouteConfig, SniCert};
pub use error::Error;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, watch};

use crate::pool::{Affinities, Backends};
use crate::route::{Current, Table};

/// What every connection, health check, drain and reload shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) backends: Backends,
    pub(crate) affinities: Arc<Affinities>,
    pub(crate) rates: rates::Rates,
    pub(crate) clients: Arc<rates::Clients>,
    pub(crate) certs: Arc<certs::Certs>,
    current: RwLock<Arc<Current>>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    /// The configuration and routes new connections get.
    pub(crate) fn current(&self) -> Arc<Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Put `config` in force: new backends are checked, removed ones drained,
    /// certificates read again. A bad configuration changes nothing.
    fn apply(self: &Arc<Self>, config: ProxyConfig) -> Result<(), Error> {
        config.validate()?;
        let old = self.current();
        if config.tls() != old.config.tls() || config.http3 != old.config.http3 {
            return Err(Error::Config(
                "turning TLS or HTTP/3 on or off needs a restart (certificates themselves reload)".into(),
            ));
        }
        if config.listen != old.config.listen
            || config.mode != old.config.mode
            || config.admin != old.config.admin
            || config.max_head_bytes != old.config.max_head_bytes
            || config.handshake_timeout_ms != old.config.handshake_timeout_ms
            || config.max_connections_per_ip != old.config.max_connections_per_ip
        {
            tracing::warn!(
                "listen, mode, admin and the front door's limits (head size and time, connections per address) \
                 change only with a restart; the rest of the reload applies"
            );
        }
        if config.tls() {
            self.certs.load(&config)?;
        }
        let table = Table::new(&config, &self.backends)?;
        let keep: HashSet<String> = config.all_backends().into_iter().collect();
        let removed = self.backends.retain(&keep);
        let config = Arc::new(config);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Current {
            config: config.clone(),
            table,
        });
        for backend in self.backends.all() {
            if keep.contains(&backend.spec) {
                health::ensure(self.clone(), backend);
            }
        }
        for backend in removed {
            drain::start(backend, config.drain_rate, config.drain_reconnect_ms, "backend removed");
        }
        Ok(())
    }
}

/// Check a configuration as starting the proxy would: every setting, and
/// the certificates and keys it names (readable, and belonging together).
pub fn check(config: &ProxyConfig) -> Result<(), Error> {
    config.validate()?;
    if config.tls() {
        certs::Certs::default().load(config)?;
    }
    Ok(())
}

/// Run the proxy until `stop` turns true. Each configuration received on
/// `reloads` is put in force for new connections (established ones keep
/// going); one that fails validation, or a file that could not be read
/// (`Err`, with why), is logged, counted and ignored.
pub async fn run(
    config: ProxyConfig,
    mut reloads: mpsc::Receiver<Result<ProxyConfig, String>>,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    config.validate()?;
    let metrics = admin::recorder();
    let certs = Arc::new(certs::Certs::default());
    if config.tls() {
        certs.load(&config)?;
    }
    let backends = Backends::default();
    let table = Table::new(&config, &backends)?;
    let shared = Arc::new(Shared {
        backends,
        affinities: Arc::new(Affinities::default()),
        rates: rates::Rates::default(),
        clients: Arc::new(rates::Clients::default()),
        certs,
        current: RwLock::new(Arc::new(Current {
            config: Arc::new(config.clone()),
            table,
        })),
        stop: stop.clone(),
    });
    if let Some(addr) = config.admin {
        admin::serve(addr, metrics, shared.clone(), stop.clone()).await?;
    }
    for backend in shared.backends.all() {
        health::ensure(shared.clone(), backend);
    }
    let reloader = shared.clone();
    tokio::spawn(async move {
        while let Some(config) = reloads.recv().await {
            match config.map_err(Error::Config).and_then(|c| reloader.apply(c)) {
                Ok(()) => {
                    metrics::counter!("volley_proxy_reloads_total", "result" => "ok").increment(1);
                    tracing::info!("configuration reloaded; established connections kept");
                }
                Err(e) => {
                    metrics::counter!("volley_proxy_reloads_total", "result" => "error").increment(1);
                    tracing::error!(error = %e, "reload refused; the configuration in force stays");
                }
            }
        }
    });
    match config.mode {
        Mode::Tcp => tcp::serve(shared, stop).await,
        Mode::Http => l7::serve(shared, stop).await,
    }
}
