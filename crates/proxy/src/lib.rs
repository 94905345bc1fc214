//! `volley proxy`: what goes in front of several volley nodes.
//!
//! This first part is the layer-4 proxy (`mode = "tcp"`): each client
//! connection is spliced to one backend, chosen by round robin, fewest
//! connections or a consistent hash of the client's address among the
//! backends that pass their health checks ([`pool`], [`health`]), with a
//! PROXY protocol v2 header first so the node sees the real client
//! ([`volley_net::proxy_protocol`]; `volley serve --proxy-protocol`). The
//! layer-7 mode (`http`: TLS termination, HTTP/2 and HTTP/3 downstream,
//! routing and room affinity, paced draining) is not built yet.

mod admin;
mod config;
mod error;
pub mod health;
pub mod pool;
mod tcp;

pub use config::{Balance, HealthKind, Mode, ProxyConfig};
pub use error::Error;

use std::sync::Arc;

use tokio::sync::watch;

/// Run the proxy until `stop` turns true.
pub async fn run(config: ProxyConfig, stop: watch::Receiver<bool>) -> Result<(), Error> {
    config.validate()?;
    if config.mode == Mode::Http {
        return Err(Error::Config(
            "mode = \"http\" (layer 7) is not built yet; use mode = \"tcp\" (--mode tcp)".into(),
        ));
    }
    let metrics = admin::recorder();
    let pool = Arc::new(pool::Pool::new(&config)?);
    if let Some(addr) = config.admin {
        admin::serve(addr, metrics, stop.clone()).await?;
    }
    for backend in pool.backends() {
        tokio::spawn(health::watch(
            backend.clone(),
            config.health.clone(),
            config.proxy_protocol,
            stop.clone(),
        ));
    }
    tcp::serve(config, pool, stop).await
}
