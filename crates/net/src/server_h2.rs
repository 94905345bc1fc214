//! The raw accept path's HTTP/2 side: a TLS connection that chose `h2` by
//! ALPN carries WebSockets as extended CONNECT streams (RFC 8441). Used by
//! `volley echo`, whose HTTP/1.1 path stays hyper-free (it is the one being
//! benchmarked); `volley serve` gets HTTP/2 from `front` instead.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::upgrade::Upgraded;
use tokio::time::timeout;

use crate::{Acceptor, Error, MaybeTlsStream, WebSocket};

/// What a TCP connection turned out to be.
// Made once per connection and taken apart at once: boxing either side
// would only add an allocation per connection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Accepted {
    /// An HTTP/1.1 upgrade: one WebSocket, and its request head.
    WebSocket(WebSocket<MaybeTlsStream>, Request<()>),
    /// An HTTP/2 connection (TLS with ALPN `h2`): WebSockets as streams.
    Http2(H2Accepted),
}

impl Acceptor {
    /// As [`accept_tcp`](Self::accept_tcp), and a TLS client that chose
    /// HTTP/2 by ALPN comes back as an [`H2Accepted`] connection, whose
    /// streams are WebSockets opened by extended CONNECT (RFC 8441).
    pub async fn accept_tcp_or_h2(&self, tcp: TcpStream) -> Result<Accepted, Error> {
        let _ = tcp.set_nodelay(true);
        let work = async {
            let stream = match &self.tls {
                None => MaybeTlsStream::Plain(tcp),
                Some(tls) => {
                    let stream = tls.accept(tcp).await.map_err(crate::tls::classify)?;
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        return Ok(Accepted::Http2(H2Accepted::new(stream, self.clone())));
                    }
                    MaybeTlsStream::ServerTls(Box::new(stream))
                }
            };
            let (ws, request) = self.handshake(stream).await?;
            Ok(Accepted::WebSocket(ws, request))
        };
        match timeout(self.config.handshake_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout("handshake")),
        }
    }
}

/// A TLS connection that agreed on HTTP/2, not yet served.
#[derive(Debug)]
pub struct H2Accepted {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    acceptor: Acceptor,
}

impl H2Accepted {
    fn new(stream: tokio_rustls::server::TlsStream<TcpStream>, acceptor: Acceptor) -> H2Accepted {
        H2Accepted { stream, acceptor }
    }

    /// Serve the connection until it closes: each extended CONNECT that
    /// passes the acceptor's checks is answered 200 and its stream handed to
    /// `session` (in a task of its own); anything else gets its status.
    pub async fn serve<F, Fut>(self, session: F) -> Result<(), crate::Error>
    where
        F: Fn(WebSocket<Upgraded>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let acceptor = self.acceptor.clone();
        let session = Arc::new(session);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let answer = open(&acceptor, request, session.clone());
            async move { Ok::<_, Infallible>(answer) }
        });
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .enable_connect_protocol()
            .serve_connection(TokioIo::new(self.stream), service)
            .await
            .map_err(|e| crate::Error::Io(std::io::Error::other(e)))
    }
}

fn open<F, Fut>(acceptor: &Acceptor, mut request: Request<Incoming>, session: Arc<F>) -> Response<Body>
where
    F: Fn(WebSocket<Upgraded>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if request.method() != http::Method::CONNECT {
        let refused = crate::Refused::new(
            StatusCode::BAD_REQUEST,
            "over HTTP/2 a WebSocket opens with an extended CONNECT (:protocol websocket)",
            "handshake",
        );
        return axum::response::IntoResponse::into_response(refused);
    }
    let protocol = request
        .extensions()
        .get::<hyper::ext::Protocol>()
        .map(|p| p.as_str().to_owned());
    if !request.headers().contains_key(http::header::HOST) {
        if let Some(host) = request
            .uri()
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(http::header::HOST, host);
        }
    }
    if let Err(refused) = crate::upgrade::check_scheme(request.version(), request.uri()) {
        return axum::response::IntoResponse::into_response(refused);
    }
    let negotiated = match acceptor.negotiate_head(
        request.method(),
        request.version(),
        protocol.as_deref(),
        request.headers(),
    ) {
        Ok(negotiated) => negotiated,
        Err(e) => {
            let refused = crate::Refused::from(e);
            return axum::response::IntoResponse::into_response(refused);
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (parts, ()) = negotiated.response().into_parts();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => session(negotiated.into_websocket(Upgraded::Hyper(TokioIo::new(upgraded)), &[])).await,
            Err(e) => tracing::debug!(error = %e, "HTTP/2 stream did not open"),
        }
    });
    Response::from_parts(parts, Body::empty())
}
