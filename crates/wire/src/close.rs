//! Close codes and close frame payloads (RFC 6455 sections 5.5.1 and 7.4).

use bytes::{BufMut, Bytes, BytesMut};

use crate::message::Utf8Bytes;
use crate::Error;

/// A close status code.
///
/// A newtype rather than an enum: applications may use any code in
/// 3000-4999, and an unknown code must still be representable to be rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// The purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// The endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// No status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// The connection dropped without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// Data inconsistent with the message type, such as invalid UTF-8 in text.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// A policy was violated (the generic code when nothing fits better).
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// A frame or message exceeded the size limit.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// The client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// The service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// Overloaded or too slow: try again later (used for slow consumers).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// A gateway received an invalid response upstream.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// Whether a peer may send this code in a close frame.
    ///
    /// RFC 6455 section 7.4 allows 1000-1003, 1007-1011 and 3000-4999. We also
    /// accept 1012-1014: IANA registered them after the RFC, browsers send and
    /// accept them, and volley itself closes slow consumers with 1013.
    /// 1004-1006 and 1015 are reserved and must never appear on the wire.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The code and reason carried by a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Why the endpoint closed.
    pub code: CloseCode,
    /// Human-readable detail; at most 123 bytes on the wire.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// A close frame with a code and a reason.
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }

    /// Parse and validate a received close payload. An empty payload means the
    /// peer gave no status.
    pub fn parse(payload: &[u8]) -> Result<Option<CloseFrame>, Error> {
        match payload.len() {
            0 => Ok(None),
            1 => Err(Error::ClosePayloadOneByte),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_on_wire() {
                    return Err(Error::InvalidCloseCode(code.0));
                }
                let reason =
                    Utf8Bytes::try_from(Bytes::copy_from_slice(&payload[2..])).map_err(|_| Error::InvalidUtf8)?;
                Ok(Some(CloseFrame { code, reason }))
            }
        }
    }

    /// The close payload: code then reason, the reason cut at a character
    /// boundary to fit the 125-byte control frame limit.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16(self.code.0);
        let reason = self.reason.as_str();
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        out.put_slice(&reason.as_bytes()[..end]);
    }
}

/// Each protocol violation maps to its close code here, beside the codes,
/// so the error type needs to know nothing about close frames.
impl Error {
    /// The close code to fail the connection with (RFC 6455 section 7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            Error::FrameTooBig { .. } | Error::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            Error::InvalidUtf8 | Error::BadDeflate => CloseCode::INVALID_PAYLOAD,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_validity() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(ok).is_valid_on_wire(), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!CloseCode(bad).is_valid_on_wire(), "{bad}");
        }
    }

    #[test]
    fn parse_rules() {
        assert_eq!(CloseFrame::parse(&[]), Ok(None));
        assert_eq!(CloseFrame::parse(&[3]), Err(Error::ClosePayloadOneByte));
        assert_eq!(CloseFrame::parse(&[0x03, 0xEC]), Err(Error::InvalidCloseCode(1004)));
        assert_eq!(CloseFrame::parse(&[0x03, 0xE8, 0xFF]), Err(Error::InvalidUtf8));
        let f = CloseFrame::parse(&[0x03, 0xE8, b'o', b'k']).unwrap().unwrap();
        assert_eq!(f.code, CloseCode::NORMAL);
        assert_eq!(f.reason.as_str(), "ok");
    }

    #[test]
    fn long_reason_is_cut_on_a_char_boundary() {
        let frame = CloseFrame::new(CloseCode::NORMAL, "é".repeat(100));
        let mut out = BytesMut::new();
        frame.encode(&mut out);
        assert!(out.len() <= 125);
        assert!(std::str::from_utf8(&out[2..]).is_ok());
    }
}
