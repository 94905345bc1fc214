//! The admin address: Prometheus metrics of the proxy (backend health and
//! open connections, connections, bytes, connect failures, refusals).

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::Error;

/// The process-wide recorder (installed once; a recorder the embedding
/// program installed first wins, and ours then renders empty).
pub(crate) fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Bind `addr` now (so a taken port fails the start) and serve `/metrics`
/// on it until `stop`.
pub(crate) async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let listener = volley_net::front::bind(addr)?;
    let page = Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response() }
        }),
    );
    tracing::info!(%addr, "proxy metrics on /metrics");
    tokio::spawn(async move {
        let limits = volley_net::front::FrontLimits::default();
        let transport = volley_net::front::Transport::default();
        if let Err(e) = volley_net::front::serve(listener, page, limits, transport, stop).await {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    Ok(())
}
