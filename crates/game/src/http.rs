//! The game's HTTP face: the page, its scripts and the WebSocket endpoint,
//! mounted beside the chat by `volley serve`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::{any, get};
use axum::Json;
use axum::Router;
use tokio::sync::watch;
use volley_net::assets::{self, Asset};
use volley_net::{Acceptor, UpgradeState, WebSocketUpgrade};

use crate::lobby::Lobby;
use crate::protocol::MatchId;
use crate::session;

/// The page and scripts of the game client.
const ASSETS: &[Asset] = &[
    Asset::new("/game", include_str!("../../../web/game.html")),
    Asset::new("/game/", include_str!("../../../web/game.html")),
    Asset::new("/game/game.js", include_str!("../../../clients/js/game.js")),
    Asset::new("/game/play.js", include_str!("../../../web/play.js")),
];

struct App {
    lobby: Arc<Lobby>,
    acceptor: Acceptor,
    shutdown: watch::Receiver<bool>,
}

impl UpgradeState for App {
    fn acceptor(&self) -> &Acceptor {
        &self.acceptor
    }
}

/// Routes `/game` (the page), `/game/*.js` and `/game/ws`. `shutdown`
/// turning true refuses new connections and closes every game connection
/// with 1001.
pub fn router(lobby: Arc<Lobby>, shutdown: watch::Receiver<bool>, allowed_origins: Vec<String>) -> Router {
    let mut transport = volley_net::Config::default();
    // Client frames are a few dozen bytes; anything large is not ours (1009).
    transport.protocol.max_frame_size = 1024;
    transport.protocol.max_message_size = 1024;
    transport.write_buffer_limit = 256 * 1024;
    let acceptor = Acceptor::new(transport)
        .allow_origins(allowed_origins)
        .closing(shutdown.clone());
    let app = Arc::new(App {
        lobby,
        acceptor,
        shutdown,
    });
    Router::new()
        .route("/game/ws", any(websocket))
        .route("/api/game/nodes", get(nodes))
        .route("/api/game/matches", get(matches))
        .route("/api/game/leaderboard", get(leaderboard))
        .with_state(app)
        .merge(assets::routes(ASSETS))
}

async fn websocket(State(app): State<Arc<App>>, RawQuery(query): RawQuery, upgrade: WebSocketUpgrade) -> Response {
    let lobby = app.lobby.clone();
    let shutdown = app.shutdown.clone();
    // `?node=` means the client was sent to this node by name (a proxy
    // routes on it): never send it on again, so a stale registry cannot
    // bounce it between nodes.
    let param = |name: &str| {
        query.as_deref().and_then(|q| {
            q.split('&')
                .find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .map(percent_decoded)
        })
    };
    let pinned = param("node");
    // `?match=ID`: a spectator asks for that match (on whatever node).
    let watch = param("match").and_then(|m| m.parse::<u32>().ok()).filter(|&m| m != 0);
    upgrade.on_upgrade(move |ws| session::run(lobby, ws, shutdown, pinned, watch.map(MatchId)))
}

/// A query value with `%XX` escapes (and `+`) decoded, as browsers and the
/// Rust client encode a node id; anything malformed is kept as it is.
fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The game nodes this node knows, with their matches and measured load
/// (just itself without a broker): what placement decides on.
async fn nodes(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let nodes = match app.lobby.cluster() {
        Some(cluster) => cluster.nodes(),
        None => Vec::new(),
    };
    let list: Vec<serde_json::Value> = nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "node": n.node,
                "draining": n.draining,
                "threads": n.threads,
                "max_rooms": n.max_rooms,
                "cost_us_per_thread": n.cost(),
                "matches": n.matches.iter().map(|m| serde_json::json!({
                    "id": m.id, "humans": m.humans, "tick_us": m.tick_micros,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(serde_json::json!({ "clustered": app.lobby.cluster().is_some(), "nodes": list }))
}

/// Every match running in the cluster (or on this node): what a spectator
/// picks from; `/game/ws?match=ID` then watches it from any node.
async fn matches(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = app
        .lobby
        .matches()
        .into_iter()
        .map(|(id, node, humans)| serde_json::json!({ "id": id, "node": node, "humans": humans }))
        .collect();
    Json(serde_json::json!({ "matches": list }))
}

/// Entries in each half of the leaderboard.
const BOARD: usize = 20;

/// The leaderboard: `live`, the heaviest players now in every match of
/// the cluster (from the nodes' last heartbeats), and `best`, each
/// account's best of all time (from the store; signed-in players only).
/// A store that fails leaves `best` out and says so in `error`, so the
/// live half still shows.
async fn leaderboard(State(app): State<Arc<App>>) -> Response {
    use axum::response::IntoResponse;
    let live: Vec<serde_json::Value> = app
        .lobby
        .live_leaders(BOARD)
        .into_iter()
        .map(|(l, id, node)| {
            serde_json::json!({ "name": l.name, "account": l.account, "mass": l.mass, "match": id, "node": node })
        })
        .collect();
    let body = match app.lobby.best_scores(BOARD as u32).await {
        Ok(best) => serde_json::json!({ "live": live, "best": best }),
        Err(e) => serde_json::json!({ "live": live, "best": [], "error": e }),
    };
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::percent_decoded;

    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decoded("n1"), "n1");
        assert_eq!(percent_decoded("10.0.0.1%3A8080"), "10.0.0.1:8080");
        assert_eq!(percent_decoded("a%2"), "a%2");
        assert_eq!(percent_decoded("%zz%"), "%zz%");
        assert_eq!(percent_decoded("x+y"), "x y");
    }
}
