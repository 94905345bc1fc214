//! [`WebSocket`]: the protocol core driven over an async stream.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, timeout_at, Instant, Sleep};
use tokio_util::io::poll_read_buf;
use tracing::debug;
use volley_wire::{
    CloseCode, CloseFrame, Connection, DeflateConfig, DeflateParams, Event, Message, OpCode, PreparedMessage, Role,
};

use crate::{Config, Error};

/// Most slices handed to one vectored write.
const MAX_IOVECS: usize = 32;

/// What one turn of the I/O loop did.
enum Step {
    Wrote,
    Read(usize),
    Timer,
}

/// A WebSocket connection over the stream `S`.
///
/// The socket makes progress while one of its async methods is awaited:
/// [`recv`](Self::recv) reads, answers pings, sends keepalive pings and
/// flushes queued frames; [`send`](Self::send) and [`flush`](Self::flush)
/// write. An application that also waits on other things should keep a
/// `recv` in a `tokio::select!`; `recv` is cancel-safe, so losing the race
/// loses no data.
///
/// Writes are coalesced: [`feed`](Self::feed) only queues a frame, and the
/// queue goes out in as few writes as the stream allows, at the latest when
/// `recv` is about to wait for input. The queue is bounded by
/// [`Config::write_buffer_limit`].
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    config: Config,
    protocol: Option<String>,
    peer_close: Option<CloseFrame>,
    /// The stream was shut down (or failed); nothing more will happen.
    finished: bool,
    /// Whether the stream needs `poll_flush` after writes (TLS, buffered).
    unflushed: bool,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    last_recv: Instant,
    last_data: Instant,
    pong_deadline: Option<Instant>,
    /// Set when we start a close ourselves (idle timeout).
    close_deadline: Option<Instant>,
    write_stalled_since: Option<Instant>,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.conn.role())
            .field("protocol", &self.protocol)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wrap a stream whose opening handshake is already done, such as one
    /// upgraded by hyper or axum. `leftover` holds bytes read past the
    /// handshake, which belong to the WebSocket stream.
    pub fn from_raw(stream: S, role: Role, config: Config, protocol: Option<String>, leftover: &[u8]) -> Self {
        let mut conn = Connection::new(role, config.protocol);
        conn.read_buf().extend_from_slice(leftover);
        let now = Instant::now();
        WebSocket {
            stream,
            conn,
            config,
            protocol,
            peer_close: None,
            finished: false,
            unflushed: false,
            timer: Box::pin(sleep_until(now)),
            armed: None,
            last_recv: now,
            last_data: now,
            pong_deadline: None,
            close_deadline: None,
            write_stalled_since: None,
        }
    }

    /// Turn on permessage-deflate with parameters agreed in a handshake done
    /// elsewhere (the acceptor and connector call this themselves).
    pub fn enable_deflate(&mut self, params: DeflateParams, config: &DeflateConfig) {
        self.conn.enable_deflate(params, config);
    }

    /// Whether permessage-deflate is on.
    pub fn deflate_enabled(&self) -> bool {
        self.conn.deflate_enabled()
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Which end we are.
    pub fn role(&self) -> Role {
        self.conn.role()
    }

    /// The close frame the peer sent, once it has arrived. `None` before
    /// then, or when the peer's close carried no status code.
    pub fn peer_close(&self) -> Option<&CloseFrame> {
        self.peer_close.as_ref()
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.finished
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Take the stream back, with the bytes already read from it but not yet
    /// decoded. Queued output is dropped. For tools that speak raw frames
    /// after a handshake done by volley, such as the load generator.
    pub fn into_inner(mut self) -> (S, bytes::Bytes) {
        let unread = self.conn.read_buf().split().freeze();
        (self.stream, unread)
    }

    /// Bytes queued for the peer and not yet written.
    pub fn buffered(&self) -> usize {
        self.conn_write_len()
    }

    fn conn_write_len(&self) -> usize {
        self.conn.write_len()
    }

    /// Receive the next data message.
    ///
    /// Returns `Ok(None)` once the connection has closed cleanly; the peer's
    /// code and reason are then in [`peer_close`](Self::peer_close). A
    /// protocol violation by the peer fails the connection with the code RFC
    /// 6455 names and returns the error.
    pub async fn recv(&mut self) -> Result<Option<Message>, Error> {
        loop {
            if self.finished {
                return Ok(None);
            }
            match self.conn.poll_event() {
                Ok(Some(Event::Message(message))) => {
                    if self.config.idle_timeout.is_some() {
                        self.last_data = Instant::now();
                    }
                    return Ok(Some(message));
                }
                Ok(Some(Event::Ping(_))) => continue,
                Ok(Some(Event::Pong(_))) => {
                    self.pong_deadline = None;
                    continue;
                }
                Ok(Some(Event::Close(frame))) => {
                    self.peer_close = frame;
                    self.finish().await;
                    return Ok(None);
                }
                Ok(None) if self.conn.is_done() => {
                    self.finish().await;
                    return Ok(None);
                }
                Ok(None) => {}
                Err(e) => {
                    debug!(error = %e, "failing websocket connection");
                    self.finish().await;
                    return Err(e.into());
                }
            }
            let want_read = self.conn_write_len() < self.config.write_buffer_limit;
            match self.step(want_read).await {
                Ok(Step::Read(0)) => {
                    self.finished = true;
                    let _ = self.stream.shutdown().await;
                    return if self.conn.close_sent() {
                        // We closed and the peer hung up without answering:
                        // accepted, the close is done either way.
                        Ok(None)
                    } else {
                        Err(Error::AbnormalClosure)
                    };
                }
                Ok(Step::Read(_)) => {
                    if self.config.ping_interval.is_some() {
                        self.last_recv = Instant::now();
                    }
                }
                Ok(Step::Wrote) => {}
                Ok(Step::Timer) => self.on_timer().await?,
                Err(e) => {
                    self.finished = true;
                    return Err(e);
                }
            }
        }
    }

    /// Queue a message and write everything queued.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queue a message without waiting for it to be written, so several
    /// messages go out in one write. Waits only while the queue is above
    /// [`Config::write_buffer_limit`].
    pub async fn feed(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.check_open()?;
        self.conn.send(&message.into()).map_err(|_| Error::Closed)?;
        self.after_queue().await
    }

    /// Queue one frame of a message the caller fragments itself: the first
    /// with `OpCode::Text` or `OpCode::Binary`, the rest with
    /// `OpCode::Continuation`, `fin` on the last. Fragments are sent
    /// uncompressed; control frames have their own methods.
    pub async fn feed_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        self.conn.send_frame(opcode, fin, payload)?;
        self.after_queue().await
    }

    /// Queue a message prepared once for many connections: a server writes
    /// the shared frame bytes (compressed once, where the negotiated
    /// parameters allow) instead of encoding the message again.
    pub async fn feed_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.check_open()?;
        self.conn.send_prepared(message).map_err(|_| Error::Closed)?;
        self.after_queue().await
    }

    async fn after_queue(&mut self) -> Result<(), Error> {
        if self.config.idle_timeout.is_some() {
            self.last_data = Instant::now();
        }
        if self.conn_write_len() > self.config.write_buffer_limit {
            self.flush_to(self.config.write_buffer_limit).await?;
        }
        Ok(())
    }

    /// Send a ping; the pong arrives through `recv` (and resets keepalive).
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        self.conn.ping(payload)?;
        self.flush().await
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.flush_to(0).await
    }

    /// Close with `code` and `reason`: send our close frame, wait (up to
    /// [`Config::close_timeout`]) for the peer's, then close the stream. Data
    /// messages that arrive meanwhile are discarded.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        self.conn.close(Some(CloseFrame::new(code, reason)))?;
        let deadline = Instant::now() + self.config.close_timeout;
        let drained = timeout_at(deadline, async {
            while self.recv().await?.is_some() {}
            Ok::<_, Error>(())
        })
        .await;
        match drained {
            Ok(result) => result,
            Err(_) => {
                self.finished = true;
                let _ = timeout_at(Instant::now() + self.config.close_timeout, self.stream.shutdown()).await;
                Err(Error::Timeout("close handshake"))
            }
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.finished || self.conn.close_sent() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    async fn flush_to(&mut self, target: usize) -> Result<(), Error> {
        while self.conn_write_len() > target || (target == 0 && self.unflushed) {
            if self.finished {
                return Err(Error::Closed);
            }
            match self.step(false).await? {
                Step::Timer => self.on_timer().await?,
                Step::Wrote | Step::Read(_) => {}
            }
        }
        Ok(())
    }

    /// After the close handshake or a protocol failure: write what is queued
    /// (the close frame last), then close the stream. A server closes TCP
    /// first (RFC 6455 section 7.1.1); a client waits for the server to.
    async fn finish(&mut self) {
        if self.finished {
            return;
        }
        let deadline = Instant::now() + self.config.close_timeout;
        let _ = timeout_at(deadline, self.flush_to(0)).await;
        self.finished = true;
        if self.conn.role() == Role::Client {
            let mut sink = BytesMut::with_capacity(512);
            let _ = timeout_at(deadline, async {
                loop {
                    sink.clear();
                    match self.stream.read_buf(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }
        let _ = timeout_at(deadline, self.stream.shutdown()).await;
    }

    async fn step(&mut self, want_read: bool) -> Result<Step, Error> {
        self.arm_timer();
        poll_fn(|cx| self.poll_step(cx, want_read)).await.map_err(Error::Io)
    }

    /// Write what is queued (as far as the stream takes it), then read, then
    /// poll the timer. Writing does not end the step when the caller also
    /// wants input, so an echo's reply and the next read share one wake-up.
    fn poll_step(&mut self, cx: &mut Context<'_>, want_read: bool) -> Poll<io::Result<Step>> {
        let mut wrote = false;
        loop {
            if self.conn_write_len() > 0 {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let count = self.conn.output(&mut slices);
                // One slice (the common case: a small frame, or frames
                // coalesced in the write buffer) goes out with a plain write,
                // which tokio's TCP stream makes a `send(2)`: on a socket that
                // skips `writev`'s file layer (`fdget_pos`, `vfs_writev`),
                // measured at 5-7% of a chat server's CPU.
                let written = if count == 1 {
                    Pin::new(&mut self.stream).poll_write(cx, &slices[0])
                } else {
                    Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..count])
                };
                match written {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        self.conn.advance_output(n);
                        self.unflushed = true;
                        self.write_stalled_since = None;
                        wrote = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        if self.write_stalled_since.is_none() {
                            self.write_stalled_since = Some(Instant::now());
                            self.arm_timer();
                        }
                    }
                }
            } else if self.unflushed {
                match Pin::new(&mut self.stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        wrote = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            break;
        }
        if wrote && !want_read {
            return Poll::Ready(Ok(Step::Wrote));
        }
        if want_read {
            let buf = self.conn.read_buf_reserved();
            let room = buf.capacity() - buf.len();
            if let Poll::Ready(result) = poll_read_buf(Pin::new(&mut self.stream), cx, buf) {
                if let Ok(n) = result {
                    self.conn.note_read(n, room);
                }
                return Poll::Ready(result.map(Step::Read));
            }
        }
        if self.armed.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            self.armed = None;
            return Poll::Ready(Ok(Step::Timer));
        }
        Poll::Pending
    }

    /// The earliest deadline that applies now.
    fn next_deadline(&self) -> Option<Instant> {
        let c = &self.config;
        let ping_due = match (c.ping_interval, self.pong_deadline) {
            (Some(every), None) if !self.conn.close_sent() => Some(self.last_recv + every),
            _ => None,
        };
        [
            ping_due,
            self.pong_deadline,
            c.idle_timeout
                .filter(|_| !self.conn.close_sent())
                .map(|t| self.last_data + t),
            self.close_deadline,
            self.write_stalled_since.map(|t| t + c.write_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Deadlines move with activity; the timer is only reset when one moves
    /// earlier. A timer that fires late is re-armed by [`on_timer`].
    fn arm_timer(&mut self) {
        let next = self.next_deadline();
        match (next, self.armed) {
            (Some(n), Some(a)) if n >= a => {}
            (Some(n), _) => {
                self.timer.as_mut().reset(n);
                self.armed = Some(n);
            }
            (None, _) => self.armed = None,
        }
    }

    async fn on_timer(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        let c = &self.config;
        if self.write_stalled_since.is_some_and(|t| now >= t + c.write_timeout) {
            self.finished = true;
            return Err(Error::Timeout("write"));
        }
        if self.close_deadline.is_some_and(|t| now >= t) {
            self.finished = true;
            let _ = timeout_at(now + self.config.close_timeout, self.stream.shutdown()).await;
            return Err(Error::Timeout("close handshake"));
        }
        if self.pong_deadline.is_some_and(|t| now >= t) {
            debug!("no pong within the keepalive timeout");
            self.finished = true;
            let _ = timeout_at(now + self.config.close_timeout, self.stream.shutdown()).await;
            return Err(Error::Timeout("keepalive"));
        }
        if let Some(idle) = c.idle_timeout {
            if now >= self.last_data + idle && !self.conn.close_sent() {
                self.conn
                    .close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "idle timeout")))?;
                self.close_deadline = Some(now + c.close_timeout);
            }
        }
        if let Some(every) = c.ping_interval {
            if self.pong_deadline.is_none() && now >= self.last_recv + every && !self.conn.close_sent() {
                self.conn.ping(b"volley")?;
                self.pong_deadline = Some(now + c.pong_timeout);
            }
        }
        Ok(())
    }
}
