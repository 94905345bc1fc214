//! The group chat behind `volley serve`.
//!
//! [`Server`] binds an address and serves the web client, the WebSocket
//! endpoint (`/ws`), the JSON API (`/api/...`), `/healthz`, `/readyz` and
//! `/metrics`. Handlers live in [`Chat`], over a [`volley_hub::Hub`], so the
//! same code runs on one node (SQLite, in-process broker) or many.
//! The Rust client is `volley-client` (tests, `volley bench chat`).
//! The protocol is in docs/protocol.md and in [`protocol`].

pub mod auth;
mod batch;
mod catch_up;
pub mod config;
mod error;
mod http;
pub mod limits;
pub mod protocol;
mod refusal;
mod server;
mod server_api;
mod service;
mod session;
mod telemetry;

pub use config::{BrokerUrl, ChatConfig, ExternalJwt, JwtAlgorithm, StoreUrl};
pub use error::Error;
pub use refusal::{ErrorCode, Refusal};
pub use server::Server;
pub use service::Chat;
pub use volley_hub::{RoomId, Seq, UserId};
