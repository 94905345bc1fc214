//! Plain HTTP through layer 7 (pages, the API, health): each request goes
//! to a backend as HTTP/1.1 on a connection of its own, bodies streamed
//! both ways, hop-by-hop headers dropped and `Forwarded`/`X-Forwarded-*`
//! added. A connection per request keeps this simple and isolates clients;
//! WebSockets, the traffic that matters here, never take this path.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{StatusCode, Version};
use hyper_util::rt::TokioIo;

use crate::headers::{downstream_headers, upstream_headers};
use crate::refusal::{no_backend, refuse};
use crate::route::Route;
use crate::{ProxyConfig, Shared};

/// Forward one request and stream its answer back.
pub(crate) async fn forward(
    shared: &Arc<Shared>,
    config: &Arc<ProxyConfig>,
    route: &Route,
    parts: http::request::Parts,
    body: Body,
    peer: SocketAddr,
) -> Response {
    let key = route.affinity.as_ref().and_then(|a| a.key(&parts));
    // Each request in flight holds a backend connection: counted with the
    // WebSockets, per address and in all.
    let Some(seat) = shared
        .clients
        .enter(peer.ip(), config.max_connections_per_ip, config.max_connections)
    else {
        metrics::counter!("volley_proxy_refused_total", "reason" => "request_cap").increment(1);
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests in flight from your address, or in all",
        );
    };
    let connected = match crate::connect::connect(shared, config, route, key.as_deref(), peer, config.listen).await {
        Ok(c) => c,
        Err(why) => return no_backend(why),
    };
    let backend = connected.backend;
    let handshake = hyper::client::conn::http1::Builder::new().handshake::<_, Body>(TokioIo::new(connected.stream));
    let (mut sender, connection) = match handshake.await {
        Ok(pair) => pair,
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, &format!("backend connection failed: {e}")),
    };
    let hold = connected.hold;
    tokio::spawn(async move {
        // The backend connection, and the client's seat, last until the
        // response body has gone through.
        let _held = (seat, hold);
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "backend connection ended");
        }
    });
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http::Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.version_mut() = Version::HTTP_11;
    *request.uri_mut() = match path.parse() {
        Ok(uri) => uri,
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "bad request target"),
    };
    let headers = request.headers_mut();
    for (name, value) in upstream_headers(&parts, peer, config.tls()) {
        headers.append(name, value);
    }
    if let Some(length) = parts.headers.get(http::header::CONTENT_LENGTH) {
        headers.insert(http::header::CONTENT_LENGTH, length.clone());
    }
    let answer = tokio::time::timeout(config.handshake_timeout(), sender.send_request(request)).await;
    let response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::debug!(backend = %backend.addr, error = %e, "backend failed a request");
            return refuse(StatusCode::BAD_GATEWAY, "the backend failed to answer");
        }
        Err(_) => return refuse(StatusCode::GATEWAY_TIMEOUT, "the backend did not answer in time"),
    };
    metrics::counter!("volley_proxy_requests_total", "backend" => backend.addr.clone(), "status" => response.status().as_str().to_owned())
        .increment(1);
    let (head, incoming) = response.into_parts();
    let mut out = Response::new(Body::new(incoming));
    *out.status_mut() = head.status;
    *out.headers_mut() = downstream_headers(&head.headers, true);
    out
}
