//! Layer 4: each client connection is spliced to one backend. Bytes are
//! copied both ways until both sides have finished (a WebSocket's close
//! handshake passes through untouched); nothing is parsed. A connection
//! idle past `idle_timeout_ms`, or half-closed past `fin_timeout_ms`, is
//! closed; a drain closes its backend's connections at the paced rate.
//!
//! With routes by host, TLS passes through routed by SNI: the client's hello
//! is read (not answered; rustls parses it), its server name picks the
//! route, and the hello goes to the backend first, so the backend's TLS
//! handshake with the client proceeds as if nothing stood between them.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// A TLS hello is read within this many bytes (a real one is under 2 KiB;
/// post-quantum key shares take it past 1 KiB more).
const MAX_HELLO: usize = 16 * 1024;

async fn one(mut client: TcpStream, peer: SocketAddr, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let current = shared.current();
    let config = current.config.clone();
    let _ = client.set_nodelay(true);
    let mut hello = Vec::new();
    let route = if current.table.routes_by_host() {
        let name = match tokio::time::timeout(config.handshake_timeout(), server_name(&mut client, &mut hello)).await {
            Ok(Ok(name)) => name,
            Ok(Err(e)) => {
                tracing::debug!(client = %peer, error = %e, "no TLS hello");
                return;
            }
            Err(_) => {
                metrics::counter!("volley_proxy_refused_total", "reason" => "hello_timeout").increment(1);
                return;
            }
        };
        current.table.route_for_sni(name.as_deref())
    } else {
        current.table.route_for_sni(None)
    };
    let Some(route) = route else {
        metrics::counter!("volley_proxy_refused_total", "reason" => "no_route").increment(1);
        return;
    };
    let local = client.local_addr().unwrap_or(config.listen);
    let Ok(mut connected) = crate::connect::connect(&shared, &config, route, None, peer, local).await else {
        return;
    };
    if !hello.is_empty() && connected.stream.write_all(&hello).await.is_err() {
        return;
    }
    let backend = connected.backend.clone();
    let _active = backend.enter();
    let (_live, drain) = crate::drain::register(&backend, &config);
    metrics::counter!("volley_proxy_connections_total", "backend" => backend.addr.clone()).increment(1);
    let started = std::time::Instant::now();
    let timeouts = Timeouts {
        idle: config.idle_timeout(),
        fin: config.fin_timeout(),
    };
    let out = splice(client, connected.stream, &[], false, drain, timeouts).await;
    let out_up = out.up + hello.len() as u64;
    metrics::counter!("volley_proxy_bytes_total", "direction" => "up").increment(out_up);
    metrics::counter!("volley_proxy_bytes_total", "direction" => "down").increment(out.down);
    tracing::debug!(
        client = %peer,
        backend = %backend.addr,
        ms = started.elapsed().as_millis() as u64,
        bytes_up = out_up,
        bytes_down = out.down,
        drained = out.drained,
        "connection ended"
    );
}

/// Read the client's TLS hello into `hello` and return its server name
/// (`None` when it names none). Bytes that are not a TLS hello are an error.
async fn server_name(client: &mut TcpStream, hello: &mut Vec<u8>) -> std::io::Result<Option<String>> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hello.extend_from_slice(&chunk[..n]);
        let mut fed = &chunk[..n];
        while !fed.is_empty() {
            acceptor.read_tls(&mut fed)?;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok(accepted.client_hello().server_name().map(str::to_owned)),
            Ok(None) if hello.len() < MAX_HELLO => continue,
            Ok(None) => return Err(std::io::Error::other("TLS hello over 16 KiB")),
            Err((e, _)) => return Err(std::io::Error::other(e)),
        }
    }
}
