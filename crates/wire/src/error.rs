/// Everything that can go wrong while speaking the protocol.
///
/// Each protocol violation maps to the close code RFC 6455 names for it
/// ([`Error::close_code`], defined beside the codes), so a transport can
/// fail the connection with the right code without knowing the rules itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An opcode that RFC 6455 reserves for future use.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV1-3 set without an extension that defines them.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// A payload length that did not use the shortest encoding.
    #[error("payload length not minimally encoded")]
    NonMinimalLength,
    /// A 64-bit payload length with the most significant bit set.
    #[error("payload length has its most significant bit set")]
    LengthTopBit,
    /// A control frame with a payload above 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLong(u64),
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A client frame without a mask, or a server frame with one.
    #[error("frame masking does not match the peer's role")]
    BadMasking,
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new data frame while a fragmented message is still in progress.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A frame above the configured frame size limit.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooBig {
        /// Announced payload size.
        size: u64,
        /// Configured limit.
        limit: usize,
    },
    /// A message above the configured message size limit.
    #[error("message of at least {size} bytes exceeds the limit of {limit}")]
    MessageTooBig {
        /// Size reached so far (announced or assembled).
        size: u64,
        /// Configured limit.
        limit: usize,
    },
    /// Text that is not UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A close frame whose payload is one byte long.
    #[error("close frame payload of one byte")]
    ClosePayloadOneByte,
    /// A close code that must not appear on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A frame after the peer's close frame.
    #[error("frame received after the close frame")]
    FrameAfterClose,
    /// A compressed message that does not inflate.
    #[error("corrupt permessage-deflate data")]
    BadDeflate,
    /// The application tried to send after the close handshake began.
    #[error("the connection is closing; no more messages can be sent")]
    SendAfterClose,
}
