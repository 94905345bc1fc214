//! The tokio transport for volley's WebSocket core.
//!
//! [`WebSocket`] runs a [`volley_wire::Connection`] over any
//! `AsyncRead + AsyncWrite` stream: a `TcpStream` from a raw accept, a TLS
//! stream, or the upgraded connection hyper or axum hand over. It owns the
//! I/O concerns the protocol core leaves out: coalesced writes, a bounded
//! outbound buffer, keepalive pings, idle and handshake timeouts, and closing
//! the TCP connection in the order RFC 6455 asks for.
//!
//! [`Acceptor`] performs the server side of the HTTP/1.1 opening handshake
//! over a raw stream, [`WebSocketUpgrade`] the same checks as an extractor
//! for HTTP services on axum or hyper (the one upgrade path every handler
//! uses), [`Connector`] (or [`connect`]) the client side. [`assets`] serves
//! the embedded browser pages.

mod addresses;
pub mod assets;
mod client;
mod client_h2;
mod client_h3;
mod config;
mod error;
pub mod front;
mod h3_conn;
mod h3_stream;
mod limits;
mod origin;
pub mod proxy_protocol;
mod server;
mod server_h2;
mod server_h3;
mod socket;
mod stream;
pub mod tls;
mod upgrade;

#[cfg(test)]
mod timers_test;

pub use client::{connect, Connector};
pub use client_h2::H2Connection;
pub use client_h3::H3Connection;
pub use config::{Config, InvalidSetting};
pub use error::Error;
pub use h3_stream::H3Stream;
pub use origin::origin_allowed;
pub use server::{Acceptor, Negotiated};
pub use server_h2::{Accepted, H2Accepted};
pub use socket::WebSocket;
pub use stream::MaybeTlsStream;
pub use upgrade::{check_scheme, PendingUpgrade, Refused, UpgradeState, Upgraded, WebSocketUpgrade};
pub use volley_wire::{CloseCode, CloseFrame, DeflateConfig, Message, OpCode, PreparedMessage, Role, Utf8Bytes};
