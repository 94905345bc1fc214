//! One HTTP/3 request stream as a byte stream: what a WebSocket over HTTP/3
//! (RFC 9220) runs on once the extended CONNECT is answered 200.
//!
//! Reading takes DATA frames apart (unknown frames are skipped, trailers end
//! the stream, anything else is H3_FRAME_UNEXPECTED); writing wraps each
//! write in a DATA frame. Frames inside are plain RFC 6455 frames, so the
//! WebSocket on top does not know which transport it runs on.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use volley_h3::frame::{self, Frame, FrameDecoder};
use volley_h3::qpack::{self, Field};
use volley_h3::Code;

/// Largest DATA frame written at once (a larger write is split).
const MAX_DATA_FRAME: usize = 64 * 1024;

/// Bytes read from QUIC per call.
const READ_CHUNK: usize = 8 * 1024;

/// A bidirectional HTTP/3 stream, past its HEADERS frame.
#[derive(Debug)]
pub struct H3Stream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
    /// DATA payload received and not yet read.
    pending: Bytes,
    /// Framed bytes QUIC has not taken yet.
    out: Vec<u8>,
    /// The peer finished its side (or sent trailers).
    ended: bool,
    /// On the client, what keeps the connection usable while any of its
    /// streams lives (see [`ClientGuard`]).
    _guard: Option<Arc<ClientGuard>>,
    /// On the server, this stream's place in its connection's count.
    _live: Option<LiveStream>,
}

/// The request streams (and the WebSockets on them) a server connection
/// still has, so a connection told GOAWAY closes itself once they are gone
/// instead of waiting for the idle timeout.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live(Arc<(std::sync::atomic::AtomicUsize, tokio::sync::Notify)>);

impl Live {
    /// Count a new stream for as long as the token lives.
    pub(crate) fn enter(&self) -> LiveStream {
        self.0 .0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        LiveStream(self.clone())
    }

    /// Resolves once no stream is left.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.0 .1.notified();
            if self.0 .0.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One counted stream; leaves the count on drop.
#[derive(Debug)]
pub(crate) struct LiveStream(Live);

impl Drop for LiveStream {
    fn drop(&mut self) {
        let inner = &(self.0).0;
        inner.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        inner.1.notify_waiters();
    }
}

/// A client connection's control stream and endpoint. Dropping the control
/// stream would end the connection (H3_CLOSED_CRITICAL_STREAM), and the
/// endpoint drives the socket, so each stream holds them: the connection
/// closes once the `H3Connection` and all its WebSockets are gone.
#[derive(Debug)]
pub(crate) struct ClientGuard {
    pub(crate) conn: quinn::Connection,
    pub(crate) _control: quinn::SendStream,
    pub(crate) _endpoint: quinn::Endpoint,
}

impl Drop for ClientGuard {
    /// The last user is gone: close with H3_NO_ERROR rather than let the
    /// control stream's end look like a failure to the server.
    fn drop(&mut self) {
        self.conn
            .close(quinn::VarInt::from_u32(Code::NoError.value() as u32), b"");
    }
}

/// Why a head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The bytes broke HTTP/3 or QPACK.
    H3(volley_h3::Error),
    /// The stream ended before a whole HEADERS frame.
    Ended,
    /// QUIC failed (reset, connection lost).
    Io(io::Error),
}

impl H3Stream {
    /// Wrap a QUIC stream pair; HEADERS frames are refused past `max_head` bytes.
    pub(crate) fn new(send: quinn::SendStream, recv: quinn::RecvStream, max_head: usize) -> H3Stream {
        H3Stream {
            send,
            recv,
            decoder: FrameDecoder::new(max_head),
            pending: Bytes::new(),
            out: Vec::new(),
            ended: false,
            _guard: None,
            _live: None,
        }
    }

    /// The same, for a server stream counted in its connection's `live`.
    pub(crate) fn counted(mut self, live: LiveStream) -> H3Stream {
        self._live = Some(live);
        self
    }

    /// The same, for a client stream that keeps its connection alive.
    pub(crate) fn with_guard(mut self, guard: Arc<ClientGuard>) -> H3Stream {
        self._guard = Some(guard);
        self
    }

    /// Read the next HEADERS frame and decode its fields, with `limit` as
    /// the field section size. DATA before it is H3_FRAME_UNEXPECTED.
    pub(crate) async fn read_head(&mut self, limit: usize) -> Result<Vec<Field>, HeadError> {
        loop {
            match self.decoder.next_frame().map_err(HeadError::H3)? {
                Some(Frame::Headers(block)) => return qpack::decode(&block, limit).map_err(HeadError::H3),
                Some(Frame::Data(_)) | Some(Frame::Settings(_)) | Some(Frame::Goaway(_)) | Some(Frame::Push(_)) => {
                    return Err(HeadError::H3(volley_h3::Error::Protocol {
                        code: Code::FrameUnexpected,
                        reason: "a request stream must start with HEADERS".into(),
                    }))
                }
                None => {}
            }
            let mut chunk = [0u8; 4096];
            match self.recv.read(&mut chunk).await {
                Ok(Some(n)) => self.decoder.push(&chunk[..n]),
                Ok(None) => return Err(HeadError::Ended),
                Err(e) => return Err(HeadError::Io(e.into())),
            }
        }
    }

    /// Send a HEADERS frame (a response or request head).
    pub(crate) async fn send_head(&mut self, block: &[u8]) -> io::Result<()> {
        let mut framed = Vec::with_capacity(block.len() + 8);
        frame::encode(frame::kind::HEADERS, block, &mut framed);
        self.out.extend_from_slice(&framed);
        std::future::poll_fn(|cx| self.poll_drain(cx)).await
    }

    /// Abort both directions with `code` (a malformed or refused stream).
    pub(crate) fn reset(&mut self, code: Code) {
        let code = quinn::VarInt::from_u64(code.value()).unwrap_or(quinn::VarInt::from_u32(0x102));
        let _ = self.send.reset(code);
        let _ = self.recv.stop(code);
    }

    /// The QUIC stream id (HTTP/3 names request streams by it in GOAWAY).
    pub(crate) fn id(&self) -> u64 {
        self.send.id().index() * 4
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.send).poll_write(cx, &self.out))?;
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    fn frame_error(&mut self, code: Code, reason: &str) -> io::Error {
        self.reset(code);
        io::Error::new(io::ErrorKind::InvalidData, format!("HTTP/3 {code:?}: {reason}"))
    }
}

impl AsyncRead for H3Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            match this.decoder.next_frame() {
                Ok(Some(Frame::Data(data))) => this.pending = data,
                // Trailers end the message: nothing may follow them.
                Ok(Some(Frame::Headers(_))) => this.ended = true,
                Ok(Some(_)) => {
                    return Poll::Ready(Err(
                        this.frame_error(Code::FrameUnexpected, "control frame on a request stream")
                    ))
                }
                Err(e) => return Poll::Ready(Err(this.frame_error(e.code(), &e.to_string()))),
                Ok(None) => {
                    // On the stack: an idle stream holds no read buffer.
                    let mut chunk = [0u8; READ_CHUNK];
                    match ready!(this.recv.poll_read(cx, &mut chunk)) {
                        Ok(0) => {
                            if !this.decoder.at_boundary() {
                                return Poll::Ready(Err(
                                    this.frame_error(Code::FrameError, "stream ended inside a frame")
                                ));
                            }
                            this.ended = true;
                        }
                        Ok(n) => this.decoder.push(&chunk[..n]),
                        Err(e) => return Poll::Ready(Err(e.into())),
                    }
                }
            }
        }
    }
}

impl AsyncWrite for H3Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Bytes framed earlier go first; until QUIC takes them, take no more.
        ready!(this.poll_drain(cx))?;
        let total: usize = bufs.iter().map(|b| b.len()).sum::<usize>().min(MAX_DATA_FRAME);
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        frame::encode_header(frame::kind::DATA, total as u64, &mut this.out);
        let mut left = total;
        for b in bufs {
            let take = b.len().min(left);
            this.out.extend_from_slice(&b[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        // The frame is ours now; whatever QUIC does not take yet goes on the
        // next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        // Finishing twice (a second shutdown) is not an error worth reporting.
        let _ = this.send.finish();
        Poll::Ready(Ok(()))
    }
}

/// The stream of an extended CONNECT, waiting for the handler that accepts
/// the WebSocket (the HTTP/3 counterpart of hyper's `OnUpgrade`).
#[derive(Debug, Clone)]
pub(crate) struct H3OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<H3Stream>>>>);

impl H3OnUpgrade {
    pub(crate) fn new(stream: oneshot::Receiver<H3Stream>) -> H3OnUpgrade {
        H3OnUpgrade(Arc::new(Mutex::new(Some(stream))))
    }

    /// Take the receiver (once).
    pub(crate) fn take(&self) -> Option<oneshot::Receiver<H3Stream>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
