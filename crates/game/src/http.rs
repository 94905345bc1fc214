//! The game's HTTP face: the page, its scripts and the WebSocket endpoint,
//! mounted beside the chat by `volley serve`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use tokio::sync::watch;
use volley_net::assets::{self, Asset};
use volley_net::{Acceptor, UpgradeState, WebSocketUpgrade};

use crate::lobby::Lobby;
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
        .with_state(app)
        .merge(assets::routes(ASSETS))
}

async fn websocket(State(app): State<Arc<App>>, upgrade: WebSocketUpgrade) -> Response {
    let lobby = app.lobby.clone();
    let shutdown = app.shutdown.clone();
    upgrade.on_upgrade(move |ws| session::run(lobby, ws, shutdown))
}
