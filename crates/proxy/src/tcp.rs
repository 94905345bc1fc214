//! Layer 4: each client connection is spliced to one backend. Bytes are
//! copied both ways until both sides have finished (a WebSocket's close
//! handshake passes through untouched); nothing is parsed. A connection
//! idle past `idle_timeout_ms`, or half-closed past `fin_timeout_ms`, is
//! closed; a drain closes its backend's connections at the paced rate.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::splice::{splice, Timeouts};
use crate::{Error, Shared};

/// Accept clients until `stop` turns true; connections already spliced run
/// on until their ends close.
pub(crate) async fn serve(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> Result<(), Error> {
    let config = shared.current().config.clone();
    let listener = volley_net::front::bind(config.listen)?;
    tracing::info!(
        listen = %listener.local_addr()?,
        backends = ?config.backends,
        balance = ?config.balance,
        proxy_protocol = config.proxy_protocol,
        "volley proxy (tcp) listening"
    );
    let room = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let permit = tokio::select! {
            permit = room.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Ok(()),
            },
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let (client, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        tokio::spawn(one(client, peer, shared.clone(), permit));
    }
}

async fn one(client: TcpStream, peer: SocketAddr, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let current = shared.current();
    let config = current.config.clone();
    let Some(route) = current.table.first() else {
        return;
    };
    let _ = client.set_nodelay(true);
    let local = client.local_addr().unwrap_or(config.listen);
    let Ok(connected) = crate::connect::connect(&shared, &config, route, None, peer, local).await else {
        return;
    };
    let backend = connected.backend;
    let _active = backend.enter();
    let (_live, drain) = backend.register();
    metrics::counter!("volley_proxy_connections_total", "backend" => backend.addr.clone()).increment(1);
    let started = std::time::Instant::now();
    let timeouts = Timeouts {
        idle: config.idle_timeout(),
        fin: config.fin_timeout(),
    };
    let out = splice(client, connected.stream, &[], false, drain, timeouts).await;
    metrics::counter!("volley_proxy_bytes_total", "direction" => "up").increment(out.up);
    metrics::counter!("volley_proxy_bytes_total", "direction" => "down").increment(out.down);
    tracing::debug!(
        client = %peer,
        backend = %backend.addr,
        ms = started.elapsed().as_millis() as u64,
        bytes_up = out.up,
        bytes_down = out.down,
        drained = out.drained,
        "connection ended"
    );
}
