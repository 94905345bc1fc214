//! Active health checks: every backend is checked on an interval (a TCP
//! connection, or `GET /healthz` answered 2xx), and `fall` failures in a
//! row take it out of rotation (and drain its live connections), `rise`
//! successes bring it back. Failed connections of real clients count as
//! failures too. The settings are read at each check, so a reload changes
//! them; a backend a reload removed is no longer checked.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::HealthConfig;
use crate::pool::Backend;
use crate::{HealthKind, Shared};

/// Check `backend` until the proxy stops or a reload removes it (once per
/// backend: a checker already running goes on).
pub(crate) fn ensure(shared: Arc<Shared>, backend: Arc<Backend>) {
    if backend.checked.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        let mut stop = shared.stop.clone();
        loop {
            let config = shared.current().config.clone();
            tokio::select! {
                () = tokio::time::sleep(config.health.interval()) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if backend.is_removed() {
                break;
            }
            let ok = tokio::time::timeout(
                config.health.timeout(),
                check(&backend.addr, &config.health, config.proxy_protocol),
            )
            .await
            .unwrap_or(false);
            metrics::counter!("volley_proxy_health_checks_total", "backend" => backend.addr.clone(), "ok" => ok.to_string())
                .increment(1);
            failed(&shared, &backend, ok);
        }
        backend.checked.store(false, Ordering::Release);
    });
}

/// Record a check or connection outcome; a backend it takes out is drained.
pub(crate) fn failed(shared: &Shared, backend: &Arc<Backend>, ok: bool) {
    let config = shared.current().config.clone();
    if backend.report(ok, config.health.rise, config.health.fall) {
        crate::drain::start(
            backend.clone(),
            config.drain_rate,
            config.drain_reconnect_ms,
            "backend down",
        );
    }
}

async fn check(addr: &str, config: &HealthConfig, proxy_protocol: bool) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    if proxy_protocol
        && stream
            .write_all(&volley_net::proxy_protocol::encode_local())
            .await
            .is_err()
    {
        return false;
    }
    if config.kind == HealthKind::Tcp {
        return true;
    }
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: volley-proxy-health\r\nConnection: close\r\n\r\n",
        config.path
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    // The status line is all that matters: "HTTP/1.1 2xx".
    let mut head = [0u8; 12];
    if stream.read_exact(&mut head).await.is_err() {
        return false;
    }
    head.starts_with(b"HTTP/1.") && head[9] == b'2'
}
