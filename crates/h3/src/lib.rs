//! The slice of HTTP/3 that WebSockets over HTTP/3 need, as pure functions
//! over bytes (no sockets, no QUIC): `volley-net` runs it over quinn.
//!
//! The released `h3` crate refuses `:protocol websocket`, so volley carries
//! this part of the protocol itself, as it carries RFC 6455:
//!
//! - [`varint`]: QUIC variable-length integers (RFC 9000, section 16);
//! - [`frame`]: HTTP/3 frames (RFC 9114, section 7), decoded incrementally
//!   so a DATA frame's payload flows through without being gathered;
//! - [`settings`]: the SETTINGS frame, with `SETTINGS_ENABLE_CONNECT_PROTOCOL`
//!   (RFC 9220, section 3);
//! - [`qpack`]: field sections with the static table and literals only
//!   (RFC 9204 allows a peer to advertise a dynamic table of capacity zero,
//!   which volley does, so no encoder or decoder stream state exists);
//! - [`head`]: request and response heads to and from field lists, with
//!   the pseudo-header rules of RFC 9114, section 4.3.
//!
//! Errors carry the HTTP/3 error code the connection or stream must be
//! closed with ([`Error::code`]).

mod error;
pub mod frame;
pub mod head;
pub mod qpack;
pub mod settings;
pub mod varint;

pub use error::{Code, Error};

/// Unidirectional stream types (RFC 9114, section 6.2; RFC 9204, section 4.2).
pub mod stream_type {
    /// The control stream: SETTINGS first, then GOAWAY and the like.
    pub const CONTROL: u64 = 0x00;
    /// Server push (a client must never open one).
    pub const PUSH: u64 = 0x01;
    /// QPACK encoder instructions (none arrive while our table holds 0 bytes).
    pub const QPACK_ENCODER: u64 = 0x02;
    /// QPACK decoder instructions.
    pub const QPACK_DECODER: u64 = 0x03;
}

/// The ALPN token of HTTP/3 over QUIC version 1.
pub const ALPN: &[u8] = b"h3";
