//! Server side of the opening handshake over a raw stream.

use std::sync::Arc;

use bytes::BytesMut;
use http::{HeaderMap, Method, Request, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use volley_wire::handshake::{self, HandshakeError};
use volley_wire::Role;
use volley_wire::{deflate, DeflateConfig, DeflateParams};

use crate::origin::origin_allowed;
use crate::{Config, Error, MaybeTlsStream, WebSocket};

type OriginCheck = dyn Fn(Option<&str>) -> bool + Send + Sync;

/// Which browser origins may open a WebSocket.
#[derive(Clone, Default)]
enum OriginPolicy {
    /// Every origin (and none).
    #[default]
    Any,
    /// A function of the `Origin` header.
    Check(Arc<OriginCheck>),
    /// Same-origin, no origin, or one of these (`*` for any): [`origin_allowed`].
    List(Arc<[String]>),
}

/// Accepts WebSocket connections: reads the upgrade request, checks it,
/// negotiates a subprotocol, answers 101 or an HTTP error, and hands back a
/// [`WebSocket`]. Cheap to clone; build one and share it across accepts.
#[derive(Clone)]
pub struct Acceptor {
    pub(crate) config: Config,
    protocols: Vec<String>,
    origins: OriginPolicy,
    deflate: Option<DeflateConfig>,
    pub(crate) tls: Option<TlsAcceptor>,
    closing: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("config", &self.config)
            .field("protocols", &self.protocols)
            .field("origin_check", &!matches!(self.origins, OriginPolicy::Any))
            .field("deflate", &self.deflate)
            .field("tls", &self.tls.is_some())
            .field("closing", &self.is_closing())
            .finish()
    }
}

impl Default for Acceptor {
    fn default() -> Self {
        Acceptor::new(Config::default())
    }
}

impl Acceptor {
    /// An acceptor with these transport settings, no subprotocols and no
    /// origin check.
    pub fn new(config: Config) -> Self {
        Acceptor {
            config,
            protocols: Vec::new(),
            origins: OriginPolicy::Any,
            deflate: None,
            tls: None,
            closing: None,
        }
    }

    /// Serve `wss://`: [`accept_tcp`](Self::accept_tcp) runs a TLS handshake
    /// with this configuration (see [`crate::tls`]) before the WebSocket one.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(TlsAcceptor::from(config));
        self
    }

    /// Accept a TCP connection: TLS first if configured, then the WebSocket
    /// handshake, both within one handshake timeout. A client that stops
    /// mid-handshake, or sends something other than TLS, is dropped.
    /// Run the TLS (if configured) and WebSocket handshakes on a TCP
    /// connection, within the handshake timeout.
    pub async fn accept_tcp(&self, tcp: TcpStream) -> Result<(WebSocket<MaybeTlsStream>, Request<()>), Error> {
        let _ = tcp.set_nodelay(true);
        let work = async {
            let stream = match &self.tls {
                None => MaybeTlsStream::Plain(tcp),
                Some(tls) => MaybeTlsStream::ServerTls(Box::new(tls.accept(tcp).await.map_err(crate::tls::classify)?)),
            };
            self.handshake(stream).await
        };
        match timeout(self.config.handshake_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout("handshake")),
        }
    }

    /// Accept permessage-deflate offers (RFC 7692) with these settings. Offers
    /// we cannot honour are declined and the connection goes on uncompressed.
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// Subprotocols we speak. The first one the client offers (in the
    /// client's order of preference) is chosen; with none in common the
    /// connection proceeds without a subprotocol, as RFC 6455 allows.
    pub fn protocols<I: IntoIterator<Item = T>, T: Into<String>>(mut self, protocols: I) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Decide from the `Origin` header (absent for non-browser clients)
    /// whether to accept; a refusal answers 403. Browsers always send
    /// `Origin`, so this is the defence against cross-site WebSocket hijacking.
    pub fn check_origin(mut self, check: impl Fn(Option<&str>) -> bool + Send + Sync + 'static) -> Self {
        self.origins = OriginPolicy::Check(Arc::new(check));
        self
    }

    /// Accept browsers from the server's own origin (matched against `Host`)
    /// and from these origins (`*`: any); clients that send no `Origin` (not
    /// browsers) are always accepted. See [`origin_allowed`].
    pub fn allow_origins<I: IntoIterator<Item = T>, T: Into<String>>(mut self, origins: I) -> Self {
        self.origins = OriginPolicy::List(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Refuse new upgrades with 503 once `closing` turns true, so a server
    /// that is shutting down takes no connection it would close at once.
    pub fn closing(mut self, closing: watch::Receiver<bool>) -> Self {
        self.closing = Some(closing);
        self
    }

    /// Whether the server is shutting down (see [`closing`](Self::closing)).
    pub fn is_closing(&self) -> bool {
        self.closing.as_ref().is_some_and(|c| *c.borrow())
    }

    /// The transport settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Run the server handshake on `stream`, within the handshake timeout.
    ///
    /// A bad request is answered with its HTTP status and a one-line reason
    /// before the error is returned. The request head is returned alongside
    /// the socket for routing and authentication.
    pub async fn accept<S>(&self, stream: S) -> Result<(WebSocket<S>, Request<()>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match timeout(self.config.handshake_timeout, self.handshake(stream)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout("handshake")),
        }
    }

    pub(crate) async fn handshake<S>(&self, mut stream: S) -> Result<(WebSocket<S>, Request<()>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut buf = BytesMut::with_capacity(1024);
        let (request, head_len) = loop {
            let parsed = handshake::parse_request(&buf).and_then(|parsed| match parsed {
                None if buf.len() >= self.config.max_handshake_size => Err(HandshakeError::TooLarge),
                other => Ok(other),
            });
            match parsed {
                Ok(Some(done)) => break done,
                Ok(None) => {
                    let room = self.config.max_handshake_size - buf.len();
                    let mut limited = (&mut stream).take(room as u64);
                    if limited.read_buf(&mut buf).await? == 0 {
                        return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                Err(e) => return Err(reject(&mut stream, e).await),
            }
        };
        let negotiated = match self.negotiate(&request) {
            Ok(n) => n,
            Err(e) => return Err(reject(&mut stream, e).await),
        };
        let extra: Vec<(&str, &str)> = negotiated
            .extension()
            .map(|answer| ("Sec-WebSocket-Extensions", answer))
            .into_iter()
            .collect();
        let response =
            handshake::switching_response(&negotiated.validated.accept, negotiated.protocol.as_deref(), &extra);
        stream.write_all(&response).await?;
        stream.flush().await?;
        let ws = negotiated.into_websocket(stream, &buf[head_len..]);
        Ok((ws, request))
    }

    /// Check an upgrade request that an HTTP server (hyper, axum) has already
    /// parsed, and settle subprotocol and permessage-deflate.
    ///
    /// Answer with [`Negotiated::response`] (or the error's status), then
    /// turn the upgraded stream into a socket with [`Negotiated::into_websocket`].
    pub fn negotiate<B>(&self, request: &Request<B>) -> Result<Negotiated, HandshakeError> {
        self.negotiate_head(request.method(), request.version(), None, request.headers())
    }

    /// [`negotiate`](Self::negotiate) for a request head taken apart, as
    /// extractors see it. `protocol` is the `:protocol` pseudo-header of an
    /// HTTP/2 or HTTP/3 extended CONNECT (RFC 8441, RFC 9220), which the HTTP
    /// layer parsed; `None` for HTTP/1.1.
    pub fn negotiate_head(
        &self,
        method: &Method,
        version: Version,
        protocol: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Negotiated, HandshakeError> {
        if self.is_closing() {
            return Err(HandshakeError::Rejected {
                status: 503,
                reason: "server shutting down".into(),
            });
        }
        self.check_origin_of(headers)?;
        let validated = handshake::validate_opening(method, version, protocol, headers)?;
        let protocol = validated
            .protocols
            .iter()
            .find(|offered| self.protocols.iter().any(|ours| ours == *offered))
            .cloned();
        let deflate = self.deflate.as_ref().and_then(|config| {
            let offers = headers
                .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok());
            deflate::negotiate(offers, config).map(|(params, answer)| (params, answer, *config))
        });
        Ok(Negotiated {
            validated,
            protocol,
            deflate,
            config: self.config.clone(),
        })
    }

    /// The origin policy first: a foreign page learns only that it is not
    /// allowed (403), whatever else is wrong with its request.
    fn check_origin_of(&self, headers: &HeaderMap) -> Result<(), HandshakeError> {
        let refused = |reason| HandshakeError::Rejected { status: 403, reason };
        match &self.origins {
            OriginPolicy::Any => {}
            OriginPolicy::Check(check) => {
                let origin = headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
                if !check(origin) {
                    return Err(refused(format!("origin {} is not allowed", origin.unwrap_or("(none)"))));
                }
            }
            OriginPolicy::List(allowed) => origin_allowed(headers, allowed).map_err(refused)?,
        }
        Ok(())
    }
}

/// A valid upgrade request with the subprotocol and extension agreed.
#[derive(Debug, Clone)]
pub struct Negotiated {
    validated: handshake::Validated,
    protocol: Option<String>,
    deflate: Option<(DeflateParams, String, DeflateConfig)>,
    config: Config,
}

impl Negotiated {
    /// Whether this is an extended CONNECT (HTTP/2 or HTTP/3) rather than
    /// an HTTP/1.1 upgrade.
    pub(crate) fn extended(&self) -> bool {
        self.validated.extended
    }

    /// The subprotocol agreed, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The `Sec-WebSocket-Extensions` answer, when permessage-deflate was agreed.
    pub fn extension(&self) -> Option<&str> {
        self.deflate.as_ref().map(|(_, answer, _)| answer.as_str())
    }

    /// The `101 Switching Protocols` response for an HTTP server to send.
    pub fn response(&self) -> http::Response<()> {
        let mut response = handshake::upgrade_response(&self.validated, self.protocol.as_deref());
        if let Some(value) = self.extension().and_then(|a| http::HeaderValue::from_str(a).ok()) {
            response
                .headers_mut()
                .insert(http::header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
        response
    }

    /// The server socket over the upgraded stream; `leftover` holds bytes
    /// read past the request head (empty for hyper, which keeps them itself).
    pub fn into_websocket<S>(self, stream: S, leftover: &[u8]) -> WebSocket<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut ws = WebSocket::from_raw(stream, Role::Server, self.config, self.protocol, leftover);
        if let Some((params, _, config)) = self.deflate {
            ws.enable_deflate(params, &config);
        }
        ws
    }
}

/// Answer a failed handshake with its status and reason, then close.
async fn reject<S: AsyncWrite + Unpin>(stream: &mut S, err: HandshakeError) -> Error {
    let _ = stream.write_all(&handshake::reject_response(&err)).await;
    let _ = stream.shutdown().await;
    Error::Handshake(err)
}
