//! The game's HTTP face: the page, its scripts and the WebSocket endpoint,
//! mounted beside the chat by `volley serve`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use volley_net::Acceptor;

use crate::lobby::Lobby;
use crate::session;

struct App {
    lobby: Arc<Lobby>,
    acceptor: Acceptor,
    shutdown: watch::Receiver<bool>,
    allowed_origins: Vec<String>,
}

/// Routes `/game` (the page), `/game/*.js` and `/game/ws`. `shutdown`
/// turning true closes every game connection with 1001.
pub fn router(lobby: Arc<Lobby>, shutdown: watch::Receiver<bool>, allowed_origins: Vec<String>) -> Router {
    let mut transport = volley_net::Config::default();
    // Client frames are a few dozen bytes; anything large is not ours (1009).
    transport.protocol.max_frame_size = 1024;
    transport.protocol.max_message_size = 1024;
    transport.write_buffer_limit = 256 * 1024;
    let app = Arc::new(App {
        lobby,
        acceptor: Acceptor::new(transport),
        shutdown,
        allowed_origins,
    });
    Router::new()
        .route("/game", get(page))
        .route("/game/", get(page))
        .route("/game/game.js", get(game_js))
        .route("/game/play.js", get(play_js))
        .route("/game/ws", get(websocket))
        .with_state(app)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", include_str!("../../../web/game.html"))
}

async fn game_js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../../web/game.js"))
}

async fn play_js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../../web/play.js"))
}

fn plain(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text + "\n",
    )
        .into_response()
}

async fn websocket(State(app): State<Arc<App>>, mut req: Request) -> Response {
    if *app.shutdown.borrow() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "server shutting down".into());
    }
    if let Err(reason) = volley_net::origin_allowed(req.headers(), &app.allowed_origins) {
        metrics::counter!("volley_handshake_rejected_total", "reason" => "origin").increment(1);
        return plain(StatusCode::FORBIDDEN, reason);
    }
    let negotiated = match app.acceptor.negotiate(&req) {
        Ok(n) => n,
        Err(e) => {
            let (parts, text) = volley_net::refusal(&e).into_parts();
            return Response::from_parts(parts, Body::from(text));
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let response = negotiated.response();
    let lobby = app.lobby.clone();
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = negotiated.into_websocket(TokioIo::new(upgraded), &[]);
                session::run(lobby, ws, shutdown).await;
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    let (parts, ()) = response.into_parts();
    Response::from_parts(parts, Body::empty())
}
