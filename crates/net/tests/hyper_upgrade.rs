//! A `WebSocket` over a connection that hyper upgraded: the path axum and
//! hyper servers take, with hyper parsing HTTP and volley taking over after 101.

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use volley_net::{CloseCode, Config, Message, Role, WebSocket};
use volley_wire::handshake::{upgrade_response, validate_request};

async fn handle(mut req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let validated = match validate_request(&req) {
        Ok(v) => v,
        Err(e) => {
            let mut resp = Response::new(e.to_string());
            *resp.status_mut() = hyper::StatusCode::from_u16(e.status()).unwrap_or(hyper::StatusCode::BAD_REQUEST);
            return Ok(resp);
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut ws = WebSocket::from_raw(TokioIo::new(upgraded), Role::Server, Config::default(), None, &[]);
        while let Ok(Some(m)) = ws.recv().await {
            if ws.feed(m).await.is_err() {
                return;
            }
        }
    });
    Ok(upgrade_response(&validated, None).map(|()| String::new()))
}

#[tokio::test]
async fn echo_over_a_hyper_upgrade() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .with_upgrades(),
            );
        }
    });
    let mut ws = volley_net::connect(&format!("ws://{addr}/ws")).await.unwrap();
    ws.send("through hyper").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::from("through hyper")));
    ws.send(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::from(vec![1u8, 2, 3])));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(ws.peer_close().map(|f| f.code), Some(CloseCode::NORMAL));

    // A plain GET is refused by the same validation, with its status and reason.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("Upgrade"), "{response}");
}
