//! The server API: what an application's own backend calls, with an API key
//! (`Authorization: ApiKey KEY`), to act on the chat without pretending to
//! be a chat client: publish into a room, read a room's history and
//! presence, create rooms, add and remove members, disconnect a user
//! everywhere.
//! Keys are configured (`api_keys`), each with scopes; every route names the
//! scope it needs. Described in docs/openapi.yaml.
//!
//! Messages a key publishes come from the user `api:NAME` of the key NAME
//! (created on first use; no account or token can take a name with `:`),
//! so history and clients show who spoke.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use volley_hub::{Appended, RoomId, Seq};

use crate::config::{ApiKey, Scope};
use crate::http::App;
use crate::protocol::{self, MessageView};
use crate::refusal::{ErrorCode, Refusal};

type AppState = State<Arc<App>>;

/// The server API's routes, under `/api/server`.
pub(crate) fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/server/rooms", post(create_room))
        .route("/api/server/rooms/{id}", delete(delete_room))
        .route("/api/server/rooms/{id}/messages", post(publish).get(history))
        .route("/api/server/rooms/{id}/presence", get(presence))
        .route("/api/server/rooms/{id}/members", post(add_member))
        .route("/api/server/rooms/{id}/members/{name}", delete(remove_member))
        .route("/api/server/users/{name}/disconnect", post(disconnect))
        .with_state(app)
}

/// The key a request presents, if it is configured and has `scope`.
fn key_for<'a>(app: &'a App, headers: &HeaderMap, scope: Scope) -> Result<&'a ApiKey, Refusal> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("ApiKey "))
        .map(str::trim)
        .ok_or_else(|| Refusal::new(ErrorCode::AuthRequired, "send Authorization: ApiKey KEY"))?;
    if app.chat.config.api_keys.is_empty() {
        return Err(Refusal::new(
            ErrorCode::AuthFailed,
            "the server API is off on this node: no api_keys are configured",
        ));
    }
    // Every key is compared, to the end, whichever matches.
    let key = app
        .chat
        .config
        .api_keys
        .iter()
        .fold(None, |found, k| {
            let hit = same(k.key.as_bytes(), presented.as_bytes());
            found.or(hit.then_some(k))
        })
        .ok_or_else(|| Refusal::new(ErrorCode::AuthFailed, "unknown API key"))?;
    if !key.scopes.contains(&scope) {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("API key {} lacks the {} scope", key.name, scope.as_str()),
        ));
    }
    Ok(key)
}

/// Compare in time that depends on the length only, not on where the
/// first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON body, or the refusal in the API's one error shape (axum's own
/// rejections are plain text). An empty body is `{}` when `T` allows it.
fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Refusal> {
    let bytes = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::TooLarge
        } else {
            ErrorCode::BadRequest
        };
        Refusal::new(code, e.body_text())
    })?;
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
    serde_json::from_slice(bytes).map_err(|e| Refusal::new(ErrorCode::BadJson, format!("bad JSON body: {e}")))
}

fn path<T>(extracted: Result<Path<T>, PathRejection>) -> Result<T, Refusal> {
    extracted
        .map(|Path(p)| p)
        .map_err(|e| Refusal::new(ErrorCode::BadRequest, e.body_text()))
}

/// The user a key speaks as: `api:NAME`, made on first use.
async fn service_user(app: &App, key: &ApiKey) -> Result<volley_hub::User, Refusal> {
    let name = format!("{}{}", crate::service::SERVICE_PREFIX, key.name);
    Ok(app.chat.hub().store().external_user(&name).await?)
}

async fn room_or_404(app: &App, id: RoomId) -> Result<volley_hub::Room, Refusal> {
    app.chat
        .hub()
        .store()
        .room(id)
        .await?
        .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("room {id} not found")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    name: String,
    #[serde(default)]
    private: bool,
}

async fn create_room(
    State(app): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let key = key_for(&app, &headers, Scope::Rooms)?;
    let body: NewRoom = json_body(body)?;
    let owner = service_user(&app, key).await?;
    let room = app
        .chat
        .create_room_as_service(&owner, &body.name, body.private)
        .await?;
    Ok((StatusCode::CREATED, Json(protocol::room_view(&room))).into_response())
}

async fn delete_room(
    State(app): AppState,
    headers: HeaderMap,
    id: Result<Path<RoomId>, PathRejection>,
) -> Result<Response, Refusal> {
    key_for(&app, &headers, Scope::Rooms)?;
    let id = path(id)?;
    app.chat.delete_as_service(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    /// The idempotency key: publishing again with the same id stores nothing
    /// and answers with the first message's seq.
    id: String,
    text: String,
}

async fn publish(
    State(app): AppState,
    headers: HeaderMap,
    id: Result<Path<RoomId>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let key = key_for(&app, &headers, Scope::Publish)?;
    let id = path(id)?;
    let body: Publish = json_body(body)?;
    room_or_404(&app, id).await?;
    let sender = service_user(&app, key).await?;
    let (stored, duplicate) = match app.chat.send_as_service(&sender, id, body.id, body.text).await? {
        Appended::New(m) => (m, false),
        Appended::Duplicate(m) => (m, true),
    };
    Ok(Json(json!({
        "room": stored.room,
        "seq": stored.seq,
        "id": stored.client_id,
        "ts": stored.ts,
        "duplicate": duplicate,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct Page {
    before: Option<u64>,
    limit: Option<u32>,
}

async fn history(
    State(app): AppState,
    headers: HeaderMap,
    id: Result<Path<RoomId>, PathRejection>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Response, Refusal> {
    key_for(&app, &headers, Scope::History)?;
    let id = path(id)?;
    let Query(page) = page.map_err(|e| Refusal::new(ErrorCode::BadRequest, e.body_text()))?;
    room_or_404(&app, id).await?;
    let limit = page.limit.unwrap_or(50).clamp(1, crate::service::MAX_PAGE);
    let messages = app.chat.hub().store().history(id, page.before.map(Seq), limit).await?;
    let more = messages.first().is_some_and(|m| m.seq > Seq(1));
    let messages: Vec<MessageView> = messages.iter().map(protocol::message_view).collect();
    Ok(Json(json!({ "room": id, "messages": messages, "more": more })).into_response())
}

async fn presence(
    State(app): AppState,
    headers: HeaderMap,
    id: Result<Path<RoomId>, PathRejection>,
) -> Result<Response, Refusal> {
    key_for(&app, &headers, Scope::Presence)?;
    let id = path(id)?;
    room_or_404(&app, id).await?;
    let online: std::collections::HashSet<_> = app.chat.hub().presence().online(id).into_iter().collect();
    let members = app.chat.hub().store().members(id).await?;
    let list: Vec<_> = members
        .iter()
        .filter(|m| online.contains(&m.id))
        .map(|m| json!({ "id": m.id, "name": m.name }))
        .collect();
    Ok(Json(json!({ "room": id, "count": list.len(), "online": list })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    user: String,
}

async fn add_member(
    State(app): AppState,
    headers: HeaderMap,
    id: Result<Path<RoomId>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    key_for(&app, &headers, Scope::Users)?;
    let id = path(id)?;
    let body: Member = json_body(body)?;
    let room = room_or_404(&app, id).await?;
    if room.kind == volley_hub::RoomKind::Direct {
        return Err(Refusal::new(ErrorCode::BadRequest, "a direct room has its two members"));
    }
    let user = app.chat.add_member(id, &body.user).await?;
    Ok(Json(json!({ "room": id, "user": user.id, "name": user.name })).into_response())
}

async fn remove_member(
    State(app): AppState,
    headers: HeaderMap,
    target: Result<Path<(RoomId, String)>, PathRejection>,
) -> Result<Response, Refusal> {
    key_for(&app, &headers, Scope::Users)?;
    let (id, name) = path(target)?;
    room_or_404(&app, id).await?;
    // Idempotent: a retry after a lost answer, or a user who was not a
    // member, gets the same 204.
    app.chat.remove_as_service(id, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Disconnect {
    #[serde(default)]
    reason: Option<String>,
}

async fn disconnect(
    State(app): AppState,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let key = key_for(&app, &headers, Scope::Users)?;
    let name = path(name)?;
    let body: Disconnect = json_body(body)?;
    let reason = body.reason.unwrap_or_else(|| format!("by {}", key.name));
    let user = app.chat.disconnect(&name, &reason).await?;
    Ok(Json(json!({ "user": user.id, "name": user.name, "disconnected": true })).into_response())
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn keys_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
