//! The tokio transport for volley's WebSocket core.
//!
//! [`WebSocket`] runs a [`volley_wire::Connection`] over any
//! `AsyncRead + AsyncWrite` stream: a `TcpStream` from a raw accept, a TLS
//! stream, or the upgraded connection hyper or axum hand over. It owns the
//! I/O concerns the protocol core leaves out: coalesced writes, a bounded
//! outbound buffer, keepalive pings, idle and handshake timeouts, and closing
//! the TCP connection in the order RFC 6455 asks for.
//!
//! [`Acceptor`] performs the server side of the HTTP/1.1 opening handshake,
//! [`Connector`] (or [`connect`]) the client side.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod config;
mod error;
mod origin;
mod server;
mod socket;
mod stream;
pub mod tls;

pub use client::{connect, Connector};
pub use config::Config;
pub use error::Error;
pub use origin::origin_allowed;
pub use server::{refusal, Acceptor, Negotiated};
pub use socket::WebSocket;
pub use stream::MaybeTlsStream;
pub use volley_wire::{CloseCode, CloseFrame, DeflateConfig, Message, OpCode, PreparedMessage, Role, Utf8Bytes};
