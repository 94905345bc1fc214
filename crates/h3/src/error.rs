//! The one error type of the crate, and the HTTP/3 error codes.

/// HTTP/3 and QPACK error codes (RFC 9114, section 8.1; RFC 9204, section 6),
/// sent in CONNECTION_CLOSE, RESET_STREAM and STOP_SENDING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
#[allow(missing_docs)]
pub enum Code {
    NoError = 0x100,
    GeneralProtocolError = 0x101,
    InternalError = 0x102,
    StreamCreationError = 0x103,
    ClosedCriticalStream = 0x104,
    FrameUnexpected = 0x105,
    FrameError = 0x106,
    ExcessiveLoad = 0x107,
    IdError = 0x108,
    SettingsError = 0x109,
    MissingSettings = 0x10a,
    RequestRejected = 0x10b,
    RequestCancelled = 0x10c,
    RequestIncomplete = 0x10d,
    MessageError = 0x10e,
    ConnectError = 0x10f,
    VersionFallback = 0x110,
    QpackDecompressionFailed = 0x200,
    QpackEncoderStreamError = 0x201,
    QpackDecoderStreamError = 0x202,
}

impl Code {
    /// The code's value on the wire.
    pub fn value(self) -> u64 {
        self as u64
    }
}

/// What went wrong, and with which code the peer is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes break the framing: a truncated or oversized frame, a frame
    /// where it is not allowed, bad SETTINGS.
    #[error("HTTP/3 {code:?}: {reason}")]
    Protocol {
        /// The code to close (connection-level codes) or reset with.
        code: Code,
        /// What was wrong, for logs.
        reason: String,
    },
    /// A field section QPACK cannot decode (a dynamic table reference when
    /// ours holds nothing, a bad integer or Huffman string).
    #[error("QPACK: {0}")]
    Qpack(String),
    /// A well-formed field section that is not a valid request or response
    /// (missing or repeated pseudo-headers, uppercase names, ...): the
    /// stream is malformed (H3_MESSAGE_ERROR).
    #[error("malformed message: {0}")]
    Message(String),
    /// A field section beyond the size we advertised.
    #[error("field section of {size} bytes exceeds the limit of {limit}")]
    HeadersTooLarge {
        /// Its size as RFC 9114 counts it (names, values, 32 per field).
        size: usize,
        /// SETTINGS_MAX_FIELD_SECTION_SIZE.
        limit: usize,
    },
}

impl Error {
    /// The HTTP/3 error code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Error::Protocol { code, .. } => *code,
            Error::Qpack(_) => Code::QpackDecompressionFailed,
            Error::Message(_) => Code::MessageError,
            Error::HeadersTooLarge { .. } => Code::ExcessiveLoad,
        }
    }

    pub(crate) fn protocol(code: Code, reason: impl Into<String>) -> Error {
        Error::Protocol {
            code,
            reason: reason.into(),
        }
    }
}
