//! The running cluster's admin address: the live page (`/`), its state
//! as JSON (`GET /api/state`), and the faults, restarts and the stop that
//! `volley cluster fault|restart|down` send from another terminal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::cluster::{Action, Cluster};

/// The live page.
const PAGE: &str = include_str!("live.html");

struct Admin {
    cluster: Arc<Cluster>,
    /// Its own port, for the state file.
    port: u16,
    /// Told when `POST /api/down` arrives.
    stop: Arc<Notify>,
    /// Each node's counters at the last scrape: for rates.
    last: Mutex<HashMap<String, (Instant, Counters)>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    messages: f64,
    deliveries: f64,
    ticks: f64,
}

/// Serve the admin API on `listener` until the process ends; `stop` is
/// notified by `POST /api/down`.
pub(crate) async fn serve(cluster: Arc<Cluster>, listener: tokio::net::TcpListener, stop: Arc<Notify>) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let admin = Arc::new(Admin {
        cluster,
        port,
        stop,
        last: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/state", get(state))
        .route("/api/fault", post(fault))
        .route("/api/down", post(down))
        .route("/api/heal", post(heal))
        .with_state(admin);
    let _ = axum::serve(listener, app).await;
}

/// Write the state file from the cluster as it is now.
pub(crate) async fn write_state(cluster: &Cluster, admin: u16) {
    let pids = cluster
        .services()
        .await
        .into_iter()
        .filter_map(|s| {
            let pid = s.pid?;
            Some((s.name, pid, crate::process::started_at(pid)?))
        })
        .collect();
    let file = crate::state::StateFile {
        pid: std::process::id(),
        pid_started: crate::process::started_at(std::process::id()).unwrap_or(0),
        admin,
        proxy: cluster.proxy_port,
        pids,
        pg_data: cluster.store_port.map(|_| cluster.dir().join("store").join("data")),
    };
    if let Err(e) = file.write(cluster.dir()) {
        tracing::warn!(error = %e, "state file not written");
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn state(State(admin): State<Arc<Admin>>) -> Json<Value> {
    Json(snapshot(&admin).await)
}

async fn snapshot(admin: &Admin) -> Value {
    let c = &admin.cluster;
    let services = c.services().await;
    let mut nodes = Vec::new();
    for (name, port) in &c.nodes {
        let healthy = services.iter().any(|s| &s.name == name && s.healthy);
        let paused = services.iter().any(|s| &s.name == name && s.paused);
        let scraped = if healthy {
            crate::http::get(*port, "/metrics").await.ok().map(|(_, t)| t)
        } else {
            None
        };
        let (connections, players, rates) = match &scraped {
            Some(text) => {
                let now = Counters {
                    messages: metric(text, "volley_messages_total"),
                    deliveries: metric(text, "volley_deliveries_total"),
                    ticks: metric(text, "volley_game_tick_seconds_count"),
                };
                let mut last = admin.last.lock().unwrap_or_else(|e| e.into_inner());
                let rates = last.get(name).map(|(at, before)| {
                    let secs = at.elapsed().as_secs_f64().max(0.001);
                    (
                        ((now.messages - before.messages) / secs).max(0.0),
                        ((now.deliveries - before.deliveries) / secs).max(0.0),
                        ((now.ticks - before.ticks) / secs).max(0.0),
                    )
                });
                last.insert(name.clone(), (Instant::now(), now));
                (
                    metric(text, "volley_connections"),
                    metric(text, "volley_game_players{kind=\"human\"}"),
                    rates,
                )
            }
            None => (0.0, 0.0, None),
        };
        let (messages, deliveries, ticks) = rates.unwrap_or_default();
        nodes.push(json!({
            "name": name, "port": port, "healthy": healthy, "paused": paused, "connections": connections,
            "players": players, "messages_per_s": messages, "deliveries_per_s": deliveries, "ticks_per_s": ticks,
        }));
    }
    let relays: Vec<Value> = c
        .relays()
        .iter()
        .map(|r| json!({ "name": r.name, "port": r.port, "upstream": r.upstream, "mode": r.mode(), "open": r.open() }))
        .collect();
    json!({
        "dir": c.dir().display().to_string(),
        "uptime_ms": c.now_ms(),
        "url": format!("http://127.0.0.1:{}/", c.proxy_port),
        "game_url": format!("http://127.0.0.1:{}/game", c.proxy_port),
        "proxy_metrics": format!("http://127.0.0.1:{}/metrics", c.proxy_admin_port),
        "broker": c.spec().broker.name(),
        "store": c.spec().store.name(),
        "proxy": c.spec().proxy.name(),
        "services": services,
        "nodes": nodes,
        "relays": relays,
        "faults": c.injected(),
    })
}

#[derive(Deserialize)]
struct FaultRequest {
    action: String,
    target: String,
    #[serde(default)]
    ms: Option<u64>,
}

async fn fault(State(admin): State<Arc<Admin>>, Json(request): Json<FaultRequest>) -> Response {
    let action: Action = match request.action.parse() {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response(),
    };
    match admin.cluster.fault(action, &request.target, request.ms).await {
        Ok(result) => {
            write_state(&admin.cluster, admin.port).await;
            Json(json!({ "result": result })).into_response()
        }
        Err(e @ crate::Error::Unknown(_)) => {
            (StatusCode::NOT_FOUND, Json(json!({ "error": e.to_string() }))).into_response()
        }
        Err(e) => (StatusCode::CONFLICT, Json(json!({ "error": e.to_string() }))).into_response(),
    }
}

/// Heal every link, resume and start every process (a test's last step).
async fn heal(State(admin): State<Arc<Admin>>) -> Json<Value> {
    let done = admin.cluster.heal_all().await;
    write_state(&admin.cluster, admin.port).await;
    Json(json!({ "done": done }))
}

async fn down(State(admin): State<Arc<Admin>>) -> Json<Value> {
    admin.stop.notify_one();
    Json(json!({ "result": "stopping" }))
}
