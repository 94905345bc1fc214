//! WebSockets over HTTP/2 (RFC 8441), client side: one TLS connection that
//! negotiated `h2` by ALPN, and each WebSocket an extended CONNECT stream on
//! it. Frames on the stream are RFC 6455 frames, masked as from any client.

use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, StatusCode, Version};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::upgrade::Upgraded;
use crate::{Config, Error, WebSocket};
use volley_wire::Role;

/// An HTTP/2 connection to a server, on which WebSockets open as streams.
#[derive(Debug, Clone)]
pub struct H2Connection {
    sender: SendRequest<Body>,
    authority: String,
    config: Config,
}

impl H2Connection {
    /// Connect to `authority` (`host:port`) over TLS, verifying the server
    /// as `server_name` with `tls`, and speak HTTP/2 (ALPN `h2`).
    pub async fn connect(
        authority: &str,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
        config: Config,
    ) -> Result<H2Connection, Error> {
        let tcp = TcpStream::connect(authority).await?;
        let _ = tcp.set_nodelay(true);
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| Error::TlsConfig(format!("server name {server_name}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Error::TlsConfig("the server did not agree to HTTP/2 (ALPN h2)".into()));
        }
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP/2 connection ended");
            }
        });
        Ok(H2Connection {
            sender,
            authority: authority.to_owned(),
            config,
        })
    }

    /// Open a WebSocket on `path` as a new stream: an extended CONNECT with
    /// `:protocol websocket` and `headers` (subprotocols, extensions,
    /// authorization...), answered 200.
    pub async fn websocket(&self, path: &str, headers: &[(&str, &str)]) -> Result<WebSocket<Upgraded>, Error> {
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .version(Version::HTTP_2)
            .uri(format!("https://{}{path}", self.authority))
            .extension(hyper::ext::Protocol::from_static("websocket"))
            .header(http::header::SEC_WEBSOCKET_VERSION, "13");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Body::empty())
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let mut sender = self.sender.clone();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let protocol = crate::upgrade::extended_connect_answer(response.status(), response.headers())?;
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        Ok(WebSocket::from_raw(
            Upgraded::Hyper(TokioIo::new(upgraded)),
            Role::Client,
            self.config.clone(),
            protocol,
            &[],
        ))
    }

    /// Send any request on the connection (pages and API share it with the
    /// WebSockets).
    pub async fn request(&self, request: Request<Body>) -> Result<http::Response<hyper::body::Incoming>, Error> {
        let mut sender = self.sender.clone();
        sender
            .send_request(request)
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))
    }

    /// GET `path` on the connection and read the whole body.
    pub async fn get(&self, path: &str) -> Result<(StatusCode, bytes::Bytes), Error> {
        let request = Request::get(format!("https://{}{path}", self.authority))
            .body(Body::empty())
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let response = self.request(request).await?;
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
            .to_bytes();
        Ok((status, body))
    }

    /// Whether the connection can still open streams.
    pub fn is_ready(&self) -> bool {
        self.sender.is_ready()
    }
}
