//! Layer 4: each client connection is spliced to one backend. Bytes are
//! copied both ways until both sides have finished (a WebSocket's close
//! handshake passes through untouched); nothing is parsed. A connection
//! idle past `idle_timeout_ms`, or half-closed past `fin_timeout_ms`, is
//! closed.

use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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
    client: TcpStream,
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
                backend.report(false, config.health.rise, config.health.fall);
                continue;
            }
        }
        backend.connected();
        let _active = backend.enter();
        metrics::counter!("volley_proxy_connections_total", "backend" => backend.addr.clone()).increment(1);
        let started = std::time::Instant::now();
        let (up, down) = splice_both(client, upstream, &config).await;
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

/// Copy both ways until both sides have finished, or nothing moved for the
/// idle timeout, or one side finished and the other did not follow within
/// the half-close timeout (a client that never reads nor closes must not
/// hold the connection, and its backend's count, forever). Bytes up, down.
async fn splice_both(client: TcpStream, upstream: TcpStream, config: &ProxyConfig) -> (u64, u64) {
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let epoch = tokio::time::Instant::now();
    let last = AtomicU64::new(0);
    let up = pump(client_read, upstream_write, &last, epoch);
    let down = pump(upstream_read, client_write, &last, epoch);
    tokio::pin!(up, down);
    let idle = config.idle_timeout();
    let watchdog = async {
        loop {
            tokio::time::sleep(idle / 4).await;
            let quiet = epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            if quiet >= idle {
                return;
            }
        }
    };
    tokio::pin!(watchdog);
    let (mut sent_up, mut sent_down) = (None, None);
    tokio::select! {
        n = &mut up => sent_up = Some(n),
        n = &mut down => sent_down = Some(n),
        () = &mut watchdog => {}
    }
    let fin = config.fin_timeout();
    if sent_up.is_some() && sent_down.is_none() {
        sent_down = tokio::time::timeout(fin, &mut down).await.ok();
    } else if sent_down.is_some() && sent_up.is_none() {
        sent_up = tokio::time::timeout(fin, &mut up).await.ok();
    }
    (sent_up.unwrap_or(0), sent_down.unwrap_or(0))
}

/// One direction: read, write, and on end of input finish the other side's
/// writing half (a half-close passes through).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, last: &AtomicU64, epoch: tokio::time::Instant) -> u64 {
    let mut buf = vec![0u8; 8 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total += n as u64;
        last.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
    total
}
