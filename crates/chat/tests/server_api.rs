//! The server API on a real server: an application's backend, with API
//! keys and scopes, creates a room, publishes into it (idempotently), reads
//! its history and presence, removes a member and disconnects a user, while
//! a real WebSocket client sees each effect.

mod common;

use common::{config, expect, guest, http_as, start};
use serde_json::json;
use volley_chat::config::{ApiKey, Scope};
use volley_chat::protocol::ServerMsg;

const KEY: &str = "backend-secret-0123456789abcdef";
const READER: &str = "reader-secret-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_publishes_reads_removes_and_disconnects() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.api_keys = vec![
        ApiKey {
            name: "announcer".into(),
            key: KEY.into(),
            scopes: vec![
                Scope::Publish,
                Scope::History,
                Scope::Presence,
                Scope::Rooms,
                Scope::Users,
            ],
        },
        ApiKey {
            name: "reader".into(),
            key: READER.into(),
            scopes: vec![Scope::History],
        },
    ];
    let server = start(cfg).await;
    let addr = server.addr;
    let api = Some(format!("ApiKey {KEY}"));
    let reader = Some(format!("ApiKey {READER}"));

    // Keys and scopes.
    let (status, body) = http_as(addr, "POST", "/api/server/rooms", None, Some(json!({"name":"news"}))).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = http_as(
        addr,
        "POST",
        "/api/server/rooms",
        Some("ApiKey wrong-key-0123456789abcdef"),
        Some(json!({"name":"news"})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = http_as(
        addr,
        "POST",
        "/api/server/rooms",
        reader.as_deref(),
        Some(json!({"name":"news"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");

    let (status, room) = http_as(
        addr,
        "POST",
        "/api/server/rooms",
        api.as_deref(),
        Some(json!({"name":"news","private":true})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let id = room["id"].as_u64().unwrap();

    // The room is private: alice cannot join it herself; the backend adds
    // her, and her open session enters it. Then the backend publishes and
    // she hears it from "api:announcer".
    let mut alice = guest(&server, "alice").await;
    let refused = alice.request(json!({"type":"join","room":id})).await;
    assert!(refused.is_err(), "a private room is not for joining: {refused:?}");
    let (status, added) = http_as(
        addr,
        "POST",
        &format!("/api/server/rooms/{id}/members"),
        api.as_deref(),
        Some(json!({"user":"alice"})),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    expect(&mut alice, "room_joined", |m| {
        matches!(m, ServerMsg::RoomJoined { .. }).then_some(())
    })
    .await;
    let path = format!("/api/server/rooms/{id}/messages");
    let (status, first) = http_as(
        addr,
        "POST",
        &path,
        api.as_deref(),
        Some(json!({"id":"n1","text":"hello from the backend"})),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["duplicate"], false);
    let heard = expect(&mut alice, "message", |m| match m {
        ServerMsg::Message(view) => Some(view),
        _ => None,
    })
    .await;
    assert_eq!(
        (heard.name.as_str(), heard.text.as_str()),
        ("api:announcer", "hello from the backend")
    );
    assert_eq!(heard.seq.0, first["seq"].as_u64().unwrap());
    // Publishing again with the same id stores nothing.
    let (_, again) = http_as(
        addr,
        "POST",
        &path,
        api.as_deref(),
        Some(json!({"id":"n1","text":"hello from the backend"})),
    )
    .await;
    assert_eq!(
        (again["seq"].clone(), again["duplicate"].clone()),
        (first["seq"].clone(), json!(true))
    );

    // History (the reader's one scope) and presence.
    let (status, history) = http_as(addr, "GET", &format!("{path}?limit=10"), reader.as_deref(), None).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);
    assert_eq!(history["messages"][0]["name"], "api:announcer");
    let (status, _) = http_as(
        addr,
        "GET",
        &format!("/api/server/rooms/{id}/presence"),
        reader.as_deref(),
        None,
    )
    .await;
    assert_eq!(status, 403, "presence is not the reader's");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, presence) = http_as(
            addr,
            "GET",
            &format!("/api/server/rooms/{id}/presence"),
            api.as_deref(),
            None,
        )
        .await;
        assert_eq!(status, 200);
        if presence["online"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "alice")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice never shown online: {presence}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Unknown rooms and bad bodies.
    let (status, _) = http_as(
        addr,
        "POST",
        "/api/server/rooms/999999/messages",
        api.as_deref(),
        Some(json!({"id":"x","text":"y"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = http_as(addr, "POST", &path, api.as_deref(), Some(json!({"id":"","text":"y"}))).await;
    assert_eq!(status, 400);

    // Removing alice takes her session out of the room.
    let (status, _) = http_as(
        addr,
        "DELETE",
        &format!("/api/server/rooms/{id}/members/alice"),
        api.as_deref(),
        None,
    )
    .await;
    assert_eq!(status, 204);
    expect(&mut alice, "room_left", |m| {
        matches!(m, ServerMsg::RoomLeft { .. }).then_some(())
    })
    .await;
    let (status, _) = http_as(
        addr,
        "DELETE",
        &format!("/api/server/rooms/{id}/members/alice"),
        api.as_deref(),
        None,
    )
    .await;
    assert_eq!(status, 204, "idempotent: a retry gets the same answer");
    // The room's owner (the key's own user) and unknown users.
    let (status, body) = http_as(
        addr,
        "DELETE",
        &format!("/api/server/rooms/{id}/members/api:announcer"),
        api.as_deref(),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = http_as(
        addr,
        "DELETE",
        &format!("/api/server/rooms/{id}/members/nobody"),
        api.as_deref(),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // NUL never reaches the store.
    let (status, _) = http_as(
        addr,
        "POST",
        &path,
        api.as_deref(),
        Some(json!({"id":"z","text":"a\u{0}b"})),
    )
    .await;
    assert_eq!(status, 400);

    // Disconnecting alice closes her WebSocket with 1008 and the reason.
    let (status, body) = http_as(
        addr,
        "POST",
        "/api/server/users/alice/disconnect",
        api.as_deref(),
        Some(json!({"reason":"account suspended"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Ok(Some(_)) = alice.recv().await {}
    })
    .await;
    assert!(closed.is_ok(), "the session was not closed");
    let close = alice.socket().peer_close().cloned().expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("account suspended"), "{}", close.reason);
    let (status, _) = http_as(
        addr,
        "POST",
        "/api/server/users/nobody/disconnect",
        api.as_deref(),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// Deleting a room: its members' sessions get `room_left`, its history and
/// publishing answer 404, and its id is never handed to a new room (the
/// client's resume point for it must not land in a stranger's room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_deletes_a_room_and_its_id_never_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.api_keys = vec![
        ApiKey {
            name: "admin".into(),
            key: KEY.into(),
            scopes: vec![Scope::Publish, Scope::History, Scope::Rooms],
        },
        ApiKey {
            name: "reader".into(),
            key: READER.into(),
            scopes: vec![Scope::History],
        },
    ];
    let server = start(cfg).await;
    let addr = server.addr;
    let api = Some(format!("ApiKey {KEY}"));

    let mut erin = guest(&server, "erin").await;
    let room = common::create_room(&mut erin, "doomed").await;
    let mut frank = guest(&server, "frank").await;
    common::join(&mut frank, room).await;
    erin.post(room, "e1", "soon gone").await.unwrap();

    let path = format!("/api/server/rooms/{room}");
    let (status, _) = http_as(addr, "DELETE", &path, Some(&format!("ApiKey {READER}")), None).await;
    assert_eq!(status, 403, "the reader has no rooms scope");
    let (status, body) = http_as(addr, "DELETE", &path, api.as_deref(), None).await;
    assert_eq!(status, 204, "{body}");
    for (who, client) in [("erin", &mut erin), ("frank", &mut frank)] {
        expect(client, &format!("room_left for {who}"), |m| match m {
            ServerMsg::RoomLeft { room: r } if r == room => Some(()),
            _ => None,
        })
        .await;
    }
    let (status, _) = http_as(addr, "GET", &format!("{path}/messages"), api.as_deref(), None).await;
    assert_eq!(status, 404);
    let (status, _) = http_as(
        addr,
        "POST",
        &format!("{path}/messages"),
        api.as_deref(),
        Some(json!({"id":"late","text":"into nothing"})),
    )
    .await;
    assert_eq!(status, 404);
    match erin.post(room, "e2", "still here?").await {
        Err(volley_client::Error::Refused(r)) => assert_eq!(r.code, volley_chat::ErrorCode::NotFound),
        other => panic!("{other:?}"),
    }
    let (status, _) = http_as(addr, "DELETE", &path, api.as_deref(), None).await;
    assert_eq!(status, 404, "deleting again: no such room");

    // It was the newest room; the next one gets a new id all the same.
    let (status, body) = http_as(
        addr,
        "POST",
        "/api/server/rooms",
        api.as_deref(),
        Some(json!({"name":"next"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["id"].as_i64().unwrap() > room.0, "{body} reuses {room}");
    // A reconnect resuming the deleted room gets nothing from it.
    let resume = std::collections::HashMap::from([(room, volley_chat::Seq(0))]);
    let token = erin.token.clone().unwrap();
    let mut again =
        volley_client::chat::ChatClient::connect(&server.url(), volley_client::chat::Login::Token(token), &resume)
            .await
            .unwrap();
    assert!(again.rooms.iter().all(|r| r.id != room));
    let pong = again.request(json!({"type":"ping"})).await.unwrap();
    assert!(matches!(pong, ServerMsg::Pong { .. }));
    while let Ok(Ok(Some(frame))) = tokio::time::timeout(std::time::Duration::from_millis(300), again.recv()).await {
        assert!(!matches!(&frame, ServerMsg::Message(m) if m.room == room), "{frame:?}");
    }
}
