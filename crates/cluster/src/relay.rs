//! Fault relays: a TCP forwarder the harness puts on each link it may
//! break (a node to the broker, a node to the store, the proxy to a node),
//! in the manner of Toxiproxy, so network faults need no root and hit one
//! link, not the machine. A relay passes bytes through, or:
//! - **cut**: a partition. Nothing moves in either direction and new
//!   connections wait, as on a network that drops every packet; the bytes
//!   in flight stay in the kernel's buffers and move again on heal, intact
//!   (TCP retransmits through a real partition too), unless the peers gave
//!   up meanwhile.
//! - **slow**: every chunk waits `ms` before it is passed on (latency).
//! - **reset**: every open connection is closed with a RST; new ones pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::Error;

/// What a relay does with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// Pass through.
    Pass,
    /// Move nothing (a partition).
    Cut,
    /// Delay each chunk this many milliseconds.
    Slow {
        /// The delay.
        ms: u64,
    },
}

/// One link's relay.
#[derive(Debug)]
pub struct Relay {
    /// `n1-broker`, `n2-store`, `proxy-n3`.
    pub name: String,
    /// Where the link's client connects.
    pub port: u16,
    /// Where the relay connects on its behalf.
    pub upstream: u16,
    mode: watch::Sender<Mode>,
    /// Bumped to close every open connection with a RST.
    resets: watch::Sender<u64>,
    open: Arc<AtomicU64>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Relay {
    /// Listen on a free port, forwarding to `upstream` on loopback.
    pub async fn start(name: &str, upstream: u16) -> Result<Arc<Relay>, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::io(format!("relay {name}")))?;
        let port = listener.local_addr().map_err(Error::io("relay address"))?.port();
        let relay = Arc::new(Relay {
            name: name.to_owned(),
            port,
            upstream,
            mode: watch::channel(Mode::Pass).0,
            resets: watch::channel(0).0,
            open: Arc::new(AtomicU64::new(0)),
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&relay);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Some(relay) = weak.upgrade() else { return };
                let (mode, resets, open) = (relay.mode.subscribe(), relay.resets.subscribe(), relay.open.clone());
                let upstream = relay.upstream;
                drop(relay);
                tokio::spawn(carry(client, upstream, mode, resets, open));
            }
        });
        *relay.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(relay)
    }

    /// What it does now.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Change what it does (`Pass` heals).
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Close every open connection with a RST.
    pub fn reset(&self) {
        self.resets.send_modify(|n| *n += 1);
    }

    /// Connections open through it.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// Wait while the link is cut.
async fn passable(mode: &mut watch::Receiver<Mode>) -> Mode {
    loop {
        let now = *mode.borrow_and_update();
        if now != Mode::Cut {
            return now;
        }
        if mode.changed().await.is_err() {
            return Mode::Pass;
        }
    }
}

async fn carry(
    client: TcpStream,
    upstream: u16,
    mut mode: watch::Receiver<Mode>,
    mut resets: watch::Receiver<u64>,
    open: Arc<AtomicU64>,
) {
    // A connection made during a cut waits for the heal, like a SYN into a
    // partition (the client's own connect timeout applies).
    passable(&mut mode).await;
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    open.fetch_add(1, Ordering::Relaxed);
    resets.borrow_and_update();
    let (mut client, mut server) = (client, server);
    let reset = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        tokio::select! {
            _ = async { tokio::join!(pump(cr, sw, mode.clone()), pump(sr, cw, mode.clone())) } => false,
            _ = resets.changed() => true,
        }
    };
    if reset {
        // Linger 0: the close is a RST, as a middlebox dropping state sends.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
    open.fetch_sub(1, Ordering::Relaxed);
}

async fn pump<R, W>(mut from: R, mut to: W, mut mode: watch::Receiver<Mode>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Not even reading while cut: the sender's bytes wait in the kernel.
        let now = passable(&mut mode).await;
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            // A cut while waiting for bytes: go back and wait for the heal.
            _ = mode.changed() => continue,
        };
        if let Mode::Slow { ms } = now {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        // Bytes read before a cut are held until the heal.
        passable(&mut mode).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    async fn round_trip(s: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 4];
        s.write_all(b"ping").await.unwrap();
        tokio::time::timeout(within, s.read_exact(&mut buf))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    #[tokio::test]
    async fn a_cut_holds_bytes_and_a_heal_delivers_them_intact() {
        let relay = Relay::start("test", echo_server().await).await.unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
        assert!(round_trip(&mut s, Duration::from_secs(2)).await);
        relay.set(Mode::Cut);
        assert!(
            !round_trip(&mut s, Duration::from_millis(300)).await,
            "nothing passes a cut"
        );
        relay.set(Mode::Pass);
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"ping", "the held bytes arrive after the heal");
        assert!(round_trip(&mut s, Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn slow_delays_and_reset_closes_open_connections() {
        let relay = Relay::start("test", echo_server().await).await.unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
        relay.set(Mode::Slow { ms: 150 });
        let at = std::time::Instant::now();
        assert!(round_trip(&mut s, Duration::from_secs(2)).await);
        assert!(at.elapsed() >= Duration::from_millis(300), "both ways delayed");
        relay.set(Mode::Pass);
        relay.reset();
        let mut buf = [0u8; 4];
        let closed = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(closed, Ok(0) | Err(_)), "the reset closed it");
        let mut again = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
        assert!(
            round_trip(&mut again, Duration::from_secs(2)).await,
            "new connections pass"
        );
    }
}
