//! Write coalescing, observed by counting the writes that reach the stream.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use volley_net::{Config, Message, Role, WebSocket};

/// A stream that counts `poll_write` calls that wrote something.
struct Counting {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A server whose writes are counted, connected to a client in memory.
fn counting_pair() -> (WebSocket<Counting>, WebSocket<DuplexStream>, Arc<AtomicUsize>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let server = WebSocket::from_raw(
        Counting {
            inner: a,
            writes: writes.clone(),
        },
        Role::Server,
        Config::default(),
        None,
        &[],
    );
    let client = WebSocket::from_raw(b, Role::Client, Config::default(), None, &[]);
    (server, client, writes)
}

#[tokio::test]
async fn many_small_frames_go_out_in_one_write() {
    let (mut server, mut client, writes) = counting_pair();
    for i in 0..200 {
        server.feed(format!("message {i}")).await.unwrap();
    }
    assert_eq!(writes.load(Ordering::Relaxed), 0, "feed must not write below the limit");
    server.flush().await.unwrap();
    assert_eq!(writes.load(Ordering::Relaxed), 1);
    for i in 0..200 {
        assert_eq!(
            client.recv().await.unwrap(),
            Some(Message::from(format!("message {i}")))
        );
    }
}

#[tokio::test]
async fn echo_replies_to_a_burst_are_coalesced() {
    // An echo loop (recv, feed) flushes only when it runs out of input, so a
    // burst of requests read at once is answered with one write.
    let (mut server, mut client, writes) = counting_pair();
    for i in 0..100 {
        client.feed(format!("{i}")).await.unwrap();
    }
    client.flush().await.unwrap();
    let echo = tokio::spawn(async move {
        while let Ok(Some(m)) = server.recv().await {
            server.feed(m).await.unwrap();
        }
    });
    for i in 0..100 {
        assert_eq!(client.recv().await.unwrap(), Some(Message::from(format!("{i}"))));
    }
    assert!(
        writes.load(Ordering::Relaxed) <= 2,
        "{} writes",
        writes.load(Ordering::Relaxed)
    );
    drop(client);
    echo.await.unwrap();
}
