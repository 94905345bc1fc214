//! Layer 7: the listener (TLS, HTTP/1.1, HTTP/2 and HTTP/3 through volley's
//! front door, with its per-address cap, head timeout and head size limits)
//! and the one handler every request reaches: a route is chosen, then a
//! WebSocket goes to [`crate::ws`] and anything else to [`crate::forward`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::watch;
use volley_net::front::{FrontLimits, Transport};

use crate::connect::NoBackend;
use crate::{Error, Shared};

/// Serve layer 7 until `stop` turns true.
pub(crate) async fn serve(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> Result<(), Error> {
    let config = shared.current().config.clone();
    let listener = volley_net::front::bind(config.listen)?;
    let limits = FrontLimits {
        head_timeout: config.handshake_timeout(),
        max_head_bytes: config.max_head_bytes,
        max_headers: volley_net::front::MAX_HEADERS,
        per_address: config.max_connections_per_ip,
    };
    let tls = if config.tls() {
        let resolver: Arc<dyn rustls::server::ResolvesServerCert> = shared.certs.clone();
        Some(volley_net::tls::server_config_with_resolver(resolver).map_err(|e| Error::Config(e.to_string()))?)
    } else {
        None
    };
    let transport = Transport {
        h3: tls.is_some() && config.http3,
        h2c: tls.is_none(),
        tls,
        proxy_protocol: Default::default(),
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        backends = ?config.all_backends(),
        tls = config.tls(),
        http3 = transport.h3,
        affinity = ?config.affinity,
        "volley proxy (http) listening"
    );
    let router = Router::new().fallback(handle).with_state(shared);
    volley_net::front::serve(listener, router, limits, transport, stop).await?;
    Ok(())
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let current = shared.current();
    let Some(route) = current.table.route_for(&parts) else {
        return refuse(StatusCode::NOT_FOUND, "no route takes this request");
    };
    if is_websocket(&parts) {
        crate::ws::proxy(&shared, &current.config, route, parts, peer).await
    } else {
        crate::forward::forward(&shared, &current.config, route, parts, body, peer).await
    }
}

/// An HTTP/1.1 upgrade to `websocket`, or an extended CONNECT.
fn is_websocket(parts: &http::request::Parts) -> bool {
    if parts.method == http::Method::CONNECT {
        return parts.extensions.get::<hyper::ext::Protocol>().is_some();
    }
    parts
        .headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
}

/// A plain-text refusal.
pub(crate) fn refuse(status: StatusCode, why: &str) -> Response {
    metrics::counter!("volley_proxy_errors_total", "status" => status.as_str().to_owned()).increment(1);
    let mut response = (status, format!("{why}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The answer when no backend took a request.
pub(crate) fn no_backend(why: NoBackend) -> Response {
    match why {
        NoBackend::Unavailable => refuse(StatusCode::SERVICE_UNAVAILABLE, "no backend is available"),
        NoBackend::Failed => refuse(StatusCode::BAD_GATEWAY, "no backend answered"),
    }
}

/// Request headers that belong to one hop and are never passed on (RFC 9110
/// section 7.6.1), plus those the proxy sets itself.
fn hop_by_hop(name: &HeaderName, listed: &[String]) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "sec-websocket-key"
            | "sec-websocket-version"
            | "sec-websocket-accept"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "forwarded"
    ) || listed.iter().any(|l| l == name.as_str())
}

/// Names a `Connection` header lists: hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The request headers to pass to a backend: the client's end-to-end ones,
/// then `Host`, `X-Forwarded-For` (appended to), `X-Forwarded-Proto`,
/// `X-Forwarded-Host` and `Forwarded` (appended to).
pub(crate) fn upstream_headers(
    parts: &http::request::Parts,
    peer: SocketAddr,
    tls: bool,
) -> Vec<(HeaderName, HeaderValue)> {
    let listed = connection_listed(&parts.headers);
    let mut out: Vec<(HeaderName, HeaderValue)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !hop_by_hop(name, &listed))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let ip = peer.ip().to_canonical();
    let proto = if tls { "https" } else { "http" };
    let joined = |name: &HeaderName, ours: String| {
        let before: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let value = if before.is_empty() {
            ours
        } else {
            format!("{}, {ours}", before.join(", "))
        };
        HeaderValue::from_str(&value).ok()
    };
    let node = if ip.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip.to_string()
    };
    let mut forwarded = format!("for={node};proto={proto}");
    if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok()) {
        forwarded.push_str(&format!(";host=\"{host}\""));
        if let Ok(v) = HeaderValue::from_str(host) {
            out.push((HeaderName::from_static("x-forwarded-host"), v));
        }
    }
    if let Some(host) = host {
        out.push((header::HOST, host));
    }
    if let Some(v) = joined(&HeaderName::from_static("x-forwarded-for"), ip.to_string()) {
        out.push((HeaderName::from_static("x-forwarded-for"), v));
    }
    out.push((
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    ));
    if let Some(v) = joined(&header::FORWARDED, forwarded) {
        out.push((header::FORWARDED, v));
    }
    out
}

/// A backend's response headers to pass to the client: end-to-end ones
/// only (`Sec-WebSocket-Version` of a 426 stays); `Content-Length` only
/// with `length`, for a body that follows.
pub(crate) fn downstream_headers(headers: &HeaderMap, length: bool) -> HeaderMap {
    let listed = connection_listed(headers);
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let drop = matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "alt-svc"
                | "sec-websocket-accept"
        ) || (!length && name == header::CONTENT_LENGTH)
            || listed.iter().any(|l| l == name.as_str());
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}
