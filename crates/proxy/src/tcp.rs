//! Layer 4: each client connection is spliced to one backend. Bytes are
//! copied both ways until both sides have finished (a WebSocket's close
//! handshake passes through untouched); nothing is parsed.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::pool::Pool;
use crate::{Error, ProxyConfig};

/// Accept clients on `config.listen` until `stop` turns true; connections
/// already spliced run on until their ends close.
pub(crate) async fn serve(config: ProxyConfig, pool: Arc<Pool>, mut stop: watch::Receiver<bool>) -> Result<(), Error> {
    let listener = volley_net::front::bind(config.listen)?;
    tracing::info!(
        listen = %listener.local_addr()?,
        backends = ?config.backends,
        balance = ?config.balance,
        proxy_protocol = config.proxy_protocol,
        "volley proxy (tcp) listening"
    );
    let config = Arc::new(config);
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
        tokio::spawn(splice(client, peer, pool.clone(), config.clone(), permit));
    }
}

async fn splice(
    mut client: TcpStream,
    peer: SocketAddr,
    pool: Arc<Pool>,
    config: Arc<ProxyConfig>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = client.set_nodelay(true);
    let local = client.local_addr().unwrap_or(config.listen);
    let mut tried = Vec::new();
    for _ in 0..config.connect_attempts {
        let Some(backend) = pool.choose(peer.ip(), &tried) else {
            break;
        };
        tried.push(backend.index);
        let connected = tokio::time::timeout(config.connect_timeout(), TcpStream::connect(&backend.addr)).await;
        let mut upstream = match connected {
            Ok(Ok(upstream)) => upstream,
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.addr, error = %e, "backend refused a connection");
                backend.report(false, config.health.rise, config.health.fall);
                metrics::counter!("volley_proxy_connect_failures_total", "backend" => backend.addr.clone())
                    .increment(1);
                continue;
            }
            Err(_) => {
                tracing::debug!(backend = %backend.addr, "backend connect timed out");
                backend.report(false, config.health.rise, config.health.fall);
                metrics::counter!("volley_proxy_connect_failures_total", "backend" => backend.addr.clone())
                    .increment(1);
                continue;
            }
        };
        let _ = upstream.set_nodelay(true);
        if config.proxy_protocol {
            let header = volley_net::proxy_protocol::encode(peer, local);
            if upstream.write_all(&header).await.is_err() {
                continue;
            }
        }
        let _active = backend.enter();
        metrics::counter!("volley_proxy_connections_total", "backend" => backend.addr.clone()).increment(1);
        let started = std::time::Instant::now();
        let copied = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        let (up, down) = copied.as_ref().map(|(a, b)| (*a, *b)).unwrap_or((0, 0));
        metrics::counter!("volley_proxy_bytes_total", "direction" => "up").increment(up);
        metrics::counter!("volley_proxy_bytes_total", "direction" => "down").increment(down);
        tracing::debug!(
            client = %peer,
            backend = %backend.addr,
            ms = started.elapsed().as_millis() as u64,
            bytes_up = up,
            bytes_down = down,
            "connection ended"
        );
        return;
    }
    metrics::counter!("volley_proxy_refused_total", "reason" => "no_backend").increment(1);
    tracing::warn!(client = %peer, tried = tried.len(), "no backend took the connection");
}
