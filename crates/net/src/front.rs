//! The front door of every HTTP server volley runs: the accept loop, with
//! the limits that must hold before any router sees a request.
//!
//! A router cannot protect against what reaches it only after the damage is
//! done: a client that sends its head one byte a second, a silent socket, a
//! 100 KB header line, a thousand unfinished connections from one address.
//! So [`serve`] enforces them where connections are accepted: a per-address
//! cap that counts every open connection (finished WebSocket handshake or
//! not; the slot is held by the socket itself, so an upgraded connection
//! keeps it until it closes), a head timeout that also closes idle
//! keep-alive connections, and a head size and header count limit answered
//! with 431. The numbers are those of `volley echo`'s raw accept path
//! ([`crate::Config`]), from [`FrontLimits::default`].

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

/// Limits applied to every connection before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontLimits {
    /// A request head (the first, or the next on a keep-alive connection)
    /// must arrive whole within this; otherwise the connection is closed.
    pub head_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; beyond: 431.
    pub max_head_bytes: usize,
    /// Most header fields in one request; beyond: 431.
    pub max_headers: usize,
    /// Open connections per client address, whatever their state; 0 is
    /// unlimited. Beyond: 429 and close.
    pub per_address: u32,
}

impl Default for FrontLimits {
    fn default() -> FrontLimits {
        let raw = crate::Config::default();
        FrontLimits {
            head_timeout: raw.handshake_timeout,
            max_head_bytes: raw.max_handshake_size,
            max_headers: MAX_HEADERS,
            per_address: 256,
        }
    }
}

/// Connections the kernel queues for `accept` (it caps this at
/// `net.core.somaxconn`, 4096 on current Linux).
pub const BACKLOG: u32 = 4096;

/// Bind a listener with a backlog for bursts. `TcpListener::bind` asks for
/// 128: a thousand clients connecting at once (a reconnect storm, a flood)
/// overflowed it, and the kernel left the excess half-open, unseen by the
/// server, until the client gave up.
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Header fields per request: the raw accept path's limit.
pub const MAX_HEADERS: usize = volley_wire::handshake::MAX_HEADERS;

/// How long a refused connection gets to take its 429.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Open connections per address, shared by the accept loop and the sockets.
#[derive(Debug, Default)]
struct Addresses {
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// The unit one client is counted in: its IPv4 address, or the /64 of an
/// IPv6 one (one machine commonly holds a whole /64, and picks any address
/// in it for each connection). An IPv4-mapped IPv6 address counts as IPv4.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Addresses {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: u32) -> Option<Slot> {
        let ip = client_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if cap != 0 && *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            addresses: self.clone(),
            ip,
        })
    }
}

/// One open connection's place in its address's count, given back on drop.
#[derive(Debug)]
struct Slot {
    addresses: Arc<Addresses>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.addresses.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream that holds its address slot for as long as it lives, through
/// an HTTP upgrade and the WebSocket after it.
#[derive(Debug)]
pub struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// How connections speak HTTP: plain HTTP/1.1 (and, with `h2c`, HTTP/2
/// with prior knowledge), or TLS with HTTP/2 and HTTP/1.1 chosen by ALPN.
/// HTTP/2 always offers extended CONNECT (RFC 8441), so WebSockets open as
/// streams of a shared connection.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// Serve TLS with this configuration (its ALPN list is set here).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Without TLS, also accept HTTP/2 with prior knowledge.
    pub h2c: bool,
}

/// Serve `router` on `listener` under `limits` until `stop` turns true:
/// then stop accepting and let connections finish their current request
/// (upgraded connections are the application's to close). Requests carry
/// [`ConnectInfo<SocketAddr>`] as with axum's own `serve`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: FrontLimits,
    transport: Transport,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let addresses = Arc::new(Addresses::default());
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_headers(limits.max_headers)
        // A head that does not fit the buffer is answered 431.
        .max_buf_size(limits.max_head_bytes.max(8192))
        .keep_alive(true);
    http.http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(H2_PING));
    if transport.tls.is_none() && !transport.h2c {
        http = http.http1_only();
    }
    let http = Arc::new(http);
    let tls = transport.tls.map(|config| {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept:
                    // pause briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => return Ok(()),
        };
        let Some(slot) = addresses.take(peer.ip(), limits.per_address) else {
            metrics::counter!("volley_connections_refused_total", "reason" => "address_cap").increment(1);
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let counted = Counted { stream, _slot: slot };
        let connection = Connection {
            http: http.clone(),
            router: router.clone(),
            peer,
            limits,
            stop: stop.clone(),
        };
        match &tls {
            None => {
                tokio::spawn(connection.serve(counted));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // The TLS handshake is part of the head: same deadline.
                    match tokio::time::timeout(limits.head_timeout, acceptor.accept(counted)).await {
                        Ok(Ok(tls)) => connection.serve(tls).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => {
                            metrics::counter!("volley_connections_refused_total", "reason" => "head_timeout")
                                .increment(1);
                        }
                    }
                });
            }
        }
    }
}

/// HTTP/2 connections are pinged this often; one that does not answer is closed.
const H2_PING: Duration = Duration::from_secs(30);

/// One accepted connection and what serving it needs.
struct Connection {
    http: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    peer: std::net::SocketAddr,
    limits: FrontLimits,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn serve<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (router, peer) = (self.router.clone(), self.peer);
        // No request within the head timeout (a silent socket, or an HTTP/2
        // connection that never sends a stream): closed, as HTTP/1.1's own
        // head timeout does for its requests.
        let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen_by_service = seen.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            seen_by_service.store(true, std::sync::atomic::Ordering::Relaxed);
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                // A CONNECT without `:protocol` asks for a tunnel: this is not
                // a proxy. (An extended CONNECT goes to its route.)
                let tunnel = request.method() == http::Method::CONNECT
                    && request.extensions().get::<hyper::ext::Protocol>().is_none();
                if tunnel {
                    let refused = crate::Refused::new(
                        http::StatusCode::BAD_REQUEST,
                        "CONNECT without :protocol: this server is not a proxy (a WebSocket needs :protocol websocket)",
                        "handshake",
                    );
                    return Ok(axum::response::IntoResponse::into_response(refused));
                }
                router.call(request).await
            }
        });
        let conn = self.http.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let first = tokio::time::sleep(self.limits.head_timeout);
        tokio::pin!(first);
        let mut waiting_first = true;
        loop {
            tokio::select! {
                result = conn.as_mut() => return finished(result),
                () = &mut first, if waiting_first => {
                    waiting_first = false;
                    if !seen.load(std::sync::atomic::Ordering::Relaxed) {
                        metrics::counter!("volley_connections_refused_total", "reason" => "head_timeout").increment(1);
                        return;
                    }
                }
                () = stopped(&mut self.stop) => break,
            }
        }
        conn.as_mut().graceful_shutdown();
        finished(conn.await);
    }
}

/// Resolves once `stop` is true (holding no borrow of it afterwards).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn finished(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        let timeout = e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
        if timeout {
            metrics::counter!("volley_connections_refused_total", "reason" => "head_timeout").increment(1);
        }
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}

/// Tell a client over its address's cap why, then close.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = "too many connections from this address\n";
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_addresses_or_ipv6_slash_64s() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_of(a), client_of(b));
        assert_ne!(client_of(a), client_of(other));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(client_of(mapped), IpAddr::from([10, 0, 0, 7]));
        let addresses = Arc::new(Addresses::default());
        let first = addresses.take(a, 1).unwrap();
        assert!(addresses.take(b, 1).is_none(), "same /64, same count");
        drop(first);
        assert!(addresses.take(b, 1).is_some());
    }
}
