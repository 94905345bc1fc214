//! The chat over HTTP/3 (RFC 9220) on a real TLS server: the same port
//! number over UDP, announced by Alt-Svc on TCP; WebSockets as request
//! streams of one QUIC connection, pages and the API on the same
//! connection, a WebSocket that goes away without ending the others, and
//! bad requests and bad datagrams answered without harm to anyone else.

mod common;

use std::time::Duration;

use common::{config, next_frame as next, send_frame as send, start};
use http::Method;
use serde_json::json;
use volley_net::{Config, H3Connection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_over_http3_streams_of_one_quic_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.self_signed = true;
    cfg.self_signed_cert_out = dir.path().join("cert.pem");
    let server = start(cfg).await;
    let tls = volley_net::tls::client_config(Some(&dir.path().join("cert.pem"))).unwrap();
    let authority = server.addr.to_string();

    // TCP answers announce HTTP/3 on the same port.
    let h2 = volley_net::H2Connection::connect(&authority, "localhost", tls.clone(), Config::default())
        .await
        .unwrap();
    let page = h2
        .request(
            http::Request::get(format!("https://{authority}/healthz"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let port = server.addr.port();
    assert_eq!(page.headers()["alt-svc"], format!("h3=\":{port}\"; ma=86400").as_str());

    let h3 = H3Connection::connect(&authority, "localhost", tls.clone(), Config::default())
        .await
        .expect("QUIC with ALPN h3");
    let settings = h3.server_settings().await.unwrap();
    assert!(settings.enable_connect_protocol, "SETTINGS_ENABLE_CONNECT_PROTOCOL = 1");
    assert_eq!(settings.qpack_max_table_capacity, 0);

    // Two WebSockets, two streams, one QUIC connection.
    let mut alice = h3.websocket("/ws", &[]).await.expect("extended CONNECT");
    let mut bob = h3.websocket("/ws", &[]).await.expect("a second stream");
    send(&mut alice, json!({"type":"auth","guest":"alice"})).await;
    send(&mut bob, json!({"type":"auth","guest":"bob"})).await;
    next(&mut alice, "ready").await;
    next(&mut bob, "ready").await;
    send(&mut alice, json!({"type":"create_room","name":"over h3"})).await;
    let room = next(&mut alice, "room_joined").await["room"]["id"].clone();
    send(&mut bob, json!({"type":"join","room":room})).await;
    next(&mut bob, "room_joined").await;
    send(
        &mut alice,
        json!({"type":"send","room":room,"id":"a1","text":"hello over h3"}),
    )
    .await;
    assert_eq!(next(&mut bob, "message").await["text"], "hello over h3");
    // A large message crosses several DATA frames and QUIC packets.
    let big = "x".repeat(3_900);
    send(&mut alice, json!({"type":"send","room":room,"id":"a2","text":big})).await;
    assert_eq!(next(&mut bob, "message").await["text"], big.as_str());

    // Pages and the API answer on the same connection.
    let (page, body) = h3.request(Method::GET, "/healthz", &[], &[]).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.version(), http::Version::HTTP_3);
    assert!(!body.is_empty());
    let (rooms, body) = h3.request(Method::GET, "/api/rooms", &[], &[]).await.unwrap();
    assert!(
        rooms.status().is_success() || rooms.status() == 401,
        "{}",
        rooms.status()
    );
    let _ = body;

    // Alice goes away without a close frame: bob, on the same connection, goes on.
    drop(alice);
    send(
        &mut bob,
        json!({"type":"send","room":room,"id":"b1","text":"still here"}),
    )
    .await;
    assert_eq!(next(&mut bob, "ack").await["id"], "b1");

    // Wrong requests: the right status, and the connection lives on.
    let (answer, _) = h3
        .request(Method::CONNECT, "/ws", &[("sec-websocket-version", "13")], &[])
        .await
        .unwrap();
    assert_eq!(answer.status(), 400, "CONNECT without :protocol");
    let (answer, _) = h3.request(Method::GET, "/ws", &[], &[]).await.unwrap();
    assert!(
        answer.status().is_client_error(),
        "GET /ws over HTTP/3: {}",
        answer.status()
    );
    let huge = "y".repeat(64 * 1024 - 200);
    let (answer, _) = h3
        .request(Method::GET, "/healthz", &[("x-huge", &huge)], &[])
        .await
        .unwrap();
    assert_eq!(answer.status(), 431, "a head past max_head_bytes");
    let names: Vec<String> = (0..100).map(|i| format!("x-field-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let (answer, _) = h3.request(Method::GET, "/healthz", &many, &[]).await.unwrap();
    assert_eq!(answer.status(), 431, "more header fields than max_headers");
    let (answer, _) = h3
        .request(Method::GET, "/healthz", &[("host", "elsewhere.example")], &[])
        .await
        .unwrap();
    assert_eq!(answer.status(), 400, "host differs from :authority");

    // Garbage datagrams at the QUIC port harm nobody.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for size in [1usize, 20, 1200, 1500] {
        let junk: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        udp.send_to(&junk, server.addr).await.unwrap();
    }
    send(
        &mut bob,
        json!({"type":"send","room":room,"id":"b2","text":"after garbage"}),
    )
    .await;
    assert_eq!(next(&mut bob, "ack").await["id"], "b2");
    let mut carol = h3
        .websocket("/ws", &[])
        .await
        .expect("the connection still opens streams");
    send(&mut carol, json!({"type":"auth","guest":"carol"})).await;
    next(&mut carol, "ready").await;
    // The WebSockets keep their connection after its handle is dropped.
    drop(h3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(
        &mut bob,
        json!({"type":"send","room":room,"id":"b3","text":"handle dropped"}),
    )
    .await;
    assert_eq!(next(&mut bob, "ack").await["id"], "b3");

    // Shutdown: the WebSockets get 1001, then the server closes the QUIC
    // connection itself (GOAWAY, then H3_NO_ERROR once no stream is left)
    // instead of leaving the client to its idle timeout.
    drop(bob);
    drop(carol);
    let last = H3Connection::connect(&authority, "localhost", tls, Config::default())
        .await
        .unwrap();
    let mut dave = last.websocket("/ws", &[]).await.unwrap();
    send(&mut dave, json!({"type":"auth","guest":"dave"})).await;
    next(&mut dave, "ready").await;
    let stopping = tokio::spawn(server.stop());
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match dave.recv().await {
                Ok(Some(_)) => continue,
                other => break other,
            }
        }
    })
    .await
    .expect("the WebSocket ends at shutdown");
    assert!(matches!(ended, Ok(None)), "a clean close: {ended:?}");
    assert_eq!(
        dave.peer_close().map(|c| c.code),
        Some(volley_net::CloseCode::GOING_AWAY)
    );
    drop(dave);
    let reason = tokio::time::timeout(Duration::from_secs(5), last.closed())
        .await
        .expect("the server closes the QUIC connection, not the idle timeout");
    assert!(
        reason.contains("256") || reason.contains("0x100"),
        "closed with H3_NO_ERROR: {reason}"
    );
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_http3_leaves_udp_closed_and_drops_alt_svc() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.self_signed = true;
    cfg.self_signed_cert_out = dir.path().join("cert.pem");
    cfg.http3 = false;
    let server = start(cfg).await;
    let tls = volley_net::tls::client_config(Some(&dir.path().join("cert.pem"))).unwrap();
    let authority = server.addr.to_string();
    let h2 = volley_net::H2Connection::connect(&authority, "localhost", tls.clone(), Config::default())
        .await
        .unwrap();
    let page = h2
        .request(
            http::Request::get(format!("https://{authority}/healthz"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(!page.headers().contains_key("alt-svc"));
    let attempt = tokio::time::timeout(
        Duration::from_secs(5),
        H3Connection::connect(&authority, "localhost", tls, Config::default()),
    )
    .await;
    assert!(!matches!(attempt, Ok(Ok(_))), "nothing answers QUIC");
    server.stop().await;
}
