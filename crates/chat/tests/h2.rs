//! The chat over HTTP/2 (RFC 8441) on a real TLS server: WebSockets as
//! streams of one connection, pages and the API on the same connection, a
//! stream reset that ends only its own WebSocket, and extended CONNECTs that
//! are wrong answered with the right status.

mod common;

use axum::body::Body;
use common::{config, next_frame as next, send_frame as send, start};
use serde_json::json;
use volley_net::{Config, H2Connection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_over_http2_streams_of_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.self_signed = true;
    cfg.self_signed_cert_out = dir.path().join("cert.pem");
    let server = start(cfg).await;
    let tls = volley_net::tls::client_config(Some(&dir.path().join("cert.pem"))).unwrap();
    let authority = server.addr.to_string();
    let h2 = H2Connection::connect(&authority, "localhost", tls, Config::default())
        .await
        .expect("TLS with ALPN h2");

    // Two WebSockets, two streams, one TCP connection.
    let mut alice = h2.websocket("/ws", &[]).await.expect("extended CONNECT");
    let mut bob = h2.websocket("/ws", &[]).await.expect("a second stream");
    send(&mut alice, json!({"type":"auth","guest":"alice"})).await;
    send(&mut bob, json!({"type":"auth","guest":"bob"})).await;
    next(&mut alice, "ready").await;
    next(&mut bob, "ready").await;
    send(&mut alice, json!({"type":"create_room","name":"over h2"})).await;
    let room = next(&mut alice, "room_joined").await["room"]["id"].clone();
    send(&mut bob, json!({"type":"join","room":room})).await;
    next(&mut bob, "room_joined").await;
    send(
        &mut alice,
        json!({"type":"send","room":room,"id":"a1","text":"hello over h2"}),
    )
    .await;
    let got = next(&mut bob, "message").await;
    assert_eq!(got["text"], "hello over h2");

    // Pages and the API answer on the same connection.
    let page = h2
        .request(
            http::Request::get(format!("https://{authority}/healthz"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.version(), http::Version::HTTP_2);

    // Alice's stream is reset (the WebSocket dropped without a close): bob's
    // stream on the same connection keeps working.
    drop(alice);
    send(
        &mut bob,
        json!({"type":"send","room":room,"id":"b1","text":"still here"}),
    )
    .await;
    let ack = next(&mut bob, "ack").await;
    assert_eq!(ack["id"], "b1");
    let echo = next(&mut bob, "message").await;
    assert_eq!(echo["text"], "still here");

    // Wrong extended CONNECTs: the right status, and the connection lives on.
    let plain_connect = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("https://{authority}/ws"))
        .header("sec-websocket-version", "13")
        .body(Body::empty())
        .unwrap();
    let answer = h2.request(plain_connect).await.unwrap();
    assert_eq!(answer.status(), 400, "CONNECT without :protocol");
    let other_protocol = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("https://{authority}/ws"))
        .extension(hyper::ext::Protocol::from_static("chat"))
        .header("sec-websocket-version", "13")
        .body(Body::empty())
        .unwrap();
    assert_eq!(h2.request(other_protocol).await.unwrap().status(), 400);
    let no_version = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("https://{authority}/ws"))
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .body(Body::empty())
        .unwrap();
    let refused = h2.request(no_version).await.unwrap();
    assert_eq!(refused.status(), 426);
    assert_eq!(refused.headers()["sec-websocket-version"], "13");
    let mut carol = h2
        .websocket("/ws", &[])
        .await
        .expect("the connection still opens streams");
    send(&mut carol, json!({"type":"auth","guest":"carol"})).await;
    next(&mut carol, "ready").await;
    server.stop().await;
}
