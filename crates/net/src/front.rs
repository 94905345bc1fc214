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

use std::io;
use std::pin::Pin;
use std::sync::Arc;
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

use crate::addresses::{Addresses, Slot};

pub use crate::limits::FrontLimits;

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
    /// With TLS, also serve HTTP/3 on the same port number over UDP, and
    /// announce it with `Alt-Svc` on every HTTP/1.1 and HTTP/2 response.
    pub h3: bool,
    /// Connections from these sources start with a PROXY protocol v2 header
    /// naming the real client (a layer-4 proxy in front); empty: none do.
    pub proxy_protocol: crate::proxy_protocol::Trusted,
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
    let mut alt_svc = None;
    if let (Some(tls), true) = (&transport.tls, transport.h3) {
        let addr = listener.local_addr()?;
        let endpoint = crate::server_h3::endpoint(addr, tls)?;
        tracing::info!(%addr, "HTTP/3 (QUIC) on the same port over UDP");
        alt_svc = http::HeaderValue::from_str(&format!("h3=\":{}\"; ma=86400", addr.port())).ok();
        let (router, alt_svc, addresses) = (router.clone(), alt_svc.clone(), addresses.clone());
        let handler = move |request| crate::server_h3::route(router.clone(), alt_svc.clone(), request);
        tokio::spawn(crate::server_h3::serve(
            endpoint,
            limits,
            addresses,
            handler,
            stop.clone(),
        ));
    }
    let tls = transport.tls.map(|config| {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let admit = Arc::new(Admit {
        http,
        router,
        limits,
        stop: stop.clone(),
        alt_svc,
        tls,
        addresses,
    });
    let trusted = transport.proxy_protocol;
    let header_reads = Arc::new(tokio::sync::Semaphore::new(PENDING_PROXY_HEADERS));
    loop {
        let (mut stream, peer) = tokio::select! {
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
        if !trusted.contains(peer.ip()) {
            admit.admit(stream, peer);
            continue;
        }
        // A trusted proxy: its PROXY header names the client, who is then
        // counted and served as if it had connected itself. Proxies send
        // the header at once: a short deadline, and a bound on how many
        // such reads wait at a time, so no trusted host can pile them up.
        let Ok(reading) = header_reads.clone().try_acquire_owned() else {
            metrics::counter!("volley_connections_refused_total", "reason" => "proxy_protocol").increment(1);
            continue;
        };
        let admit = admit.clone();
        let deadline = admit.limits.head_timeout.min(PROXY_HEADER_DEADLINE);
        tokio::spawn(async move {
            let header = crate::proxy_protocol::read_header(&mut stream, peer, deadline).await;
            drop(reading);
            match header {
                Ok(client) => admit.admit(stream, client),
                Err(e) => {
                    metrics::counter!("volley_connections_refused_total", "reason" => "proxy_protocol").increment(1);
                    tracing::debug!(%peer, error = %e, "bad or missing PROXY protocol header");
                }
            }
        });
    }
}

/// What serving an accepted connection needs, shared by the accept loop and
/// the tasks that read PROXY headers.
struct Admit {
    http: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    limits: FrontLimits,
    stop: watch::Receiver<bool>,
    alt_svc: Option<http::HeaderValue>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    addresses: Arc<Addresses>,
}

impl Admit {
    /// Count the connection against `peer`'s cap, then serve it (TLS first
    /// when configured) in a task of its own.
    fn admit(&self, stream: TcpStream, peer: std::net::SocketAddr) {
        let limits = self.limits;
        let Some(slot) = self.addresses.take(peer.ip(), limits.per_address) else {
            metrics::counter!("volley_connections_refused_total", "reason" => "address_cap").increment(1);
            tokio::spawn(refuse(stream));
            return;
        };
        let _ = stream.set_nodelay(true);
        let counted = Counted { stream, _slot: slot };
        let connection = Connection {
            http: self.http.clone(),
            router: self.router.clone(),
            peer,
            limits,
            stop: self.stop.clone(),
            alt_svc: self.alt_svc.clone(),
        };
        match &self.tls {
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

/// PROXY protocol headers read at once (connections from trusted proxies
/// whose header has not arrived yet); beyond, new ones are closed.
const PENDING_PROXY_HEADERS: usize = 1024;

/// A trusted proxy's header must arrive within this (it is sent at once).
const PROXY_HEADER_DEADLINE: Duration = Duration::from_secs(2);

/// HTTP/2 connections are pinged this often; one that does not answer is closed.
const H2_PING: Duration = Duration::from_secs(30);

/// One accepted connection and what serving it needs.
struct Connection {
    http: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    peer: std::net::SocketAddr,
    limits: FrontLimits,
    stop: watch::Receiver<bool>,
    alt_svc: Option<http::HeaderValue>,
}

impl Connection {
    async fn serve<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (router, peer, alt_svc) = (self.router.clone(), self.peer, self.alt_svc.clone());
        // No request within the head timeout (a silent socket, or an HTTP/2
        // connection that never sends a stream): closed, as HTTP/1.1's own
        // head timeout does for its requests.
        let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen_by_service = seen.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            seen_by_service.store(true, std::sync::atomic::Ordering::Relaxed);
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            let alt_svc = alt_svc.clone();
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
                    return Ok::<_, std::convert::Infallible>(axum::response::IntoResponse::into_response(refused));
                }
                let mut response = router.call(request).await?;
                if let Some(alt_svc) = alt_svc {
                    response.headers_mut().insert(http::header::ALT_SVC, alt_svc);
                }
                Ok(response)
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
