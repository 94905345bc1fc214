//! The durable records: users, rooms, memberships and messages.

pub use volley_protocol::{RoomId, Seq, UserId};

/// How a user came to exist, which decides how they may log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    /// Registered with a password (argon2id hash stored).
    Password,
    /// A guest: a token only, no password; may be disabled by configuration.
    Guest,
    /// Provisioned from a JWT minted by another application (the `sub` claim).
    External,
}

impl UserKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UserKind::Password => "password",
            UserKind::Guest => "guest",
            UserKind::External => "external",
        }
    }

    pub(crate) fn parse(s: &str) -> UserKind {
        match s {
            "guest" => UserKind::Guest,
            "external" => UserKind::External,
            _ => UserKind::Password,
        }
    }
}

/// A user as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable for the account's lifetime; what tokens name in `sub`.
    pub id: UserId,
    /// Unique across users; shown to others and used to invite or address them.
    pub name: String,
    /// How the account authenticates (password, guest token, external JWT).
    pub kind: UserKind,
}

/// Who may see and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    /// Listed and searchable; anyone may join.
    Public,
    /// Unlisted; members are added by the owner.
    Private,
    /// Between exactly two users, found again by the pair.
    Direct,
}

impl RoomKind {
    /// The name used in the protocol and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Public => "public",
            RoomKind::Private => "private",
            RoomKind::Direct => "direct",
        }
    }

    pub(crate) fn parse(s: &str) -> RoomKind {
        match s {
            "private" => RoomKind::Private,
            "direct" => RoomKind::Direct,
            _ => RoomKind::Public,
        }
    }
}

/// A room and the highest sequence number it has assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Assigned by the store at creation.
    pub id: RoomId,
    /// Display name; not unique, so rooms are told apart by `id`.
    pub name: String,
    /// Who may see and join it.
    pub kind: RoomKind,
    /// The creator: the only one who may remove members or invite to a private room.
    pub owner: UserId,
    /// Seq of the newest message, 0 while the room is empty; the next append gets `last_seq + 1`.
    pub last_seq: Seq,
    /// Number of members when the record was read.
    pub members: u64,
}

/// A room seen by one of its members: what they have read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRoom {
    /// The room itself.
    pub room: Room,
    /// The member's read mark: never decreases and never exceeds `room.last_seq`.
    pub last_read: Seq,
}

/// A message to append; the store assigns `seq` and keeps `ts`.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The room to append to; the caller has checked the sender is a member.
    pub room: RoomId,
    /// The sender.
    pub user: UserId,
    /// The sender's name, returned with the stored message.
    pub user_name: String,
    /// The sender's id for this message: a retransmission with the same id is
    /// answered with the stored message instead of creating another.
    pub client_id: String,
    /// The body, already checked against the configured size limit.
    pub text: String,
    /// Milliseconds since the Unix epoch, from the node's clock.
    pub ts: i64,
}

impl NewMessage {
    /// The message as stored under `seq`.
    pub fn stored(self, seq: Seq) -> StoredMessage {
        StoredMessage {
            room: self.room,
            seq,
            client_id: self.client_id,
            user: self.user,
            user_name: self.user_name,
            text: self.text,
            ts: self.ts,
        }
    }

    /// The earlier copy of this message (same room, sender and client id),
    /// with what was stored then: its seq, text and time.
    pub fn duplicate_of(self, seq: Seq, text: String, ts: i64) -> StoredMessage {
        StoredMessage {
            text,
            ts,
            ..self.stored(seq)
        }
    }
}

/// A message as stored, with its place in the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The room it belongs to.
    pub room: RoomId,
    /// The message's place in its room.
    pub seq: Seq,
    /// The sender's idempotency key; unique per room and sender.
    pub client_id: String,
    /// The sender.
    pub user: UserId,
    /// The sender's name, so readers need no user lookup.
    pub user_name: String,
    /// The body, as sent.
    pub text: String,
    /// Milliseconds since the Unix epoch, from the clock of the node that appended it.
    pub ts: i64,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, under a fresh sequence number.
    New(StoredMessage),
    /// The same sender had already sent this client id to this room.
    Duplicate(StoredMessage),
}

impl Appended {
    /// The stored message either way.
    pub fn message(&self) -> &StoredMessage {
        match self {
            Appended::New(m) | Appended::Duplicate(m) => m,
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it): when
/// a best score was set.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
