//! The HTTP face: the WebSocket endpoint, the JSON API, health, metrics and
//! the embedded web client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{watch, Notify};
use volley_hub::{RoomId, Seq, User, UserId};
use volley_net::assets::{self, Asset};
use volley_net::{Acceptor, UpgradeState, WebSocketUpgrade};

use crate::protocol::{self, ErrorCode, MessageView, RoomView};
use crate::refusal::Refusal;
use crate::service::Chat;
use crate::session;

/// Counts live WebSocket sessions so shutdown can wait for them.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    live: AtomicUsize,
    idle: Notify,
}

impl Sessions {
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    pub(crate) async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if self.live() == 0 {
                return;
            }
            idle.await;
        }
    }
}

struct SessionGuard(Arc<Sessions>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Shared by every request.
pub(crate) struct App {
    pub(crate) chat: Arc<Chat>,
    pub(crate) acceptor: Acceptor,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) metrics: PrometheusHandle,
}

type AppState = State<Arc<App>>;

/// The web client's page, scripts and style.
const ASSETS: &[Asset] = &[
    Asset::new("/", include_str!("../../../web/index.html")),
    Asset::new("/chat.js", include_str!("../../../clients/js/chat.js")),
    Asset::new("/app.js", include_str!("../../../web/app.js")),
    Asset::new("/style.css", include_str!("../../../web/style.css")),
];

impl UpgradeState for App {
    fn acceptor(&self) -> &Acceptor {
        &self.acceptor
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/ws", any(websocket))
        .route("/healthz", get(healthz))
        .route("/health", get(health))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/api/register", post(register))
        .route("/api/login", post(login))
        .route("/api/guest", post(guest))
        .route("/api/me", get(me))
        .route("/api/rooms", get(search).post(create_room))
        .route("/api/rooms/{id}/join", post(join))
        .route("/api/rooms/{id}/leave", post(leave))
        .route("/api/rooms/{id}/members", get(members).post(invite))
        .route("/api/rooms/{id}/members/{name}", delete(remove))
        .route("/api/rooms/{id}/online", get(online))
        .route("/api/rooms/{id}/messages", get(history))
        .route("/api/direct", post(direct))
        .with_state(app)
        .merge(assets::routes(ASSETS))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The node's state for load balancers and people: its id, the store (a
/// query) and the broker; 503 while either is down or the node is stopping.
async fn health(State(app): AppState) -> Response {
    let store = match app.chat.hub().store().ping().await {
        Ok(()) => json!("ok"),
        Err(e) => json!(format!("error: {e}")),
    };
    let broker = if app.chat.hub().broker().connected() {
        "ok"
    } else {
        "disconnected"
    };
    let stopping = *app.shutdown.borrow();
    let healthy = store == json!("ok") && broker == "ok" && !stopping;
    let body = json!({
        "node": app.chat.config.node_id,
        "status": if healthy { "ok" } else if stopping { "stopping" } else { "degraded" },
        "store": store,
        "broker": broker,
        "sessions": app.sessions.live(),
        "peers": app.chat.hub().presence().peers(),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn readyz(State(app): AppState) -> Response {
    if *app.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match app.chat.hub().store().ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}

/// `/metrics` on the public port: only for a client on this machine that
/// is not a proxy forwarding someone else, and only while no `metrics_addr`
/// gives the metrics their own listener. Anyone else gets 404, as for a path
/// that does not exist.
async fn metrics_text(
    State(app): AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let forwarded = headers.contains_key("forwarded") || headers.contains_key("x-forwarded-for");
    if app.chat.config.metrics_addr.is_some() || !peer.ip().to_canonical().is_loopback() || forwarded {
        return StatusCode::NOT_FOUND.into_response();
    }
    metrics_page(&app.metrics)
}

/// The Prometheus text page.
pub(crate) fn metrics_page(metrics: &PrometheusHandle) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()).into_response()
}

async fn websocket(
    State(app): AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The per-address cap is the front door's (`volley_net::front`): it
    // counts every connection, finished handshake or not.
    // Non-browser clients may authenticate in the upgrade request itself.
    let user = match bearer(&headers) {
        Some(token) => match app.chat.authenticate(token).await {
            Ok(user) => Some(user),
            Err(fail) => return fail.into_response(),
        },
        None => None,
    };
    app.sessions.live.fetch_add(1, Ordering::AcqRel);
    let guard = SessionGuard(app.sessions.clone());
    let chat = app.chat.clone();
    let shutdown = app.shutdown.clone();
    upgrade.on_upgrade(move |ws| async move {
        let _guard = guard;
        session::run(chat, ws, user, peer.ip(), shutdown).await;
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The authenticated user of an API request.
async fn user_of(app: &App, headers: &HeaderMap) -> Result<User, Refusal> {
    let token = bearer(headers)
        .ok_or_else(|| Refusal::new(ErrorCode::AuthRequired, "Authorization: Bearer <token> required"))?;
    app.chat.authenticate(token).await
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

fn token_response(user: &User, token: String) -> Response {
    Json(json!({ "token": token, "user": protocol::user_view(user) })).into_response()
}

async fn register(
    State(app): AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(c): Json<Credentials>,
) -> Result<Response, Refusal> {
    app.chat.limit_accounts(peer.ip())?;
    let (user, token) = app.chat.register(c.username.trim(), &c.password).await?;
    Ok((StatusCode::CREATED, token_response(&user, token)).into_response())
}

async fn login(
    State(app): AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(c): Json<Credentials>,
) -> Result<Response, Refusal> {
    app.chat.limit_accounts(peer.ip())?;
    let (user, token) = app.chat.login(c.username.trim(), &c.password).await?;
    Ok(token_response(&user, token))
}

#[derive(Deserialize, Default)]
struct GuestRequest {
    #[serde(default)]
    name: Option<String>,
}

async fn guest(
    State(app): AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Option<Json<GuestRequest>>,
) -> Result<Response, Refusal> {
    app.chat.limit_accounts(peer.ip())?;
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let (user, token) = app.chat.guest(request.name.as_deref()).await?;
    Ok((StatusCode::CREATED, token_response(&user, token)).into_response())
}

async fn me(State(app): AppState, headers: HeaderMap) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    let rooms = app.chat.hub().store().rooms_of(user.id).await?;
    let rooms: Vec<RoomView> = rooms.iter().map(protocol::member_room_view).collect();
    Ok(Json(json!({ "user": protocol::user_view(&user), "rooms": rooms })).into_response())
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(State(app): AppState, headers: HeaderMap, Query(q): Query<SearchQuery>) -> Result<Response, Refusal> {
    user_of(&app, &headers).await?;
    let rooms = app.chat.search(&q.q).await?;
    Ok(Json(json!({ "rooms": rooms })).into_response())
}

#[derive(Deserialize)]
struct NewRoom {
    name: String,
    #[serde(default)]
    private: bool,
}

async fn create_room(State(app): AppState, headers: HeaderMap, Json(r): Json<NewRoom>) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    let room = app.chat.create_room(&user, &r.name, r.private).await?;
    Ok((StatusCode::CREATED, Json(protocol::room_view(&room))).into_response())
}

async fn join(State(app): AppState, headers: HeaderMap, Path(id): Path<RoomId>) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    let room = app.chat.join(&user, id).await?;
    Ok(Json(protocol::room_view(&room)).into_response())
}

async fn leave(State(app): AppState, headers: HeaderMap, Path(id): Path<RoomId>) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    app.chat.leave(&user, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn members(State(app): AppState, headers: HeaderMap, Path(id): Path<RoomId>) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    if !app.chat.hub().store().is_member(id, user.id).await? {
        return Err(crate::service::unseen(id));
    }
    let members = app.chat.hub().store().members(id).await?;
    let online: std::collections::HashSet<_> = app.chat.hub().presence().online(id).into_iter().collect();
    let list: Vec<_> = members
        .iter()
        .map(|m| json!({ "id": m.id, "name": m.name, "guest": protocol::user_view(m).guest, "online": online.contains(&m.id) }))
        .collect();
    Ok(Json(json!({ "members": list })).into_response())
}

#[derive(Deserialize)]
struct OnlinePage {
    after: Option<UserId>,
    limit: Option<usize>,
}

/// Who is online in a room, a page at a time (for rooms too big for the
/// list in `ready`): ids above `after`, at most `limit` (default and most 1000).
async fn online(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<RoomId>,
    Query(page): Query<OnlinePage>,
) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    if !app.chat.hub().store().is_member(id, user.id).await? {
        return Err(crate::service::unseen(id));
    }
    let presence = app.chat.hub().presence();
    let limit = page.limit.unwrap_or(1000).clamp(1, 1000);
    let users = presence.online_page(id, page.after, limit);
    let next = if users.len() == limit {
        users.last().copied()
    } else {
        None
    };
    Ok(Json(json!({ "online": users, "count": presence.online_count(id), "next": next })).into_response())
}

#[derive(Deserialize)]
struct Target {
    user: String,
}

async fn invite(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<RoomId>,
    Json(t): Json<Target>,
) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    let added = app.chat.invite(&user, id, &t.user).await?;
    Ok(Json(protocol::user_view(&added)).into_response())
}

async fn remove(
    State(app): AppState,
    headers: HeaderMap,
    Path((id, name)): Path<(RoomId, String)>,
) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    app.chat.remove(&user, id, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<Seq>,
    limit: Option<u32>,
}

async fn history(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<RoomId>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    let (messages, more): (Vec<MessageView>, bool) = app.chat.history(user.id, id, q.before, q.limit).await?;
    Ok(Json(json!({ "room": id, "messages": messages, "more": more })).into_response())
}

async fn direct(State(app): AppState, headers: HeaderMap, Json(t): Json<Target>) -> Result<Response, Refusal> {
    let user = user_of(&app, &headers).await?;
    let room = app.chat.direct(&user, &t.user).await?;
    Ok(Json(protocol::room_view(&room)).into_response())
}
