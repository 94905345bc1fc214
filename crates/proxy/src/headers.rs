//! Which headers cross the proxy: hop-by-hop ones never do (RFC 9110
//! section 7.6.1); requests gain `Forwarded` and `X-Forwarded-*`.

use std::net::SocketAddr;

use http::{header, HeaderMap, HeaderName, HeaderValue};

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
