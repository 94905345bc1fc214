//! The hub between chat handlers and the engines that make them durable and
//! shared: a [`Store`] (durable users, rooms and per-room sequenced history)
//! and a [`Broker`] (publishes events to every node), joined on each node by a
//! [`Fanout`] that encodes each event once and hands the same frame to every
//! local subscriber through a bounded queue.
//!
//! The embedded defaults are [`SqliteStore`] (one file, WAL, group commit) and
//! [`MemoryBroker`] (this process only). Handlers see only the traits, so
//! other engines (PostgreSQL, Redis, NATS) slot in without touching them.

mod broker;
mod error;
mod fanout;
mod hub;
mod model;
mod nats_broker;
mod postgres;
mod presence;
mod presence_sync;
mod redis_broker;
mod sequencer;
mod sqlite;
mod store;

pub use broker::{Broker, MemoryBroker};
pub use error::Error;
pub use fanout::{ConnId, Delivery, Event, Fanout, Subscriber, SubscriberHandle, Topic};
pub use hub::Hub;
pub use model::{Appended, MemberRoom, NewMessage, Room, RoomId, RoomKind, Seq, StoredMessage, User, UserId, UserKind};
pub use nats_broker::NatsBroker;
pub use postgres::{PgStore, MIGRATIONS};
pub use presence::{Change, Listener, Presence};
pub use redis_broker::RedisBroker;
pub use sequencer::Sequencer;
pub use sqlite::{SqliteStore, Synchronous};
pub use store::Store;
