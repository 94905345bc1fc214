//! Real servers and real clients over real TCP sockets on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};
use volley_net::{Acceptor, CloseCode, Config, Connector, Error, Message, WebSocket};
use volley_wire::handshake::HandshakeError;

mod common;
use common::echo_server;

/// A server that hands each accepted socket to the test.
async fn server_with<F, Fut>(acceptor: Acceptor, f: F) -> SocketAddr
where
    F: FnOnce(Result<WebSocket<TcpStream>, Error>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        f(acceptor.accept(stream).await.map(|(ws, _)| ws)).await;
    });
    addr
}

/// Send raw bytes, read until the server closes, return what came back.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("server closes the connection")
        .ok();
    out
}

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A masked client frame.
fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [9u8, 8, 7, 6];
    let mut out = vec![b0, 0x80 | payload.len() as u8];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// The close code in the first server close frame found after the 101 head.
fn close_code_after_handshake(response: &[u8]) -> Option<u16> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let frames = &response[head_end..];
    let mut i = 0;
    while i + 2 <= frames.len() {
        let len = (frames[i + 1] & 0x7F) as usize;
        if frames[i] == 0x88 && len >= 2 {
            return Some(u16::from_be_bytes([frames[i + 2], frames[i + 3]]));
        }
        i += 2 + len;
    }
    None
}

#[tokio::test]
async fn echo_text_binary_and_large_messages() {
    let addr = echo_server(Acceptor::default()).await;
    let mut ws = volley_net::connect(&format!("ws://{addr}/")).await.unwrap();
    ws.send("hello ✓").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::from("hello ✓")));
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
    ws.send(big.clone()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::Binary(Bytes::from(big))));
    ws.send(Vec::new()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::Binary(Bytes::new())));
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    assert_eq!(ws.peer_close().map(|f| f.code), Some(CloseCode::NORMAL));
}

#[tokio::test]
async fn many_pipelined_messages_come_back_in_order() {
    let addr = echo_server(Acceptor::default()).await;
    let mut ws = volley_net::connect(&format!("ws://{addr}")).await.unwrap();
    for i in 0..1000 {
        ws.feed(format!("m{i}")).await.unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..1000 {
        assert_eq!(ws.recv().await.unwrap(), Some(Message::from(format!("m{i}"))));
    }
}

#[tokio::test]
async fn close_code_and_reason_reach_the_application() {
    let addr = server_with(Acceptor::default(), |ws| async move {
        let mut ws = ws.unwrap();
        ws.close(CloseCode(4001), "room closed").await.unwrap();
    })
    .await;
    let mut ws = volley_net::connect(&format!("ws://{addr}")).await.unwrap();
    let started = Instant::now();
    assert_eq!(ws.recv().await.unwrap(), None);
    let frame = ws.peer_close().unwrap();
    assert_eq!((frame.code, frame.reason.as_str()), (CloseCode(4001), "room closed"));
    // The client saw the server's FIN promptly rather than waiting out its timeout.
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(ws.is_closed());
}

#[tokio::test]
async fn server_closes_tcp_first_after_client_close() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let addr = server_with(Acceptor::default(), |ws| async move {
        let mut ws = ws.unwrap();
        let r = ws.recv().await;
        tx.send((r.map(|m| m.is_none()).ok(), ws.peer_close().cloned())).ok();
    })
    .await;
    let mut ws = volley_net::connect(&format!("ws://{addr}")).await.unwrap();
    let started = Instant::now();
    ws.close(CloseCode::GOING_AWAY, "bye").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "client waited for the server's FIN"
    );
    let (clean, frame) = rx.await.unwrap();
    assert_eq!(clean, Some(true));
    assert_eq!(frame.map(|f| f.code), Some(CloseCode::GOING_AWAY));
}

#[tokio::test]
async fn subprotocol_is_negotiated() {
    let addr = echo_server(Acceptor::default().protocols(["v2.volley", "v1.volley"])).await;
    let ws = Connector::default()
        .protocols(["v1.volley", "v2.volley"])
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    // The client's first preference that the server speaks.
    assert_eq!(ws.protocol(), Some("v1.volley"));
    let ws = Connector::default()
        .protocols(["other"])
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    assert_eq!(ws.protocol(), None);
}

#[tokio::test]
async fn origin_hook_refuses_with_403() {
    let acceptor = Acceptor::default().check_origin(|origin| origin == Some("https://good.example"));
    let addr = echo_server(acceptor).await;
    let good = Connector::default().header("Origin", "https://good.example");
    assert!(good.connect(&format!("ws://{addr}")).await.is_ok());
    let evil = Connector::default().header("Origin", "https://evil.example");
    match evil.connect(&format!("ws://{addr}")).await {
        Err(Error::Handshake(HandshakeError::Status { status: 403, body })) => {
            assert!(body.contains("evil.example"), "{body}")
        }
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_handshakes_get_their_status_and_reason() {
    let addr = echo_server(Acceptor::default()).await;
    let cases = [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(), "400", "Upgrade"),
        (
            UPGRADE.replace("Version: 13", "Version: 7"),
            "426",
            "Sec-WebSocket-Version: 13",
        ),
        (
            UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
            "400",
            "Sec-WebSocket-Key",
        ),
        (UPGRADE.replace("GET", "POST"), "400", "GET"),
        ("\x16\x03\x01 this is not http\r\n\r\n".to_owned(), "400", "malformed"),
        (
            format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000)),
            "431",
            "too large",
        ),
    ];
    for (request, status, needle) in cases {
        let response = String::from_utf8_lossy(&raw_exchange(addr, request.as_bytes()).await).into_owned();
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?} -> {response}"
        );
        assert!(response.contains(needle), "{request:?} -> {response}");
    }
    // The server still serves well-behaved clients.
    let mut ws = volley_net::connect(&format!("ws://{addr}")).await.unwrap();
    ws.send("still here").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::from("still here")));
}

#[tokio::test]
async fn client_reports_non_101_with_status_and_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 12\r\n\r\ncome back la")
            .await
            .unwrap();
    });
    match volley_net::connect(&format!("ws://{addr}")).await {
        Err(Error::Handshake(HandshakeError::Status { status, body })) => {
            assert_eq!((status, body.as_str()), (503, "come back la"));
        }
        other => panic!("expected a status error, got {other:?}"),
    }
}

#[tokio::test]
async fn protocol_errors_close_with_the_right_code_and_others_keep_working() {
    let addr = echo_server(Acceptor::default()).await;
    let mut healthy = volley_net::connect(&format!("ws://{addr}")).await.unwrap();

    let mut unmasked = UPGRADE.as_bytes().to_vec();
    unmasked.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
    assert_eq!(
        close_code_after_handshake(&raw_exchange(addr, &unmasked).await),
        Some(1002)
    );

    let mut bad_utf8 = UPGRADE.as_bytes().to_vec();
    bad_utf8.extend(client_frame(0x81, &[0xC0, 0xAF]));
    assert_eq!(
        close_code_after_handshake(&raw_exchange(addr, &bad_utf8).await),
        Some(1007)
    );

    let mut huge = UPGRADE.as_bytes().to_vec();
    huge.extend_from_slice(&[0x82, 0xFF]);
    huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(close_code_after_handshake(&raw_exchange(addr, &huge).await), Some(1009));

    let mut bad_close = UPGRADE.as_bytes().to_vec();
    bad_close.extend(client_frame(0x88, &[0x03, 0xEE])); // 1006 may not be sent
    assert_eq!(
        close_code_after_handshake(&raw_exchange(addr, &bad_close).await),
        Some(1002)
    );

    healthy.send("unaffected").await.unwrap();
    assert_eq!(healthy.recv().await.unwrap(), Some(Message::from("unaffected")));
}

#[tokio::test]
async fn frames_pipelined_with_the_handshake_are_not_lost() {
    let addr = echo_server(Acceptor::default()).await;
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend(client_frame(0x81, b"early"));
    bytes.extend(client_frame(0x88, &[0x03, 0xE8]));
    let response = raw_exchange(addr, &bytes).await;
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&response[head_end..head_end + 7], b"\x81\x05early");
    assert_eq!(close_code_after_handshake(&response), Some(1000));
}

#[tokio::test]
async fn slow_reader_makes_send_wait_with_bounded_buffer() {
    const LIMIT: usize = 64 * 1024;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let acceptor = Acceptor::new(Config {
        write_buffer_limit: LIMIT,
        write_timeout: Duration::from_millis(700),
        ..Config::default()
    });
    let addr = server_with(acceptor, |ws| async move {
        let mut ws = ws.unwrap();
        let chunk = vec![0u8; 16 * 1024];
        let mut max_buffered = 0;
        let mut sent = 0usize;
        let result = loop {
            if let Err(e) = ws.feed(chunk.clone()).await {
                break e;
            }
            sent += chunk.len();
            max_buffered = max_buffered.max(ws.buffered());
            if sent > 512 << 20 {
                panic!("the peer never pushed back");
            }
        };
        tx.send((result, max_buffered, sent)).ok();
    })
    .await;
    // Connect, then never read.
    let _client = volley_net::connect(&format!("ws://{addr}")).await.unwrap();
    let (err, max_buffered, sent) = timeout(Duration::from_secs(10), rx).await.unwrap().unwrap();
    assert!(matches!(err, Error::Timeout("write")), "{err:?}");
    assert!(max_buffered <= LIMIT + 16 * 1024 + 14, "buffered {max_buffered}");
    // Only what the kernel socket buffers hold got out: far less than the 512 MiB we would send.
    assert!(sent < 64 << 20, "sent {sent}");
}
