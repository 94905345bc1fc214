//! A WebSocket through layer 7. The client's opening handshake (an HTTP/1.1
//! upgrade, or an extended CONNECT over HTTP/2 or HTTP/3) is checked, then
//! made again to the backend as an HTTP/1.1 upgrade with a key of our own,
//! whose `Sec-WebSocket-Accept` is checked. The backend's answer decides:
//! its refusal (401, 429, ...) goes to the client as it is; its acceptance
//! goes back as `101` (or `200` to an extended CONNECT) with the
//! subprotocol and extensions it chose, and from then on bytes are spliced
//! ([`crate::splice`]). Extensions pass through untouched: the frames are
//! the same on every transport, and permessage-deflate is between the ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::BytesMut;
use http::{header, HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use volley_net::{PendingUpgrade, Refused};
use volley_wire::handshake;

use crate::headers::{downstream_headers, upstream_headers};
use crate::refusal::{no_backend, refuse};
use crate::route::Route;
use crate::splice::{splice, Timeouts};
use crate::{ProxyConfig, Shared};

/// A refused backend answer's body is passed on up to this size.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// Proxy one WebSocket handshake and, once accepted, its bytes.
pub(crate) async fn proxy(
    shared: &Arc<Shared>,
    config: &Arc<ProxyConfig>,
    route: &Route,
    mut parts: http::request::Parts,
    peer: SocketAddr,
) -> Response {
    let protocol = parts
        .extensions
        .get::<hyper::ext::Protocol>()
        .map(|p| p.as_str().to_owned());
    if protocol.is_some() {
        if let Err(refused) = volley_net::check_scheme(parts.version, &parts.uri) {
            return refused.into_response();
        }
    }
    let validated = match handshake::validate_opening(&parts.method, parts.version, protocol.as_deref(), &parts.headers)
    {
        Ok(v) => v,
        Err(e) => return Refused::from(e).into_response(),
    };
    if !shared.rates.allow(peer.ip(), config.handshake_rate) {
        metrics::counter!("volley_proxy_refused_total", "reason" => "handshake_rate").increment(1);
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many WebSocket handshakes from your address",
        );
    }
    let Some(pending) = PendingUpgrade::take(&mut parts) else {
        let mut refused = refuse(StatusCode::UPGRADE_REQUIRED, "this connection cannot be upgraded");
        refused
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return refused;
    };
    // Streams of HTTP/2 and HTTP/3 connections are WebSockets too: the
    // per-address cap of the front door counts connections, this one counts
    // WebSockets, whatever carries them.
    let Some(seat) = shared
        .clients
        .enter(peer.ip(), config.max_connections_per_ip, config.max_connections)
    else {
        metrics::counter!("volley_proxy_refused_total", "reason" => "websocket_cap").increment(1);
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many WebSockets open from your address, or in all",
        );
    };
    let transport = pending.transport(validated.extended);
    let key = route.affinity.as_ref().and_then(|a| a.key(&parts));
    let connected = match crate::connect::connect(shared, config, route, key.as_deref(), peer, config.listen).await {
        Ok(c) => c,
        Err(why) => return no_backend(why),
    };
    let backend = connected.backend;
    let hold = connected.hold;
    // Counted from now, so the bound on loads sees this one even while its
    // handshake is under way, and so is a drain.
    let active = backend.enter();
    let (live, drain) = crate::drain::register(&backend, config);
    let ours = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut upstream = connected.stream;
    let answer = tokio::time::timeout(
        config.handshake_timeout(),
        handshake_upstream(&mut upstream, &parts, peer, config.tls(), &ours),
    )
    .await;
    let (head, leftover) = match answer {
        Ok(Ok(answer)) => answer,
        Ok(Err(why)) => {
            metrics::counter!("volley_proxy_handshakes_total", "backend" => backend.addr.clone(), "result" => "bad_gateway").increment(1);
            tracing::warn!(backend = %backend.addr, %why, "backend failed the handshake");
            return refuse(
                StatusCode::BAD_GATEWAY,
                &format!("the backend failed the handshake: {why}"),
            );
        }
        Err(_) => {
            metrics::counter!("volley_proxy_handshakes_total", "backend" => backend.addr.clone(), "result" => "timeout").increment(1);
            return refuse(
                StatusCode::GATEWAY_TIMEOUT,
                "the backend did not answer the handshake in time",
            );
        }
    };
    if head.status().as_u16() < 300 && head.status() != StatusCode::SWITCHING_PROTOCOLS {
        // To an extended CONNECT a 2xx means "open": never pass one on.
        metrics::counter!("volley_proxy_handshakes_total", "backend" => backend.addr.clone(), "result" => "bad_gateway")
            .increment(1);
        return refuse(
            StatusCode::BAD_GATEWAY,
            &format!("the backend answered {} instead of upgrading", head.status()),
        );
    }
    if head.status() != StatusCode::SWITCHING_PROTOCOLS {
        metrics::counter!("volley_proxy_handshakes_total", "backend" => backend.addr.clone(), "result" => "refused")
            .increment(1);
        return relay_refusal(head, leftover, upstream).await;
    }
    let offered_extensions = parts.headers.contains_key(header::SEC_WEBSOCKET_EXTENSIONS);
    if let Err(why) = check_acceptance(&head, &ours, &validated.protocols, offered_extensions) {
        metrics::counter!("volley_proxy_handshakes_total", "backend" => backend.addr.clone(), "result" => "bad_gateway").increment(1);
        tracing::warn!(backend = %backend.addr, %why, "backend accepted the handshake wrongly");
        return refuse(
            StatusCode::BAD_GATEWAY,
            &format!("the backend's handshake answer is wrong: {why}"),
        );
    }
    metrics::counter!("volley_proxy_handshakes_total", "backend" => backend.addr.clone(), "result" => "ok")
        .increment(1);
    metrics::counter!("volley_websocket_upgrades_total", "transport" => transport).increment(1);

    let mut response = Response::new(Body::empty());
    *response.headers_mut() = downstream_headers(head.headers(), false);
    if validated.extended {
        *response.status_mut() = StatusCode::OK;
    } else {
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) = HeaderValue::from_str(&validated.accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
    }
    let timeouts = Timeouts {
        idle: config.idle_timeout(),
        fin: config.fin_timeout(),
    };
    let access_log = config.access_log;
    let path = parts.uri.path().to_owned();
    let route_name = route.name.clone();
    tokio::spawn(async move {
        let _held = (active, hold, live, seat);
        let Some(client) = pending.upgraded().await else {
            return;
        };
        let started = Instant::now();
        let out = splice(client, upstream, &leftover, true, drain, timeouts).await;
        metrics::counter!("volley_proxy_bytes_total", "direction" => "up").increment(out.up);
        metrics::counter!("volley_proxy_bytes_total", "direction" => "down").increment(out.down);
        if access_log {
            tracing::info!(
                target: "volley_proxy::access",
                client = %peer,
                backend = %backend.addr,
                route = route_name,
                path,
                transport,
                ms = started.elapsed().as_millis() as u64,
                bytes_up = out.up,
                bytes_down = out.down,
                client_close = out.client_close,
                backend_close = out.backend_close,
                drained = out.drained,
                "websocket"
            );
        }
    });
    response
}

/// Send the upgrade request and read the answer's head; the bytes after the
/// head (frames the backend sent at once) come back too.
async fn handshake_upstream(
    upstream: &mut TcpStream,
    parts: &http::request::Parts,
    peer: SocketAddr,
    tls: bool,
    key: &str,
) -> Result<(http::Response<()>, Vec<u8>), String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    )
    .into_bytes();
    for (name, value) in upstream_headers(parts, peer, tls) {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    upstream.write_all(&head).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some((response, len)) = handshake::parse_response(&buf).map_err(|e| e.to_string())? {
            return Ok((response, buf[len..].to_vec()));
        }
        if buf.len() > 16 * 1024 {
            return Err("answer head over 16 KiB".into());
        }
        if upstream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed before answering".into());
        }
    }
}

/// The backend accepted: its accept must be for our key, and any
/// subprotocol it chose one the client offered.
fn check_acceptance(
    head: &http::Response<()>,
    key: &str,
    offered: &[String],
    offered_extensions: bool,
) -> Result<(), String> {
    let expected = handshake::accept_key(key.as_bytes());
    match head.headers().get(header::SEC_WEBSOCKET_ACCEPT) {
        Some(v) if v.as_bytes().trim_ascii() == expected.as_bytes() => {}
        _ => return Err("Sec-WebSocket-Accept does not match our key".into()),
    }
    let upgrade_ok = head
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    if !upgrade_ok {
        return Err("no Upgrade: websocket".into());
    }
    if !offered_extensions && head.headers().contains_key(header::SEC_WEBSOCKET_EXTENSIONS) {
        return Err("an extension the client did not offer".into());
    }
    if let Some(chosen) = head.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
        let chosen = chosen.to_str().unwrap_or("").trim();
        if !offered.iter().any(|o| o == chosen) {
            return Err(format!("subprotocol {chosen} was not offered"));
        }
    }
    Ok(())
}

/// Pass a backend's refusal on: its status, headers and (bounded) body. A
/// body without a `Content-Length` (chunked, or up to the close) is left
/// out: the status and headers say what matters.
async fn relay_refusal(head: http::Response<()>, mut body: Vec<u8>, mut upstream: TcpStream) -> Response {
    let length = head
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REFUSAL_BODY);
    let read_rest = async {
        let mut chunk = [0u8; 4096];
        while body.len() < length {
            match upstream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read_rest).await;
    body.truncate(length);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = head.status();
    *response.headers_mut() = downstream_headers(head.headers(), false);
    response
}
