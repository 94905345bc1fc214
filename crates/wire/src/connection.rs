//! The per-connection protocol state machine.
//!
//! [`Connection`] owns the buffers. The transport reads socket bytes into
//! [`Connection::read_buf`] and calls [`Connection::poll_event`] until it
//! returns `None`; it writes what [`Connection::output`] lists (one vectored
//! write) and reports progress with [`Connection::advance_output`].
//! Everything in between (frame parsing, unmasking, UTF-8 validation,
//! reassembly, pong replies, the close handshake) happens here, without I/O.
//!
//! Payloads are unmasked in place in the read buffer and handed out as
//! [`Bytes`] split off that buffer, so an unfragmented message is never copied
//! after it leaves the socket. Large server payloads go out the same way: by
//! reference, never copied into the write buffer.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::OnceLock;

use bytes::{Buf, Bytes, BytesMut};

use crate::close::CloseFrame;
use crate::deflate::{compress_standalone, Compressor, Decompressor, DeflateConfig, DeflateParams};
use crate::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD};
use crate::mask::apply_mask;
use crate::message::{Message, Utf8Bytes};
use crate::utf8::Utf8Validator;
use crate::Error;

/// Which end of the connection we are. It decides the masking rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts connections; expects masked frames, sends unmasked ones.
    Server,
    /// Opens connections; sends masked frames, expects unmasked ones.
    Client,
}

/// Limits that protect the endpoint from its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Largest payload accepted in one frame. A larger announced length fails
    /// the connection with 1009 before any of the payload is buffered.
    pub max_frame_size: usize,
    /// Largest message accepted after reassembly; 1009 beyond it.
    pub max_message_size: usize,
}

impl Default for Config {
    /// 16 MiB frames and 64 MiB messages: room for the conformance suite's
    /// largest cases while still bounding what one peer can make us hold.
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
        }
    }
}

/// Something the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text or binary message.
    Message(Message),
    /// A ping. The pong reply has already been queued in the write buffer.
    Ping(Bytes),
    /// A pong, usually the answer to our keepalive ping.
    Pong(Bytes),
    /// The peer's close frame (`None` when it carried no status code). If we
    /// had not closed yet, the echoing close frame is already queued.
    Close(Option<CloseFrame>),
}

/// The frame currently being received.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    header: FrameHeader,
    header_len: usize,
    /// Payload bytes already unmasked (and validated, for text).
    processed: usize,
    /// Whether this frame carries text (a text frame or a text continuation).
    text: bool,
    /// Whether the message it belongs to is compressed (RSV1 on its first frame).
    compressed: bool,
}

/// A fragmented message being reassembled.
#[derive(Debug)]
struct Assembly {
    text: bool,
    /// Uncompressed messages collect raw payloads here...
    buf: BytesMut,
    /// ...compressed ones collect their inflated bytes here.
    inflated: Option<Vec<u8>>,
}

/// permessage-deflate state of a connection that negotiated it.
#[derive(Debug)]
struct Deflate {
    compressor: Compressor,
    decompressor: Decompressor,
    /// Our compressor resets each message: compressed frames can be shared.
    own_no_context_takeover: bool,
    own_window_bits: u8,
    threshold: usize,
    level: u32,
    scratch: Vec<u8>,
}

/// Smallest read reservation: what an idle connection holds.
const MIN_READ: usize = 512;
/// Largest read reservation when no frame tells us better.
const MAX_READ_HINT: usize = 64 * 1024;
/// Server payloads from this size on are queued by reference, not copied.
const ZERO_COPY_MIN: usize = 4096;
/// Most we reserve at once for a large frame, so a header announcing a big
/// payload that never comes cannot make us allocate all of it up front.
const MAX_READ_RESERVE: usize = 1 << 20;

/// One WebSocket connection's protocol state.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Output that goes before `write_buf`: large payloads (and shared
    /// prepared frames) queued as they are, to be written without a copy.
    shared: VecDeque<Bytes>,
    shared_len: usize,
    frame: Option<InFrame>,
    assembly: Option<Assembly>,
    utf8: Utf8Validator,
    /// How much to reserve for the next read: grows while reads fill it,
    /// shrinks when they do not, so idle connections stay small and busy
    /// ones read in few syscalls.
    read_hint: usize,
    /// RSV bits an extension has claimed (RSV1 with permessage-deflate).
    allowed_rsv: u8,
    deflate: Option<Box<Deflate>>,
    close_sent: bool,
    close_received: bool,
    failed: bool,
}

impl Connection {
    /// A connection whose opening handshake is complete.
    pub fn new(role: Role, config: Config) -> Self {
        Connection {
            role,
            config,
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            shared: VecDeque::new(),
            shared_len: 0,
            frame: None,
            assembly: None,
            utf8: Utf8Validator::new(),
            read_hint: MIN_READ,
            allowed_rsv: 0,
            deflate: None,
            close_sent: false,
            close_received: false,
            failed: false,
        }
    }

    /// Turn on permessage-deflate with the parameters the handshake agreed
    /// (`config` supplies the local threshold and level).
    pub fn enable_deflate(&mut self, params: DeflateParams, config: &DeflateConfig) {
        let (own_reset, own_bits, peer_reset) = match self.role {
            Role::Server => (
                params.server_no_context_takeover,
                params.server_max_window_bits,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_no_context_takeover,
                params.client_max_window_bits,
                params.server_no_context_takeover,
            ),
        };
        self.allowed_rsv = 0b100;
        self.deflate = Some(Box::new(Deflate {
            compressor: Compressor::new(own_bits, config.level, own_reset),
            decompressor: Decompressor::new(peer_reset),
            own_no_context_takeover: own_reset,
            own_window_bits: own_bits.clamp(9, 15),
            threshold: config.threshold,
            level: config.level,
            scratch: Vec::new(),
        }));
    }

    /// Whether permessage-deflate is on.
    pub fn deflate_enabled(&self) -> bool {
        self.deflate.is_some()
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The buffer the transport reads socket bytes into. Bytes that arrived
    /// with the handshake go here too.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.read_buf
    }

    /// The read buffer with spare room for the next read: the rest of the
    /// frame in progress (at most 1 MiB at once), or what recent reads
    /// suggest. Report what the read brought with [`Self::note_read`].
    pub fn read_buf_reserved(&mut self) -> &mut BytesMut {
        let want = match &self.frame {
            Some(f) => {
                let total = f.header_len as u64 + f.header.payload_len;
                let missing = total.saturating_sub(self.read_buf.len() as u64);
                (missing as usize).clamp(self.read_hint, MAX_READ_RESERVE)
            }
            None => self.read_hint,
        };
        self.read_buf.reserve(want);
        &mut self.read_buf
    }

    /// Tell the connection a read brought `n` bytes into a reservation of
    /// `room` bytes, to size the next one.
    pub fn note_read(&mut self, n: usize, room: usize) {
        if n >= room {
            self.read_hint = (self.read_hint * 2).min(MAX_READ_HINT);
        } else if n < self.read_hint / 4 {
            self.read_hint = (self.read_hint / 2).max(MIN_READ);
        }
    }

    /// All bytes waiting to be written, as one buffer. Convenient for tests
    /// and simple transports; it copies any payloads queued without a copy,
    /// so fast transports use [`output`](Self::output) and
    /// [`advance_output`](Self::advance_output) instead.
    pub fn write_buf(&mut self) -> &mut BytesMut {
        if !self.shared.is_empty() {
            let mut flat = BytesMut::with_capacity(self.write_len());
            for chunk in self.shared.drain(..) {
                flat.extend_from_slice(&chunk);
            }
            flat.extend_from_slice(&self.write_buf);
            self.write_buf = flat;
            self.shared_len = 0;
        }
        &mut self.write_buf
    }

    /// The bytes waiting to be written, in order, as slices for one vectored
    /// write; returns how many of `dst` were filled.
    pub fn output<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let chunks = self
            .shared
            .iter()
            .map(|c| &c[..])
            .chain(std::iter::once(&self.write_buf[..]));
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(chunks.filter(|c| !c.is_empty())) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// Drop the first `n` bytes of output: the transport wrote them.
    pub fn advance_output(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.shared.front_mut() else {
                let n = n.min(self.write_buf.len());
                self.write_buf.advance(n);
                return;
            };
            let take = n.min(front.len());
            front.advance(take);
            self.shared_len -= take;
            n -= take;
            if front.is_empty() {
                self.shared.pop_front();
            }
        }
    }

    /// Number of bytes waiting to be written.
    pub fn write_len(&self) -> usize {
        self.shared_len + self.write_buf.len()
    }

    /// Queue `payload` after what is already queued, without copying it.
    fn queue_shared(&mut self, payload: Bytes) {
        if !self.write_buf.is_empty() {
            let staged = self.write_buf.split().freeze();
            self.shared_len += staged.len();
            self.shared.push_back(staged);
        }
        self.shared_len += payload.len();
        self.shared.push_back(payload);
    }

    /// Whether we have sent a close frame (or failed the connection).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether the peer's close frame has arrived.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Whether no more events can come: the close handshake completed, the
    /// peer's close arrived, or the connection failed.
    pub fn is_done(&self) -> bool {
        self.close_received || self.failed
    }

    /// Decode the next event from the read buffer.
    ///
    /// Returns `Ok(None)` when more bytes are needed (or nothing more will be
    /// accepted). On a protocol violation the matching close frame is queued
    /// in the write buffer, the connection stops accepting input, and the
    /// error is returned once; the transport should flush and close.
    pub fn poll_event(&mut self) -> Result<Option<Event>, Error> {
        if self.failed || self.close_received {
            return Ok(None);
        }
        match self.decode() {
            Ok(event) => Ok(event),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.failed = true;
        if !self.close_sent {
            let mut reason = e.to_string();
            reason.truncate(100);
            self.queue_close(Some(&CloseFrame::new(e.close_code(), reason)));
        }
        e
    }

    fn decode(&mut self) -> Result<Option<Event>, Error> {
        loop {
            let mut frame = match self.frame {
                Some(f) => f,
                None => {
                    let Some((header, header_len)) = FrameHeader::parse(&self.read_buf)? else {
                        return Ok(None);
                    };
                    let (text, compressed) = self.check_header(&header)?;
                    InFrame {
                        header,
                        header_len,
                        processed: 0,
                        text,
                        compressed,
                    }
                }
            };
            let len = frame.header.payload_len as usize;
            let available = (self.read_buf.len() - frame.header_len).min(len);
            if available > frame.processed {
                let chunk = &mut self.read_buf[frame.header_len + frame.processed..frame.header_len + available];
                if let Some(key) = frame.header.mask {
                    apply_mask(chunk, key, frame.processed);
                }
                // Compressed text is validated after inflating, not here.
                if frame.text && !frame.compressed {
                    self.utf8.feed(chunk).map_err(|_| Error::InvalidUtf8)?;
                }
                frame.processed = available;
            }
            if frame.processed < len {
                self.frame = Some(frame);
                return Ok(None);
            }
            self.frame = None;
            self.read_buf.advance(frame.header_len);
            let payload = self.read_buf.split_to(len);
            if let Some(event) = self.complete_frame(frame, payload)? {
                return Ok(Some(event));
            }
            if self.close_received {
                return Ok(None);
            }
        }
    }

    /// Rules that depend on our state rather than the header alone. Returns
    /// whether the payload is text, and whether it is compressed.
    fn check_header(&mut self, h: &FrameHeader) -> Result<(bool, bool), Error> {
        if h.rsv & !self.allowed_rsv != 0 {
            return Err(Error::ReservedBits);
        }
        let rsv1 = h.rsv & 0b100 != 0;
        // RSV1 marks a compressed message, only on its first frame.
        if rsv1 && !matches!(h.opcode, OpCode::Text | OpCode::Binary) {
            return Err(Error::ReservedBits);
        }
        let masked = h.mask.is_some();
        if masked != (self.role == Role::Server) {
            return Err(Error::BadMasking);
        }
        if h.payload_len > self.config.max_frame_size as u64 {
            return Err(Error::FrameTooBig {
                size: h.payload_len,
                limit: self.config.max_frame_size,
            });
        }
        let limit = self.config.max_message_size;
        // Compressed sizes say nothing about the message size: those are
        // checked while inflating instead.
        match (h.opcode, &self.assembly) {
            (OpCode::Continuation, None) => Err(Error::UnexpectedContinuation),
            (OpCode::Continuation, Some(a)) => {
                let size = a.buf.len() as u64 + h.payload_len;
                if a.inflated.is_none() && size > limit as u64 {
                    return Err(Error::MessageTooBig { size, limit });
                }
                Ok((a.text, a.inflated.is_some()))
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => Err(Error::ExpectedContinuation),
            (OpCode::Text | OpCode::Binary, None) => {
                if !rsv1 && h.payload_len > limit as u64 {
                    return Err(Error::MessageTooBig {
                        size: h.payload_len,
                        limit,
                    });
                }
                Ok((h.opcode == OpCode::Text, rsv1))
            }
            _ => Ok((false, false)),
        }
    }

    fn complete_frame(&mut self, frame: InFrame, payload: BytesMut) -> Result<Option<Event>, Error> {
        let fin = frame.header.fin;
        match frame.header.opcode {
            OpCode::Text | OpCode::Binary if frame.compressed => {
                let mut inflated = Vec::new();
                self.inflate(frame.text, &payload, &mut inflated)?;
                if fin {
                    return self.finish_compressed(frame.text, inflated);
                }
                self.assembly = Some(Assembly {
                    text: frame.text,
                    buf: BytesMut::new(),
                    inflated: Some(inflated),
                });
                Ok(None)
            }
            OpCode::Text | OpCode::Binary if fin => {
                if frame.text {
                    self.utf8.finish().map_err(|_| Error::InvalidUtf8)?;
                }
                Ok(self.deliver(frame.text, payload.freeze()))
            }
            OpCode::Text | OpCode::Binary => {
                self.assembly = Some(Assembly {
                    text: frame.text,
                    buf: payload,
                    inflated: None,
                });
                Ok(None)
            }
            OpCode::Continuation => {
                let Some(mut assembly) = self.assembly.take() else {
                    return Err(Error::UnexpectedContinuation);
                };
                if let Some(mut inflated) = assembly.inflated.take() {
                    self.inflate(assembly.text, &payload, &mut inflated)?;
                    if fin {
                        return self.finish_compressed(assembly.text, inflated);
                    }
                    assembly.inflated = Some(inflated);
                    self.assembly = Some(assembly);
                    return Ok(None);
                }
                assembly.buf.extend_from_slice(&payload);
                if !fin {
                    self.assembly = Some(assembly);
                    return Ok(None);
                }
                if assembly.text {
                    self.utf8.finish().map_err(|_| Error::InvalidUtf8)?;
                }
                Ok(self.deliver(assembly.text, assembly.buf.freeze()))
            }
            OpCode::Ping => {
                if !self.close_sent {
                    self.queue_frame(OpCode::Pong, true, &payload);
                }
                Ok(Some(Event::Ping(payload.freeze())))
            }
            OpCode::Pong => Ok(Some(Event::Pong(payload.freeze()))),
            OpCode::Close => {
                let frame = CloseFrame::parse(&payload)?;
                self.close_received = true;
                if !self.close_sent {
                    // Echo the peer's status (RFC 6455 section 5.5.1).
                    let reply = frame.as_ref().map(|f| CloseFrame::new(f.code, ""));
                    self.queue_close(reply.as_ref());
                }
                Ok(Some(Event::Close(frame)))
            }
        }
    }

    /// Inflate part of a compressed message onto `out`, validating new text.
    fn inflate(&mut self, text: bool, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let Some(deflate) = self.deflate.as_mut() else {
            return Err(Error::ReservedBits);
        };
        let start = out.len();
        deflate.decompressor.inflate(input, out, self.config.max_message_size)?;
        if text {
            self.utf8.feed(&out[start..]).map_err(|_| Error::InvalidUtf8)?;
        }
        Ok(())
    }

    fn finish_compressed(&mut self, text: bool, mut out: Vec<u8>) -> Result<Option<Event>, Error> {
        let Some(deflate) = self.deflate.as_mut() else {
            return Err(Error::ReservedBits);
        };
        let start = out.len();
        deflate
            .decompressor
            .finish_message(&mut out, self.config.max_message_size)?;
        if text {
            self.utf8.feed(&out[start..]).map_err(|_| Error::InvalidUtf8)?;
            self.utf8.finish().map_err(|_| Error::InvalidUtf8)?;
        }
        Ok(self.deliver(text, Bytes::from(out)))
    }

    fn deliver(&self, text: bool, payload: Bytes) -> Option<Event> {
        if self.close_sent {
            // Data after our close frame is discarded (RFC 6455 section 1.4).
            return None;
        }
        let message = if text {
            Message::Text(Utf8Bytes::from_validated(payload))
        } else {
            Message::Binary(payload)
        };
        Some(Event::Message(message))
    }

    /// Queue a data message as one frame, compressed when permessage-deflate
    /// is on and the message reaches the threshold.
    pub fn send(&mut self, message: &Message) -> Result<(), Error> {
        if self.close_sent {
            return Err(Error::SendAfterClose);
        }
        let opcode = opcode_of(message);
        let payload = message.as_bytes();
        match self.deflate.as_mut() {
            Some(d) if payload.len() >= d.threshold => {
                let mut scratch = std::mem::take(&mut d.scratch);
                d.compressor.compress(payload, &mut scratch);
                self.queue_frame_rsv(opcode, true, 0b100, &scratch);
                if let Some(d) = self.deflate.as_mut() {
                    d.scratch = scratch;
                }
            }
            // A server payload this large goes out as it is: header here,
            // payload by reference, one vectored write for both.
            _ if self.role == Role::Server && payload.len() >= ZERO_COPY_MIN => {
                let header = FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode,
                    mask: None,
                    payload_len: payload.len() as u64,
                };
                header.encode(&mut self.write_buf);
                self.queue_shared(message.payload());
            }
            _ => self.queue_frame(opcode, true, payload),
        }
        Ok(())
    }

    /// Queue one frame of a message the caller fragments itself: the first
    /// frame with `Text` or `Binary`, the rest with `Continuation`, the last
    /// with `fin`. Control frames go through [`ping`](Self::ping),
    /// [`pong`](Self::pong) and [`close`](Self::close).
    pub fn send_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<(), Error> {
        if opcode.is_control() {
            return Err(Error::FragmentedControlFrame);
        }
        if self.close_sent {
            return Err(Error::SendAfterClose);
        }
        self.queue_frame(opcode, fin, payload);
        Ok(())
    }

    /// Queue a message prepared once for many connections. A server shares
    /// the prepared frame bytes; with permessage-deflate and no context
    /// takeover on our side it shares the compressed frame too. Otherwise
    /// (a client, which must mask; a compressor that keeps context) the
    /// message is encoded for this connection alone.
    pub fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        if self.close_sent {
            return Err(Error::SendAfterClose);
        }
        if self.role == Role::Client {
            return self.send(&prepared.message);
        }
        let frame = match self.deflate.as_deref() {
            None => prepared.plain_frame(),
            Some(d) if prepared.message.len() < d.threshold => prepared.plain_frame(),
            Some(d) if d.own_no_context_takeover => prepared.compressed_frame(d.own_window_bits, d.level),
            Some(_) => return self.send(&prepared.message),
        };
        if frame.len() >= ZERO_COPY_MIN {
            self.queue_shared(frame.clone());
        } else {
            self.write_buf.extend_from_slice(frame);
        }
        Ok(())
    }

    /// Queue a ping (at most 125 bytes of payload).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.control(OpCode::Ping, payload)
    }

    /// Queue an unsolicited pong (at most 125 bytes of payload).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.control(OpCode::Pong, payload)
    }

    fn control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::ControlFrameTooLong(payload.len() as u64));
        }
        if self.close_sent {
            return Err(Error::SendAfterClose);
        }
        self.queue_frame(opcode, true, payload);
        Ok(())
    }

    /// Start the close handshake. Codes that may not be sent (1005, 1006,
    /// 1015, out of range) are refused. Closing twice is a no-op.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if let Some(f) = &frame {
            if !f.code.is_valid_on_wire() {
                return Err(Error::InvalidCloseCode(f.code.0));
            }
        }
        if !self.close_sent {
            self.queue_close(frame.as_ref());
        }
        Ok(())
    }

    fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        let mut payload = BytesMut::new();
        if let Some(f) = frame {
            f.encode(&mut payload);
        }
        self.queue_frame(OpCode::Close, true, &payload);
        self.close_sent = true;
    }

    fn queue_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.queue_frame_rsv(opcode, fin, 0, payload)
    }

    fn queue_frame_rsv(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) {
        let mask = match self.role {
            Role::Client => Some(rand::random::<[u8; 4]>()),
            Role::Server => None,
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        header.encode_reserving(&mut self.write_buf);
        let start = self.write_buf.len();
        self.write_buf.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.write_buf[start..], key, 0);
        }
    }
}

fn opcode_of(message: &Message) -> OpCode {
    match message {
        Message::Text(_) => OpCode::Text,
        Message::Binary(_) => OpCode::Binary,
    }
}

/// Encode an unmasked frame.
fn server_frame(opcode: OpCode, rsv: u8, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut out = BytesMut::new();
    header.encode_reserving(&mut out);
    out.extend_from_slice(payload);
    out.freeze()
}

/// A message encoded once, to be written to many connections.
///
/// Server frames are unmasked, so a message fanned out to N connections is
/// the same bytes N times. The plain frame is built on first use; compressed
/// frames are built once per window size, on first use by a connection whose
/// compressor resets every message (the only case where the compressed bytes
/// do not depend on the connection's history). Share it behind an `Arc`.
#[derive(Debug)]
pub struct PreparedMessage {
    message: Message,
    plain: OnceLock<Bytes>,
    /// Indexed by window bits 9..=15.
    compressed: [OnceLock<Bytes>; 7],
}

impl PreparedMessage {
    /// Prepare `message`; nothing is encoded until a connection needs it.
    pub fn new(message: Message) -> Self {
        PreparedMessage {
            message,
            plain: OnceLock::new(),
            compressed: Default::default(),
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The uncompressed server frame.
    pub fn plain_frame(&self) -> &Bytes {
        self.plain
            .get_or_init(|| server_frame(opcode_of(&self.message), 0, self.message.as_bytes()))
    }

    /// The compressed server frame for a sender without context takeover.
    pub fn compressed_frame(&self, window_bits: u8, level: u32) -> &Bytes {
        let bits = window_bits.clamp(9, 15);
        self.compressed[usize::from(bits - 9)].get_or_init(|| {
            let payload = compress_standalone(self.message.as_bytes(), bits, level);
            server_frame(opcode_of(&self.message), 0b100, &payload)
        })
    }
}
