//! Opening a connection to a backend for one client: choose (by affinity
//! key, or the balancing rule), connect within the timeout, send the PROXY
//! header when configured; on failure count it against the backend and try
//! the next, up to `connect_attempts`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::pool::{Backend, KeyHold};
use crate::route::Route;
use crate::{ProxyConfig, Shared};

/// A backend connection and where it goes.
#[derive(Debug)]
pub(crate) struct Connected {
    pub(crate) stream: TcpStream,
    pub(crate) backend: Arc<Backend>,
    /// The connection's place in its key's placement, if it has a key.
    pub(crate) hold: Option<KeyHold>,
}

/// Why no backend took the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoBackend {
    /// None was usable (all down, draining or removed): 503.
    Unavailable,
    /// Those tried refused or timed out: 502.
    Failed,
}

/// Connect `peer` (who reached us at `local`) to a backend of `route`.
pub(crate) async fn connect(
    shared: &Shared,
    config: &ProxyConfig,
    route: &Route,
    key: Option<&str>,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Connected, NoBackend> {
    let mut tried = Vec::new();
    // Keys are per route: two routes may use the same room ids for
    // different backends.
    let key = key.map(|k| format!("{}\0{k}", route.name));
    for _ in 0..config.connect_attempts {
        let chosen = match &key {
            Some(key) => route
                .pool
                .choose_by_key(key, &tried, config.affinity_epsilon, &shared.affinities)
                .map(|(b, moved, hold)| (b, moved, Some(hold))),
            None => route.pool.choose(peer.ip(), &tried).map(|b| (b, false, None)),
        };
        let Some((backend, moved, hold)) = chosen else {
            break;
        };
        if moved {
            metrics::counter!("volley_proxy_affinity_moves_total", "backend" => backend.addr.clone()).increment(1);
        }
        tried.push(backend.index);
        let connected = tokio::time::timeout(config.connect_timeout(), TcpStream::connect(&backend.addr)).await;
        let mut stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.addr, error = %e, "backend refused a connection");
                refused(shared, &backend);
                continue;
            }
            Err(_) => {
                tracing::debug!(backend = %backend.addr, "backend connect timed out");
                refused(shared, &backend);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if config.proxy_protocol {
            let header = volley_net::proxy_protocol::encode(peer, local);
            if stream.write_all(&header).await.is_err() {
                refused(shared, &backend);
                continue;
            }
        }
        backend.connected();
        return Ok(Connected { stream, backend, hold });
    }
    metrics::counter!("volley_proxy_refused_total", "reason" => "no_backend").increment(1);
    tracing::warn!(client = %peer, tried = tried.len(), "no backend took the connection");
    Err(if tried.is_empty() {
        NoBackend::Unavailable
    } else {
        NoBackend::Failed
    })
}

fn refused(shared: &Shared, backend: &Arc<Backend>) {
    crate::health::failed(shared, backend, false);
    metrics::counter!("volley_proxy_connect_failures_total", "backend" => backend.addr.clone()).increment(1);
}
