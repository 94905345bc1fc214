//! WebSockets over HTTP/3 (RFC 9220), client side: one QUIC connection
//! (ALPN `h3`), each WebSocket an extended CONNECT on a request stream of
//! its own. As RFC 9220 asks, no extended CONNECT is sent before the
//! server's SETTINGS said `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use volley_h3::head;
use volley_h3::settings::Settings;
use volley_wire::handshake::HandshakeError;
use volley_wire::Role;

use crate::h3_conn;
use crate::h3_stream::{ClientGuard, H3Stream, HeadError};
use crate::upgrade::Upgraded;
use crate::{Config, Error, WebSocket};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// How long to wait for the server's SETTINGS.
const SETTINGS_WAIT: Duration = Duration::from_secs(10);

/// An HTTP/3 connection to a server, on which WebSockets open as streams.
#[derive(Debug, Clone)]
pub struct H3Connection {
    conn: quinn::Connection,
    settings: watch::Receiver<Option<Settings>>,
    authority: String,
    config: Config,
    guard: Arc<ClientGuard>,
}

impl H3Connection {
    /// Connect to `authority` (`host:port`, UDP) and speak HTTP/3, verifying
    /// the server as `server_name` with `tls`.
    pub async fn connect(
        authority: &str,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
        config: Config,
    ) -> Result<H3Connection, Error> {
        let addr: SocketAddr = tokio::net::lookup_host(authority)
            .await?
            .next()
            .ok_or_else(|| Error::Http3(format!("{authority} has no address")))?;
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = quinn::Endpoint::client(local)?;
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![volley_h3::ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| Error::TlsConfig(format!("TLS configuration unusable for QUIC: {e}")))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_secs(15)));
        client.transport_config(Arc::new(transport));
        let connecting = endpoint
            .connect_with(client, addr, server_name)
            .map_err(|e| Error::Http3(e.to_string()))?;
        let conn = connecting.await.map_err(quic_error)?;
        let (settings_tx, settings) = watch::channel(None);
        tokio::spawn(h3_conn::accept_uni(conn.clone(), settings_tx));
        let ours = Settings {
            max_field_section_size: Some(MAX_HEAD as u64),
            ..Settings::default()
        };
        let control = h3_conn::open_control(&conn, ours).await?;
        Ok(H3Connection {
            conn: conn.clone(),
            settings,
            authority: authority.to_owned(),
            config,
            guard: Arc::new(ClientGuard {
                conn,
                _control: control,
                _endpoint: endpoint,
            }),
        })
    }

    /// The server's SETTINGS, waiting for them if they have not come yet.
    pub async fn server_settings(&self) -> Result<Settings, Error> {
        let mut settings = self.settings.clone();
        let seen = tokio::time::timeout(SETTINGS_WAIT, settings.wait_for(Option::is_some))
            .await
            .map_err(|_| Error::Timeout("HTTP/3 SETTINGS"))?
            .map_err(|_| Error::Http3("connection closed before SETTINGS".into()))?;
        Ok(seen.unwrap_or_default())
    }

    /// Open a WebSocket on `path` as a new stream: an extended CONNECT with
    /// `:protocol websocket` and `headers` (subprotocols, extensions,
    /// authorization...), answered 200.
    pub async fn websocket(&self, path: &str, headers: &[(&str, &str)]) -> Result<WebSocket<Upgraded>, Error> {
        if !self.server_settings().await?.enable_connect_protocol {
            return Err(Error::Handshake(HandshakeError::Rejected {
                status: 0,
                reason: "the server did not enable extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL)".into(),
            }));
        }
        let mut all = vec![("sec-websocket-version", "13")];
        all.extend_from_slice(headers);
        let (response, stream) = self.open(Method::CONNECT, path, Some("websocket"), &all).await?;
        let protocol = crate::upgrade::extended_connect_answer(response.status(), response.headers())?;
        Ok(WebSocket::from_raw(
            Upgraded::H3(Box::new(stream)),
            Role::Client,
            self.config.clone(),
            protocol,
            &[],
        ))
    }

    /// Send any request on the connection (pages and API share it with the
    /// WebSockets) and read the whole answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(http::Response<()>, Vec<u8>), Error> {
        let (response, mut stream) = self.open_with_body(method, path, None, headers, body).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok((response, answer))
    }

    async fn open(
        &self,
        method: Method,
        path: &str,
        protocol: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<(http::Response<()>, H3Stream), Error> {
        self.open_with_body(method, path, protocol, headers, &[]).await
    }

    async fn open_with_body(
        &self,
        method: Method,
        path: &str,
        protocol: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(http::Response<()>, H3Stream), Error> {
        let uri: Uri = format!("https://{}{path}", self.authority)
            .parse()
            .map_err(|e| Error::Http3(format!("bad path {path}: {e}")))?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| Error::Http3(e.to_string()))?;
            let value = HeaderValue::from_str(value).map_err(|e| Error::Http3(e.to_string()))?;
            map.append(name, value);
        }
        let (send, recv) = self.conn.open_bi().await.map_err(quic_error)?;
        let mut stream = H3Stream::new(send, recv, MAX_HEAD).with_guard(self.guard.clone());
        stream
            .send_head(&head::encode_request(&method, &uri, protocol, &map))
            .await?;
        if protocol.is_none() {
            if !body.is_empty() {
                stream.write_all(body).await?;
            }
            stream.shutdown().await?;
        }
        let fields = match stream.read_head(MAX_HEAD).await {
            Ok(fields) => fields,
            Err(HeadError::H3(e)) => return Err(e.into()),
            Err(HeadError::Io(e)) => return Err(e.into()),
            Err(HeadError::Ended) => return Err(Error::Http3("stream ended before the response".into())),
        };
        Ok((head::response_from_fields(&fields)?, stream))
    }

    /// Resolves when the connection has closed, with why (a server that
    /// shuts down closes it with H3_NO_ERROR once its WebSockets are gone).
    pub async fn closed(&self) -> String {
        self.conn.closed().await.to_string()
    }

    /// Close the connection (every WebSocket on it ends).
    pub fn close(&self) {
        self.conn
            .close(quinn::VarInt::from_u32(volley_h3::Code::NoError.value() as u32), b"");
    }
}

fn quic_error(e: impl std::fmt::Display) -> Error {
    Error::Http3(e.to_string())
}
