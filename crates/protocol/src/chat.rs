//! The chat protocol: JSON text frames, one object each, tagged by `type`.
//! docs/protocol.md is the reference; this module is its single source in
//! code, for the server (`volley-chat`) and the clients (`volley-client`).

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{RoomId, Seq, UserId};

/// What a client may send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First frame of every connection (unless the upgrade carried a bearer token).
    Auth {
        /// A JWT from `/api/login`, `/api/register`, `/api/guest` or a trusted issuer; wins over `guest`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// A guest name, when guests are allowed and no token is given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guest: Option<String>,
        /// Last sequence number seen per room id (JSON object keys are strings).
        #[serde(default)]
        resume: HashMap<String, Seq>,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    /// Post a message; `id` is the client's idempotency key.
    Send {
        /// Must be a room the sender is a member of, else `not_found`.
        room: RoomId,
        /// 1-64 chars chosen by the client; re-sending it to the same room stores nothing new.
        id: String,
        /// The message body, at most `max_text_bytes` bytes (else `too_large`).
        text: String,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    /// A page of history before `before` (or the newest).
    History {
        /// The room to read; members only.
        room: RoomId,
        /// Only messages with a smaller `seq`; `None` for the newest page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Seq>,
        /// Page size, clamped to 1-200; 50 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    /// Join a public room.
    Join {
        /// A public room; private and direct rooms need an invitation.
        room: RoomId,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    /// Leave a room.
    Leave {
        /// The room to leave; every connection of the user gets `room_left`.
        room: RoomId,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    /// Create a room (public unless `private`).
    CreateRoom {
        /// 1-64 printable characters; the creator becomes its owner.
        name: String,
        /// Unlisted, members added by the owner; `false` (public) when absent.
        #[serde(default)]
        private: bool,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    /// The sender is typing in `room`.
    Typing {
        /// Gets a `typing` frame at most once per `typing_interval_ms` per user.
        room: RoomId,
    },
    /// The sender has read `room` up to `seq`.
    Read {
        /// The room the receipt is for; its members get a `receipt`.
        room: RoomId,
        /// The highest seq read; clamped to the last message, and never moves a receipt backwards.
        seq: Seq,
    },
    /// Application-level round trip (latency display, liveness through proxies).
    Ping {
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
}

/// Error codes carried by `error` frames and HTTP error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON (HTTP 400).
    BadJson,
    /// `type` is not one of the client frames (HTTP 400).
    UnknownType,
    /// A field is missing, mistyped, not allowed or out of range (HTTP 400).
    BadRequest,
    /// `text` exceeds `max_text_bytes` (HTTP 413).
    TooLarge,
    /// Nothing authenticated yet; on the WebSocket, followed by close 1008 (HTTP 401).
    AuthRequired,
    /// Wrong name or password, or a bad or expired token (HTTP 401).
    AuthFailed,
    /// Authenticated but not allowed, e.g. removing a member as non-owner (HTTP 403).
    Forbidden,
    /// No such room or user, or not a member: private rooms are not revealed (HTTP 404).
    NotFound,
    /// The user name is already registered (HTTP 409).
    NameTaken,
    /// Over a message, request or account-attempt rate; `retry_after` says when to retry (HTTP 429).
    RateLimited,
    /// Over `max_connections_per_user` open connections (HTTP 429).
    TooManyConnections,
    /// Guest accounts are turned off on this server (HTTP 403).
    GuestsDisabled,
    /// The store is unreachable or failed the request; nothing was stored,
    /// and the same request (same message id) may be sent again after
    /// `retry_after_ms` (HTTP 503).
    Unavailable,
    /// Something failed that retrying will not fix (HTTP 500).
    Internal,
}

impl ErrorCode {
    /// The wire name, also used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::AuthRequired => "auth_required",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::GuestsDisabled => "guests_disabled",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status for this error in the JSON API.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadJson | ErrorCode::UnknownType | ErrorCode::BadRequest => 400,
            ErrorCode::TooLarge => 413,
            ErrorCode::AuthRequired | ErrorCode::AuthFailed => 401,
            ErrorCode::Forbidden | ErrorCode::GuestsDisabled => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::NameTaken => 409,
            ErrorCode::RateLimited | ErrorCode::TooManyConnections => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// A user as clients see them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserView {
    /// Stable for the account's lifetime; what `owner`, `user` and `online` fields refer to.
    pub id: UserId,
    /// Unique display name (guests may get a suffix if theirs was taken).
    pub name: String,
    /// A guest account: token-only, no password to log in again with.
    pub guest: bool,
}

/// A room as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomView {
    /// The id every room-scoped frame and API path uses.
    pub id: RoomId,
    /// 1-64 printable characters; for public rooms, what `/api/rooms?q=` searches.
    pub name: String,
    /// `"public"`, `"private"` or `"direct"`: who may see and join it.
    pub kind: String,
    /// The creator; only they may remove members or invite to a private room.
    pub owner: UserId,
    /// Seq of the newest message, 0 for an empty room: a client behind it has messages to fetch.
    pub last_seq: Seq,
    /// How many users belong to the room.
    pub members: u64,
    /// Present for the reader's own rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read: Option<Seq>,
    /// `last_seq - last_read` on connect, for the reader's own rooms; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u64>,
    /// Users online in the room, in the `ready` frame and `room_joined`;
    /// absent when more than `presence_list_max` are (ask `GET /api/rooms/{id}/online`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<Vec<UserId>>,
    /// How many users are online in the room, in `ready` and `room_joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_count: Option<usize>,
}

/// A stored message as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageView {
    /// The room it was posted in.
    pub room: RoomId,
    /// Its place in the room: 1, 2, 3... with no gaps; ignore a message at or below the last seen.
    pub seq: Seq,
    /// The sender's idempotency key from `send`, to match it with unacked local messages.
    pub id: String,
    /// The sender.
    pub user: UserId,
    /// The sender's name, so clients need no user lookup to display it.
    pub name: String,
    /// The body, at most `max_text_bytes` bytes.
    pub text: String,
    /// When the server stored it, in milliseconds since the Unix epoch (node clock).
    pub ts: i64,
}

/// One user's membership change in a `members` frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberChange {
    /// Who joined or left.
    pub user: UserView,
    /// The net change over the batch: `true` joined, `false` left or was removed.
    pub joined: bool,
}

/// One user's presence change in a `presence` frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PresenceChange {
    /// Whose presence changed.
    pub user: UserId,
    /// Their name, so clients need not look the id up.
    pub name: String,
    /// `true` once any of their connections is up, `false` when the last one closed.
    pub online: bool,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Authenticated; the user's rooms with unread counts and who is online.
    Ready {
        /// The authenticated user.
        user: UserView,
        /// Every room the user belongs to, with `last_read`, `unread` and `online`.
        rooms: Vec<RoomView>,
        /// A token for reconnecting, when the connection authenticated as a new guest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// A durable message (live, replayed on resume, or filling a gap).
    Message(MessageView),
    /// The sender's message is durable under `seq`.
    Ack {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        /// The room the message went to.
        room: RoomId,
        /// The seq it is stored under (the original one for a duplicate).
        seq: Seq,
        /// The client's idempotency key from `send`.
        id: String,
        /// Storage time in milliseconds since the Unix epoch.
        ts: i64,
        /// The id had already been stored: nothing new was stored or published.
        duplicate: bool,
    },
    /// Replay for `room` is complete up to `seq`; live traffic follows.
    CaughtUp {
        /// A room named in the auth frame's `resume`.
        room: RoomId,
        /// The last seq replayed; live messages continue after it.
        seq: Seq,
    },
    /// A page of history, oldest first; `more` when older messages exist.
    History {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        /// The room the page is from.
        room: RoomId,
        /// At most `limit` messages, oldest first.
        messages: Vec<MessageView>,
        /// Older messages exist: ask again with `before` set to the first seq.
        more: bool,
    },
    /// The reader became a member of a room (joined, created, invited, direct).
    RoomJoined {
        /// The room, with `online` filled in; sent to all of the user's connections.
        room: RoomView,
    },
    /// The reader is no longer a member of a room (left or removed).
    RoomLeft {
        /// The room; no more of its traffic follows on this connection.
        room: RoomId,
    },
    /// Members joined or left a room (batched: one frame per room per
    /// batching interval, the net change per user).
    Members {
        /// The room whose membership changed.
        room: RoomId,
        /// One entry per user whose membership changed in the batch.
        changes: Vec<MemberChange>,
    },
    /// Members came online or went offline in a room (batched likewise).
    Presence {
        /// The room the users belong to.
        room: RoomId,
        /// One entry per user whose presence changed in the batch; empty in
        /// rooms with more than `presence_list_max` users online.
        changes: Vec<PresenceChange>,
        /// How many users are online in the room now.
        #[serde(default)]
        online: usize,
    },
    /// A member is typing; show it for `ttl_ms` unless renewed.
    Typing {
        /// Where they are typing.
        room: RoomId,
        /// Who is typing.
        user: UserId,
        /// Their name, for display.
        name: String,
        /// How long to show the indicator, in milliseconds; it expires by itself.
        ttl_ms: u64,
    },
    /// A member has read a room up to `seq`.
    Receipt {
        /// The room read.
        room: RoomId,
        /// The reader.
        user: UserId,
        /// Their read mark: never moves backwards, clamped to the room's last message.
        seq: Seq,
    },
    /// A `join`, `leave` or `create_room` request succeeded (the membership
    /// change itself arrives as `room_joined` / `room_left`).
    Ok {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        /// The room joined or left, or the id of the room just created.
        room: RoomId,
    },
    /// Answer to `ping`.
    Pong {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    /// A request failed; the connection stays usable.
    Error {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        /// Machine-readable reason (see the error code table).
        code: ErrorCode,
        /// Human-readable detail; not stable, do not match on it.
        message: String,
        /// For `rate_limited`: milliseconds to wait before retrying (at least 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerMsg {
    /// Serialize once; the bytes are what every receiver gets.
    pub fn encode(&self) -> Bytes {
        // Serializing these types cannot fail: no maps with non-string keys,
        // no floats that could be NaN.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

impl ClientMsg {
    /// Serialize for a text frame.
    pub fn encode(&self) -> String {
        // These types always serialize: string keys, no floats.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_round_trip() {
        let msg = ServerMsg::Ack {
            reference: Some(Value::from("r1")),
            room: RoomId(4),
            seq: Seq(9),
            id: "c".into(),
            ts: 1,
            duplicate: false,
        };
        let bytes = msg.encode();
        assert!(std::str::from_utf8(&bytes).unwrap().contains(r#""type":"ack""#));
        assert_eq!(serde_json::from_slice::<ServerMsg>(&bytes).unwrap(), msg);
    }

    #[test]
    fn client_messages_round_trip_without_nulls() {
        let msg = ClientMsg::Send {
            room: RoomId(2),
            id: "m1".into(),
            text: "hi".into(),
            reference: None,
        };
        let text = msg.encode();
        assert_eq!(text, r#"{"type":"send","room":2,"id":"m1","text":"hi"}"#);
        assert_eq!(serde_json::from_str::<ClientMsg>(&text).unwrap(), msg);
        let auth = ClientMsg::Auth {
            token: None,
            guest: Some("g".into()),
            resume: HashMap::new(),
            reference: None,
        };
        assert!(!auth.encode().contains("null"));
    }
}
