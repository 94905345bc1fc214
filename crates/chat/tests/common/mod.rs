//! Real servers on free ports with temporary data directories, and helpers
//! that speak to them over real sockets.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use volley_chat::protocol::ServerMsg;
use volley_chat::{ChatConfig, RoomId, Server};
use volley_client::chat::{ChatClient, Login};

pub(crate) struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub(crate) fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stop like SIGTERM does, and wait for the server to finish.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server stops within 20 s")
                .expect("server task");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A config for tests: a free port, the given data directory, generous rates.
pub(crate) fn config(dir: &Path) -> ChatConfig {
    ChatConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        messages_per_sec: 10_000.0,
        message_burst: 10_000.0,
        account_attempts_per_sec: 0.0,
        shutdown_grace_ms: 5_000,
        ..ChatConfig::default()
    }
}

pub(crate) async fn start(config: ChatConfig) -> Running {
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async move {
                let _ = rx.await;
            })
            .await
            .expect("server run");
    });
    Running {
        addr,
        stop: Some(tx),
        task: Some(task),
    }
}

pub(crate) async fn guest(server: &Running, name: &str) -> ChatClient {
    ChatClient::connect(&server.url(), Login::Guest(name.into()), &HashMap::new())
        .await
        .expect("guest connects")
}

/// The next frame that `pick` accepts, skipping others; panics after 10 s.
pub(crate) async fn expect<T>(client: &mut ChatClient, what: &str, mut pick: impl FnMut(ServerMsg) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, client.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("recv")
            .unwrap_or_else(|| panic!("closed while waiting for {what}"));
        if let Some(found) = pick(frame) {
            return found;
        }
    }
}

/// Create a public room over the WebSocket and return its id.
pub(crate) async fn create_room(client: &mut ChatClient, name: &str) -> RoomId {
    client
        .send_json(&serde_json::json!({ "type": "create_room", "name": name }))
        .await
        .unwrap();
    expect(client, "room_joined", |m| match m {
        ServerMsg::RoomJoined { room } if room.name == name => Some(room.id),
        _ => None,
    })
    .await
}

pub(crate) async fn join(client: &mut ChatClient, room: RoomId) {
    client
        .send_json(&serde_json::json!({ "type": "join", "room": room }))
        .await
        .unwrap();
    expect(client, "room_joined", |m| match m {
        ServerMsg::RoomJoined { room: r } if r.id == room => Some(()),
        _ => None,
    })
    .await
}

/// One HTTP/1.1 request with hyper's client; returns status and JSON body (Null when empty).
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    http_as(
        addr,
        method,
        path,
        token.map(|t| format!("Bearer {t}")).as_deref(),
        body,
    )
    .await
}

/// [`http`] with a whole `Authorization` value (`ApiKey KEY`, say).
pub(crate) async fn http_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(Body::new(resp.into_body()), 1 << 20)
        .await
        .unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

/// A WebSocket over an HTTP/2 or HTTP/3 stream.
pub(crate) type StreamWs = volley_net::WebSocket<volley_net::Upgraded>;

/// Send one JSON text frame.
pub(crate) async fn send_frame(ws: &mut StreamWs, value: Value) {
    ws.send(volley_net::Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

/// The next frame of `kind`, skipping others (10 s at most).
pub(crate) async fn next_frame(ws: &mut StreamWs, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, ws.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame"))
            .unwrap()
            .unwrap_or_else(|| panic!("closed before {kind}"));
        let value: Value = serde_json::from_slice(message.as_bytes()).unwrap();
        if value["type"] == kind {
            return value;
        }
    }
}
