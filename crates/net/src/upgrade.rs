//! The one WebSocket upgrade path for HTTP services (axum, hyper).
//!
//! A handler takes [`WebSocketUpgrade`] as an extractor, in the manner of
//! axum's own: extraction runs every check of the endpoint's [`Acceptor`]
//! (shutdown, origin, RFC 6455 validation, subprotocol and permessage-deflate
//! negotiation) and refuses a bad request with its HTTP status before the
//! handler runs. The handler adds its own checks (authentication, limits),
//! then answers with [`WebSocketUpgrade::on_upgrade`], which hands the
//! upgraded stream to our [`WebSocket`]. Handlers never see the transport:
//! an HTTP/1.1 upgrade (GET, answered 101) and an HTTP/2 extended CONNECT
//! (RFC 8441: CONNECT with `:protocol websocket`, answered 200, the stream
//! then carrying the WebSocket's bytes) both end as a hyper
//! [`hyper::upgrade::Upgraded`]. Routes take every method (`any`), since the
//! two kinds arrive as GET and CONNECT.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use volley_wire::handshake::HandshakeError;

use crate::h3_stream::{H3OnUpgrade, H3Stream};
use crate::{Acceptor, Negotiated, WebSocket};

/// The stream under a WebSocket that an HTTP server upgraded: an HTTP/1.1
/// connection or HTTP/2 stream (from hyper), or an HTTP/3 stream (ours).
#[derive(Debug)]
pub enum Upgraded {
    /// HTTP/1.1 after `101`, or an HTTP/2 extended CONNECT stream.
    Hyper(TokioIo<hyper::upgrade::Upgraded>),
    /// An HTTP/3 extended CONNECT stream (RFC 9220).
    H3(Box<H3Stream>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Upgraded::Hyper($s) => {
                let $s = Pin::new($s);
                $e
            }
            Upgraded::H3($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for Upgraded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upgraded::Hyper(s) => s.is_write_vectored(),
            Upgraded::H3(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// Where the upgraded stream will come from.
#[derive(Debug)]
enum Pending {
    Hyper(OnUpgrade),
    H3(oneshot::Receiver<H3Stream>),
}

/// The stream a request will hand over once it is answered with `101` (or
/// `200` to an extended CONNECT), whatever the transport: for code that
/// answers upgrades itself rather than through [`WebSocketUpgrade`], such as
/// a proxy that must hear its backend first.
#[derive(Debug)]
pub struct PendingUpgrade(Pending);

impl PendingUpgrade {
    /// Take the pending upgrade out of a request (once); `None` when the
    /// connection cannot be upgraded (an HTTP/1.0 request, say).
    pub fn take(parts: &mut Parts) -> Option<PendingUpgrade> {
        let h3 = parts.extensions.get::<H3OnUpgrade>().and_then(H3OnUpgrade::take);
        let hyper = parts.extensions.remove::<OnUpgrade>();
        h3.map(Pending::H3).or(hyper.map(Pending::Hyper)).map(PendingUpgrade)
    }

    /// `http/1.1`, `h2` or `h3`: the transport the WebSocket travels on
    /// (`extended` tells HTTP/2 from HTTP/1.1, which share hyper's upgrade).
    pub fn transport(&self, extended: bool) -> &'static str {
        match (&self.0, extended) {
            (Pending::H3(_), _) => "h3",
            (Pending::Hyper(_), true) => "h2",
            (Pending::Hyper(_), false) => "http/1.1",
        }
    }

    /// Wait until the HTTP server hands the stream over (after the answer
    /// went out); `None` if the connection or stream ended first.
    pub async fn upgraded(self) -> Option<Upgraded> {
        match self.0 {
            Pending::Hyper(on_upgrade) => match on_upgrade.await {
                Ok(upgraded) => Some(Upgraded::Hyper(TokioIo::new(upgraded))),
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade failed");
                    None
                }
            },
            Pending::H3(stream) => match stream.await {
                Ok(stream) => Some(Upgraded::H3(Box::new(stream))),
                Err(_) => {
                    tracing::debug!("HTTP/3 stream closed before the upgrade");
                    None
                }
            },
        }
    }
}

/// Router state that knows its endpoint's upgrade policy.
///
/// Implement it for the state type of a router (it is implemented for
/// [`Acceptor`] itself and for any `Arc` of an implementor).
pub trait UpgradeState {
    /// The acceptor whose settings and checks apply to upgrades.
    fn acceptor(&self) -> &Acceptor;
}

impl UpgradeState for Acceptor {
    fn acceptor(&self) -> &Acceptor {
        self
    }
}

impl<T: UpgradeState> UpgradeState for Arc<T> {
    fn acceptor(&self) -> &Acceptor {
        (**self).acceptor()
    }
}

/// A checked WebSocket upgrade request, waiting for the handler's answer.
#[derive(Debug)]
pub struct WebSocketUpgrade {
    negotiated: Negotiated,
    on_upgrade: PendingUpgrade,
}

impl WebSocketUpgrade {
    /// The subprotocol agreed with the client, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.negotiated.protocol()
    }

    /// Answer (`101 Switching Protocols`, or `200` to an extended CONNECT)
    /// and run `session` on the socket once the HTTP server hands the
    /// connection or stream over (in a task of its own).
    pub fn on_upgrade<F, Fut>(self, session: F) -> Response
    where
        F: FnOnce(WebSocket<Upgraded>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let WebSocketUpgrade { negotiated, on_upgrade } = self;
        let (parts, ()) = negotiated.response().into_parts();
        // Which transport carries it: what operators (and the browser test)
        // read to learn what clients really use.
        let transport = on_upgrade.transport(negotiated.extended());
        metrics::counter!("volley_websocket_upgrades_total", "transport" => transport).increment(1);
        // The session gets a task of its own: a task is as large as its
        // largest state for as long as it lives, and the upgrade's state
        // (hyper's pending upgrade, the negotiated handshake) is dead weight
        // on a connection that stays open for hours.
        tokio::spawn(async move {
            if let Some(stream) = on_upgrade.upgraded().await {
                tokio::spawn(session(negotiated.into_websocket(stream, &[])));
            }
        });
        Response::from_parts(parts, Body::empty())
    }
}

impl<S> FromRequestParts<S> for WebSocketUpgrade
where
    S: UpgradeState + Send + Sync,
{
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refused> {
        // HTTP/2 carries the host as `:authority`, in the URI; the origin
        // check compares against `Host`.
        if !parts.headers.contains_key(header::HOST) {
            if let Some(host) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(header::HOST, host);
            }
        }
        let protocol = parts
            .extensions
            .get::<hyper::ext::Protocol>()
            .map(|p| p.as_str().to_owned());
        if protocol.is_some() {
            check_scheme(parts.version, &parts.uri)?;
        }
        let negotiated = state
            .acceptor()
            .negotiate_head(&parts.method, parts.version, protocol.as_deref(), &parts.headers)
            .map_err(Refused::from)?;
        let on_upgrade = PendingUpgrade::take(parts).ok_or_else(|| {
            Refused::new(
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded",
                "handshake",
            )
        })?;
        Ok(WebSocketUpgrade { negotiated, on_upgrade })
    }
}

/// A client's check of the answer to its extended CONNECT (HTTP/2 or
/// HTTP/3): 200, and the subprotocol the server chose, if any.
pub(crate) fn extended_connect_answer(
    status: StatusCode,
    headers: &http::HeaderMap,
) -> Result<Option<String>, crate::Error> {
    if status != StatusCode::OK {
        return Err(crate::Error::Handshake(HandshakeError::Rejected {
            status: status.as_u16(),
            reason: format!("extended CONNECT answered {status}"),
        }));
    }
    Ok(headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned))
}

/// The `:scheme` of an extended CONNECT must name HTTP: `https` (or `http`
/// on cleartext HTTP/2), and only `https` over HTTP/3, which is always TLS.
/// An HTTP/1.1 upgrade carries no scheme.
pub fn check_scheme(version: http::Version, uri: &http::Uri) -> Result<(), Refused> {
    let Some(scheme) = uri.scheme_str() else {
        return Ok(());
    };
    let allowed = match version {
        http::Version::HTTP_3 => scheme == "https",
        _ => scheme == "https" || scheme == "http",
    };
    if allowed {
        return Ok(());
    }
    Err(Refused::new(
        StatusCode::BAD_REQUEST,
        format!(":scheme {scheme} is not allowed on an extended CONNECT over {version:?}"),
        "handshake",
    ))
}

/// A refused upgrade: its HTTP status and a one-line reason for the body.
///
/// 426 answers carry `Sec-WebSocket-Version: 13` so the client learns which
/// version we speak (RFC 6455, section 4.4). Every refusal is counted in
/// `volley_handshake_rejected_total` by reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    status: StatusCode,
    reason: String,
    label: &'static str,
}

impl Refused {
    /// A refusal with this status and reason, counted under `label` in
    /// `volley_handshake_rejected_total{reason}` (`origin`, `shutdown` and
    /// `handshake` are volley's own).
    pub fn new(status: StatusCode, reason: impl Into<String>, label: &'static str) -> Refused {
        Refused {
            status,
            reason: reason.into(),
            label,
        }
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Why, as sent in the body.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl From<HandshakeError> for Refused {
    fn from(error: HandshakeError) -> Refused {
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let label = match status.as_u16() {
            403 => "origin",
            503 => "shutdown",
            _ => "handshake",
        };
        let reason = match error {
            HandshakeError::Rejected { reason, .. } => reason,
            other => other.to_string(),
        };
        Refused { status, reason, label }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        metrics::counter!("volley_handshake_rejected_total", "reason" => self.label).increment(1);
        let mut response = (self.status, self.reason + "\n").into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.status == StatusCode::UPGRADE_REQUIRED {
            headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}
