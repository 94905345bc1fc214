//! Copying bytes both ways between a client and its backend, for layer 4
//! (TCP) and for layer-7 WebSockets after the handshake.
//!
//! Both directions copy until both sides have finished, or nothing moved
//! for the idle timeout, or one side finished and the other did not follow
//! within the half-close timeout (a client that never reads nor closes must
//! not hold the connection, and its backend's count, forever). A drain
//! order ends the connection: for a WebSocket, with a close frame (1012 and
//! the order's reason) put between two of the backend's frames
//! ([`crate::frames`]); for plain TCP, by closing it.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;

use crate::frames::{close_frame, Frames};

/// The close code a drained WebSocket gets: "service restart", come back.
pub(crate) const DRAIN_CODE: u16 = 1012;

/// Size of a read buffer.
const BUFFER: usize = 16 * 1024;

/// Free buffers kept per thread (4 MiB).
const KEEP: usize = 256;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// Read into a buffer lent for this read only: a read that would wait gives
/// it back at once, so an idle connection holds no buffer at all (two 16 KiB
/// buffers per idle WebSocket were most of the proxy's memory). The buffer
/// comes back with the bytes; [`give_back`] returns it once they are written.
async fn read_lent<R: AsyncRead + Unpin>(from: &mut R) -> io::Result<(Box<[u8]>, usize)> {
    std::future::poll_fn(|cx| {
        let mut buf = FREE
            .with(|free| free.borrow_mut().pop())
            .unwrap_or_else(|| vec![0u8; BUFFER].into_boxed_slice());
        let (poll, n) = {
            let mut read = ReadBuf::new(&mut buf);
            let poll = Pin::new(&mut *from).poll_read(cx, &mut read);
            (poll, read.filled().len())
        };
        match poll {
            Poll::Ready(Ok(())) => Poll::Ready(Ok((buf, n))),
            Poll::Ready(Err(e)) => {
                give_back(buf);
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                give_back(buf);
                Poll::Pending
            }
        }
    })
    .await
}

/// Return a lent buffer to this thread's free list.
fn give_back(buf: Box<[u8]>) {
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEEP {
            free.push(buf);
        }
    });
}

/// What went through a spliced connection.
#[derive(Debug, Default)]
pub(crate) struct Spliced {
    /// Bytes from the client to the backend.
    pub(crate) up: u64,
    /// Bytes from the backend to the client.
    pub(crate) down: u64,
    /// The close code the client sent, if a WebSocket and it sent one.
    pub(crate) client_close: Option<u16>,
    /// The close code the backend sent (or the proxy, when drained).
    pub(crate) backend_close: Option<u16>,
    /// A drain ended it.
    pub(crate) drained: bool,
}

/// Timeouts of a splice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) idle: Duration,
    pub(crate) fin: Duration,
}

/// Splice `client` and `backend`; `first_down` (bytes the backend sent with
/// its handshake answer) goes to the client first. With `websocket`, frames
/// are followed for close codes and drain closes.
pub(crate) async fn splice<C, B>(
    client: C,
    backend: B,
    first_down: &[u8],
    websocket: bool,
    drain: oneshot::Receiver<String>,
    timeouts: Timeouts,
) -> Spliced
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (client_read, client_write) = tokio::io::split(client);
    let (backend_read, backend_write) = tokio::io::split(backend);
    let epoch = tokio::time::Instant::now();
    let last = AtomicU64::new(0);
    let up = pump(client_read, backend_write, &last, epoch, websocket);
    let down = pump_down(
        backend_read,
        client_write,
        first_down,
        &last,
        epoch,
        websocket,
        drain,
        timeouts.fin,
    );
    tokio::pin!(up, down);
    let idle = timeouts.idle;
    let watchdog = async {
        loop {
            tokio::time::sleep(idle / 4).await;
            let quiet = epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            if quiet >= idle {
                return;
            }
        }
    };
    tokio::pin!(watchdog);
    let mut out = Spliced::default();
    let (mut up_done, mut down_done) = (None, None);
    tokio::select! {
        r = &mut up => up_done = Some(r),
        r = &mut down => down_done = Some(r),
        () = &mut watchdog => {}
    }
    let plain_drain = matches!(down_done, Some((_, _, true))) && !websocket;
    if !plain_drain {
        if up_done.is_some() && down_done.is_none() {
            down_done = tokio::time::timeout(timeouts.fin, &mut down).await.ok();
        } else if down_done.is_some() && up_done.is_none() {
            up_done = tokio::time::timeout(timeouts.fin, &mut up).await.ok();
        }
    }
    if let Some((n, frames)) = up_done {
        out.up = n;
        out.client_close = frames.and_then(|f| f.last_close);
    }
    if let Some((n, frames, drained)) = down_done {
        out.down = n;
        out.backend_close = frames.and_then(|f| f.last_close);
        out.drained = drained;
    }
    out
}

/// Client to backend: read, follow frames, write; on end of input finish
/// the backend's writing half (a half-close passes through).
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    last: &AtomicU64,
    epoch: tokio::time::Instant,
    websocket: bool,
) -> (u64, Option<Frames>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = websocket.then(Frames::default);
    let mut total = 0u64;
    loop {
        let (buf, n) = match read_lent(&mut from).await {
            Ok((buf, 0)) => {
                give_back(buf);
                break;
            }
            Err(_) => break,
            Ok(pair) => pair,
        };
        if let Some(f) = &mut frames {
            f.feed(&buf[..n], false);
        }
        let written = to.write_all(&buf[..n]).await;
        give_back(buf);
        if written.is_err() {
            break;
        }
        total += n as u64;
        last.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
    (total, frames)
}

/// Backend to client, as [`pump`], and obeying a drain order: the rest of
/// the current frame goes out, then the close frame, then the client's
/// writing half is finished (its close answer still travels up). A backend
/// that already sent its close gets no second one; a frame that does not
/// end within `fin` after the order is cut with the connection.
#[allow(clippy::too_many_arguments)]
async fn pump_down<R, W>(
    mut from: R,
    mut to: W,
    first: &[u8],
    last: &AtomicU64,
    epoch: tokio::time::Instant,
    websocket: bool,
    mut drain: oneshot::Receiver<String>,
    fin: Duration,
) -> (u64, Option<Frames>, bool)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = websocket.then(Frames::default);
    let mut total = 0u64;
    if !first.is_empty() {
        if let Some(f) = &mut frames {
            f.feed(first, false);
        }
        if to.write_all(first).await.is_err() {
            let _ = to.shutdown().await;
            return (0, frames, false);
        }
        total += first.len() as u64;
    }
    let mut order: Option<String> = None;
    let mut orders_open = true;
    let mut cut_at: Option<tokio::time::Instant> = None;
    loop {
        if let Some(reason) = &order {
            match &mut frames {
                Some(f) if f.last_close.is_some() => {
                    // The backend is closing already: its close went out.
                    let _ = to.shutdown().await;
                    return (total, frames, true);
                }
                Some(f) if f.at_boundary() => {
                    let _ = to.write_all(&close_frame(DRAIN_CODE, reason)).await;
                    f.last_close = Some(DRAIN_CODE);
                    let _ = to.shutdown().await;
                    return (total, frames, true);
                }
                Some(f) if !f.broken() => {}
                _ => {
                    let _ = to.shutdown().await;
                    return (total, frames, true);
                }
            }
        }
        let n = tokio::select! {
            r = &mut drain, if orders_open && order.is_none() => {
                match r {
                    Ok(reason) => {
                        order = Some(reason);
                        cut_at = Some(tokio::time::Instant::now() + fin);
                    }
                    Err(_) => orders_open = false,
                }
                continue;
            }
            () = tokio::time::sleep_until(cut_at.unwrap_or_else(tokio::time::Instant::now)), if cut_at.is_some() => {
                let _ = to.shutdown().await;
                return (total, frames, true);
            }
            r = read_lent(&mut from) => match r {
                Ok((buf, 0)) => {
                    give_back(buf);
                    break;
                }
                Err(_) => break,
                Ok(pair) => pair,
            },
        };
        let (buf, n) = n;
        let cut = match (&mut frames, order.is_some()) {
            (Some(f), true) => f.feed(&buf[..n], true),
            (Some(f), false) => {
                f.feed(&buf[..n], false);
                n
            }
            (None, _) => n,
        };
        let written = to.write_all(&buf[..cut]).await;
        give_back(buf);
        if written.is_err() {
            break;
        }
        total += cut as u64;
        last.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
    (total, frames, false)
}
