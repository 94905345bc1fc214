//! The one upgrade path for HTTP services: `WebSocketUpgrade` in an axum
//! router, over real sockets. Refusals carry their status before the
//! handler runs; an accepted upgrade hands the socket to the session.

use std::net::SocketAddr;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use volley_net::{Acceptor, CloseCode, Message, WebSocketUpgrade};

async fn echo(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut ws| async move {
        while let Ok(Some(m)) = ws.recv().await {
            if ws.send(m).await.is_err() {
                return;
            }
        }
    })
}

async fn protocol(State(_): State<Acceptor>, upgrade: WebSocketUpgrade) -> Response {
    let chosen = upgrade.protocol().unwrap_or("none").to_owned();
    upgrade.on_upgrade(move |mut ws| async move {
        let _ = ws.send(chosen).await;
        let _ = ws.close(CloseCode::NORMAL, "").await;
    })
}

async fn serve(acceptor: Acceptor) -> SocketAddr {
    let app = Router::new()
        .route("/ws", get(echo))
        .route("/protocol", get(protocol))
        .with_state(acceptor);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Send a raw request head and read the whole answer.
async fn raw(addr: SocketAddr, head: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = vec![0u8; 4096];
    let n = s.read(&mut out).await.unwrap();
    String::from_utf8_lossy(&out[..n]).into_owned()
}

fn upgrade_head(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn an_accepted_upgrade_reaches_the_session() {
    let addr = serve(Acceptor::default()).await;
    let mut ws = volley_net::connect(&format!("ws://{addr}/ws")).await.unwrap();
    ws.send("through axum").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::from("through axum")));
}

#[tokio::test]
async fn the_acceptor_settles_the_subprotocol() {
    let addr = serve(Acceptor::default().protocols(["v2", "v1"])).await;
    let answer = raw(
        addr,
        &upgrade_head("Sec-WebSocket-Protocol: v0, v1\r\n").replace("/ws", "/protocol"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("sec-websocket-protocol: v1"),
        "{answer}"
    );
}

#[tokio::test]
async fn refusals_carry_their_status_before_the_handler_runs() {
    let (closing_tx, closing) = watch::channel(false);
    let acceptor = Acceptor::default()
        .allow_origins(["https://good.example"])
        .closing(closing);
    let addr = serve(acceptor).await;

    let plain = raw(addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");

    let version = raw(addr, &upgrade_head("").replace("Version: 13", "Version: 8")).await;
    assert!(version.starts_with("HTTP/1.1 426"), "{version}");
    assert!(
        version.to_ascii_lowercase().contains("sec-websocket-version: 13"),
        "{version}"
    );

    let foreign = raw(addr, &upgrade_head("Origin: https://evil.example\r\n")).await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    assert!(
        foreign.contains("evil.example"),
        "the reason names the origin: {foreign}"
    );

    // The origin is judged first: a foreign page learns nothing else.
    let foreign_and_bad = raw(
        addr,
        &upgrade_head("Origin: https://evil.example\r\n").replace("Version: 13", "Version: 8"),
    )
    .await;
    assert!(foreign_and_bad.starts_with("HTTP/1.1 403"), "{foreign_and_bad}");

    let listed = raw(addr, &upgrade_head("Origin: https://good.example\r\n")).await;
    assert!(listed.starts_with("HTTP/1.1 101"), "{listed}");
    let same = raw(addr, &upgrade_head("Origin: http://127.0.0.1\r\n")).await;
    assert!(same.starts_with("HTTP/1.1 101"), "same origin is allowed: {same}");

    closing_tx.send(true).unwrap();
    let late = raw(addr, &upgrade_head("")).await;
    assert!(late.starts_with("HTTP/1.1 503"), "{late}");
}
