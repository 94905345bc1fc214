//! The chat backend end to end: real server, real WebSocket clients.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::json;
use volley_chat::protocol::{ErrorCode, ServerMsg};
use volley_chat::{RoomId, Seq};
use volley_client::chat::{ChatClient, Login};
use volley_net::{CloseCode, Connector};

#[tokio::test]
async fn messages_fan_out_to_every_connection_of_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let mut alice = guest(&server, "alice").await;
    let room = create_room(&mut alice, "general").await;
    let mut bob = guest(&server, "bob").await;
    join(&mut bob, room).await;
    // Alice sees bob join and come online.
    expect(&mut alice, "member event", |m| match m {
        ServerMsg::Members { changes, .. } if changes.iter().any(|c| c.user.name == "bob" && c.joined) => Some(()),
        _ => None,
    })
    .await;
    // A second tab of alice, with the token the guest login returned.
    let token = alice.token.clone().expect("guests get a token");
    let mut alice2 = ChatClient::connect(&server.url(), Login::Token(token), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(alice2.user.id, alice.user.id);
    assert_eq!(alice2.rooms.len(), 1);

    let (seq, duplicate) = alice.post(room, "m1", "hello").await.unwrap();
    assert_eq!((seq, duplicate), (Seq(1), false));
    for (who, client) in [("bob", &mut bob), ("alice2", &mut alice2), ("alice", &mut alice)] {
        let m = expect(client, who, |m| match m {
            ServerMsg::Message(m) => Some(m),
            _ => None,
        })
        .await;
        assert_eq!(
            (m.seq, m.text.as_str(), m.name.as_str()),
            (Seq(1), "hello", "alice"),
            "{who}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_retransmitted_id_never_makes_a_second_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let mut alice = guest(&server, "alice").await;
    let room = create_room(&mut alice, "r").await;
    let mut bob = guest(&server, "bob").await;
    join(&mut bob, room).await;
    assert_eq!(alice.post(room, "same", "once").await.unwrap(), (Seq(1), false));
    assert_eq!(alice.post(room, "same", "once").await.unwrap(), (Seq(1), true));
    // After a reconnect too.
    let token = alice.token.clone().unwrap();
    alice.close().await.unwrap();
    let mut again = ChatClient::connect(&server.url(), Login::Token(token), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(again.post(room, "same", "once").await.unwrap(), (Seq(1), true));
    assert_eq!(again.post(room, "next", "two").await.unwrap(), (Seq(2), false));
    let mut seen = Vec::new();
    while seen.last() != Some(&2) {
        seen.push(
            expect(&mut bob, "message", |m| match m {
                ServerMsg::Message(m) => Some(m.seq.0),
                _ => None,
            })
            .await,
        );
    }
    assert_eq!(seen, vec![1, 2], "bob got each message once");
    let (status, body) = http(
        server.addr,
        "GET",
        &format!("/api/rooms/{room}/messages"),
        bob.token.as_deref(),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    // A resume mark beyond the room's last message (a client bug, or a wiped
    // server) must not hide the messages that come next.
    let bob_token = bob.token.clone().unwrap();
    drop(bob);
    let mut bob = ChatClient::connect(
        &server.url(),
        Login::Token(bob_token),
        &HashMap::from([(room, Seq(999))]),
    )
    .await
    .unwrap();
    let caught_up = expect(&mut bob, "caught_up", |m| match m {
        ServerMsg::CaughtUp { seq, .. } => Some(seq),
        _ => None,
    })
    .await;
    assert_eq!(caught_up, Seq(2));
    assert_eq!(again.post(room, "third", "three").await.unwrap(), (Seq(3), false));
    let seq = expect(&mut bob, "message 3", |m| match m {
        ServerMsg::Message(m) => Some(m.seq),
        _ => None,
    })
    .await;
    assert_eq!(seq, Seq(3));
    server.stop().await;
}

/// A reader drops its connection again and again while a writer sends as
/// fast as it can; on each reconnect it resumes from the last sequence number
/// it saw. Together it must see 1..=N exactly once, in order.
#[tokio::test]
async fn resume_under_concurrent_sends_has_no_gap_and_no_duplicate() {
    const N: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let mut writer = guest(&server, "writer").await;
    let room = create_room(&mut writer, "busy").await;
    let mut reader = guest(&server, "reader").await;
    join(&mut reader, room).await;
    let token = reader.token.clone().unwrap();

    let url = server.url();
    let sending = tokio::spawn(async move {
        for i in 0..N {
            writer
                .post(room, &format!("w{i}"), &format!("message {i}"))
                .await
                .unwrap();
        }
    });

    let mut seen: Vec<u64> = Vec::new();
    let mut reconnects = 0;
    let mut caught_up = 0;
    while seen.last().copied() != Some(N) {
        // Read a random-ish number of frames, then drop the connection.
        let budget = 37 + (reconnects * 53) % 111;
        for _ in 0..budget {
            match tokio::time::timeout(Duration::from_secs(10), reader.recv()).await {
                Ok(Ok(Some(ServerMsg::Message(m)))) => seen.push(m.seq.0),
                Ok(Ok(Some(ServerMsg::CaughtUp { .. }))) => caught_up += 1,
                Ok(Ok(Some(_))) => {}
                other => panic!("reader: {other:?}"),
            }
            if seen.last().copied() == Some(N) {
                break;
            }
        }
        if seen.last().copied() == Some(N) {
            break;
        }
        drop(reader);
        reconnects += 1;
        let resume = HashMap::from([(room, Seq(seen.last().copied().unwrap_or(0)))]);
        reader = ChatClient::connect(&url, Login::Token(token.clone()), &resume)
            .await
            .unwrap();
    }
    sending.await.unwrap();
    let expected: Vec<u64> = (1..=N).collect();
    assert_eq!(seen, expected, "after {reconnects} reconnects");
    assert!(reconnects >= 3, "the test must actually reconnect ({reconnects})");
    assert_eq!(caught_up, reconnects, "one caught_up per resume");
    server.stop().await;
}

#[tokio::test]
async fn messages_and_accounts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let (status, body) = http(
        server.addr,
        "POST",
        "/api/register",
        None,
        Some(json!({ "username": "carol", "password": "correct horse" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let mut carol = ChatClient::connect(&server.url(), Login::Token(token.clone()), &HashMap::new())
        .await
        .unwrap();
    let room = create_room(&mut carol, "durable").await;
    for i in 0..5 {
        carol.post(room, &format!("d{i}"), &format!("kept {i}")).await.unwrap();
    }
    // Graceful stop: carol is told 1001.
    let stopping = tokio::spawn(server.stop());
    let closed = expect_close(&mut carol).await;
    assert_eq!(closed, Some(CloseCode::GOING_AWAY.0));
    stopping.await.unwrap();

    let mut cfg = config(dir.path());
    cfg.addr = "127.0.0.1:0".parse().unwrap();
    let server = start(cfg).await;
    // The same token works (the secret is in the data directory) and resume replays.
    let mut carol = ChatClient::connect(&server.url(), Login::Token(token), &HashMap::from([(room, Seq(2))]))
        .await
        .unwrap();
    assert_eq!(carol.rooms[0].last_seq, Seq(5));
    let mut replayed = Vec::new();
    loop {
        match expect(&mut carol, "replay", Some).await {
            ServerMsg::Message(m) => replayed.push(m.text),
            ServerMsg::CaughtUp { seq, .. } => {
                assert_eq!(seq, Seq(5));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(replayed, vec!["kept 2", "kept 3", "kept 4"]);
    let (status, body) = http(
        server.addr,
        "POST",
        "/api/login",
        None,
        Some(json!({ "username": "carol", "password": "correct horse" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

/// Reads until the server closes; returns the close code.
async fn expect_close(client: &mut ChatClient) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), client.recv()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return client.socket().peer_close().map(|c| c.code.0),
            Ok(Err(e)) => panic!("expected a clean close, got {e}"),
            Err(_) => panic!("no close within 15 s"),
        }
    }
}

#[tokio::test]
async fn presence_typing_and_receipts_reach_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let mut alice = guest(&server, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut bob = guest(&server, "bob").await;
    join(&mut bob, room).await;
    let bob_id = bob.user.id;
    expect(&mut alice, "bob online", |m| match m {
        ServerMsg::Presence { changes, .. } if changes.iter().any(|c| c.user == bob_id && c.online) => Some(()),
        _ => None,
    })
    .await;

    // Typing goes out once per interval however often it is sent.
    for _ in 0..5 {
        bob.send_json(&json!({ "type": "typing", "room": room })).await.unwrap();
    }
    let ttl = expect(&mut alice, "typing", |m| match m {
        ServerMsg::Typing { user, ttl_ms, .. } if user == bob_id => Some(ttl_ms),
        _ => None,
    })
    .await;
    assert_eq!(ttl, 5_000);

    alice.post(room, "a", "read me").await.unwrap();
    bob.send_json(&json!({ "type": "read", "room": room, "seq": 1 }))
        .await
        .unwrap();
    let seq = expect(&mut alice, "receipt", |m| match m {
        ServerMsg::Receipt { user, seq, .. } if user == bob_id => Some(seq),
        _ => None,
    })
    .await;
    assert_eq!(seq, Seq(1));

    // A receipt beyond the room's last message is clamped.
    bob.send_json(&json!({ "type": "read", "room": room, "seq": 99 }))
        .await
        .unwrap();
    let seq = expect(&mut alice, "receipt", |m| match m {
        ServerMsg::Receipt { user, seq, .. } if user == bob_id => Some(seq),
        _ => None,
    })
    .await;
    assert_eq!(seq, Seq(1));

    // No more typing events arrived in between: count them now.
    bob.close().await.unwrap();
    let offline = expect(&mut alice, "bob offline", |m| match m {
        ServerMsg::Typing { user, .. } if user == bob_id => Some(false),
        ServerMsg::Presence { changes, .. } if changes.iter().any(|c| c.user == bob_id && !c.online) => Some(true),
        _ => None,
    })
    .await;
    assert!(offline, "exactly one typing event for five typing frames");

    // Unread counts on connect: a second message, then alice's read state.
    alice.post(room, "b", "unread").await.unwrap();
    let (_, body) = http(
        server.addr,
        "GET",
        &format!("/api/rooms/{room}/members"),
        alice.token.as_deref(),
        None,
    )
    .await;
    let members = body["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let token = alice.token.clone().unwrap();
    let again = ChatClient::connect(&server.url(), Login::Token(token), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(again.rooms[0].unread, Some(2), "alice read nothing yet");
    assert_eq!(again.rooms[0].online.as_deref(), Some(&[alice.user.id][..]));
    server.stop().await;
}

/// Past `presence_list_max` users online, rooms carry a count and no list
/// (in `ready` and in `presence` frames); the list comes a page at a time.
#[tokio::test]
async fn big_rooms_get_a_count_and_pages_instead_of_lists() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.presence_list_max = 2;
    let server = start(cfg).await;
    let mut owner = guest(&server, "owner").await;
    let room = create_room(&mut owner, "big").await;
    let mut others = Vec::new();
    for name in ["u1", "u2", "u3"] {
        let mut c = guest(&server, name).await;
        join(&mut c, room).await;
        others.push(c);
    }
    // Owner sees a count-only presence frame once the room is past the list size.
    let count = expect(&mut owner, "a count-only presence frame", |m| match m {
        ServerMsg::Presence { changes, online, .. } if changes.is_empty() => Some(online),
        _ => None,
    })
    .await;
    assert!(count > 2, "{count}");
    let token = others[0].token.clone().unwrap();
    let again = ChatClient::connect(&server.url(), Login::Token(token.clone()), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(again.rooms[0].online, None, "no list past presence_list_max");
    assert_eq!(again.rooms[0].online_count, Some(4));
    // Pages of two, in id order, cover everyone once.
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let (status, body) = http(
            server.addr,
            "GET",
            &format!("/api/rooms/{room}/online?limit=2{after}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["count"], 4);
        all.extend(body["online"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()));
        match body["next"].as_i64() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    let mut expected: Vec<i64> = others.iter().map(|c| c.user.id.0).collect();
    expected.push(owner.user.id.0);
    expected.sort_unstable();
    assert_eq!(all, expected);
    // Not a member: the same answer as for a room that does not exist.
    let outsider = guest(&server, "outsider").await;
    let (status, _) = http(
        server.addr,
        "GET",
        &format!("/api/rooms/{room}/online"),
        outsider.token.as_deref(),
        None,
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_connection_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_text_bytes = 100;
    let server = start(cfg).await;
    let mut alice = guest(&server, "alice").await;
    let room = create_room(&mut alice, "r").await;

    async fn error_of(client: &mut ChatClient, raw: &str) -> ErrorCode {
        client
            .socket()
            .send(volley_net::Message::Text(raw.to_owned().into()))
            .await
            .unwrap();
        expect(client, raw, |m| match m {
            ServerMsg::Error { code, .. } => Some(code),
            _ => None,
        })
        .await
    }
    assert_eq!(error_of(&mut alice, "not json").await, ErrorCode::BadJson);
    assert_eq!(
        error_of(&mut alice, r#"{"type":"dance"}"#).await,
        ErrorCode::UnknownType
    );
    assert_eq!(
        error_of(&mut alice, r#"{"type":"send","room":1}"#).await,
        ErrorCode::BadRequest
    );
    let long = "x".repeat(101);
    let oversize = json!({"type":"send","room":room,"id":"big","text":long}).to_string();
    assert_eq!(error_of(&mut alice, &oversize).await, ErrorCode::TooLarge);
    let wrong = json!({"type":"send","room":room.0 + 1000,"id":"w","text":"hi"}).to_string();
    assert_eq!(error_of(&mut alice, &wrong).await, ErrorCode::NotFound);
    let history = json!({"type":"history","room":room.0 + 1000}).to_string();
    assert_eq!(error_of(&mut alice, &history).await, ErrorCode::NotFound);
    assert_eq!(
        error_of(&mut alice, r#"{"type":"auth","token":"x"}"#).await,
        ErrorCode::BadRequest
    );
    // Binary frames are not part of the protocol, but do not end the connection.
    alice
        .socket()
        .send(volley_net::Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    expect(&mut alice, "binary error", |m| match m {
        ServerMsg::Error {
            code: ErrorCode::BadRequest,
            ..
        } => Some(()),
        _ => None,
    })
    .await;
    // Still usable.
    assert!(matches!(
        alice.request(json!({ "type": "ping" })).await.unwrap(),
        ServerMsg::Pong { .. }
    ));
    assert_eq!(alice.post(room, "ok", "fine").await.unwrap(), (Seq(1), false));
    // A frame beyond the transport limit ends the connection with 1009.
    let huge = "y".repeat(70 * 1024);
    alice
        .socket()
        .send(volley_net::Message::Text(huge.into()))
        .await
        .unwrap();
    let code = loop {
        match alice.socket().recv().await {
            Ok(Some(_)) => continue,
            _ => break alice.socket().peer_close().map(|c| c.code.0),
        }
    };
    assert_eq!(code, Some(1009));
    // The server keeps serving others.
    let mut bob = guest(&server, "bob").await;
    join(&mut bob, room).await;
    assert_eq!(bob.post(room, "b", "still here").await.unwrap(), (Seq(2), false));
    server.stop().await;
}

#[tokio::test]
async fn rate_and_connection_limits_answer_with_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.messages_per_sec = 2.0;
    cfg.message_burst = 3.0;
    cfg.max_connections_per_user = 2;
    cfg.max_connections_per_ip = 4;
    cfg.account_attempts_per_sec = 1.0;
    let server = start(cfg).await;
    // Account attempts per address: a burst of 4, then 429 with a retry hint.
    let wrong = json!({ "username": "nobody", "password": "guessing123" });
    for _ in 0..4 {
        assert_eq!(
            http(server.addr, "POST", "/api/login", None, Some(wrong.clone()))
                .await
                .0,
            401
        );
    }
    let (status, body) = http(server.addr, "POST", "/api/login", None, Some(wrong)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["retry_after_ms"].as_u64().unwrap() > 0);
    // Three guests below need three tokens back.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let mut alice = guest(&server, "alice").await;
    let room = create_room(&mut alice, "r").await;
    for i in 0..3 {
        alice.post(room, &format!("b{i}"), "burst").await.unwrap();
    }
    match alice.post(room, "b3", "one too many").await {
        Err(volley_client::Error::Refused(volley_client::Refused {
            code: ErrorCode::RateLimited,
            ..
        })) => {}
        other => panic!("expected rate_limited, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(alice.post(room, "b3", "after waiting").await.unwrap(), (Seq(4), false));
    // Other requests that touch the store have their own bucket (burst 40).
    let mut limited = 0;
    for _ in 0..45 {
        match alice
            .request(json!({ "type": "history", "room": room, "limit": 1 }))
            .await
        {
            Ok(_) => {}
            Err(volley_client::Error::Refused(volley_client::Refused {
                code: ErrorCode::RateLimited,
                ..
            })) => limited += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        limited >= 4,
        "history requests beyond the burst are refused ({limited})"
    );

    // Per user: the third connection is refused with an error and 1008.
    let token = alice.token.clone().unwrap();
    let _second = ChatClient::connect(&server.url(), Login::Token(token.clone()), &HashMap::new())
        .await
        .unwrap();
    match ChatClient::connect(&server.url(), Login::Token(token.clone()), &HashMap::new()).await {
        Err(volley_client::Error::Refused(volley_client::Refused {
            code: ErrorCode::TooManyConnections,
            ..
        })) => {}
        other => panic!("expected too_many_connections, got {other:?}"),
    }
    // Per IP: 4 sockets are open or closing; the handshake is refused with 429.
    let _third = guest(&server, "bob").await;
    let _fourth = guest(&server, "carol").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    match volley_net::connect(&server.url()).await {
        Err(volley_net::Error::Handshake(e)) => assert!(e.to_string().contains("429"), "{e}"),
        other => panic!("expected a 429 handshake refusal, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_1013_and_resumes_without_loss() {
    const N: u64 = 400;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.outbound_queue = 16;
    cfg.max_text_bytes = 60_000;
    let server = start(cfg).await;
    let mut writer = guest(&server, "writer").await;
    let room = create_room(&mut writer, "firehose").await;
    let mut fast = guest(&server, "fast").await;
    join(&mut fast, room).await;
    let mut slow = guest(&server, "slow").await;
    join(&mut slow, room).await;
    let slow_token = slow.token.clone().unwrap();

    // 400 messages of 60 kB: 24 MB, far more than the loopback socket buffers
    // and the server's per-connection write buffer hold for a reader that stops.
    let text = "z".repeat(60_000 - 100);
    let fast_reader = tokio::spawn(async move {
        let mut last = 0;
        while last < N {
            last = expect(&mut fast, "fast message", |m| match m {
                ServerMsg::Message(m) => Some(m.seq.0),
                _ => None,
            })
            .await;
        }
        last
    });
    let writing = tokio::spawn(async move {
        for i in 0..N {
            writer.post(room, &format!("s{i}"), &text).await.unwrap();
        }
    });
    // The slow client reads nothing until the server has given up on it
    // (the kick shows on /metrics); then the close frame is right behind
    // what the socket buffers hold.
    let addr = server.addr;
    let kicked = async move {
        loop {
            let text = http(addr, "GET", "/metrics", None, None).await.1;
            let count = text
                .as_str()
                .unwrap_or_default()
                .lines()
                .find(|l| l.starts_with("volley_slow_consumers_total"))
                .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .unwrap_or(0.0);
            if count >= 1.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), kicked)
        .await
        .expect("the slow consumer is kicked");
    // Now the slow one reads: what it has, then the 1013 close.
    let mut seen = Vec::new();
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(15), slow.recv()).await {
            Ok(Ok(Some(ServerMsg::Message(m)))) => seen.push(m.seq.0),
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => break slow.socket().peer_close().map(|c| c.code.0),
            other => panic!("slow reader: {other:?}"),
        }
    };
    assert_eq!(code, Some(CloseCode::TRY_AGAIN_LATER.0));
    assert!(
        (seen.len() as u64) < N,
        "it was cut off early ({} messages)",
        seen.len()
    );
    let last = seen.last().copied().unwrap_or(0);
    let mut slow = ChatClient::connect(
        &server.url(),
        Login::Token(slow_token),
        &HashMap::from([(room, Seq(last))]),
    )
    .await
    .unwrap();
    // Replay, caught_up, then live messages while the writer goes on.
    while seen.last().copied() != Some(N) {
        if let ServerMsg::Message(m) = expect(&mut slow, "replay and live", Some).await {
            seen.push(m.seq.0);
        }
    }
    assert_eq!(seen, (1..=N).collect::<Vec<_>>());
    writing.await.unwrap();
    assert_eq!(
        fast_reader.await.unwrap(),
        N,
        "the fast reader got everything, unslowed"
    );
    server.stop().await;
}

#[tokio::test]
async fn unauthenticated_and_cross_site_connections_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.allowed_origins = vec!["https://app.example".into()];
    cfg.auth_timeout_ms = 300;
    let server = start(cfg).await;
    // Cross-site WebSocket hijacking: a foreign Origin gets 403.
    let evil = Connector::default().header("Origin", "https://evil.example");
    match evil.connect(&server.url()).await {
        Err(volley_net::Error::Handshake(e)) => assert!(e.to_string().contains("403"), "{e}"),
        other => panic!("expected 403, got {other:?}"),
    }
    let same = Connector::default().header("Origin", format!("http://{}", server.addr));
    let listed = Connector::default().header("Origin", "https://app.example");
    for connector in [same, listed] {
        ChatClient::connect_with(&connector, &server.url(), Login::Guest("ok".into()), &HashMap::new())
            .await
            .expect("allowed origin");
    }
    // A bad token: error, then 1008.
    match ChatClient::connect(&server.url(), Login::Token("not-a-token".into()), &HashMap::new()).await {
        Err(volley_client::Error::Refused(volley_client::Refused {
            code: ErrorCode::AuthFailed,
            ..
        })) => {}
        other => panic!("expected auth_failed, got {other:?}"),
    }
    // Room traffic before auth is refused.
    let mut ws = volley_net::connect(&server.url()).await.unwrap();
    ws.send(volley_net::Message::Text(
        r#"{"type":"send","room":1,"id":"x","text":"hi"}"#.into(),
    ))
    .await
    .unwrap();
    let first = ws.recv().await.unwrap().unwrap();
    assert!(first.as_bytes().starts_with(br#"{"type":"error""#));
    assert!(String::from_utf8_lossy(first.as_bytes()).contains("auth_required"));
    while ws.recv().await.unwrap().is_some() {}
    assert_eq!(ws.peer_close().map(|c| c.code), Some(CloseCode::POLICY_VIOLATION));
    // Silence: closed after the auth timeout.
    let mut ws = volley_net::connect(&server.url()).await.unwrap();
    let started = std::time::Instant::now();
    while let Ok(Some(_)) = ws.recv().await {}
    assert_eq!(ws.peer_close().map(|c| c.code), Some(CloseCode::POLICY_VIOLATION));
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop().await;
}

#[tokio::test]
async fn tokens_from_another_application_are_accepted() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // HS256 with a shared secret.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.guests = false;
    cfg.jwt.algorithm = Some(volley_chat::JwtAlgorithm::HS256);
    cfg.jwt.secret = Some("shared-secret-of-the-other-app".into());
    cfg.jwt.issuer = Some("other-app".into());
    let server = start(cfg).await;
    let claims = json!({ "sub": "dana", "exp": now + 60, "iss": "other-app" });
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"shared-secret-of-the-other-app"),
    )
    .unwrap();
    let dana = ChatClient::connect(&server.url(), Login::Token(token), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(dana.user.name, "dana");
    drop(dana);
    let wrong_issuer = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": "eve", "exp": now + 60, "iss": "someone" }),
        &EncodingKey::from_secret(b"shared-secret-of-the-other-app"),
    )
    .unwrap();
    assert!(
        ChatClient::connect(&server.url(), Login::Token(wrong_issuer), &HashMap::new())
            .await
            .is_err()
    );
    let expired = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": "dana", "exp": now - 3600, "iss": "other-app" }),
        &EncodingKey::from_secret(b"shared-secret-of-the-other-app"),
    )
    .unwrap();
    assert!(
        ChatClient::connect(&server.url(), Login::Token(expired), &HashMap::new())
            .await
            .is_err()
    );
    // Guests are off here.
    match ChatClient::connect(&server.url(), Login::Guest("g".into()), &HashMap::new()).await {
        Err(volley_client::Error::Refused(volley_client::Refused {
            code: ErrorCode::GuestsDisabled,
            ..
        })) => {}
        other => panic!("expected guests_disabled, got {other:?}"),
    }
    server.stop().await;

    // ES256 with a public key file.
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public = dir.path().join("issuer.pem");
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let mut cfg = config(dir.path());
    cfg.jwt.algorithm = Some(volley_chat::JwtAlgorithm::ES256);
    cfg.jwt.public_key_file = Some(public);
    let server = start(cfg).await;
    let token = encode(
        &Header::new(Algorithm::ES256),
        &json!({ "sub": "erin", "exp": now + 60 }),
        &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let erin = ChatClient::connect(&server.url(), Login::Token(token), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(erin.user.name, "erin");
    drop(erin);
    server.stop().await;

    // RS256 with a public key file (a test-only key pair in tests/fixtures).
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.jwt.algorithm = Some(volley_chat::JwtAlgorithm::RS256);
    cfg.jwt.public_key_file = Some(fixtures.join("rs256-test-public.pem"));
    cfg.jwt.audience = Some("chat".into());
    let server = start(cfg).await;
    let private = std::fs::read(fixtures.join("rs256-test-private.pem")).unwrap();
    let sign = |claims: serde_json::Value| {
        encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(&private).unwrap(),
        )
        .unwrap()
    };
    let token = sign(json!({ "sub": "rita", "exp": now + 60, "aud": "chat" }));
    let rita = ChatClient::connect(&server.url(), Login::Token(token), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(rita.user.name, "rita");
    drop(rita);
    let wrong_audience = sign(json!({ "sub": "rita", "exp": now + 60, "aud": "billing" }));
    assert!(
        ChatClient::connect(&server.url(), Login::Token(wrong_audience), &HashMap::new())
            .await
            .is_err()
    );
    // An HS256 token cannot pass for RS256 (algorithm confusion).
    let hs = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": "mallory", "exp": now + 60, "aud": "chat" }),
        &EncodingKey::from_secret(&std::fs::read(fixtures.join("rs256-test-public.pem")).unwrap()),
    )
    .unwrap();
    assert!(ChatClient::connect(&server.url(), Login::Token(hs), &HashMap::new())
        .await
        .is_err());
    server.stop().await;
}

#[tokio::test]
async fn the_http_api_manages_accounts_and_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let addr = server.addr;
    let creds = |u: &str| json!({ "username": u, "password": "long enough" });
    let (s, alice) = http(addr, "POST", "/api/register", None, Some(creds("alice"))).await;
    assert_eq!(s, 201);
    let (s, _) = http(addr, "POST", "/api/register", None, Some(creds("alice"))).await;
    assert_eq!(s, 409, "name taken");
    let (s, _) = http(
        addr,
        "POST",
        "/api/register",
        None,
        Some(json!({"username":"x y","password":"long enough"})),
    )
    .await;
    assert_eq!(s, 400, "invalid name");
    let (s, _) = http(
        addr,
        "POST",
        "/api/login",
        None,
        Some(json!({"username":"alice","password":"wrong!!!"})),
    )
    .await;
    assert_eq!(s, 401);
    let (_, bob) = http(addr, "POST", "/api/register", None, Some(creds("bob"))).await;
    let (_, carol) = http(addr, "POST", "/api/register", None, Some(creds("carol"))).await;
    let a = alice["token"].as_str().unwrap();
    let b = bob["token"].as_str().unwrap();
    let c = carol["token"].as_str().unwrap();
    let (s, _) = http(addr, "GET", "/api/me", None, None).await;
    assert_eq!(s, 401);

    // Bob is connected while things happen to him.
    let mut bob_ws = ChatClient::connect(&server.url(), Login::Token(b.into()), &HashMap::new())
        .await
        .unwrap();

    let (s, secret) = http(
        addr,
        "POST",
        "/api/rooms",
        Some(a),
        Some(json!({"name":"secret","private":true})),
    )
    .await;
    assert_eq!(s, 201);
    let secret = RoomId(secret["id"].as_i64().unwrap());
    let (_, public) = http(addr, "POST", "/api/rooms", Some(a), Some(json!({"name":"town square"}))).await;
    let public = RoomId(public["id"].as_i64().unwrap());
    let (_, found) = http(addr, "GET", "/api/rooms?q=town", Some(c), None).await;
    assert_eq!(found["rooms"].as_array().unwrap().len(), 1);
    let (_, found) = http(addr, "GET", "/api/rooms?q=secret", Some(c), None).await;
    assert_eq!(
        found["rooms"].as_array().unwrap().len(),
        0,
        "private rooms are not listed"
    );
    let (s, _) = http(addr, "POST", &format!("/api/rooms/{secret}/join"), Some(c), None).await;
    assert_eq!(s, 404, "private rooms cannot be joined uninvited");
    // To an outsider, a private room answers every request exactly as a
    // room that does not exist: no status or text tells them apart.
    let missing = RoomId(secret.0 + 1000);
    for (method, path, body) in [
        ("POST", "/api/rooms/{}/members", Some(json!({"user":"carol"}))),
        ("DELETE", "/api/rooms/{}/members/alice", None),
        ("POST", "/api/rooms/{}/join", None),
        ("POST", "/api/rooms/{}/leave", None),
        ("GET", "/api/rooms/{}/members", None),
        ("GET", "/api/rooms/{}/online", None),
        ("GET", "/api/rooms/{}/messages", None),
    ] {
        let hidden = http(
            addr,
            method,
            &path.replace("{}", &secret.to_string()),
            Some(c),
            body.clone(),
        )
        .await;
        let absent = http(addr, method, &path.replace("{}", &missing.to_string()), Some(c), body).await;
        let unify = |v: &serde_json::Value, id: RoomId| v.to_string().replace(&id.to_string(), "ID");
        assert_eq!(
            (hidden.0, unify(&hidden.1, secret)),
            (absent.0, unify(&absent.1, missing)),
            "{method} {path}: a private room must look like no room"
        );
        assert_eq!(hidden.0, 404, "{method} {path}");
    }
    let (s, _) = http(
        addr,
        "POST",
        &format!("/api/rooms/{secret}/members"),
        Some(a),
        Some(json!({"user":"bob"})),
    )
    .await;
    assert_eq!(s, 200);
    expect(&mut bob_ws, "invited", |m| match m {
        ServerMsg::RoomJoined { room } if room.id == secret => Some(()),
        _ => None,
    })
    .await;
    let (s, _) = http(
        addr,
        "DELETE",
        &format!("/api/rooms/{secret}/members/bob"),
        Some(a),
        None,
    )
    .await;
    assert_eq!(s, 204);
    expect(&mut bob_ws, "removed", |m| match m {
        ServerMsg::RoomLeft { room } if room == secret => Some(()),
        _ => None,
    })
    .await;
    // Removed members cannot post there any more.
    match bob_ws.post(secret, "x", "let me in").await {
        Err(volley_client::Error::Refused(volley_client::Refused {
            code: ErrorCode::NotFound,
            ..
        })) => {}
        other => panic!("expected not_found, got {other:?}"),
    }
    let (s, _) = http(addr, "POST", &format!("/api/rooms/{public}/join"), Some(c), None).await;
    assert_eq!(s, 200);
    // Direct messages.
    let (s, dm) = http(addr, "POST", "/api/direct", Some(a), Some(json!({"user":"bob"}))).await;
    assert_eq!(s, 200);
    let dm = RoomId(dm["id"].as_i64().unwrap());
    let (_, again) = http(addr, "POST", "/api/direct", Some(b), Some(json!({"user":"alice"}))).await;
    assert_eq!(RoomId(again["id"].as_i64().unwrap()), dm, "one direct room per pair");
    expect(&mut bob_ws, "direct room", |m| match m {
        ServerMsg::RoomJoined { room } if room.id == dm => Some(()),
        _ => None,
    })
    .await;
    for i in 0..7 {
        bob_ws.post(dm, &format!("dm{i}"), &format!("dm {i}")).await.unwrap();
    }
    // Paginated history.
    let (_, page) = http(addr, "GET", &format!("/api/rooms/{dm}/messages?limit=3"), Some(a), None).await;
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![5, 6, 7]);
    assert_eq!(page["more"], json!(true));
    let (_, page) = http(
        addr,
        "GET",
        &format!("/api/rooms/{dm}/messages?limit=5&before=5"),
        Some(a),
        None,
    )
    .await;
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(page["more"], json!(false));
    let (s, _) = http(addr, "GET", &format!("/api/rooms/{dm}/messages"), Some(c), None).await;
    assert_eq!(s, 404, "outsiders cannot read a direct room");
    for path in ["/healthz", "/readyz"] {
        assert_eq!(http(addr, "GET", path, None, None).await.0, 200, "{path}");
    }
    let (s, page) = http(addr, "GET", "/", None, None).await;
    assert_eq!(s, 200);
    assert!(
        page.as_str().unwrap_or_default().contains("<script"),
        "the web client is served"
    );
    server.stop().await;
}
