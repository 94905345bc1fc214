//! The durable side: users, rooms, memberships and sequenced history.

use async_trait::async_trait;

use crate::model::{
    Appended, MemberRoom, NewMessage, Room, RoomId, RoomKind, Seq, StoredMessage, User, UserId, UserKind,
};
use crate::Error;

/// Durable state behind the chat handlers.
///
/// Every method is one atomic step. `append` is the heart of it: it assigns the
/// room's next sequence number (strictly increasing, no gaps), makes the message
/// durable, and only then returns, so an ack never precedes durability.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Create a user; `Error::Taken` when the name exists.
    async fn create_user(&self, name: &str, kind: UserKind, password_hash: Option<String>) -> Result<User, Error>;
    /// A user and their password hash, by name.
    async fn user_by_name(&self, name: &str) -> Result<Option<(User, Option<String>)>, Error>;
    /// A user by id.
    async fn user(&self, id: UserId) -> Result<Option<User>, Error>;
    /// The user for an external subject, created on first sight.
    async fn external_user(&self, subject: &str) -> Result<User, Error>;

    /// Create a room owned (and joined) by `owner`.
    async fn create_room(&self, name: &str, kind: RoomKind, owner: UserId) -> Result<Room, Error>;
    /// A room by id.
    async fn room(&self, id: RoomId) -> Result<Option<Room>, Error>;
    /// Public rooms whose name contains `query` (all when empty), most active first.
    async fn search_public(&self, query: &str, limit: u32) -> Result<Vec<Room>, Error>;
    /// The rooms `user` belongs to, with what they have read.
    async fn rooms_of(&self, user: UserId) -> Result<Vec<MemberRoom>, Error>;
    /// Add a member; false when they already were one.
    async fn add_member(&self, room: RoomId, user: UserId) -> Result<bool, Error>;
    /// Remove a member; false when they were not one.
    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, Error>;
    /// Delete a room with its messages and memberships, and return who its
    /// members were (`None`: no such room). Its id is never given to
    /// another room, so a client's resume point for it cannot land in a
    /// stranger's room: SQLite keeps a tombstone row, PostgreSQL's ids
    /// never repeat. An append racing the delete fails with `NotFound`.
    async fn delete_room(&self, room: RoomId) -> Result<Option<Vec<UserId>>, Error>;
    /// Whether `user` belongs to `room`.
    async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, Error>;
    /// The members of a room.
    async fn members(&self, room: RoomId) -> Result<Vec<User>, Error>;
    /// The direct room between two users, created (with both as members) on first use.
    async fn direct_room(&self, a: &User, b: &User) -> Result<Room, Error>;

    /// Append a message durably (see the trait docs).
    async fn append(&self, message: NewMessage) -> Result<Appended, Error>;
    /// Up to `limit` messages before `before` (or the newest), oldest first.
    async fn history(&self, room: RoomId, before: Option<Seq>, limit: u32) -> Result<Vec<StoredMessage>, Error>;
    /// Up to `limit` messages after `after`, oldest first: the resume query.
    async fn since(&self, room: RoomId, after: Seq, limit: u32) -> Result<Vec<StoredMessage>, Error>;
    /// Record that `user` has read `room` up to `seq` (never moves backwards);
    /// returns the recorded value.
    async fn set_read(&self, room: RoomId, user: UserId, seq: Seq) -> Result<Seq, Error>;
    /// Raise each user's best game score to the given one where it is
    /// higher (never lowers it): the game's leaderboard of accounts, which
    /// outlives matches, nodes and sessions.
    async fn record_scores(&self, scores: &[(UserId, u32)]) -> Result<(), Error>;
    /// The `limit` best game scores, best first (ties: the earlier one first).
    async fn top_scores(&self, limit: u32) -> Result<Vec<(User, u32)>, Error>;
    /// Whether the store answers (for `/readyz`).
    async fn ping(&self) -> Result<(), Error>;
}
