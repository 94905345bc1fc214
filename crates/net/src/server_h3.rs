//! WebSockets (and every other request) over HTTP/3, server side: a QUIC
//! endpoint on the TCP port's number, each connection with its control
//! streams (see `h3_conn`), each request stream read up to its HEADERS and
//! handed on.
//!
//! Two users hand requests on differently: `volley serve` (via
//! [`crate::front`]) gives every request to the same axum router as
//! HTTP/1.1 and HTTP/2, an extended CONNECT (RFC 9220) reaching
//! [`crate::WebSocketUpgrade`] like any other upgrade; `volley echo`
//! ([`Acceptor::serve_h3`]) answers extended CONNECTs itself.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch};
use tower_service::Service;
use volley_h3::settings::Settings;
use volley_h3::{frame, head, Code};

use crate::addresses::Addresses;
use crate::h3_conn;
use crate::h3_stream::{H3OnUpgrade, H3Stream, HeadError, Live};
use crate::limits::FrontLimits;
use crate::upgrade::Upgraded;
use crate::{Acceptor, Error, Refused, WebSocket};

/// Largest request body read over HTTP/3 (the API's JSON is far smaller).
const MAX_BODY: usize = 1024 * 1024;

/// A QUIC connection with no traffic for this long is closed (WebSocket
/// keepalive pings count as traffic).
const IDLE: Duration = Duration::from_secs(60);

/// Request streams one connection may have open at once (hyper's HTTP/2
/// server allows 200).
const MAX_STREAMS: u32 = 256;

/// Bytes a peer may send on one stream ahead of what the WebSocket read:
/// flow control, so a client that floods a stream (or all of them) makes
/// QUIC hold at most this much per stream and `CONNECTION_WINDOW` per
/// connection (quinn's defaults are 1.25 MB per stream, unbounded per
/// connection).
/// The same bound applies to what we send and the peer has not
/// acknowledged (quinn's default is 10 MB): past it writes wait, so the
/// WebSocket's own outbound limit and write-stall timeout take over.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// A QUIC server endpoint on `addr` speaking HTTP/3 (ALPN `h3`), with the
/// same certificate source as the TCP listener (so a SIGHUP reload covers both).
pub(crate) fn endpoint(addr: SocketAddr, tls: &rustls::ServerConfig) -> io::Result<quinn::Endpoint> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![volley_h3::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| io::Error::other(format!("TLS configuration unusable for QUIC: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(MAX_STREAMS.into())
        .max_concurrent_uni_streams(16u32.into())
        .stream_receive_window(STREAM_WINDOW.into())
        .receive_window(CONNECTION_WINDOW.into())
        .send_window(u64::from(CONNECTION_WINDOW))
        .max_idle_timeout(Some(IDLE.try_into().map_err(io::Error::other)?));
    config.transport_config(Arc::new(transport));
    quinn::Endpoint::server(config, addr)
}

/// One request, its head read, its stream ready for the body or the
/// WebSocket.
#[derive(Debug)]
pub(crate) struct H3Request {
    request: http::Request<()>,
    protocol: Option<String>,
    stream: H3Stream,
    peer: SocketAddr,
}

/// Accept QUIC connections on `endpoint` until `stop` turns true, each
/// request going to `handler`; `per_address` counts against `addresses`.
pub(crate) async fn serve<H, Fut>(
    endpoint: quinn::Endpoint,
    limits: FrontLimits,
    addresses: Arc<Addresses>,
    handler: H,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(H3Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => return,
            },
            () = stopped(&mut stop) => break,
        };
        // Count an address only once it is proven (the client echoed a
        // Retry token): otherwise forged Initial packets from a victim's
        // address would fill its slots, on TCP too, since the count is shared.
        if !incoming.remote_address_validated() {
            if incoming.may_retry() {
                let _ = incoming.retry();
            } else {
                incoming.ignore();
            }
            continue;
        }
        let Some(slot) = addresses.take(incoming.remote_address().ip(), limits.per_address) else {
            metrics::counter!("volley_connections_refused_total", "reason" => "address_cap").increment(1);
            incoming.refuse();
            continue;
        };
        let (handler, stop) = (handler.clone(), stop.clone());
        tokio::spawn(async move {
            connection(incoming, limits, handler, stop).await;
            drop(slot);
        });
    }
    // Stop taking new connections; the open ones got GOAWAY.
    endpoint.set_server_config(None);
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn connection<H, Fut>(
    incoming: quinn::Incoming,
    limits: FrontLimits,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(H3Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let peer = incoming.remote_address();
    let handshake = async { incoming.accept()?.await };
    let conn = match tokio::time::timeout(limits.head_timeout, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, %peer, "QUIC handshake failed");
            return;
        }
        Err(_) => {
            metrics::counter!("volley_connections_refused_total", "reason" => "head_timeout").increment(1);
            return;
        }
    };
    let (settings, _) = watch::channel(None);
    tokio::spawn(h3_conn::accept_uni(conn.clone(), settings));
    let ours = Settings {
        max_field_section_size: Some(limits.max_head_bytes as u64),
        enable_connect_protocol: true,
        ..Settings::default()
    };
    // A peer that grants no stream or no credit must not hold us here.
    let mut control = match tokio::time::timeout(limits.head_timeout, h3_conn::open_control(&conn, ours)).await {
        Ok(Ok(control)) => control,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "HTTP/3 control stream failed");
            return h3_conn::close(&conn, Code::StreamCreationError, "no control stream");
        }
        Err(_) => return h3_conn::close(&conn, Code::StreamCreationError, "no credit for the control stream"),
    };
    // A connection that opens no request within the head timeout is closed,
    // as an HTTP/1.1 connection that sends no head is.
    let first = tokio::time::sleep(limits.head_timeout);
    tokio::pin!(first);
    let mut served_any = false;
    let mut going_away = false;
    let mut next_id = 0u64;
    let live = Live::default();
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => {
                let Ok((send, recv)) = accepted else { break };
                served_any = true;
                let mut stream = H3Stream::new(send, recv, limits.max_head_bytes);
                if going_away {
                    stream.reset(Code::RequestRejected);
                    continue;
                }
                next_id = stream.id() + 4;
                let stream = stream.counted(live.enter());
                tokio::spawn(request(stream, peer, limits, handler.clone(), conn.clone()));
            }
            () = &mut first, if !served_any => {
                metrics::counter!("volley_connections_refused_total", "reason" => "head_timeout").increment(1);
                h3_conn::close(&conn, Code::NoError, "no request");
                return;
            }
            () = stopped(&mut stop), if !going_away => {
                going_away = true;
                let goaway = frame::goaway(next_id);
                let _ = tokio::time::timeout(limits.head_timeout, control.write_all(&goaway)).await;
            }
            // Told to go away and nothing left on it (the WebSockets were
            // closed by their application): close now, so the client learns
            // at once rather than at the idle timeout.
            () = live.idle(), if going_away => {
                h3_conn::close(&conn, Code::NoError, "shutting down");
                break;
            }
        }
    }
    // The control stream lives as long as the connection.
    conn.closed().await;
    drop(control);
}

async fn request<H, Fut>(
    mut stream: H3Stream,
    peer: SocketAddr,
    limits: FrontLimits,
    handler: Arc<H>,
    conn: quinn::Connection,
) where
    H: Fn(H3Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fields = match tokio::time::timeout(limits.head_timeout, stream.read_head(limits.max_head_bytes)).await {
        Ok(Ok(fields)) => fields,
        Err(_) => {
            metrics::counter!("volley_connections_refused_total", "reason" => "head_timeout").increment(1);
            stream.reset(Code::RequestIncomplete);
            return;
        }
        Ok(Err(HeadError::Ended)) => return stream.reset(Code::RequestIncomplete),
        Ok(Err(HeadError::Io(_))) => return,
        Ok(Err(HeadError::H3(e))) => {
            let answer = match &e {
                volley_h3::Error::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                volley_h3::Error::Protocol {
                    code: Code::ExcessiveLoad,
                    ..
                } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                volley_h3::Error::Message(_) => StatusCode::BAD_REQUEST,
                // QPACK and framing errors break the connection (RFC 9114, 7.1; RFC 9204, 2.2).
                _ => return h3_conn::close(&conn, e.code(), &e.to_string()),
            };
            let refused = Refused::new(answer, e.to_string(), "handshake");
            let _ = send_response(&mut stream, refused.into_response()).await;
            return;
        }
    };
    // Regular fields, as HTTP/1.1 counts them (pseudo-headers aside).
    let regular = fields.iter().filter(|f| f.name.first() != Some(&b':')).count();
    if regular > limits.max_headers {
        let refused = Refused::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("{regular} header fields, over the limit of {}", limits.max_headers),
            "handshake",
        );
        let _ = send_response(&mut stream, refused.into_response()).await;
        return;
    }
    let head = match head::request_from_fields(&fields) {
        Ok(head) => head,
        Err(e) => {
            let refused = Refused::new(StatusCode::BAD_REQUEST, e.to_string(), "handshake");
            let _ = send_response(&mut stream, refused.into_response()).await;
            return;
        }
    };
    metrics::counter!("volley_h3_requests_total").increment(1);
    handler(H3Request {
        request: head.request,
        protocol: head.protocol,
        stream,
        peer,
    })
    .await;
}

/// Write a whole response: HEADERS, the body as DATA, then finish.
async fn send_response(stream: &mut H3Stream, response: Response) -> io::Result<()> {
    let (parts, mut body) = response.into_parts();
    stream
        .send_head(&head::encode_response(parts.status, &parts.headers))
        .await?;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    stream.write_all(&data).await?;
                }
            }
            Err(e) => {
                stream.reset(Code::InternalError);
                return Err(io::Error::other(e));
            }
        }
    }
    stream.shutdown().await
}

/// Hand an HTTP/3 request to `router` as HTTP/1.1 and HTTP/2 requests are.
pub(crate) async fn route(mut router: Router, alt_svc: Option<HeaderValue>, request: H3Request) {
    let H3Request {
        request,
        protocol,
        mut stream,
        peer,
    } = request;
    let (mut parts, ()) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    if !parts.headers.contains_key(http::header::HOST) {
        if let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(http::header::HOST, host);
        }
    }
    let extended = parts.method == Method::CONNECT && protocol.is_some();
    if parts.method == Method::CONNECT && !extended {
        let refused = Refused::new(
            StatusCode::BAD_REQUEST,
            "CONNECT without :protocol: this server is not a proxy (a WebSocket needs :protocol websocket)",
            "handshake",
        );
        let _ = send_response(&mut stream, refused.into_response()).await;
        return;
    }
    let mut upgrade = None;
    let body = if let Some(protocol) = &protocol {
        let (tx, rx) = oneshot::channel();
        parts.extensions.insert(H3OnUpgrade::new(rx));
        parts.extensions.insert(hyper::ext::Protocol::from(protocol.as_str()));
        upgrade = Some(tx);
        Body::empty()
    } else {
        let mut body = Vec::new();
        let mut limited = (&mut stream).take(MAX_BODY as u64 + 1);
        let read = limited.read_to_end(&mut body);
        match tokio::time::timeout(Duration::from_secs(30), read).await {
            Ok(Ok(_)) if body.len() <= MAX_BODY => Body::from(body),
            Ok(Ok(_)) => {
                let refused = Refused::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large", "handshake");
                let _ = send_response(&mut stream, refused.into_response()).await;
                return;
            }
            Ok(Err(_)) => return,
            Err(_) => return stream.reset(Code::RequestIncomplete),
        }
    };
    let Ok(mut response) = router.call(http::Request::from_parts(parts, body)).await;
    if let Some(alt_svc) = alt_svc {
        response.headers_mut().insert(http::header::ALT_SVC, alt_svc);
    }
    // A tunnel only if the handler took the stream (a 2xx answer that did
    // not is sent as a plain response).
    let taken = upgrade.as_ref().is_some_and(|tx| !tx.is_closed());
    if extended && response.status().is_success() && taken {
        let (parts, _) = response.into_parts();
        if stream
            .send_head(&head::encode_response(parts.status, &parts.headers))
            .await
            .is_err()
        {
            return;
        }
        if let Some(tx) = upgrade {
            // A handler that answered 2xx without taking the upgrade gets
            // its stream finished when it drops here.
            let _ = tx.send(stream);
        }
        return;
    }
    let _ = send_response(&mut stream, response).await;
}

impl Acceptor {
    /// Serve WebSockets over HTTP/3 (RFC 9220) on UDP `addr` with this
    /// acceptor's TLS certificate until the endpoint fails: each extended
    /// CONNECT that passes the acceptor's checks is answered 200 and its
    /// stream handed to `session` with the client's address; anything
    /// else gets its status. Needs [`Acceptor::tls`].
    pub async fn serve_h3<F, Fut>(&self, addr: SocketAddr, session: F) -> Result<(), Error>
    where
        F: Fn(WebSocket<Upgraded>, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(tls) = &self.tls else {
            return Err(Error::TlsConfig("HTTP/3 needs a TLS certificate".into()));
        };
        let endpoint = endpoint(addr, tls.config())?;
        let acceptor = self.clone();
        let session = Arc::new(session);
        let (_stop_tx, stop) = watch::channel(false);
        let handler = move |request: H3Request| accept_websocket(acceptor.clone(), request, session.clone());
        serve(
            endpoint,
            FrontLimits::default(),
            Arc::new(Addresses::default()),
            handler,
            stop,
        )
        .await;
        Ok(())
    }
}

async fn accept_websocket<F, Fut>(acceptor: Acceptor, request: H3Request, session: Arc<F>)
where
    F: Fn(WebSocket<Upgraded>, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let H3Request {
        mut request,
        protocol,
        mut stream,
        peer,
    } = request;
    if request.method() != Method::CONNECT {
        let refused = Refused::new(
            StatusCode::BAD_REQUEST,
            "over HTTP/3 a WebSocket opens with an extended CONNECT (:protocol websocket)",
            "handshake",
        );
        let _ = send_response(&mut stream, refused.into_response()).await;
        return;
    }
    if let Some(host) = request
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        request.headers_mut().entry(http::header::HOST).or_insert(host);
    }
    if let Err(refused) = crate::upgrade::check_scheme(request.version(), request.uri()) {
        let _ = send_response(&mut stream, refused.into_response()).await;
        return;
    }
    match acceptor.negotiate_head(
        request.method(),
        request.version(),
        protocol.as_deref(),
        request.headers(),
    ) {
        Ok(negotiated) => {
            let (parts, ()) = negotiated.response().into_parts();
            if stream
                .send_head(&head::encode_response(parts.status, &parts.headers))
                .await
                .is_ok()
            {
                session(negotiated.into_websocket(Upgraded::H3(Box::new(stream)), &[]), peer).await;
            }
        }
        Err(e) => {
            let _ = send_response(&mut stream, Refused::from(e).into_response()).await;
        }
    }
}
