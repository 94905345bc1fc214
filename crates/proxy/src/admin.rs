//! The admin address: Prometheus metrics of the proxy, the backends and
//! their state, and draining (`POST /backends/drain?backend=HOST:PORT`, which
//! `volley proxy drain` calls). Keep it off public interfaces.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tokio::sync::watch;

use crate::{Error, Shared};

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

#[derive(Clone)]
struct Admin {
    metrics: PrometheusHandle,
    shared: Arc<Shared>,
}

/// Bind `addr` now (so a taken port fails the start) and serve it until `stop`.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let listener = volley_net::front::bind(addr)?;
    let page = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/backends", get(backends))
        .route("/backends/drain", post(drain))
        .route("/backends/undrain", post(undrain))
        .with_state(Admin { metrics, shared });
    tracing::info!(%addr, "proxy admin (metrics, backends, drain)");
    tokio::spawn(async move {
        let limits = volley_net::front::FrontLimits::default();
        let transport = volley_net::front::Transport::default();
        if let Err(e) = volley_net::front::serve(listener, page, limits, transport, stop).await {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    Ok(())
}

async fn metrics_page(State(admin): State<Admin>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        admin.metrics.render(),
    )
        .into_response()
}

async fn backends(State(admin): State<Admin>) -> Response {
    let list: Vec<_> = admin
        .shared
        .backends
        .all()
        .iter()
        .map(|b| {
            serde_json::json!({
                "backend": b.addr,
                "name": b.name,
                "healthy": b.is_healthy(),
                "draining": b.is_draining(),
                "removed": b.is_removed(),
                "connections": b.active(),
                "websockets": b.live(),
            })
        })
        .collect();
    Json(serde_json::json!({ "backends": list, "affinity_keys": admin.shared.affinities.len() })).into_response()
}

#[derive(Debug, Deserialize)]
struct Which {
    backend: String,
}

async fn drain(State(admin): State<Admin>, Query(which): Query<Which>) -> Response {
    let Some(backend) = admin.shared.backends.find(&which.backend) else {
        return (StatusCode::NOT_FOUND, format!("no backend {}\n", which.backend)).into_response();
    };
    let config = admin.shared.current().config.clone();
    backend.set_draining(true);
    let live = backend.live();
    crate::drain::start(
        backend,
        config.drain_rate,
        config.drain_reconnect_ms,
        "backend draining",
    );
    Json(serde_json::json!({
        "backend": which.backend,
        "draining": true,
        "websockets": live,
        "seconds": (live as f64 / f64::from(config.drain_rate)).ceil(),
    }))
    .into_response()
}

async fn undrain(State(admin): State<Admin>, Query(which): Query<Which>) -> Response {
    let Some(backend) = admin.shared.backends.find(&which.backend) else {
        return (StatusCode::NOT_FOUND, format!("no backend {}\n", which.backend)).into_response();
    };
    backend.set_draining(false);
    Json(serde_json::json!({ "backend": which.backend, "draining": false })).into_response()
}
