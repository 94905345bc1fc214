//! The WebSocket protocol (RFC 6455) as a sans-IO state machine.
//!
//! This crate never touches a socket, a clock or a thread. Bytes read from the
//! network go in, events come out; frames to send go in, bytes to write come
//! out. Keeping the protocol pure lets every transport (plain TCP, TLS, an
//! HTTP/2 or HTTP/3 stream) reuse one conformant implementation, and lets the
//! decoder be tested and fuzzed without any I/O, in the manner of `quinn-proto`
//! and `rustls`.
//!
//! The pieces, from the bottom up:
//!
//! - [`frame`]: the frame header codec of RFC 6455 section 5.2.
//! - [`mask`]: XOR masking with a word-at-a-time fast path.
//! - [`utf8`]: incremental UTF-8 validation that fails on the first invalid
//!   prefix, even in the middle of a fragment.
//! - [`close`]: close codes and the close frame payload (section 7.4).
//! - [`connection`]: [`Connection`], which turns frames into messages,
//!   reassembles fragments, answers pings and runs the close handshake.
//! - [`deflate`]: permessage-deflate (RFC 7692) negotiation and codec.
//! - [`handshake`]: the HTTP/1.1 opening handshake (section 4) for servers and
//!   clients, parsed with `httparse`.

pub mod close;
pub mod connection;
pub mod deflate;
mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use connection::{Config, Connection, Event, PreparedMessage, Role};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::Error;
pub use frame::{FrameHeader, OpCode};
pub use message::{Message, Utf8Bytes};
