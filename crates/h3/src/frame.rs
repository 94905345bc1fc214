//! HTTP/3 frames (RFC 9114, section 7): a type and a length, both varints,
//! then the payload.
//!
//! [`FrameDecoder`] takes bytes as they arrive on a stream and yields
//! frames. A DATA frame's payload is handed out piece by piece as it comes
//! (a WebSocket message never waits for its whole DATA frame); every other
//! known frame is gathered whole, up to a limit, and frames of unknown types
//! are skipped, as the RFC requires (section 9). Which frame may appear on
//! which stream is the caller's rule to apply: the decoder only refuses the
//! HTTP/2 frame types HTTP/3 reserved (section 7.2.8).

use bytes::{Buf, Bytes, BytesMut};

use crate::settings::Settings;
use crate::{varint, Code, Error};

/// Frame type values.
pub mod kind {
    /// A piece of the message body (for a WebSocket: its bytes).
    pub const DATA: u64 = 0x00;
    /// A QPACK field section: the head or the trailers.
    pub const HEADERS: u64 = 0x01;
    /// Cancels a server push.
    pub const CANCEL_PUSH: u64 = 0x03;
    /// The peer's settings, first on its control stream.
    pub const SETTINGS: u64 = 0x04;
    const _: () = assert!(SETTINGS == crate::settings::FRAME_TYPE);
    /// Promises a server push.
    pub const PUSH_PROMISE: u64 = 0x05;
    /// Graceful shutdown: no stream past this id will be served.
    pub const GOAWAY: u64 = 0x07;
    /// The most push ids a client allows.
    pub const MAX_PUSH_ID: u64 = 0x0d;
}

/// HTTP/2 frame types with no meaning in HTTP/3: receiving one is an error.
const RESERVED_H2: [u64; 4] = [0x02, 0x06, 0x08, 0x09];

/// One decoded frame (or DATA piece).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Part of a DATA frame's payload, in order.
    Data(Bytes),
    /// A whole HEADERS frame's field section, still QPACK-encoded.
    Headers(Bytes),
    /// A SETTINGS frame.
    Settings(Settings),
    /// GOAWAY with its stream (or push) id.
    Goaway(u64),
    /// CANCEL_PUSH, MAX_PUSH_ID or PUSH_PROMISE: push is never used by
    /// volley, so these carry only their type for the caller to judge.
    Push(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a frame's type and length.
    Header,
    /// Inside a DATA payload with this much left.
    Data(u64),
    /// Inside an unknown frame's payload with this much left to drop.
    Skip(u64),
    /// Waiting for a whole payload of this type and length.
    Whole(u64, usize),
}

/// Incremental frame decoder for one stream.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    state: State,
    max_payload: usize,
}

impl FrameDecoder {
    /// A decoder that refuses non-DATA frames longer than `max_payload`
    /// (a HEADERS frame's limit is the field section size we advertise).
    pub fn new(max_payload: usize) -> FrameDecoder {
        FrameDecoder {
            buf: BytesMut::new(),
            state: State::Header,
            max_payload,
        }
    }

    /// Append bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the stream is between frames: a stream that ends when this
    /// is false ended inside a frame (H3_FRAME_ERROR).
    pub fn at_boundary(&self) -> bool {
        self.state == State::Header && self.buf.is_empty()
    }

    /// The next frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            match self.state {
                State::Header => {
                    let Some((ty, a)) = varint::decode(&self.buf) else {
                        return Ok(None);
                    };
                    let Some((len, b)) = varint::decode(&self.buf[a..]) else {
                        return Ok(None);
                    };
                    self.buf.advance(a + b);
                    if RESERVED_H2.contains(&ty) {
                        return Err(Error::protocol(
                            Code::FrameUnexpected,
                            format!("frame type {ty:#x} is reserved (HTTP/2 only)"),
                        ));
                    }
                    self.state = match ty {
                        kind::DATA => State::Data(len),
                        kind::HEADERS
                        | kind::SETTINGS
                        | kind::GOAWAY
                        | kind::CANCEL_PUSH
                        | kind::MAX_PUSH_ID
                        | kind::PUSH_PROMISE => {
                            let len = usize::try_from(len).unwrap_or(usize::MAX);
                            if len > self.max_payload {
                                return Err(Error::protocol(
                                    if ty == kind::HEADERS {
                                        Code::ExcessiveLoad
                                    } else {
                                        Code::FrameError
                                    },
                                    format!("frame {ty:#x} of {len} bytes, over the limit of {}", self.max_payload),
                                ));
                            }
                            State::Whole(ty, len)
                        }
                        _ => State::Skip(len),
                    };
                    if self.state == State::Data(0) {
                        self.state = State::Header;
                        return Ok(Some(Frame::Data(Bytes::new())));
                    }
                }
                State::Data(left) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(self.buf.len());
                    let piece = self.buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 { State::Header } else { State::Data(left) };
                    return Ok(Some(Frame::Data(piece)));
                }
                State::Skip(left) => {
                    if left == 0 {
                        self.state = State::Header;
                        continue;
                    }
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(self.buf.len());
                    self.buf.advance(take);
                    self.state = State::Skip(left - take as u64);
                }
                State::Whole(ty, len) => {
                    if self.buf.len() < len {
                        return Ok(None);
                    }
                    let payload = self.buf.split_to(len).freeze();
                    self.state = State::Header;
                    return whole(ty, payload).map(Some);
                }
            }
        }
    }
}

fn whole(ty: u64, payload: Bytes) -> Result<Frame, Error> {
    let id = |payload: &Bytes| match varint::decode(payload) {
        Some((id, n)) if n == payload.len() => Ok(id),
        _ => Err(Error::protocol(
            Code::FrameError,
            format!("frame {ty:#x} is not one varint"),
        )),
    };
    Ok(match ty {
        kind::HEADERS => Frame::Headers(payload),
        kind::SETTINGS => Frame::Settings(Settings::decode(&payload)?),
        kind::GOAWAY => Frame::Goaway(id(&payload)?),
        _ => Frame::Push(ty),
    })
}

/// Append a frame header: type and payload length.
pub fn encode_header(ty: u64, len: u64, out: &mut Vec<u8>) {
    varint::encode(ty, out);
    varint::encode(len, out);
}

/// Append a whole frame.
pub fn encode(ty: u64, payload: &[u8], out: &mut Vec<u8>) {
    encode_header(ty, payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// A GOAWAY frame with this id.
pub fn goaway(id: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    varint::encode(id, &mut payload);
    let mut out = Vec::new();
    encode(kind::GOAWAY, &payload, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(decoder: &mut FrameDecoder) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn data_flows_in_pieces_and_unknown_frames_are_skipped() {
        let mut bytes = Vec::new();
        encode(kind::HEADERS, b"abc", &mut bytes);
        encode(0x21, b"grease!", &mut bytes); // reserved 0x1f * N + 0x21
        encode(kind::DATA, b"hello world", &mut bytes);
        let mut decoder = FrameDecoder::new(64);
        let mut seen = Vec::new();
        // One byte at a time: every split point must work.
        for byte in &bytes {
            decoder.push(std::slice::from_ref(byte));
            seen.extend(all(&mut decoder));
        }
        assert_eq!(seen[0], Frame::Headers(Bytes::from_static(b"abc")));
        let data: Vec<u8> = seen[1..]
            .iter()
            .flat_map(|f| match f {
                Frame::Data(d) => d.to_vec(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(data, b"hello world");
        assert!(decoder.at_boundary());
    }

    #[test]
    fn oversized_headers_and_reserved_types_are_errors() {
        let mut bytes = Vec::new();
        encode(kind::HEADERS, &[0; 100], &mut bytes);
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&bytes);
        assert_eq!(decoder.next_frame().unwrap_err().code(), Code::ExcessiveLoad);

        let mut decoder = FrameDecoder::new(64);
        let mut bytes = Vec::new();
        encode(0x06, b"", &mut bytes); // HTTP/2 PING
        decoder.push(&bytes);
        assert_eq!(decoder.next_frame().unwrap_err().code(), Code::FrameUnexpected);
    }

    #[test]
    fn goaway_round_trips() {
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&goaway(400));
        assert_eq!(decoder.next_frame().unwrap(), Some(Frame::Goaway(400)));
    }
}
