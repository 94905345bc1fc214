//! Layer 7: the listener (TLS, HTTP/1.1, HTTP/2 and HTTP/3 through volley's
//! front door, with its per-address cap, head timeout and head size limits)
//! and the one handler every request reaches: a route is chosen, then a
//! WebSocket goes to [`crate::ws`] and anything else to [`crate::forward`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::Router;
use http::{header, StatusCode};
use tokio::sync::watch;
use volley_net::front::{FrontLimits, Transport};

use crate::refusal::refuse;
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
