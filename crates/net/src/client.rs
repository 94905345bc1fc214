//! Client side: connect to a `ws://` URL and run the opening handshake.

use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use volley_wire::handshake::{self, HandshakeError, WsUrl};
use volley_wire::{deflate, DeflateConfig, Role};

use crate::{Config, Error, MaybeTlsStream, WebSocket};

/// Most bytes of a refusal's body kept for the error message.
const MAX_ERROR_BODY: usize = 4096;

/// Opens client connections with a given configuration, subprotocol offers
/// and extra request headers.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    config: Config,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    deflate: Option<DeflateConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Connect to `url` (`ws://` or `wss://`) with the default configuration.
pub async fn connect(url: &str) -> Result<WebSocket<MaybeTlsStream>, Error> {
    Connector::default().connect(url).await
}

impl Connector {
    /// A connector with these transport settings.
    pub fn new(config: Config) -> Self {
        Connector {
            config,
            ..Connector::default()
        }
    }

    /// Subprotocols to offer, most preferred first.
    pub fn protocols<I: IntoIterator<Item = T>, T: Into<String>>(mut self, protocols: I) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// TLS settings for `wss://` (see [`crate::tls::client_config`]); by
    /// default the system's roots are trusted.
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The TLS settings given with [`tls`](Self::tls), if any (for opening
    /// an [`H2Connection`](crate::H2Connection) with the same trust).
    pub fn tls_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    /// Offer permessage-deflate (RFC 7692) with these settings.
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// An extra request header (`Origin`, `Authorization`, ...).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Resolve, connect over TCP and run the handshake, all within the
    /// handshake timeout.
    pub async fn connect(&self, url: &str) -> Result<WebSocket<MaybeTlsStream>, Error> {
        let url = WsUrl::parse(url)?;
        let tls = match (&self.tls, url.secure) {
            (_, false) => None,
            (Some(config), true) => Some(config.clone()),
            (None, true) => Some(crate::tls::default_client_config()?),
        };
        let work = async {
            let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
            tcp.set_nodelay(true)?;
            let stream = match tls {
                None => MaybeTlsStream::Plain(tcp),
                Some(config) => {
                    let name = ServerName::try_from(url.host.clone())
                        .map_err(|_| Error::Tls(format!("{:?} is not a valid TLS server name", url.host)))?;
                    let tls = TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(crate::tls::classify)?;
                    MaybeTlsStream::ClientTls(Box::new(tls))
                }
            };
            self.handshake_inner(stream, &url).await
        };
        timeout(self.config.handshake_timeout, work)
            .await
            .map_err(|_| Error::Timeout("handshake"))?
    }

    /// Run the client handshake over a stream the caller connected (a TLS
    /// stream, a proxy tunnel...).
    pub async fn handshake<S>(&self, stream: S, url: &WsUrl) -> Result<WebSocket<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        timeout(self.config.handshake_timeout, self.handshake_inner(stream, url))
            .await
            .map_err(|_| Error::Timeout("handshake"))?
    }

    async fn handshake_inner<S>(&self, mut stream: S, url: &WsUrl) -> Result<WebSocket<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut headers = self.headers.clone();
        if let Some(config) = &self.deflate {
            headers.push(("Sec-WebSocket-Extensions".to_owned(), deflate::client_offer(config)));
        }
        let request = handshake::client_request(url, &self.protocols, &headers);
        stream.write_all(&request.bytes).await?;
        stream.flush().await?;
        let mut buf = BytesMut::with_capacity(1024);
        let (response, head_len) = loop {
            if let Some(done) = handshake::parse_response(&buf)? {
                break done;
            }
            if buf.len() >= self.config.max_handshake_size {
                return Err(HandshakeError::TooLarge.into());
            }
            let room = (self.config.max_handshake_size - buf.len()) as u64;
            if (&mut stream).take(room).read_buf(&mut buf).await? == 0 {
                return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        };
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            let body = read_error_body(&mut stream, &response, buf.split_off(head_len)).await;
            return Err(HandshakeError::Status {
                status: response.status().as_u16(),
                body,
            }
            .into());
        }
        let agreed = handshake::verify_response(&response, &request.key, &self.protocols, self.deflate.as_ref())?;
        let mut ws = WebSocket::from_raw(
            stream,
            Role::Client,
            self.config.clone(),
            agreed.protocol,
            &buf[head_len..],
        );
        if let (Some(params), Some(config)) = (agreed.deflate, &self.deflate) {
            ws.enable_deflate(params, config);
        }
        Ok(ws)
    }
}

/// The body of a refusal, for the error message: up to `Content-Length`
/// (or the end of the stream), at most [`MAX_ERROR_BODY`] bytes.
async fn read_error_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    response: &http::Response<()>,
    mut body: BytesMut,
) -> String {
    let want = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok())
        .unwrap_or(MAX_ERROR_BODY)
        .min(MAX_ERROR_BODY);
    while body.len() < want {
        let room = (want - body.len()) as u64;
        match stream.take(room).read_buf(&mut body).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    body.truncate(want);
    String::from_utf8_lossy(&body).trim().to_owned()
}
