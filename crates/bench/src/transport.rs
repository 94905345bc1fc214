//! Which transport a scenario's WebSockets run on: one TCP connection each
//! (HTTP/1.1 upgrade), or streams of shared HTTP/2 (RFC 8441) or HTTP/3
//! (RFC 9220) connections, so one benchmark compares the three on the same
//! server.

use volley_net::{MaybeTlsStream, Upgraded, WebSocket};

use crate::{Error, Target};

/// How WebSockets reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// One TCP (or TLS) connection per WebSocket, opened by an HTTP/1.1 upgrade.
    #[default]
    Http1,
    /// Extended CONNECT streams spread over this many HTTP/2 connections.
    Http2(usize),
    /// Extended CONNECT streams spread over this many HTTP/3 (QUIC) connections.
    Http3(usize),
}

impl Transport {
    /// How reports name it.
    pub fn label(&self) -> String {
        match self {
            Transport::Http1 => "http/1.1".into(),
            Transport::Http2(n) => format!("h2 ({n} connections)"),
            Transport::Http3(n) => format!("h3 ({n} connections)"),
        }
    }
}

/// WebSockets opened for a scenario: sockets of their own, or streams.
#[derive(Debug)]
pub(crate) enum Opened {
    /// HTTP/1.1: one connection each.
    Sockets(Vec<WebSocket<MaybeTlsStream>>),
    /// HTTP/2 or HTTP/3 streams (their connections live as long as a stream does).
    Streams(Vec<WebSocket<Upgraded>>),
}

impl Opened {
    /// How many WebSockets opened.
    pub(crate) fn len(&self) -> usize {
        match self {
            Opened::Sockets(s) => s.len(),
            Opened::Streams(s) => s.len(),
        }
    }
}

/// Open `total` WebSockets to the target over its transport (`concurrency`
/// HTTP/1.1 handshakes at once).
pub(crate) async fn open(target: &Target, total: usize, concurrency: usize) -> Result<Opened, Error> {
    if target.transport == Transport::Http1 {
        return Ok(Opened::Sockets(
            crate::connect::open_many(target, total, concurrency).await?,
        ));
    }
    let shared = Shared::connect(target).await?;
    let mut streams = Vec::with_capacity(total);
    for i in 0..total {
        streams.push(shared.websocket(i).await?);
    }
    Ok(Opened::Streams(streams))
}

/// The HTTP/2 or HTTP/3 connections a scenario's WebSockets open on, in turn.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    connections: Connections,
    path: String,
    url: String,
}

#[derive(Debug, Clone)]
enum Connections {
    H2(Vec<volley_net::H2Connection>),
    H3(Vec<volley_net::H3Connection>),
}

impl Shared {
    /// Connect as the target's transport says (HTTP/2 or HTTP/3 only).
    pub(crate) async fn connect(target: &Target) -> Result<Shared, Error> {
        let url = volley_wire::handshake::WsUrl::parse(&target.url).map_err(|e| Error::Chat(e.to_string()))?;
        if !url.secure {
            return Err(Error::Chat(
                "--http2 and --http3 need a wss:// URL (both run over TLS)".into(),
            ));
        }
        let failed = |source| Error::Connect {
            url: target.url.clone(),
            source,
        };
        let tls = match target.connector.tls_config() {
            Some(tls) => tls,
            None => volley_net::tls::client_config(None).map_err(failed)?,
        };
        let authority = format!("{}:{}", url.host, url.port);
        let config = volley_net::Config {
            ping_interval: None,
            ..volley_net::Config::default()
        };
        let connections = match target.transport {
            Transport::Http2(n) => {
                let mut all = Vec::with_capacity(n.max(1));
                for _ in 0..n.max(1) {
                    all.push(
                        volley_net::H2Connection::connect(&authority, &url.host, tls.clone(), config.clone())
                            .await
                            .map_err(failed)?,
                    );
                }
                Connections::H2(all)
            }
            Transport::Http3(n) => {
                let mut all = Vec::with_capacity(n.max(1));
                for _ in 0..n.max(1) {
                    all.push(
                        volley_net::H3Connection::connect(&authority, &url.host, tls.clone(), config.clone())
                            .await
                            .map_err(failed)?,
                    );
                }
                Connections::H3(all)
            }
            Transport::Http1 => return Err(Error::Usage("HTTP/1.1 opens a connection per WebSocket".into())),
        };
        Ok(Shared {
            connections,
            path: url.path_and_query,
            url: target.url.clone(),
        })
    }

    /// Open the `i`-th WebSocket, on connection `i` modulo their number.
    pub(crate) async fn websocket(&self, i: usize) -> Result<WebSocket<Upgraded>, Error> {
        let opened = match &self.connections {
            Connections::H2(all) => all[i % all.len()].websocket(&self.path, &[]).await,
            Connections::H3(all) => all[i % all.len()].websocket(&self.path, &[]).await,
        };
        opened.map_err(|source| Error::Connect {
            url: self.url.clone(),
            source,
        })
    }
}
