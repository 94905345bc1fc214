//! Frame boundaries in a spliced WebSocket, without touching payloads.
//!
//! The proxy copies a WebSocket's bytes as they come. To close one in a
//! drain it must put its close frame between two frames, never inside one;
//! and to log how a WebSocket ended it must see the close frames go by. So
//! each direction walks the frame headers (2 to 14 bytes a frame) and skips
//! the payloads; only a close frame's first two payload bytes, its code, are
//! read. A stream that stops being valid framing is no longer followed: a
//! drain then just closes the connection.

use volley_wire::{FrameHeader, OpCode};

/// One direction's position in the frame stream.
#[derive(Debug, Default)]
pub struct Frames {
    head: [u8; 14],
    have: usize,
    /// Payload bytes left in the current frame.
    left: u64,
    /// Reading a close frame's code: its mask, the bytes so far, how many.
    close: Option<([u8; 4], [u8; 2], usize, u64)>,
    broken: bool,
    /// The code of the last close frame seen (1005 when it had none).
    pub last_close: Option<u16>,
}

impl Frames {
    /// Between two frames: a frame may be put here.
    pub fn at_boundary(&self) -> bool {
        !self.broken && self.have == 0 && self.left == 0
    }

    /// The stream is not valid framing: boundaries are unknown.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Follow `buf`; with `stop_at_boundary`, stop at the first boundary
    /// (possibly at once) and return how many bytes were taken.
    pub fn feed(&mut self, buf: &[u8], stop_at_boundary: bool) -> usize {
        let mut i = 0;
        while i < buf.len() {
            if self.broken {
                return buf.len();
            }
            if stop_at_boundary && self.at_boundary() {
                return i;
            }
            if self.left > 0 {
                let take = self.left.min((buf.len() - i) as u64) as usize;
                self.read_close_code(&buf[i..i + take]);
                self.left -= take as u64;
                i += take;
                if self.left == 0 {
                    self.end_frame();
                }
                continue;
            }
            let copy = (self.head.len() - self.have).min(buf.len() - i);
            self.head[self.have..self.have + copy].copy_from_slice(&buf[i..i + copy]);
            match FrameHeader::parse(&self.head[..self.have + copy]) {
                Ok(Some((header, len))) => {
                    i += len - self.have;
                    self.have = 0;
                    self.left = header.payload_len;
                    if header.opcode == OpCode::Close {
                        self.close = Some((header.mask.unwrap_or([0; 4]), [0; 2], 0, 0));
                    }
                    if self.left == 0 {
                        self.end_frame();
                    }
                }
                Ok(None) => {
                    self.have += copy;
                    i += copy;
                }
                Err(_) => self.broken = true,
            }
        }
        i
    }

    fn read_close_code(&mut self, payload: &[u8]) {
        if let Some((mask, code, got, offset)) = &mut self.close {
            for b in payload {
                if *got < 2 {
                    code[*got] = b ^ mask[(*offset % 4) as usize];
                    *got += 1;
                }
                *offset += 1;
                if *got == 2 {
                    break;
                }
            }
        }
    }

    fn end_frame(&mut self) {
        if let Some((_, code, got, _)) = self.close.take() {
            self.last_close = Some(if got == 2 { u16::from_be_bytes(code) } else { 1005 });
        }
    }
}

/// A server's close frame (unmasked) with `code` and `reason`, the reason
/// cut to fit a control frame.
pub(crate) fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut frame = vec![0x88, (2 + reason.len()) as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => out.push(m | n as u8),
            n @ 126..=0xFFFF => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    #[test]
    fn boundaries_and_close_codes_whatever_the_chunking() {
        let mut stream = frame(0x1, b"hello", None);
        let big = vec![7u8; 70_000];
        stream.extend(frame(0x2, &big, Some([1, 2, 3, 4])));
        let first_two = stream.len();
        stream.extend(frame(0x8, &[0x03, 0xF4, b'x'], Some([9, 8, 7, 6])));
        for chunk in [1, 2, 3, 7, 13, 4096, stream.len()] {
            let mut f = Frames::default();
            let mut boundaries = vec![];
            let mut pos = 0;
            for piece in stream.chunks(chunk) {
                let mut at = 0;
                while at < piece.len() {
                    let n = f.feed(&piece[at..], true);
                    if n == 0 {
                        // At a boundary: step one byte past it.
                        boundaries.push(pos + at);
                        at += f.feed(&piece[at..at + 1], false);
                    } else {
                        at += n;
                    }
                }
                pos += piece.len();
            }
            assert!(f.at_boundary());
            assert_eq!(f.last_close, Some(1012), "chunk {chunk}");
            assert!(
                boundaries.contains(&7) && boundaries.contains(&first_two),
                "chunk {chunk}: {boundaries:?}"
            );
        }
        let mut f = Frames::default();
        f.feed(&[0x83, 0x00], false);
        assert!(f.broken(), "a reserved opcode is not framing");
        let mut f = Frames::default();
        f.feed(&frame(0x8, &[], None), false);
        assert_eq!(f.last_close, Some(1005));
        assert_eq!(close_frame(1012, &"é".repeat(100)).len(), 2 + 2 + 122);
    }
}
