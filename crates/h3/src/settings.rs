//! The SETTINGS frame (RFC 9114, section 7.2.4), sent first on each side's
//! control stream. A server that accepts WebSockets says
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` (RFC 9220, section 3), and a
//! client must not send an extended CONNECT before it has seen that.

use crate::{varint, Code, Error};

/// The SETTINGS frame type (`frame::kind::SETTINGS`; written here so the
/// frame decoder can parse settings without a module cycle).
pub(crate) const FRAME_TYPE: u64 = 0x04;

/// Setting identifiers.
pub mod id {
    /// QPACK dynamic table capacity the sender's decoder allows.
    pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
    /// Largest field section the sender accepts.
    pub const MAX_FIELD_SECTION_SIZE: u64 = 0x06;
    /// Streams that may block on QPACK table updates.
    pub const QPACK_BLOCKED_STREAMS: u64 = 0x07;
    /// Extended CONNECT is accepted (RFC 9220).
    pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
    /// HTTP datagrams (RFC 9297).
    pub const H3_DATAGRAM: u64 = 0x33;
}

/// HTTP/2 settings that must not appear in HTTP/3 (section 7.2.4.1).
const RESERVED_H2: [u64; 5] = [0x00, 0x02, 0x03, 0x04, 0x05];

/// The settings volley reads and sends; unknown ones are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// QPACK_MAX_TABLE_CAPACITY (volley sends 0: static table and literals only).
    pub qpack_max_table_capacity: u64,
    /// MAX_FIELD_SECTION_SIZE, unlimited when absent.
    pub max_field_section_size: Option<u64>,
    /// QPACK_BLOCKED_STREAMS.
    pub qpack_blocked_streams: u64,
    /// ENABLE_CONNECT_PROTOCOL.
    pub enable_connect_protocol: bool,
    /// H3_DATAGRAM.
    pub h3_datagram: bool,
}

impl Settings {
    /// Parse a SETTINGS payload. A repeated identifier, a reserved HTTP/2
    /// one or a boolean setting other than 0 or 1 is H3_SETTINGS_ERROR.
    pub fn decode(mut payload: &[u8]) -> Result<Settings, Error> {
        let bad = |reason: String| Error::protocol(Code::SettingsError, reason);
        let mut settings = Settings::default();
        let mut seen = std::collections::BTreeSet::new();
        while !payload.is_empty() {
            let (key, a) = varint::decode(payload).ok_or_else(|| bad("truncated setting".into()))?;
            let (value, b) = varint::decode(&payload[a..]).ok_or_else(|| bad("truncated setting".into()))?;
            payload = &payload[a + b..];
            if RESERVED_H2.contains(&key) {
                return Err(bad(format!("setting {key:#x} is reserved (HTTP/2 only)")));
            }
            if !seen.insert(key) {
                return Err(bad(format!("setting {key:#x} sent twice")));
            }
            let flag = |value: u64| match value {
                0 => Ok(false),
                1 => Ok(true),
                other => Err(bad(format!("setting {key:#x} must be 0 or 1, not {other}"))),
            };
            match key {
                id::QPACK_MAX_TABLE_CAPACITY => settings.qpack_max_table_capacity = value,
                id::MAX_FIELD_SECTION_SIZE => settings.max_field_section_size = Some(value),
                id::QPACK_BLOCKED_STREAMS => settings.qpack_blocked_streams = value,
                id::ENABLE_CONNECT_PROTOCOL => settings.enable_connect_protocol = flag(value)?,
                id::H3_DATAGRAM => settings.h3_datagram = flag(value)?,
                _ => {}
            }
        }
        Ok(settings)
    }

    /// The whole SETTINGS frame (header and payload).
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        let mut put = |key: u64, value: u64| {
            varint::encode(key, &mut payload);
            varint::encode(value, &mut payload);
        };
        put(id::QPACK_MAX_TABLE_CAPACITY, self.qpack_max_table_capacity);
        put(id::QPACK_BLOCKED_STREAMS, self.qpack_blocked_streams);
        if let Some(size) = self.max_field_section_size {
            put(id::MAX_FIELD_SECTION_SIZE, size);
        }
        if self.enable_connect_protocol {
            put(id::ENABLE_CONNECT_PROTOCOL, 1);
        }
        if self.h3_datagram {
            put(id::H3_DATAGRAM, 1);
        }
        let mut out = Vec::with_capacity(payload.len() + 3);
        varint::encode(FRAME_TYPE, &mut out);
        varint::encode(payload.len() as u64, &mut out);
        out.extend_from_slice(&payload);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, FrameDecoder};

    #[test]
    fn round_trip() {
        let ours = Settings {
            max_field_section_size: Some(16_384),
            enable_connect_protocol: true,
            ..Settings::default()
        };
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&ours.encode());
        assert_eq!(decoder.next_frame().unwrap(), Some(Frame::Settings(ours)));
    }

    #[test]
    fn refuses_duplicates_reserved_and_bad_flags() {
        for payload in [&[0x08, 0x01, 0x08, 0x01][..], &[0x02, 0x00], &[0x08, 0x02], &[0x08]] {
            assert_eq!(
                Settings::decode(payload).unwrap_err().code(),
                Code::SettingsError,
                "{payload:?}"
            );
        }
        // Unknown (and GREASE) identifiers are ignored.
        assert!(Settings::decode(&[0x21, 0x05]).is_ok());
    }
}
