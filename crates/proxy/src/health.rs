//! Active health checks: every backend is checked on an interval (a TCP
//! connection, or `GET /healthz` answered 2xx), and `fall` failures in a
//! row take it out of rotation, `rise` successes bring it back. Failed
//! connections of real clients count as failures too ([`crate::tcp`]).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::config::HealthConfig;
use crate::pool::Backend;
use crate::HealthKind;

/// Check `backend` until `stop` turns true. With `proxy_protocol`, each
/// check starts with a LOCAL header, as the backend expects one from us.
pub async fn watch(backend: Arc<Backend>, config: HealthConfig, proxy_protocol: bool, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(config.interval());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let ok = tokio::time::timeout(config.timeout(), check(&backend.addr, &config, proxy_protocol))
            .await
            .unwrap_or(false);
        metrics::counter!("volley_proxy_health_checks_total", "backend" => backend.addr.clone(), "ok" => ok.to_string())
            .increment(1);
        backend.report(ok, config.rise, config.fall);
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
