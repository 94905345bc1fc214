//! The transport's deadlines (handshake, keepalive, idle, write) on tokio's
//! paused clock: both ends over an in-memory duplex pipe, so nothing waits
//! in real time and nothing depends on the machine's speed. Time moves only
//! when every task is waiting, straight to the next deadline.

use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::{timeout, Instant};
use volley_wire::{CloseCode, Role};

use crate::{Acceptor, Config, Error, WebSocket};

fn server(stream: DuplexStream, config: Config) -> WebSocket<DuplexStream> {
    WebSocket::from_raw(stream, Role::Server, config, None, &[])
}

fn client(stream: DuplexStream) -> WebSocket<DuplexStream> {
    let config = Config {
        ping_interval: None,
        ..Config::default()
    };
    WebSocket::from_raw(stream, Role::Client, config, None, &[])
}

#[tokio::test(start_paused = true)]
async fn a_stalled_handshake_times_out_at_its_deadline() {
    let (mut peer, ours) = duplex(4096);
    let acceptor = Acceptor::new(Config {
        handshake_timeout: Duration::from_secs(5),
        ..Config::default()
    });
    peer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap(); // and then nothing
    let started = Instant::now();
    let result = acceptor.accept(ours).await;
    assert!(matches!(result, Err(Error::Timeout("handshake"))), "{result:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn keepalive_drops_a_peer_that_never_answers() {
    let (mut peer, ours) = duplex(4096);
    let mut ws = server(
        ours,
        Config {
            ping_interval: Some(Duration::from_secs(10)),
            pong_timeout: Duration::from_secs(5),
            ..Config::default()
        },
    );
    let started = Instant::now();
    let result = ws.recv().await;
    assert!(matches!(result, Err(Error::Timeout("keepalive"))), "{result:?}");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(15),
        "a ping after 10 s, 5 s for the pong"
    );
    let mut first = [0u8; 1];
    peer.read_exact(&mut first).await.unwrap();
    assert_eq!(first[0], 0x89, "what the peer got was our ping");
}

#[tokio::test(start_paused = true)]
async fn keepalive_keeps_a_peer_that_answers() {
    let (theirs, ours) = duplex(4096);
    let mut ws = server(
        ours,
        Config {
            ping_interval: Some(Duration::from_secs(10)),
            pong_timeout: Duration::from_secs(5),
            ..Config::default()
        },
    );
    let mut peer = client(theirs);
    // The client answers pings while it waits in recv.
    let answering = tokio::spawn(async move {
        let _ = peer.recv().await;
        peer
    });
    // Twenty ping intervals later the server still waits for a message.
    let waited = timeout(Duration::from_secs(200), ws.recv()).await;
    assert!(waited.is_err(), "the server dropped a peer that answered: {waited:?}");
    answering.abort();
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_with_1001_after_silence() {
    let (theirs, ours) = duplex(4096);
    let mut ws = server(
        ours,
        Config {
            idle_timeout: Some(Duration::from_secs(60)),
            ..Config::default()
        },
    );
    let mut peer = client(theirs);
    let serving = tokio::spawn(async move {
        let mut received = 0;
        while let Ok(Some(_)) = ws.recv().await {
            received += 1;
        }
        received
    });
    let started = Instant::now();
    peer.send("still here").await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    peer.send("and here").await.unwrap();
    // Messages reset the idle clock: the close comes 60 s after the last one.
    let ended = loop {
        match peer.recv().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(matches!(ended, Ok(None)), "{ended:?}");
    assert_eq!(peer.peer_close().map(|f| f.code), Some(CloseCode::GOING_AWAY));
    assert_eq!(started.elapsed(), Duration::from_secs(90));
    assert_eq!(serving.await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_fails_the_write_at_its_deadline() {
    const LIMIT: usize = 64 * 1024;
    // The pipe holds 16 KiB: the peer's socket buffer, full at once.
    let (_peer, ours) = duplex(16 * 1024);
    let mut ws = server(
        ours,
        Config {
            write_buffer_limit: LIMIT,
            write_timeout: Duration::from_secs(7),
            ..Config::default()
        },
    );
    let chunk = vec![0u8; 16 * 1024];
    let mut max_buffered = 0;
    let mut sent = 0usize;
    let started = Instant::now();
    let error = loop {
        if let Err(e) = ws.feed(chunk.clone()).await {
            break e;
        }
        sent += chunk.len();
        max_buffered = max_buffered.max(ws.buffered());
        assert!(sent < 64 << 20, "the peer never pushed back");
    };
    assert!(matches!(error, Error::Timeout("write")), "{error:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert!(max_buffered <= LIMIT + 16 * 1024 + 14, "buffered {max_buffered}");
    assert!(
        sent <= LIMIT + 32 * 1024,
        "only the pipe and the bounded buffer took bytes: {sent}"
    );
}
